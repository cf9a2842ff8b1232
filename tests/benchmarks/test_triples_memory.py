"""Peak memory of BCE / Hinge's training triples: the seeded one-time shuffle of a qidpidtriples file (gzip, as
released) and reading the first N shuffled triples into the docpairs teacher's table, as a paper cell reads 200k
steps x 32 = 6.4M of MS MARCO's ~397M.

Each stage runs in a fresh subprocess that reports its peak RSS (``ru_maxrss``) above the RSS after imports:

- ``shuffle``: deal the file's lines into the bucket files (streamed: memory should not grow with the file);
- ``read``: the first ``N`` shuffled triples into a ``TripleTable`` and the teacher's ``TriplePool`` over it.

    pytest tests/benchmarks/test_triples_memory.py                      # 200k triples, read 128k
    pytest tests/benchmarks/test_triples_memory.py --benchmark-enable   # 10M triples, read 6.4M

Figures are printed (and recorded in docs/performance.md), never asserted; what is asserted is what was read.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
STAGE = r"""
import json, resource, sys, time
from pathlib import Path
from benchmark import shuffle
from benchmark.samplers import TriplePool, TripleTable
source, directory, stage, n = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3], int(sys.argv[4])
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
if stage == "shuffle":
    import gzip
    with gzip.open(source, "rt") as f:
        shuffle.build((line.rstrip("\n") for line in f), directory, 123, shuffle.buckets_for(None))
    out = n
else:
    table = TripleTable()
    for line in shuffle.read(directory):
        table.append(*line.split("\t"))
        if len(table) == n:
            break
    pool = TriplePool(table)  # what the docpairs teacher hands the sampler
    out = len(table)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"stage": stage, "seconds": time.perf_counter() - start, "peak_mb": (peak - base) / 1024,
                  "count": out}))
"""


def _write_triples(path: Path, n: int) -> None:
    """``qid pid+ pid-`` lines, tab-separated, ids drawn like MS MARCO's (808k train queries, 8.8M passages)."""
    rng = np.random.default_rng(0)
    with gzip.open(path, "wt", compresslevel=1) as f:
        for start in range(0, n, 500_000):
            m = min(500_000, n - start)
            q, p, d = rng.integers(808_731, size=m), rng.integers(8_841_823, size=m), rng.integers(8_841_823, size=m)
            f.write("".join(f"{a}\t{b}\t{c}\n" for a, b, c in zip(q.tolist(), p.tolist(), d.tolist())))


def _stage(source: Path, directory: Path, stage: str, n: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", STAGE, str(source), str(directory), stage, str(n)],
                          capture_output=True, text=True, cwd=ROOT, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_triples_stream_memory(tmp_path, timing, capsys):
    total, read = (10_000_000, 6_400_000) if timing else (200_000, 128_000)
    source = tmp_path / "qidpidtriples.train.full.2.tsv.gz"
    _write_triples(source, total)
    built = _stage(source, tmp_path / "shuffled", "shuffle", total)
    taken = _stage(source, tmp_path / "shuffled", "read", read)
    assert json.loads((tmp_path / "shuffled" / "shuffle.json").read_text())["lines"] == total
    assert taken["count"] == read
    with capsys.disabled():
        print(f"\ntriples: {total:,} in the file, {read:,} read")
        for r in (built, taken):
            print(f"  {r['stage']:<8} {r['seconds']:8.1f} s  peak +{r['peak_mb']:8.1f} MB")
