"""The seeded one-time shuffle of the training triples (benchmark.shuffle) and the docpairs teacher that reads it:
every line once, the same order for the same seed however the stream is chunked, only what the steps reach read,
and BCE / Hinge cells trained end to end on a docpairs file in the released layout."""

from __future__ import annotations

import gzip
import itertools
from pathlib import Path

import numpy as np
import pytest

from benchmark import shuffle
from benchmark.config import parse_experiment
from benchmark.grid import execute_cell, refusals
from benchmark.samplers import TripleTable

LINES = [f"q{i % 97}\tp{i}\tn{i}" for i in range(5000)]


def _built(tmp_path: Path, seed: int, buckets: int, name: str = "s") -> list[str]:
    return list(shuffle.read(shuffle.build(iter(LINES), tmp_path / name, seed, buckets)))


def test_every_line_once_same_order_for_a_seed_another_for_another(tmp_path, monkeypatch):
    first = _built(tmp_path, 123, 8, "a")
    assert sorted(first) == sorted(LINES) and first != LINES
    monkeypatch.setattr(shuffle, "DEAL_CHUNK", 7)  # a different chunking of the same stream
    assert _built(tmp_path, 123, 8, "b") == first
    assert _built(tmp_path, 124, 8, "c") != first
    assert _built(tmp_path, 123, 8, "a") == first  # built once: the directory is read back


def test_positions_deal_uniformly():
    counts = np.bincount(shuffle.bucket_of(np.arange(200_000), 123, 16), minlength=16)
    assert counts.min() > 0.95 * 200_000 / 16 and counts.max() < 1.05 * 200_000 / 16


def test_a_reader_that_stops_opens_only_the_buckets_it_reads(tmp_path, monkeypatch):
    directory = shuffle.build(iter(LINES), tmp_path / "s", 1, 10)
    opened = []
    real = gzip.open
    monkeypatch.setattr(shuffle.gzip, "open", lambda path, *a, **k: opened.append(Path(path).name) or real(path, *a, **k))
    assert len(list(itertools.islice(shuffle.read(directory), 100))) == 100
    assert opened == ["bucket-0000.gz"]  # ~500 lines a bucket


def test_an_interrupted_build_leaves_nothing_that_reads(tmp_path):
    def broken():
        yield from LINES[:10]
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        shuffle.build(broken(), tmp_path / "s", 1, 4)
    assert not (tmp_path / "s").exists()


def test_triple_table_reads_back_what_was_appended():
    table = TripleTable()
    for q, p, n in [("q1", "a", "b"), ("q2", "b", "c"), ("q1", "c", "a")]:
        table.append(q, p, n)
    assert list(table) == [("q1", "a", "b"), ("q2", "b", "c"), ("q1", "c", "a")]
    assert table[1] == ("q2", "b", "c") and table[-1] == ("q1", "c", "a") and len(table) == 3


def _grid(path: str, objective: str, shuffle_seed: int | None, max_steps: int = 3) -> dict:
    teacher = {"kind": "docpairs", "path": path, **({"shuffle_seed": shuffle_seed} if shuffle_seed is not None else {})}
    return {"experiment": {"name": "triples"},
            "grid": {"backbone": ["bert-tiny"], "recipe": [{"objective": objective, "teacher": "pairs"}]},
            "train": {"dataset": "embedded-train", "sampler": "triples", "group_size": 2, "batch_size": 4,
                      "max_steps": max_steps, "max_length": 64},
            "eval": {"top_k": 10, "latency_queries": 1, "latency_repeats": 1},
            "teachers": {"pairs": teacher}}


@pytest.fixture(scope="module")
def triples_file(tmp_path_factory):
    """The embedded training queries' judged positives against BM25 negatives, in qidpidtriples' layout (gzip)."""
    from benchmark.rehearsal import miniatures as mini

    world = mini.World()
    path = tmp_path_factory.mktemp("pairs") / "qidpidtriples.train.full.2.tsv.gz"
    return mini.write_docpairs(path, world), list(mini.triples(world))


@pytest.mark.parametrize("objective", ["bce", "hinge"])
def test_bce_and_hinge_train_on_shuffled_docpairs(triples_file, objective, tmp_path, monkeypatch):
    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    path, listed = triples_file
    experiment = parse_experiment(_grid(str(path), objective, shuffle_seed=123))
    assert refusals(experiment) == []
    record = execute_cell(experiment.cells[0], str(tmp_path / "results"))
    assert record["status"] == "ok", record.get("error")
    assert record["train"]["steps"] == 3 and record["metrics"]["embedded-test"]["nDCG@10"] > 0


def test_docpairs_reads_only_the_triples_the_steps_reach_in_the_shuffled_order(triples_file, tmp_path, monkeypatch):
    from benchmark.cell import teach

    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    path, listed = triples_file
    ordered = teach(parse_experiment(_grid(str(path), "bce", None)).cells[0])[2].triples
    assert list(ordered) == listed[:12]  # 3 steps x 4 triples, file order
    shuffled = teach(parse_experiment(_grid(str(path), "bce", 123)).cells[0])[2].triples
    assert len(shuffled) == 12 and list(shuffled) != listed[:12] and set(shuffled) <= set(listed)
    again = teach(parse_experiment(_grid(str(path), "bce", 123)).cells[0])[2].triples
    assert list(again) == list(shuffled)
