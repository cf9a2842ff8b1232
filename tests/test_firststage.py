"""First stage: BM25 scores against hand-computed values, deterministic ties, the run cache, TREC run files."""

import json
import math

import pytest

from benchmark.errors import BenchError
from benchmark.firststage import bm25_run, read_trec_run, write_trec_run


def _lucene_bm25(tf: int, dl: int, avgdl: float, df: int, n: int, k1: float = 1.5, b: float = 0.75) -> float:
    """Lucene's BM25 (as bm25s' default "lucene" method): no (k1 + 1) factor in the numerator."""
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    return idf * tf / (tf + k1 * (1 - b + b * dl / avgdl))


def test_bm25_scores_match_the_lucene_formula():
    docs = {"a": "apple banana", "b": "apple apple cherry", "c": "dog"}
    run = bm25_run(docs, {"q": "the apple"}, k=10)  # "the" is an English stopword
    assert list(run["q"]) == ["b", "a"]  # "c" shares no term: not a candidate
    assert run["q"]["b"] == pytest.approx(_lucene_bm25(tf=2, dl=3, avgdl=2, df=2, n=3), abs=1e-5)
    assert run["q"]["a"] == pytest.approx(_lucene_bm25(tf=1, dl=2, avgdl=2, df=2, n=3), abs=1e-5)


def test_bm25_ties_go_to_the_smaller_docid_and_stopword_queries_get_nothing():
    docs = {"d3": "solar power", "d1": "solar power", "d2": "solar power", "d0": "wind"}
    run = bm25_run(docs, {"q1": "solar", "q2": "the and of"}, k=2)
    assert list(run["q1"]) == ["d1", "d2"]
    assert run["q2"] == {}


def test_bm25_cache_is_keyed_by_the_inputs(tmp_path):
    docs, queries = {"a": "red apple", "b": "green pear"}, {"q": "apple"}
    first = bm25_run(docs, queries, k=5, cache_dir=tmp_path)
    (cached,) = tmp_path.glob("bm25-*.json")
    cached.write_text(json.dumps({"q": {"from-cache": 1.0}}))
    assert bm25_run(docs, queries, k=5, cache_dir=tmp_path) == {"q": {"from-cache": 1.0}}
    changed = bm25_run({**docs, "c": "apple pie"}, queries, k=5, cache_dir=tmp_path)
    assert set(changed["q"]) == {"a", "c"} and set(first["q"]) == {"a"}
    # With a cache key (an ir_datasets id), a hit does not read the documents at all.
    bm25_run(docs, queries, k=5, cache_dir=tmp_path, cache_key="ir_datasets:x")
    assert bm25_run({}, queries, k=5, cache_dir=tmp_path, cache_key="ir_datasets:x") == first


def test_trec_run_round_trip_and_top_k(tmp_path):
    run = {"q1": {"d1": 1.5, "d2": 3.0, "d3": 2.0}, "q2": {"d9": 0.25}}
    path = tmp_path / "run.txt"
    write_trec_run(run, path, tag="mine")
    assert path.read_text().splitlines()[0] == "q1 Q0 d2 1 3.000000 mine"
    assert read_trec_run(path) == run
    assert read_trec_run(path, k=2) == {"q1": {"d2": 3.0, "d3": 2.0}, "q2": {"d9": 0.25}}


@pytest.mark.parametrize("content, culprit", [
    ("1 Q0 a 1 2.0 x\n1 Q0 b 2 notanumber x\n", r"run.txt:2: not a TREC run line"),
    ("1 Q0 b\n", r"run.txt:1: not a TREC run line"),
    ("\n\n", r"run file .*run.txt' is empty"),
])
def test_bad_run_files_name_file_and_line(tmp_path, content, culprit):
    path = tmp_path / "run.txt"
    path.write_text(content)
    with pytest.raises(BenchError, match=culprit):
        read_trec_run(path)


def test_missing_run_file_and_empty_runs(tmp_path):
    with pytest.raises(BenchError, match="run file .*nope.txt' does not exist"):
        read_trec_run(tmp_path / "nope.txt")
    with pytest.raises(BenchError, match="empty run"):
        write_trec_run({"q": {}}, tmp_path / "out.txt")
    with pytest.raises(BenchError, match="no documents"):
        bm25_run({}, {"q": "x"})
