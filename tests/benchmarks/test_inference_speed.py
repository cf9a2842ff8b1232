"""Speed of ``benchmark.inference.Reranker`` against sentence-transformers ``CrossEncoder.predict``.

Both score the same candidates (3 queries x first-stage top-100 of the embedded test split) with the same
weights (all-MiniLM-L6-v2 + a seeded one-logit head, saved once to a temporary directory), max_length 128,
batch size 32, fp32 on CPU, raw logits (CrossEncoder's default Sigmoid is replaced by Identity).

    pytest tests/benchmarks -s --benchmark-enable     # timed rounds + the ratio table
    pytest tests/benchmarks                           # (addopts: --benchmark-disable) each benchmark runs once

The ratio table is printed, never asserted: CPU timings on a shared machine are noise-prone.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytest_benchmark")
pytest.importorskip("sentence_transformers")

MAX_LENGTH = 128
BATCH_SIZE = 32
N_QUERIES = 3
DEPTH = 100
TOLERANCE = 1e-4
TIMING_REPEATS = 3
# ~4 s a call on 2 busy CPU cores: a fixed, small number of rounds (a disabled benchmark calls once).
PEDANTIC = dict(rounds=TIMING_REPEATS, iterations=1, warmup_rounds=1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """all-MiniLM-L6-v2 with a head seeded by torch.manual_seed(0), saved with its tokenizer for both tools."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from benchmark.backbones import bundled_minilm_path

    src = bundled_minilm_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    tokenizer = AutoTokenizer.from_pretrained(src)
    out = tmp_path_factory.mktemp("minilm-ce")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def candidates(rdb_cache):
    """(queries, docs): N_QUERIES queries x their first-stage top-DEPTH passages, varied lengths."""
    from benchmark.datasets import get_dataset, load_collection

    coll = load_collection(get_dataset("embedded-test"))
    qids = [q for q in coll.queries if len(coll.ranked(q, DEPTH)) >= DEPTH][:N_QUERIES]
    assert len(qids) == N_QUERIES
    queries, docs = [], []
    for q in qids:
        for d in coll.ranked(q, DEPTH):
            queries.append(coll.queries[q])
            docs.append(coll.docs[d])
    return queries, docs


@pytest.fixture(scope="module")
def ours(model_dir):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from benchmark.inference import Reranker

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    return Reranker(model, tokenizer, max_length=MAX_LENGTH, batch_size=BATCH_SIZE, device="cpu")


@pytest.fixture(scope="module")
def theirs(model_dir):
    from sentence_transformers import CrossEncoder

    # activation_fn=Identity: raw logits, like Reranker (the v6 default for num_labels=1 is Sigmoid).
    return CrossEncoder(str(model_dir), max_length=MAX_LENGTH, device="cpu", activation_fn=torch.nn.Identity())


def score_ours(reranker, queries, docs) -> np.ndarray:
    return reranker.score(queries, docs)


def score_theirs(cross_encoder, queries, docs) -> np.ndarray:
    pairs = list(zip(queries, docs))
    return np.asarray(cross_encoder.predict(pairs, batch_size=BATCH_SIZE, show_progress_bar=False), dtype=np.float32)


def test_setup_is_comparable(ours, theirs, candidates):
    queries, docs = candidates
    assert len(queries) == N_QUERIES * DEPTH
    assert theirs.max_seq_length == MAX_LENGTH
    assert isinstance(theirs.activation_fn, torch.nn.Identity)
    lengths = [len(ids) for ids in ours.tokenizer(queries, docs)["input_ids"]]
    assert max(lengths) >= 1.5 * min(lengths), "candidates should vary in length (dynamic padding matters)"


def test_scores_agree(ours, theirs, candidates):
    a = score_ours(ours, *candidates)
    b = score_theirs(theirs, *candidates)
    assert a.shape == b.shape == (N_QUERIES * DEPTH,)
    delta = float(np.max(np.abs(a - b)))
    print(f"\nmax |ours - CrossEncoder| over {a.size} pairs: {delta:.2e}")
    assert delta <= TOLERANCE


@pytest.mark.benchmark(group="rerank-100")
def test_speed_ours(benchmark, ours, candidates):
    scores = benchmark.pedantic(score_ours, args=(ours, *candidates), **PEDANTIC)
    assert scores.shape == (N_QUERIES * DEPTH,)


@pytest.mark.benchmark(group="rerank-100")
def test_speed_crossencoder(benchmark, theirs, candidates):
    scores = benchmark.pedantic(score_theirs, args=(theirs, *candidates), **PEDANTIC)
    assert scores.shape == (N_QUERIES * DEPTH,)


def _best_seconds(fn, *args, repeats: int, warmup: bool) -> tuple[float, np.ndarray]:
    """Best wall time over ``repeats`` calls (after an optional untimed warm-up) and the last call's scores."""
    if warmup:
        fn(*args)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        scores = fn(*args)
        best = min(best, time.perf_counter() - t0)
    return best, scores


def test_speed_ratio_table(ours, theirs, candidates, request):
    """Best-of-N wall time of each tool on the same pairs; prints pairs/s and the ratio, asserts nothing on time."""
    # --benchmark-disable (the default addopts) keeps this quick: one timed call each, no warm-up
    # (the earlier tests already ran both models); --benchmark-enable: warm-up + best of TIMING_REPEATS.
    timed = not request.config.getoption("benchmark_disable", False) or request.config.getoption(
        "benchmark_enable", False)
    repeats = TIMING_REPEATS if timed else 1
    n = len(candidates[0])
    t_ours, s_ours = _best_seconds(score_ours, ours, *candidates, repeats=repeats, warmup=timed)
    t_theirs, s_theirs = _best_seconds(score_theirs, theirs, *candidates, repeats=repeats, warmup=timed)
    delta = float(np.max(np.abs(s_ours - s_theirs)))
    print(f"\nrerank {N_QUERIES}x{DEPTH} pairs, max_length={MAX_LENGTH}, batch={BATCH_SIZE}, fp32, "
          f"torch threads={torch.get_num_threads()}, best of {repeats}")
    print(f"{'tool':<14}{'seconds':>10}{'pairs/s':>12}")
    print(f"{'Reranker':<14}{t_ours:>10.3f}{n / t_ours:>12.1f}")
    print(f"{'CrossEncoder':<14}{t_theirs:>10.3f}{n / t_theirs:>12.1f}")
    print(f"ratio (ours/CrossEncoder pairs/s): {t_theirs / t_ours:.2f}x   max |delta|: {delta:.2e}")
    assert t_ours > 0 and t_theirs > 0
