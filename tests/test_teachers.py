"""Teacher rows: label targets, file teachers (Hofstätter TSV, TREC run, LLM rankings) and their one-line errors."""

import math
import re
from collections.abc import Mapping
from types import SimpleNamespace

import pytest
import torch

from benchmark.collection import Collection
from benchmark.config import TrainConfig
from benchmark.errors import BenchError
from benchmark.losses import get_objective
from benchmark.teachers import TeacherSpec, get_teacher
from benchmark.teaching import TeacherContext, compute_targets
from benchmark.training import Targets, as_objective_targets

COLL = Collection("toy", {"q1": "a", "q2": "b"}, {"d1": "x", "d2": "y", "d3": "z"},
                  {"q1": {"d1": 1}, "q2": {"d2": 2}}, {"q1": {"d1": 1.0, "d2": 0.5}, "q2": {"d2": 1.0, "d3": 0.1}})


def _ctx(coll=COLL, **train):
    return TeacherContext(coll, {"q1": ["d1", "d2"], "q2": ["d2", "d3"]}, SimpleNamespace(train=TrainConfig(**train)),
                          lambda n: None)


def _targets(tmp_path, kind, name, text, ctx=None, **row):
    path = tmp_path / name
    path.write_text(text)
    return compute_targets(TeacherSpec("t", kind, path=str(path), **row), ctx or _ctx())


def test_labels_teacher_gives_grades():
    t = compute_targets(get_teacher("labels"), _ctx())
    assert t.kind == "labels" and t.values("q2", ["d2", "d3"]) == [2.0, 0.0]


def test_hofstatter_tsv_scores(tmp_path):
    t = _targets(tmp_path, "score-file", "ens.tsv", "9.5\t-1.25\tq1\td1\td2\n3.0\t2.0\tq2\td2\td3\n")
    assert t.kind == "scores" and t.values("q1", ["d1", "d2"]) == [9.5, -1.25]
    assert t.pool == {"q1": ["d1", "d2"], "q2": ["d2", "d3"]}
    assert t.triples == [("q1", "d1", "d2"), ("q2", "d2", "d3")]


def test_score_file_lists_are_best_first_and_triples_keep_file_order(tmp_path):
    # the ensemble may score a listed d- above its d+: the triple keeps the file's d+ first, the list sorts by score
    t = _targets(tmp_path, "score-file", "ens.tsv", "1.0\t4.0\tq1\td1\td2\n2.0\t3.0\tq1\td1\td3\n")
    assert t.triples == [("q1", "d1", "d2"), ("q1", "d1", "d3")]
    assert t.pool == {"q1": ["d2", "d3", "d1"]}
    run = _targets(tmp_path, "score-file", "t.run", "q1 Q0 d3 1 0.2 x\nq1 Q0 d1 2 0.9 x\n")
    assert run.pool == {"q1": ["d1", "d3"]} and run.triples is None


def test_llm_rankings_jsonl_and_trec(tmp_path):
    a = _targets(tmp_path, "llm-ranking", "r.jsonl", '{"qid": "q1", "ranking": ["d2", "d1"]}\n')
    b = _targets(tmp_path, "llm-ranking", "r.trec", "q1 Q0 d1 2 0.5 zephyr\nq1 Q0 d2 1 0.9 zephyr\n")
    assert a.kind == b.kind == "ranks"
    assert a.values("q1", ["d1", "d2", "d3"]) == b.values("q1", ["d1", "d2", "d3"]) == [2.0, 1.0, 3.0]


def test_llm_run_is_ordered_by_score_and_ranks_only_break_ties(tmp_path):
    # lines out of order; d3 and d1 tie on score: rank 2 before rank 3
    text = "q1 Q0 d1 3 0.5 z\nq1 Q0 d2 1 0.9 z\nq1 Q0 d3 2 0.5 z\n"
    assert _targets(tmp_path, "llm-ranking", "r.run", text).pool == {"q1": ["d2", "d3", "d1"]}


def test_llm_run_whose_ranks_and_scores_disagree_names_file_and_line(tmp_path):
    text = "q1 Q0 d1 1 0.9 z\nq1 Q0 d2 2 0.5 z\nq1 Q0 d3 3 0.7 z\n"  # d3: rank 3 but a higher score than d2
    with pytest.raises(BenchError, match=r"r.run:2: query 'q1' document 'd2' has rank 2 but a lower score than the "
                                         r"document ranked 3"):
        _targets(tmp_path, "llm-ranking", "r.run", text)


def test_md5_is_checked_where_the_row_gives_one(tmp_path):
    import hashlib

    text = "q1 Q0 d1 1 0.9 z\n"
    good = hashlib.md5(text.encode()).hexdigest()
    assert _targets(tmp_path, "llm-ranking", "r.run", text, md5=good).pool == {"q1": ["d1"]}
    with pytest.raises(BenchError, match=f"teacher 't': .*r.run has md5 {good}, the row expects 0{{32}}"):
        _targets(tmp_path, "llm-ranking", "r.run", text, md5="0" * 32)


def test_released_gzip_file_is_streamed_not_read_whole(tmp_path, monkeypatch):
    """A .run.gz (as Zenodo 12528410 ships its set-encoder run) is read line by line; nothing reads a whole file."""
    import gzip
    from pathlib import Path

    path = tmp_path / "__set-encoder-colbert__msmarco-passage-train-judged.run.gz"
    with gzip.open(path, "wt") as f:
        f.write("q2 Q0 d3 1 5.0 set-encoder\nq2 Q0 d2 2 4.0 set-encoder\n")

    def whole(*args, **kwargs):
        raise AssertionError("a teacher file was read whole")

    monkeypatch.setattr(Path, "read_text", whole)
    monkeypatch.setattr(Path, "read_bytes", whole)
    t = compute_targets(TeacherSpec("t", "llm-ranking", path=str(path)), _ctx())
    assert t.pool == {"q2": ["d3", "d2"]} and t.values("q2", ["d2", "d3"]) == [2.0, 1.0]


class _LazyDocs(Mapping):
    """A docstore that must not be touched while a teacher file is read (MS MARCO: 8.8M passages)."""

    def __getitem__(self, key):
        raise AssertionError(f"docstore lookup of {key!r}")

    def __iter__(self):
        raise AssertionError("docstore enumerated")

    def __len__(self):
        return 3


def test_lazy_docstore_is_not_looked_up_per_line(tmp_path):
    lazy = Collection("lazy", COLL.queries, _LazyDocs(), COLL.qrels, COLL.run)
    t = _targets(tmp_path, "score-file", "ens.tsv", "9.5\t-1.25\tq1\td1\td9\n", ctx=_ctx(lazy))
    assert t.triples == [("q1", "d1", "d9")]  # d9 is unchecked: it fails when the student reads it


def _many(n=10):
    queries = {f"q{i}": f"query {i}" for i in range(n)}
    docs = {f"d{i}": f"doc {i}" for i in range(n)}
    return Collection("many", queries, docs, {f"q{i}": {f"d{i}": 1} for i in range(n)}, {})


def test_label_budget_is_drawn_from_the_queries_the_file_covers(tmp_path):
    from benchmark.training import training_qids

    coll = _many()
    covered = ["q7", "q8", "q9"]
    text = "".join(f"1.0\t0.0\t{q}\td{q[1:]}\td0\n" for q in covered)
    t = _targets(tmp_path, "score-file", "ens.tsv", text, ctx=_ctx(coll, max_queries=2))
    assert set(t.pool) == set(training_qids(coll, 2, among=covered)) and set(t.pool) < set(covered)
    assert len(t.triples) == 2 and {q for q, _, _ in t.triples} == set(t.pool)
    one = _targets(tmp_path, "score-file", "ens.tsv", text, ctx=_ctx(coll, max_queries=1))
    assert set(one.pool) < set(t.pool)  # budgets stay nested
    # the old draw (the first 2 of all 10 judged queries, then the file's) keeps fewer than 2 here
    assert len(set(training_qids(coll, 2)) & set(covered)) < 2


def test_docpairs_read_by_ir_datasets_tsv_reader(tmp_path):
    """MS MARCO's qidpidtriples layout (qid, pid+, pid-; tab-separated) through ir_datasets' TsvDocPairs."""
    t = _targets(tmp_path, "docpairs", "qidpidtriples.train.tsv", "q1\td1\td3\nq2\td2\td1\nq1\td1\td2\n")
    assert t.kind == "labels" and t.triples == [("q1", "d1", "d3"), ("q2", "d2", "d1"), ("q1", "d1", "d2")]
    assert t.values("q2", ["d2", "d1"]) == [2.0, 0.0]
    with pytest.raises(BenchError, match=r"triples.tsv:2: d\+ 'd3' is not judged relevant for query 'q2'"):
        _targets(tmp_path, "docpairs", "triples.tsv", "q1\td1\td3\nq2\td3\td1\n")


def test_offline_ir_datasets_docpairs_fail_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("IR_DATASETS_HOME", str(tmp_path / "irds"))
    with pytest.raises(BenchError, match="could not read docpairs of ir_datasets id 'vaswani'|not an ir_datasets id"):
        compute_targets(TeacherSpec("t", "docpairs", path="irds:vaswani"), _ctx())


def test_triples_sampler_refuses_a_teacher_without_triples():
    with pytest.raises(BenchError, match="sampler 'triples' needs a teacher that lists .* not a labels teacher"):
        compute_targets(get_teacher("labels"), _ctx(sampler="triples"))


@pytest.mark.parametrize("kind, name, text, culprit", [
    ("score-file", "s.tsv", "1.0\tq1\td1\n", "s.tsv:1: expected 5 columns"),
    ("score-file", "s.tsv", "1.0\t0.5\tq1\td1\td2\nnan\t0.1\tq2\td2\td3\n", "s.tsv:2: score 'nan' is not a finite number"),
    ("score-file", "s.tsv", "1.0\t0.5\tq9\td1\td2\n", "s.tsv:1: unknown query id 'q9'"),
    ("score-file", "s.tsv", "1.0\t0.5\tq1\td1\td7\n", "s.tsv:1: unknown document id 'd7'"),
    ("score-file", "s.tsv", "high\t0.5\tq1\td1\td2\n", "s.tsv:1: score 'high' is not a finite number"),
    ("llm-ranking", "r.jsonl", '{"qid": "q1"}\n', "r.jsonl:1: expected"),
    ("llm-ranking", "r.trec", "q1 Q0 d1 one 0.5 z\n", "r.trec:1: rank 'one' is not an integer"),
    ("llm-ranking", "r.trec", "q1 Q0 d1 1.5 0.5 z\n", "r.trec:1: rank '1.5' is not an integer"),
    ("llm-ranking", "r.trec", "q1 Q0 d1 1 0.5 z\nq1 Q0 d1 2 0.4 z\n",
     "r.trec:2: query 'q1' lists document 'd1' twice (first on line 1)"),
    ("llm-ranking", "r.trec", "q1 Q0 d1 1 0.5 z\nq2 Q0 d2 1 0.4 z\nq1 Q0 d2 2 0.3 z\n",
     "r.trec:3: query 'q1' again after other queries (its lines began on line 1)"),
    ("llm-ranking", "r.jsonl", '{"qid": "q1", "ranking": ["d1", "d2", "d1"]}\n',
     "r.jsonl:1: query 'q1' ranks document 'd1' twice"),
    ("llm-ranking", "r.jsonl", "\n\n", "r.jsonl:1: empty teacher file"),
    ("score-file", "s.trec", "q1 Q0 d1 1 inf z\n", "s.trec:1: score 'inf' is not a finite number"),
    ("score-file", "s.trec", "q1 Q0 d1 1 2.0 z\nq1 Q0 d1 2 1.0 z\n",
     "s.trec:2: query 'q1' lists document 'd1' twice (first on line 1)"),
    ("score-file", "s.tsv", "1.0\t0.5\tq1\td1\td2\nq1 Q0 d1 1 2.0 z\n", "s.tsv:2: expected 5 columns"),
])
def test_bad_teacher_files_name_file_and_line(tmp_path, kind, name, text, culprit):
    with pytest.raises(BenchError, match=re.escape(culprit)):
        _targets(tmp_path, kind, name, text)


TEACHER_FILES = [  # (kind, name, plain text): each read alike with LF or CRLF, with or without a BOM, plain or gzip
    ("score-file", "s.tsv", "9.5\t-1.25\tq1\td1\td2\n3.0\t2.0\tq2\td2\td3\n"),
    ("score-file", "s.trec", "q1 Q0 d1 1 9.5 t\nq1 Q0 d2 2 -1.25 t\nq2 Q0 d3 1 2.0 t\n"),
    ("llm-ranking", "r.trec", "q1 Q0 d2 1 9 t\nq1 Q0 d1 2 8 t\nq2 Q0 d3 1 5 t\nq2 Q0 d2 2 4 t\n"),
    ("llm-ranking", "r.jsonl", '{"qid": "q1", "ranking": ["d2", "d1"]}\n{"qid": "q2", "ranking": ["d3"]}\n'),
]


@pytest.mark.parametrize("kind, name, text", TEACHER_FILES, ids=[n for _, n, _ in TEACHER_FILES])
def test_teacher_files_read_alike_in_every_encoding_and_compression(tmp_path, kind, name, text):
    import gzip

    def read(variant: str, data: bytes, suffix: str = ""):
        path = tmp_path / variant / (name + suffix)
        path.parent.mkdir()
        path.write_bytes(data)
        t = compute_targets(TeacherSpec("t", kind, path=str(path)), _ctx())
        return t.kind, t.table, t.pool, t.triples

    plain = read("lf", text.encode())
    assert plain[1]["q1"] and plain == read("crlf-bom", ("\ufeff" + text.replace("\n", "\r\n")).encode())
    assert plain == read("gzip", gzip.compress(text.encode()), ".gz")


def test_truncated_gzip_teacher_file_is_one_line(tmp_path):
    import gzip

    path = tmp_path / "s.tsv.gz"
    path.write_bytes(gzip.compress(("9.5\t-1.25\tq1\td1\td2\n" * 2000).encode())[:-6])  # trailer cut
    with pytest.raises(BenchError, match=r"s.tsv.gz:\d+: corrupt or truncated gzip data"):
        compute_targets(TeacherSpec("t", "score-file", path=str(path)), _ctx())


def test_every_teacher_kind_has_one_target_function():
    from benchmark.teachers import TEACHER_KINDS
    from benchmark.teaching import TARGETS

    assert TARGETS.names() == TEACHER_KINDS.names()
    with pytest.raises(BenchError, match="^teacher function 'oracle': no such teacher kind row$"):
        TARGETS.add("oracle", lambda spec, ctx: None)


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
    from benchmark.dataset_rows import get_dataset
    from benchmark.datasets import load_collection

    train = load_collection(get_dataset("embedded-train"))
    ctx = TeacherContext(train, {}, SimpleNamespace(train=TrainConfig()), lambda n: None)
    targets = compute_targets(get_teacher("llm-example"), ctx)
    assert targets.kind == "ranks" and set(targets.pool) == set(train.queries)
    assert all(len(r) == 20 for r in targets.pool.values())


def _tiny_cell(tmp_path):
    from benchmark.config import load_experiment
    from tests_support import TINY_GRID, write_toml

    exp = load_experiment(write_toml(tmp_path / "tiny.toml", TINY_GRID))
    return next(c for c in exp.cells if c.backbone.name == "bert-tiny")


def test_student_pairs_are_the_pairs_training_puts_in_groups(tmp_path):
    """A teacher scores only ``student_pairs``: they must be exactly what train_model asks targets for."""
    import dataclasses

    from benchmark.cell import load
    from benchmark.models import build_cross_encoder
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
    from benchmark.cell import load
    from benchmark.teaching import _cached_scores

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
