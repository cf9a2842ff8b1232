"""Teacher rows: label targets, file teachers (Hofstätter TSV, TREC run, LLM rankings) and their one-line errors."""

import math
from types import SimpleNamespace

import pytest
import torch

from benchmark.collection import Collection
from benchmark.errors import BenchError
from benchmark.objectives import get_objective
from benchmark.teachers import TeacherContext, TeacherSpec, compute_targets, get_teacher
from benchmark.training import Targets, as_objective_targets

COLL = Collection("toy", {"q1": "a", "q2": "b"}, {"d1": "x", "d2": "y", "d3": "z"},
                  {"q1": {"d1": 1}, "q2": {"d2": 2}}, {"q1": {"d1": 1.0, "d2": 0.5}, "q2": {"d2": 1.0, "d3": 0.1}})


def _ctx():
    return TeacherContext(COLL, {"q1": ["d1", "d2"], "q2": ["d2", "d3"]}, SimpleNamespace(), lambda n: None)


def _targets(tmp_path, kind, name, text):
    path = tmp_path / name
    path.write_text(text)
    return compute_targets(TeacherSpec("t", kind, path=str(path)), _ctx())


def test_labels_teacher_gives_grades():
    t = compute_targets(get_teacher("labels"), _ctx())
    assert t.kind == "labels" and t.values("q2", ["d2", "d3"]) == [2.0, 0.0]


def test_hofstatter_tsv_scores(tmp_path):
    t = _targets(tmp_path, "score-file", "ens.tsv", "9.5\t-1.25\tq1\td1\td2\n3.0\t2.0\tq2\td2\td3\n")
    assert t.kind == "scores" and t.values("q1", ["d1", "d2"]) == [9.5, -1.25]
    assert t.pool == {"q1": ["d1", "d2"], "q2": ["d2", "d3"]}


def test_llm_rankings_jsonl_and_trec(tmp_path):
    a = _targets(tmp_path, "llm-ranking", "r.jsonl", '{"qid": "q1", "ranking": ["d2", "d1"]}\n')
    b = _targets(tmp_path, "llm-ranking", "r.trec", "q1 Q0 d1 2 0.5 zephyr\nq1 Q0 d2 1 0.9 zephyr\n")
    assert a.kind == b.kind == "ranks"
    assert a.values("q1", ["d1", "d2", "d3"]) == b.values("q1", ["d1", "d2", "d3"]) == [2.0, 1.0, 3.0]


@pytest.mark.parametrize("kind, name, text, culprit", [
    ("score-file", "s.tsv", "1.0\tq1\td1\n", "s.tsv:1: expected 5 columns"),
    ("score-file", "s.tsv", "1.0\t0.5\tq1\td1\td2\nnan\t0.1\tq2\td2\td3\n", "s.tsv:2: non-finite score 'nan'"),
    ("score-file", "s.tsv", "1.0\t0.5\tq9\td1\td2\n", "s.tsv:1: unknown query id 'q9'"),
    ("score-file", "s.tsv", "1.0\t0.5\tq1\td1\td7\n", "s.tsv:1: unknown document id 'd7'"),
    ("score-file", "s.tsv", "high\t0.5\tq1\td1\td2\n", "s.tsv:1: 'high' is not a number"),
    ("llm-ranking", "r.jsonl", '{"qid": "q1"}\n', "r.jsonl:1: expected"),
    ("llm-ranking", "r.trec", "q1 Q0 d1 one 0.5 z\n", "r.trec:1: 'one' is not a number"),
])
def test_bad_teacher_files_name_file_and_line(tmp_path, kind, name, text, culprit):
    with pytest.raises(BenchError, match=culprit.replace("(", r"\(")):
        _targets(tmp_path, kind, name, text)


def test_teacher_rows_validate():
    with pytest.raises(BenchError, match="needs models"):
        TeacherSpec("x", "cross-encoder")
    with pytest.raises(BenchError, match="needs path"):
        TeacherSpec("x", "llm-ranking")
    with pytest.raises(BenchError, match="kind must be one of"):
        TeacherSpec.from_dict("x", {"kind": "oracle"})


def test_targets_are_mapped_to_what_each_objective_expects():
    mask = torch.tensor([[True, True, False]])
    labels = torch.tensor([[2.0, 0.0, 0.0]])
    ranks = torch.tensor([[2.0, 1.0, 0.0]])  # padded rank 0 must not win
    logits = torch.tensor([[0.0, 2.0, 5.0]])
    bce, mse = get_objective("bce"), get_objective("mse")
    assert as_objective_targets(labels, "labels", bce, mask).tolist() == [[1.0, 0.0, 0.0]]
    assert as_objective_targets(ranks, "ranks", bce, mask).tolist() == [[0.0, 1.0, 0.0]]
    assert as_objective_targets(ranks, "ranks", mse, mask).tolist() == [[-2.0, -1.0, -0.0]]
    probs = as_objective_targets(logits, "scores", bce, mask)
    assert probs[0, 1].item() == pytest.approx(1 / (1 + math.exp(-2)))
    assert Targets({"q": {"a": 1.0}}, "ranks").values("q", ["a", "b"]) == [1.0, 2.0]


def test_shipped_llm_ranking_example_covers_the_embedded_training_queries():
    from benchmark.datasets import get_dataset, load_collection

    train = load_collection(get_dataset("embedded-train"))
    ctx = TeacherContext(train, {}, SimpleNamespace(), lambda n: None)
    targets = compute_targets(get_teacher("llm-example"), ctx)
    assert targets.kind == "ranks" and set(targets.pool) == set(train.queries)
    assert all(len(r) == 20 for r in targets.pool.values())


def _tiny_cell(tmp_path):
    from benchmark.config import load_experiment
    from tests_support import TINY_GRID

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_GRID)
    return next(c for c in load_experiment(path).cells if c.backbone.name == "bert-tiny")


def test_student_pairs_are_the_pairs_training_puts_in_groups(tmp_path):
    """A teacher scores only ``student_pairs``: they must be exactly what train_model asks targets for."""
    import dataclasses

    from benchmark.backbones import build_cross_encoder
    from benchmark.grid import load
    from benchmark.training import negative_pool, student_pairs, train_model, training_qids

    cell = _tiny_cell(tmp_path)
    cfg = dataclasses.replace(cell.train, epochs=2)
    coll = load(cell, cfg.dataset)
    seen: dict[str, set[str]] = {}

    class Recording(Targets):
        def values(self, qid, docids):
            seen.setdefault(qid, set()).update(docids)
            return super().values(qid, docids)

    model, tok = build_cross_encoder(cell.backbone, seed=0)
    train_model(model, tok, coll, Recording(coll.qrels, "labels"), get_objective("bce"), cfg, seed=3,
                use_token_type_ids=True)
    planned = student_pairs(coll, cfg, seed=3)
    assert {q: set(d) for q, d in planned.items()} == seen
    top = negative_pool(coll, training_qids(coll, None), cfg.negatives_depth)
    assert sum(map(len, planned.values())) < sum(map(len, top.values()))  # fewer than the whole top-depth pool
    assert student_pairs(coll, cfg, seed=4) != planned  # the seed draws the groups


def test_teacher_scores_only_the_pairs_its_cache_lacks(tmp_path, monkeypatch):
    from benchmark.backbones import get_backbone
    from benchmark.grid import load
    from benchmark.teachers import _cached_scores

    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))
    cell = _tiny_cell(tmp_path)
    coll = load(cell, cell.train.dataset)
    asked: list[list[tuple[str, str]]] = []

    def lengths(spec, ctx, backbone, queries, docs):  # a stand-in model: the score is the pair's text length
        asked.append(list(zip(queries, docs)))
        return [len(q) + len(d) for q, d in zip(queries, docs)]

    spec, backbone = get_teacher("minilm-l3-ce"), get_backbone("minilm-l3")
    q1, q2 = sorted(coll.queries)[:2]
    first = {q1: coll.ranked(q1, 3)}
    second = {q1: coll.ranked(q1, 4), q2: coll.ranked(q2, 2)}
    got = _cached_scores(spec, TeacherContext(coll, first, cell, lambda n: backbone), backbone, lengths)
    assert got == {q1: {d: len(coll.queries[q1]) + len(coll.docs[d]) for d in first[q1]}}
    got = _cached_scores(spec, TeacherContext(coll, second, cell, lambda n: backbone), backbone, lengths)
    assert {q: list(row) for q, row in got.items()} == second  # exactly the pool asked for, in its order
    assert [len(a) for a in asked] == [3, 1 + 2]  # the second call scored only the 3 pairs the cache lacked
    assert asked[1][0] == (coll.queries[q1], coll.docs[second[q1][3]])
    _cached_scores(spec, TeacherContext(coll, first, cell, lambda n: backbone), backbone, lengths)
    assert len(asked) == 2  # everything cached: no scoring at all
