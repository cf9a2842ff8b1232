"""Latency statistics on a fake timer, the record's keys, the timers, the FLOP estimate, provenance."""

import re
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from benchmark import latency
from benchmark.backbones import get_backbone
from benchmark.hardware import git_sha, hardware_info, library_versions
from benchmark.inference import Reranker
from benchmark.latency import CpuTimer, CudaTimer, flops_per_pair, matmul_flops, measure_latency, summarize
from benchmark.models import build_cross_encoder

LISTS = [("price of a car", ["An automobile costs money. " * k for k in (1, 4, 2)]),
         ("river", ["A stream flows.", "Water runs downhill to the sea."])]


@pytest.fixture(scope="module")
def reranker():
    model, tok = build_cross_encoder(get_backbone("bert-tiny"), seed=0)
    return Reranker(model, tok, max_length=64, batch_size=2)


class FakeTimer:
    """Hands out known durations, in order, instead of measuring."""

    def __init__(self, durations_ms):
        self.durations = iter(durations_ms)

    def __call__(self):
        return self

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.ms = next(self.durations)


def test_summary_statistics_by_hand():
    stats = summarize([10.0, 20.0, 30.0, 40.0, 100.0], [100] * 5)
    assert stats["p50_ms"] == 30.0
    assert stats["p95_ms"] == pytest.approx(40 + 0.8 * 60)  # numpy linear interpolation: rank 0.95*4 = 3.8
    assert stats["p99_ms"] == pytest.approx(40 + 0.96 * 60)  # rank 3.96
    assert stats["mean_ms"] == 40.0 and stats["runs"] == 5
    assert stats["pairs_per_s"] == pytest.approx(500 / 0.2)  # 500 pairs in 200 ms


def test_measure_latency_on_a_fake_timer(reranker):
    # 3 repeats x 2 lists (3 and 2 candidates) = 6 per-query timings, then one large batch of all 5 pairs.
    per_query = [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    rec = measure_latency(reranker, LISTS, warmup=1, repeats=3, timer=FakeTimer(per_query + [25.0]))
    assert rec["runs"] == 6
    assert rec["p50_ms"] == pytest.approx(35.0)
    assert rec["p95_ms"] == pytest.approx(50 + 0.75 * 10)  # rank 0.95*5 = 4.75
    assert rec["mean_ms"] == pytest.approx(35.0)
    assert rec["pairs_per_s"] == pytest.approx(3 * 5 / 0.210)  # 15 pairs in 210 ms
    assert rec["throughput_pairs_per_s"] == pytest.approx(5 / 0.025)
    assert rec["candidates"] == 2 and rec["queries"] == 2  # int(median of 3 and 2 candidates)
    config = reranker.model.config
    lengths = [len(ids) for q, docs in LISTS for ids in reranker.tokenizer([q] * len(docs), docs)["input_ids"]]
    assert rec["forward"] == "unpadded"  # the last layer runs for the first token only: fewer FLOPs
    work = sum(flops_per_pair(config, n, first_token_last_layer=True) for n in lengths)
    assert rec["flops_per_pair"] == pytest.approx(work / 5)
    assert rec["achieved_gflops"] == pytest.approx(work / 0.025 / 1e9)
    assert rec["efficiency"] == pytest.approx(rec["achieved_gflops"] / rec["peak_gflops"])


def test_cpu_latency_record_has_every_key(reranker):
    rec = measure_latency(reranker, LISTS[:1], warmup=1, repeats=2)
    assert {"p50_ms", "p95_ms", "p99_ms", "mean_ms", "pairs_per_s", "runs", "throughput_pairs_per_s",
            "flops_per_pair", "achieved_gflops", "peak_gflops", "efficiency", "mean_tokens", "device", "dtype",
            "forward", "batch_size", "max_length", "candidates", "queries", "threads", "hardware", "peak_rss_mb",
            "peak_rss_growth_mb", "memory_source"} <= set(rec)
    assert rec["device"] == "cpu" and rec["dtype"] == "fp32" and rec["batch_size"] == 2 and rec["max_length"] == 64
    assert rec["runs"] == 2 and rec["candidates"] == 3 and rec["threads"] == torch.get_num_threads()
    assert rec["p50_ms"] > 0 and rec["peak_rss_mb"] > 0 and rec["peak_rss_growth_mb"] >= 0
    assert 0 < rec["efficiency"] and rec["memory_source"] == "ru_maxrss"
    assert measure_latency(reranker, []) == {}


def test_cpu_timer_reads_perf_counter(monkeypatch):
    ticks = iter([1.0, 1.25])
    monkeypatch.setattr(CpuTimer, "clock", staticmethod(lambda: next(ticks)))
    with CpuTimer() as t:
        pass
    assert t.ms == pytest.approx(250.0)


def test_flops_per_pair_by_hand():
    bert = SimpleNamespace(hidden_size=4, intermediate_size=8, num_hidden_layers=2, model_type="bert")
    # 2 layers * (10 tokens * 2 * (4*16 + 2*4*8) + 4 * 100 * 4) = 2 * (2560 + 1600)
    assert flops_per_pair(bert, 10) == 8320
    modernbert = SimpleNamespace(**{**vars(bert), "model_type": "modernbert"})
    assert flops_per_pair(modernbert, 10) == 2 * (10 * 2 * (64 + 96) + 1600)
    assert flops_per_pair(bert, np.array([10.0, 1.0])).tolist() == [8320, 2 * (1 * 2 * 128 + 16)]
    # The last layer for the first token only: K and V for 10 tokens (10 * 2 * 2*16), Q, output and feed-forward
    # for one (2 * (2*16 + 2*4*8)), one query row of attention (4 * 10 * 4): 640 + 192 + 160, after one full layer.
    assert flops_per_pair(bert, 10, first_token_last_layer=True) == 4160 + 992


def test_matmul_flops_is_measured_once_per_process():
    latency._matmul_flops.cache_clear()
    first = matmul_flops("cpu")
    assert first > 1e8 and matmul_flops(torch.device("cpu")) == first
    assert latency._matmul_flops.cache_info().misses == 1


def test_hardware_and_versions():
    hw = hardware_info()
    assert {"cpu", "cpu_cores", "torch_threads", "ram_gb", "platform", "gpu", "gpu_memory_gb", "cuda",
            "driver"} <= set(hw)
    assert hw["cpu_cores"] >= 1 and hw["torch_threads"] == torch.get_num_threads()
    assert (hw["gpu"] is None) == (not torch.cuda.is_available())
    versions = library_versions()
    assert versions["torch"] == torch.__version__ and re.fullmatch(r"3\.\d+\.\d+", versions["python"])
    assert {"transformers", "ir-datasets", "ir-measures", "bm25s", "numpy"} <= set(versions)


def test_git_sha(tmp_path):
    assert re.fullmatch(r"[0-9a-f]{40}(-dirty)?", git_sha(latency.__file__.rsplit("/", 2)[0]))
    assert git_sha(tmp_path) is None


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "bf16"])
def test_cuda_latency_record(reranker, dtype):
    gpu = Reranker(reranker.model, reranker.tokenizer, max_length=64, device="cuda", dtype=dtype)
    try:
        rec = measure_latency(gpu, LISTS, warmup=1, repeats=3)
    finally:
        reranker.model.to("cpu")
    assert rec["device"] == "cuda" and rec["dtype"] == dtype and rec["peak_memory_mb"] > 0 and rec["runs"] == 6
    assert rec["hardware"]["gpu"] and 0 < rec["efficiency"]
    with CudaTimer() as t:
        torch.ones(1024, 1024, device="cuda").sum()
    assert t.ms > 0


def test_precision_records(reranker, monkeypatch):
    """Each precision's record per rerank depth: fp32 reuses the cell's figures and nDCG@10; int8 is timed (through
    the shared-figure hook) and evaluated; bf16 on a CPU without native bf16 is recorded as unsupported; speed-up
    and quality change are against fp32 at the same depth; the deepest depth's values are the row's own."""
    from benchmark import inference

    monkeypatch.setattr(inference, "cpu_flags", lambda: {"avx2"})
    seen, timed = [], []

    def score(r):
        seen.append(r.precision)
        return {1: 0.30, 2: 0.40}

    def hook(precision, depth, measure):
        timed.append((precision, depth))
        return measure()

    quality = latency.QualityCheck("embedded-test", {1: 0.35, 2: 0.45}, score)
    fp32 = {1: {"p50_ms": 6.0}, 2: {"p50_ms": 12.0}}
    lists = {1: [(q, docs[:1]) for q, docs in LISTS], 2: LISTS}
    out = latency.measure_precisions(reranker.model, reranker.tokenizer, ["fp32", "int8", "bf16"], lists, quality,
                                     fp32_latency=fp32, timed=hook, warmup=1, repeats=2, max_length=64, batch_size=2)
    assert seen == ["int8"] and timed == [("int8", 1), ("int8", 2)]
    assert out["fp32"] == {"supported": True, "dataset": "embedded-test", "nDCG@10": 0.45, "delta_nDCG@10": 0.0,
                           "latency": fp32[2], "speedup_p50": 1.0,
                           "depths": {"1": {"nDCG@10": 0.35, "delta_nDCG@10": 0.0, "latency": fp32[1],
                                            "speedup_p50": 1.0}}}
    int8 = out["int8"]
    assert int8["supported"] and int8["nDCG@10"] == 0.40 and int8["delta_nDCG@10"] == pytest.approx(-0.05)
    assert int8["depths"]["1"]["delta_nDCG@10"] == pytest.approx(-0.05)
    assert int8["latency"]["precision"] == "int8" and int8["latency"]["runs"] == 2 * len(LISTS)
    assert int8["speedup_p50"] == pytest.approx(12.0 / int8["latency"]["p50_ms"])
    assert int8["depths"]["1"]["latency"]["candidates"] == 1
    assert out["bf16"]["supported"] is False and "no native bf16" in out["bf16"]["reason"]
