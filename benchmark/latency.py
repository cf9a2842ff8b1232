"""Measured rerank latency: per query of N candidates, CPU wall clock or CUDA events, with warmup and repeats."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch

from .hardware import hardware_info


class CpuTimer:
    """Wall-clock timer (``perf_counter``)."""

    def __enter__(self) -> CpuTimer:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        self.ms = (time.perf_counter() - self._t0) * 1000


class CudaTimer:
    """CUDA events around the work, synchronised before reading, so queued kernels are counted."""

    def __enter__(self) -> CudaTimer:
        self._start = torch.cuda.Event(enable_timing=True)
        self._end = torch.cuda.Event(enable_timing=True)
        torch.cuda.synchronize()
        self._start.record()
        return self

    def __exit__(self, *exc) -> None:
        self._end.record()
        torch.cuda.synchronize()
        self.ms = self._start.elapsed_time(self._end)


def summarize(times_ms: Sequence[float], pairs_per_query: Sequence[int]) -> dict:
    """p50/p95/p99 per query (numpy's linear interpolation) and throughput over all timed runs."""
    t = np.asarray(times_ms, dtype=float)
    return {"p50_ms": float(np.percentile(t, 50)), "p95_ms": float(np.percentile(t, 95)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "pairs_per_s": float(sum(pairs_per_query) / (t.sum() / 1000)) if t.sum() else None, "runs": int(t.size)}


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS; it is the process high-water mark, model and data included.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def measure_latency(reranker, lists: Sequence[tuple[str, Sequence[str]]], *, warmup: int = 3,
                    repeats: int = 20) -> dict:
    """Time "rerank this query's candidates" for each list, ``repeats`` rounds after ``warmup`` untimed lists."""
    if not lists:
        return {}
    cuda = reranker.device.type == "cuda"
    timer = CudaTimer if cuda else CpuTimer
    if cuda:
        torch.cuda.reset_peak_memory_stats(reranker.device)
    for q, docs in list(lists)[:warmup]:
        reranker.score([q] * len(docs), list(docs))
    times, pairs = [], []
    for _ in range(repeats):
        for q, docs in lists:
            with timer() as t:
                reranker.score([q] * len(docs), list(docs))
            times.append(t.ms)
            pairs.append(len(docs))
    out = summarize(times, pairs)
    out.update(device=reranker.device.type, dtype=reranker.dtype, batch_size=reranker.batch_size,
               max_length=reranker.max_length, candidates=int(np.median([len(d) for _, d in lists])),
               queries=len(lists), threads=torch.get_num_threads(), hardware=hardware_info())
    if cuda:
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(reranker.device) / 2**20
    else:
        out["peak_rss_mb"] = _peak_rss_mb()
    return out
