"""The fast scoring path against a naive loop, latency statistics, and the CUDA code paths (skipped without CUDA)."""

import numpy as np
import pytest
import torch

from benchmark.backbones import build_cross_encoder, get_backbone
from benchmark.collection import Collection
from benchmark.inference import Reranker, autocast_context, encode_pairs
from benchmark.latency import CpuTimer, CudaTimer, measure_latency, summarize

QUERIES = ["what is the price of a car", "physician training", "river"]
DOCS = ["An automobile costs money. " * k for k in (1, 9, 3)] + ["Doctors learn. " * 40, "x", "A stream flows."]


@pytest.fixture(scope="module")
def tiny():
    model, tok = build_cross_encoder(get_backbone("bert-tiny"), seed=0)
    return model.eval(), tok


def _naive(model, tok, queries, docs, max_length):
    out = []
    with torch.no_grad():
        for q, d in zip(queries, docs):
            enc = tok(q, d, truncation="only_second", max_length=max_length, return_tensors="pt")
            out.append(model(**enc).logits[0, 0].item())
    return np.array(out)


def test_sorted_dynamic_batches_match_a_naive_loop_in_input_order(tiny):
    model, tok = tiny
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    fast = Reranker(model, tok, max_length=64, batch_size=2).score(queries, DOCS)
    assert np.max(np.abs(fast - _naive(model, tok, queries, DOCS, 64))) <= 1e-5


def test_truncation_keeps_the_query(tiny):
    _, tok = tiny
    enc = encode_pairs(tok, ["price of a car"], ["word " * 500], max_length=32)
    assert enc["input_ids"].shape == (1, 32)
    text = tok.decode(enc["input_ids"][0])
    assert "price of a car" in text


def test_rerank_returns_the_first_stage_candidates(tiny):
    model, tok = tiny
    coll = Collection("c", {"q": QUERIES[0]}, {f"d{i}": t for i, t in enumerate(DOCS)}, {"q": {"d0": 1}},
                      {"q": {f"d{i}": float(-i) for i in range(len(DOCS))}})
    run = Reranker(model, tok, max_length=64).rerank(coll, ["q"], k=4)
    assert set(run["q"]) == {"d0", "d1", "d2", "d3"}


def test_latency_statistics_by_hand():
    stats = summarize([10.0, 20.0, 30.0, 40.0, 100.0], [100] * 5)
    assert stats["p50_ms"] == 30.0
    assert stats["p95_ms"] == pytest.approx(40 + 0.8 * 60)  # numpy linear interpolation: rank 3.8 of 0..4
    assert stats["pairs_per_s"] == pytest.approx(500 / 0.2)


def test_cpu_latency_record(tiny):
    model, tok = tiny
    rec = measure_latency(Reranker(model, tok, max_length=64), [(QUERIES[0], DOCS)], warmup=1, repeats=2)
    assert rec["device"] == "cpu" and rec["runs"] == 2 and rec["candidates"] == len(DOCS)
    assert rec["p50_ms"] > 0 and rec["peak_rss_mb"] > 0 and rec["threads"] == torch.get_num_threads()
    assert rec["hardware"]["cpu_cores"] >= 1
    with CpuTimer() as t:
        sum(range(1000))
    assert t.ms >= 0


def test_bf16_autocast_path_on_cpu(tiny):
    model, tok = tiny
    enc = encode_pairs(tok, QUERIES, DOCS[:3], 64)
    with torch.inference_mode(), autocast_context("cpu", "bf16"):
        logits = model(**enc).logits
    assert logits.dtype == torch.bfloat16
    with autocast_context("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_latency_and_scores(tiny, dtype):
    model, tok = tiny
    cpu = Reranker(model, tok, max_length=64).score([QUERIES[0]] * len(DOCS), DOCS)
    gpu = Reranker(model, tok, max_length=64, device="cuda", dtype=dtype)
    scores = gpu.score([QUERIES[0]] * len(DOCS), DOCS)
    assert np.max(np.abs(scores - cpu)) < (1e-3 if dtype == "fp32" else 5e-2)
    rec = measure_latency(gpu, [(QUERIES[0], DOCS)], warmup=1, repeats=3)
    assert rec["device"] == "cuda" and rec["dtype"] == dtype and rec["peak_memory_mb"] > 0
    with CudaTimer() as t:
        torch.ones(1024, 1024, device="cuda").sum()
    assert t.ms > 0
    model.to("cpu")
