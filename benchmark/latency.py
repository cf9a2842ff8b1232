"""Measured rerank latency: per query of N candidates, CPU wall clock or CUDA events, with warmup and repeats.

Memory: on CPU the process's peak resident set (``getrusage(RUSAGE_SELF).ru_maxrss``, a high-water mark that includes
the model and everything loaded before) and its growth during the measurement; on CUDA
``torch.cuda.max_memory_allocated`` after ``reset_peak_memory_stats``.

Compute: ``flops_per_pair`` is an analytic estimate of the encoder's matmul FLOPs, ``matmul_flops`` a measured GEMM
peak; their ratio at the measured speed is ``efficiency`` (padding, attention kernels, layer norms and Python overhead
all count as lost work).

Precisions: ``measure_precisions`` times and evaluates the same trained model in each ``eval.precision`` row on the
same candidate lists; a row the hardware lacks is recorded as unsupported with its reason, and a row that changes
scores is a quality row (its nDCG@10 and the change from fp32), not an error.
"""

from __future__ import annotations

import functools
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .hardware import hardware_info
from .inference import AUTOCAST, Reranker, encode_pairs, precision_reranker, unsupported


class CpuTimer:
    """Wall-clock timer; ``ms`` is set on exit."""

    clock = staticmethod(time.perf_counter)

    def __enter__(self) -> CpuTimer:
        self._t0 = self.clock()
        return self

    def __exit__(self, *exc) -> None:
        self.ms = (self.clock() - self._t0) * 1000


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


def timer_for(device: torch.device | str) -> type[CpuTimer] | type[CudaTimer]:
    return CudaTimer if torch.device(device).type == "cuda" else CpuTimer


def summarize(times_ms: Sequence[float], pairs_per_query: Sequence[int]) -> dict:
    """p50/p95/p99 per query, the quartiles around the median (``q1_ms``, ``q3_ms``: its noise), numpy's linear
    interpolation, and throughput over all timed runs."""
    t = np.asarray(times_ms, dtype=float)
    return {"p50_ms": float(np.percentile(t, 50)), "q1_ms": float(np.percentile(t, 25)),
            "q3_ms": float(np.percentile(t, 75)), "p95_ms": float(np.percentile(t, 95)),
            "p99_ms": float(np.percentile(t, 99)), "mean_ms": float(t.mean()),
            "pairs_per_s": float(sum(pairs_per_query) / (t.sum() / 1000)) if t.sum() else None, "runs": int(t.size)}


def flops_per_pair(config, seq_len: float | np.ndarray, first_token_last_layer: bool = False) -> float | np.ndarray:
    """Forward matmul FLOPs of one pair of ``seq_len`` tokens (a multiply-add counts 2):

        layers * (seq_len * 2 * (4 h^2 + m * h * i) + 4 * seq_len^2 * h)

    h = hidden size, i = intermediate size; 4 h^2: Q, K, V and output projections; m * h * i: the feed-forward
    matrices (m = 2, or 3 for ModernBERT's gated MLP whose input projection is 2i wide); 4 seq_len^2 h: attention
    scores and the weighted sum of values. Embeddings, layer norms, softmax, the head and DeBERTa's relative-position
    terms are left out: an estimate, not a count. ``seq_len`` may be an array (one estimate per pair).
    ``first_token_last_layer``: the last layer as ``fastpath`` runs it (keys and values of every token; query,
    output projection, feed-forward and attention of the first token only)."""
    # DistilBERT names them dim, hidden_dim and n_layers
    h = getattr(config, "hidden_size", None) or config.dim
    i = getattr(config, "intermediate_size", None) or config.hidden_dim
    layers = getattr(config, "num_hidden_layers", None) or config.n_layers
    m = 3 if config.model_type == "modernbert" else 2
    full = seq_len * 2 * (4 * h * h + m * h * i) + 4 * seq_len * seq_len * h
    if not first_token_last_layer:
        return layers * full
    return (layers - 1) * full + seq_len * 2 * 2 * h * h + 2 * (2 * h * h + m * h * i) + 4 * seq_len * h


@functools.lru_cache(maxsize=None)
def _matmul_flops(device: str, dtype: str, threads: int) -> float:
    n = 2048 if device.startswith("cuda") else 1024  # ~17 / ~2 GFLOP per product: long enough to time
    dt = AUTOCAST.get(dtype, torch.float32)
    a, b = (torch.randn(n, n, device=device, dtype=dt) for _ in range(2))
    timer = timer_for(device)
    best = float("inf")
    for step in range(8):
        with torch.inference_mode(), timer() as t:
            a @ b
        if step:  # the first product pays for allocation and kernel selection
            best = min(best, t.ms)
    return 2 * n**3 / (best / 1000)


def matmul_flops(device: torch.device | str = "cpu", dtype: str = "fp32") -> float:
    """Measured dense square GEMM FLOP/s on the device (best of 7), cached per process, device, dtype and threads."""
    return _matmul_flops(str(torch.device(device)), dtype, torch.get_num_threads())


def _peak_rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 1024


def _time(timer: Callable, fn: Callable[[], object]) -> float:
    with timer() as t:
        fn()
    return t.ms


def measure_latency(reranker, lists: Sequence[tuple[str, Sequence[str]]], *, warmup: int = 3,
                    repeats: int = 20, timer: Callable | None = None) -> dict:
    """Time "rerank this query's candidates" (one ``score`` call per list) over ``repeats`` rounds of ``lists``,
    after ``warmup`` untimed lists; then one large-batch pass scoring all lists' pairs in a single call.

    ``timer`` (a context-manager factory setting ``.ms``) defaults to CUDA events on a CUDA reranker, else
    ``perf_counter``; it is entered ``repeats * len(lists)`` times for the per-query figures, then once for the
    large-batch throughput."""
    if not lists:
        return {}
    device = reranker.device
    cuda = device.type == "cuda"
    timer = timer or timer_for(device)
    pairs = [([q] * len(docs), list(docs)) for q, docs in lists]
    rss_before = _peak_rss_mb()
    if cuda:
        torch.cuda.reset_peak_memory_stats(device)
    for i in range(warmup):
        reranker.score(*pairs[i % len(pairs)])
    times = [_time(timer, lambda p=p: reranker.score(*p)) for _ in range(repeats) for p in pairs]
    n_pairs = [len(docs) for _, docs in pairs]
    out = summarize(times, n_pairs * repeats)

    all_q, all_d = [q for qs, _ in pairs for q in qs], [d for _, ds in pairs for d in ds]
    large_ms = _time(timer, lambda: reranker.score(all_q, all_d))
    if cuda:
        out["peak_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        peak = _peak_rss_mb()
        out.update(peak_rss_mb=peak, peak_rss_growth_mb=peak - rss_before, memory_source="ru_maxrss")

    # Useful work: real token counts (padding is lost work), at the large-batch speed.
    lengths = encode_pairs(reranker.tokenizer, all_q, all_d, reranker.max_length,
                           query_length=reranker.max_query_length,
                           doc_length=reranker.max_doc_length)["attention_mask"].sum(1).numpy()
    work = float(flops_per_pair(reranker.model.config, lengths.astype(float),
                                first_token_last_layer=reranker.path == "unpadded").sum())
    achieved, peak_flops = work / (large_ms / 1000), matmul_flops(device, reranker.dtype)
    out.update(throughput_pairs_per_s=len(all_q) / (large_ms / 1000), mean_tokens=float(lengths.mean()),
               flops_per_pair=work / len(all_q), achieved_gflops=achieved / 1e9, peak_gflops=peak_flops / 1e9,
               efficiency=achieved / peak_flops,
               device=device.type, dtype=reranker.dtype, precision=reranker.precision, forward=reranker.path,
               batch_size=reranker.batch_size,
               max_length=reranker.max_length, max_query_length=reranker.max_query_length,
               max_doc_length=reranker.max_doc_length, candidates=int(np.median(n_pairs)), queries=len(lists),
               threads=torch.get_num_threads(), hardware=hardware_info())
    return out


@dataclass(frozen=True)
class QualityCheck:
    """How a precision's reranker is evaluated: nDCG@10 at each rerank depth on ``dataset`` (``score``), fp32's
    values already known."""

    dataset: str
    fp32: dict[int, float]  # depth -> nDCG@10
    score: Callable[[Reranker], dict[int, float]]


# A precision's timing of one depth: (precision, depth, measure) -> the operating point's figure.
Timed = Callable[[str, int, Callable[[], dict]], dict]


def measure_precisions(model, tokenizer, names: Sequence[str], lists: dict[int, Sequence[tuple[str, Sequence[str]]]],
                       quality: QualityCheck, *, fp32_latency: dict[int, dict], timed: Timed | None = None,
                       warmup: int = 3, repeats: int = 20, **reranker_kwargs) -> dict[str, dict]:
    """Per precision name: ``supported`` (with ``reason`` when not), and per rerank depth (``lists``: depth ->
    candidate lists) its CPU ``latency`` (``measure_latency``'s figure through ``timed``, which may share one figure
    per operating point; fp32's are ``fp32_latency``), ``nDCG@10`` on ``quality.dataset`` and, against fp32,
    ``delta_nDCG@10`` and ``speedup_p50`` (fp32 p50 / this p50). The deepest depth's values are also the row's
    own; the others are under ``depths``."""
    timed = timed or (lambda _name, _depth, measure: measure())
    out: dict[str, dict] = {}
    for name in names:
        reason = unsupported(name, "cpu")
        if reason is not None:
            out[name] = {"supported": False, "reason": reason}
            continue
        if name == "fp32":
            points, ndcg = fp32_latency, quality.fp32
        else:
            reranker = precision_reranker(model, tokenizer, name, device="cpu", **reranker_kwargs)
            points = {d: timed(name, d, lambda d=d: measure_latency(reranker, lists[d], warmup=warmup,
                                                                     repeats=repeats)) for d in lists}
            ndcg = quality.score(reranker)
        per_depth = {d: {"nDCG@10": ndcg[d], "delta_nDCG@10": ndcg[d] - quality.fp32[d], "latency": points[d],
                         "speedup_p50": fp32_latency[d]["p50_ms"] / points[d]["p50_ms"] if points[d] else None}
                     for d in sorted(lists)}
        deepest = max(per_depth)
        out[name] = {"supported": True, "dataset": quality.dataset, **per_depth[deepest],
                     "depths": {str(d): v for d, v in per_depth.items() if d != deepest}}
    return out
