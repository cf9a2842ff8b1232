"""Peak memory of reading a first-stage TREC run: a synthetic gzipped run in the layout of the ColBERTv2 train run
the paper grid reads as a first stage (``qid Q0 docid rank score tag``, 500 candidates per query, doc ids drawn
from MS MARCO's 8,841,823 passage ids, scores with 4 decimals), read by :func:`benchmark.firststage.read_trec_run`
in a fresh subprocess whose peak RSS (``ru_maxrss``) is compared with its RSS (``VmRSS``) after the imports.

    pytest tests/benchmarks/test_run_memory.py                      # 250k lines
    pytest tests/benchmarks/test_run_memory.py --benchmark-enable   # 25M lines (docs/performance.md)

Memory and time are printed, never asserted; what is asserted is what the reader returned.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
DEPTH = 500
PASSAGES = 8_841_823

READER = """
import json, resource, sys, time
from benchmark.firststage import read_trec_run
base = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmRSS:"))
start = time.perf_counter()
run = read_trec_run(sys.argv[1])
seconds = time.perf_counter() - start
lines = sum(len(run[q]) for q in list(run)[:100])
print(json.dumps({"base_kib": base, "peak_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  "seconds": seconds, "queries": len(run), "first_100_lines": lines,
                  "distinct_docs": len(run._docids)}))
"""


def write_run(path: Path, queries: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    scores = "\n".join(f"{{}} Q0 {{}} {r + 1} {40 - r * 0.05:.4f} colbertv2" for r in range(DEPTH)) + "\n"
    with gzip.open(path, "wt", compresslevel=1, encoding="utf-8") as f:
        for q in range(queries):
            docs = rng.choice(PASSAGES, DEPTH, replace=False)
            f.write(scores.format(*(x for d in docs for x in (q, d))))


def test_peak_memory_of_reading_a_gzipped_run(tmp_path, timing, benchmark):
    queries = 50_000 if timing else 500
    path = tmp_path / "colbertv2.train.trec.gz"
    write_run(path, queries)

    def read() -> dict:
        out = subprocess.run([sys.executable, "-c", READER, str(path)], check=True, capture_output=True, text=True,
                             cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
        return json.loads(out.stdout)

    got = benchmark.pedantic(read, rounds=1, iterations=1)
    lines = queries * DEPTH
    grown = (got["peak_kib"] - got["base_kib"]) * 1024
    print(f"\n{lines:,} lines, {got['distinct_docs']:,} distinct docs: peak RSS {got['peak_kib'] / 2**20:.2f} GiB "
          f"({grown / 2**30:.2f} GiB over the imports, {grown / lines:.1f} B/line), {got['seconds']:.1f} s, "
          f"{path.stat().st_size / 2**20:.0f} MiB gzipped")
    assert got["queries"] == queries and got["first_100_lines"] == min(queries, 100) * DEPTH
