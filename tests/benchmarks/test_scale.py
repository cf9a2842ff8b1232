"""How time and memory grow with the corpus: load -> BM25 first stage (bm25s) -> rerank, at 10k, 100k and 1M passages.

Each size is a synthetic corpus written as MS MARCO's ``collection.tsv`` (``pid<TAB>passage``, the layout
ir_datasets 0.6.3 reads for ``msmarco-passage`` with ``TsvDocs``: ir_datasets/datasets/msmarco_passage.py), with
``queries.tsv`` (``qid<TAB>text``) and TREC qrels, registered as an ir_datasets dataset and read by the suite's own
``ir_datasets`` loader, so it goes the MS MARCO way: the corpus streamed into an on-disk bm25s index, searched
memory-mapped, documents read from ir_datasets' docstore. The text is generated deterministically: a vocabulary whose
word lengths grow with frequency rank (short frequent words, long rare ones: English-like), words drawn by a Zipf
law, passage lengths from a gamma law with MS MARCO's mean of about 56 words.

Stages, each timed with its peak RSS (a 5 ms sampler thread) in one fresh subprocess per size, so peaks are separate:

- ``load``: ``load_collection`` (queries, qrels, the lazy docstore and first-stage handles);
- ``index``: the first query's search, which streams the corpus into the bm25s index and saves it;
- ``search``: the BM25 top-100 of the other queries (memory-mapped index);
- ``docs``: the texts of the candidates to rerank (ir_datasets builds its docstore on the first lookup);
- ``rerank``: all-MiniLM-L6-v2 (bundled, seeded head) scoring 5 queries x 20 candidates, max length 128.

The growth exponent of a stage is the least-squares slope of log(time) (and of log(RSS growth)) over log(passages);
the fit through the sizes measured extrapolates to MS MARCO (8.8M passages) and BEIR's largest corpus (5.4M).

    pytest tests/benchmarks/test_scale.py                      # 10k and 100k passages
    pytest tests/benchmarks/test_scale.py --benchmark-enable   # 10k, 100k and 1M

Times are printed, never asserted; what is asserted is what the pipeline returned.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
QUERIES = 50
DEPTH = 100
RERANK_QUERIES, RERANK_DEPTH = 5, 20
VOCAB = 300_000
ZIPF = 1.2  # rank-frequency exponent of the words drawn
TARGETS = {"MS MARCO passage (8.8M)": 8_841_823, "BEIR largest (5.4M)": 5_416_593}
FLOORS = {"s": 1e-3, "B": 2**20}  # in the fits, less than 1 ms or 1 MiB counts as that much
STAGES = ("load", "index", "search", "docs", "rerank")


def _vocabulary(rng: np.random.Generator) -> list[str]:
    """Word of rank r: its base-26 code (short for frequent ranks) padded to a length drawn around 2.4 + 0.6 ln r
    characters (2 to 18), so word lengths by frequency look like English text (running words: ~4.6 characters)."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    lengths = np.clip(np.rint(rng.normal(2.4 + 0.6 * np.log(np.arange(VOCAB) + 2), 1.2)), 2, 18).astype(int).tolist()
    words = []
    for rank, length in enumerate(lengths):
        code, r = "", rank
        while True:
            code += letters[r % 26]
            r //= 26
            if not r:
                break
        words.append(code + (letters[rank % 26:] + letters * 18)[:max(0, length - len(code))])
    return words


def write_corpus(directory: Path, n: int) -> None:
    """``collection.tsv`` of ``n`` passages, ``queries.tsv`` of :data:`QUERIES` queries and ``qrels`` (one judged
    passage each), the same for a given ``n`` on every run."""
    rng = np.random.default_rng(0)
    vocab = _vocabulary(rng)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "collection.tsv", "w", encoding="utf-8") as out:
        for start in range(0, n, 10_000):
            size = min(10_000, n - start)
            lengths = np.clip(rng.gamma(6.0, 56 / 6.0, size), 5, 200).astype(int)
            ranks = rng.zipf(ZIPF, 2 * int(lengths.sum())) - 1
            ranks = ranks[ranks < VOCAB][:lengths.sum()]  # the law truncated at the vocabulary (P(rank >= VOCAB) ~1%)
            ends = np.cumsum(lengths)
            out.write("".join(f"{start + i}\t{' '.join(vocab[r] for r in ranks[e - length:e])}\n"
                              for i, (e, length) in enumerate(zip(ends, lengths))))
    qrng = np.random.default_rng(1)  # queries independent of n: 3-6 words of frequency ranks 50-5000
    queries = {f"q{i}": " ".join(vocab[r] for r in qrng.integers(50, 5_000, qrng.integers(3, 7)))
               for i in range(QUERIES)}
    (directory / "queries.tsv").write_text("".join(f"{q}\t{t}\n" for q, t in queries.items()), encoding="utf-8")
    (directory / "qrels").write_text("".join(f"{q} 0 {(i * 7919) % n} 1\n" for i, q in enumerate(queries)))


class _Peak:
    """Peak resident set size of this process while a stage runs, sampled every 5 ms from /proc/self/statm (under a
    lock, so a sample taken during one stage never lands in the next one's peak)."""

    def __init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._lock = threading.Lock()
        self.peak = self.rss()
        self._stop = threading.Event()
        threading.Thread(target=self._sample, daemon=True).start()

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            with self._lock:
                self.peak = max(self.peak, self.rss())

    def stage(self, name: str, fn, out: dict):
        with self._lock:
            before = self.peak = self.rss()
        start = time.perf_counter()
        value = fn()
        seconds = time.perf_counter() - start
        with self._lock:
            out[name] = {"seconds": seconds, "rss_before": before, "peak": max(self.peak, self.rss())}
        return value


def _child(directory: Path) -> None:
    """One size's stages in this fresh process; prints one JSON line."""
    import ir_datasets
    import torch
    from ir_datasets.datasets.base import Dataset
    from ir_datasets.formats import TrecQrels, TsvDocs, TsvQueries
    from ir_datasets.util import LocalDownload

    from benchmark.backbones import get_backbone
    from benchmark.dataset_rows import DatasetSpec
    from benchmark.datasets import load_collection
    from benchmark.models import build_cross_encoder
    from benchmark.inference import Reranker

    name = f"rdb-scale/{uuid.uuid4().hex}"
    ir_datasets.registry.register(name, Dataset(
        TsvDocs(LocalDownload(directory / "collection.tsv"), lang="en"),
        TsvQueries(LocalDownload(directory / "queries.tsv"), lang="en"),
        TrecQrels(LocalDownload(directory / "qrels"), {1: "relevant"}),
    ))
    torch.set_num_threads(1)
    model, tokenizer = build_cross_encoder(get_backbone("minilm-l6"), seed=0)
    reranker = Reranker(model, tokenizer, max_length=128, batch_size=32)
    peak, stages = _Peak(), {}
    coll = peak.stage("load", lambda: load_collection(DatasetSpec("scale", "ir_datasets", id=name, top_k=DEPTH)),
                      stages)
    qids = sorted(coll.queries)
    peak.stage("index", lambda: coll.run.fetch(qids[:1]), stages)
    peak.stage("search", lambda: coll.run.fetch(qids[1:]), stages)
    lists = [(coll.queries[q], coll.ranked(q, RERANK_DEPTH)) for q in qids[:RERANK_QUERIES]]
    texts = peak.stage("docs", lambda: [(q, [coll.docs[d] for d in ds]) for q, ds in lists], stages)
    scores = peak.stage("rerank", lambda: [reranker.score([q] * len(ds), ds) for q, ds in texts], stages)
    print(json.dumps({"stages": stages, "computed": coll.run.computed, "queries": len(qids),
                      "candidates": [len(coll.run[q]) for q in qids], "scored": [len(s) for s in scores],
                      "first": lists[0][1][:3]}))


def _measure(directory: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RDB_CACHE": str(directory / "cache"),
           "IR_DATASETS_HOME": str(directory / "irds"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, __file__, str(directory)], env=env, capture_output=True, text=True,
                          timeout=3 * 3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _fit(sizes: list[int], values: list[float], unit: str) -> tuple[float, float]:
    """(slope, intercept) of log(value) over log(size), least squares; values floored at :data:`FLOORS` (a stage
    that does not grow reads as exponent ~0, not as the log of a zero)."""
    slope, intercept = np.polyfit(np.log(sizes), np.log(np.maximum(values, FLOORS[unit])), 1)
    return float(slope), float(intercept)


def _slope(sizes: list[int], values: list[float], unit: str) -> float:
    return _fit(sizes, values, unit)[0]


def _extrapolate(sizes: list[int], values: list[float], target: int, unit: str) -> float:
    slope, intercept = _fit(sizes, values, unit)
    return math.exp(intercept) * target ** slope


@pytest.fixture(scope="module")
def sizes(timing) -> list[int]:
    return [10_000, 100_000, 1_000_000] if timing else [10_000, 100_000]


def test_time_and_memory_growth_with_the_corpus(sizes, tmp_path_factory, capsys):
    results = {}
    for n in sizes:
        directory = tmp_path_factory.mktemp(f"scale-{n}")
        start = time.perf_counter()
        write_corpus(directory, n)
        written = time.perf_counter() - start
        results[n] = _measure(directory)
        results[n]["write_s"] = written
        # Only the queries read were searched, each to its depth; the reranker scored every candidate it was given.
        assert results[n]["computed"] == QUERIES == results[n]["queries"]
        assert all(0 < c <= DEPTH for c in results[n]["candidates"]), results[n]["candidates"]
        assert results[n]["scored"] == [min(RERANK_DEPTH, c) for c in results[n]["candidates"][:RERANK_QUERIES]]
    lines = [f"scale: load -> BM25 -> rerank, {QUERIES} queries, top-{DEPTH}, rerank {RERANK_QUERIES} x "
             f"{RERANK_DEPTH} (MiniLM-L6 fp32), cpu count {os.cpu_count()}",
             f"{'passages':>10} {'stage':<8}{'seconds':>10}{'peak RSS MB':>13}{'RSS growth MB':>15}"]
    for n in sizes:
        lines.append(f"{n:>10} {'write':<8}{results[n]['write_s']:>10.2f}")
        for stage in STAGES:
            s = results[n]["stages"][stage]
            lines.append(f"{n:>10} {stage:<8}{s['seconds']:>10.2f}{s['peak'] / 2**20:>13.0f}"
                         f"{(s['peak'] - s['rss_before']) / 2**20:>15.0f}")
    lines.append(f"growth exponents over {', '.join(map(str, sizes))} passages, and the fit extrapolated:")
    lines.append(f"{'stage':<8}{'time exp':>9}{'RSS exp':>9}" + "".join(f"{t:>34}" for t in TARGETS))
    for stage in STAGES:
        seconds = [results[n]["stages"][stage]["seconds"] for n in sizes]
        growth = [results[n]["stages"][stage]["peak"] - results[n]["stages"][stage]["rss_before"] for n in sizes]
        cells = "".join(f"{_extrapolate(sizes, seconds, t, 's'):>20.0f} s "
                        f"{_extrapolate(sizes, growth, t, 'B') / 2**30:>8.1f} GB" for t in TARGETS.values())
        lines.append(f"{stage:<8}{_slope(sizes, seconds, 's'):>9.2f}{_slope(sizes, growth, 'B'):>9.2f}{cells}")
    base = max(results[n]["stages"]["load"]["rss_before"] for n in sizes)
    for target, passages in TARGETS.items():
        growth = max(_extrapolate(sizes, [results[n]["stages"][st]["peak"] - results[n]["stages"][st]["rss_before"]
                                          for n in sizes], passages, "B") for st in STAGES)
        lines.append(f"{target}: peak RSS ~ {base / 2**30:.1f} GB before loading + {growth / 2**30:.1f} GB of the "
                     f"largest stage = {(base + growth) / 2**30:.1f} GB")
    with capsys.disabled():
        print("\n" + "\n".join(lines))


if __name__ == "__main__":
    _child(Path(sys.argv[1]))
