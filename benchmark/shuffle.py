"""A seeded one-time shuffle of a line stream too large to hold (the ~397M MS MARCO training triples), with memory
bounded by one bucket.

:func:`build` streams the lines once and deals line i to bucket ``splitmix64(seed, i) mod buckets`` (a hash of
its position: uniform, and the same however the stream is chunked); :func:`read` yields bucket 0 in a seeded random
order, then bucket 1, and so on. Dealing items to uniform random buckets and permuting each bucket uniformly gives a
uniform random permutation of the whole stream, and a reader that stops after N lines opens only the buckets those
lines are in. The buckets are kept (gzipped) in
a cache directory, so the shuffle is made once per (source, seed) and every later run reads the same order.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from .cache import build_once
from .errors import BenchError

MAX_BUCKETS = 512  # open files while dealing; 397M triples -> ~780k lines (~60 MB of text) per bucket
BUCKET_LINES = 1_000_000  # target lines per bucket when the count is known in advance
DEAL_CHUNK = 65_536  # lines dealt per generator call
MANIFEST = "shuffle.json"


def buckets_for(count: int | None) -> int:
    """Buckets for ``count`` lines (unknown: :data:`MAX_BUCKETS`)."""
    if count is None:
        return MAX_BUCKETS
    return int(min(MAX_BUCKETS, max(1, -(-count // BUCKET_LINES))))


def build(lines: Iterable[str], directory: Path, seed: int, buckets: int) -> Path:
    """Deal ``lines`` (without their newline) into ``buckets`` gzipped files under ``directory``, written to a
    temporary directory and moved in place when complete, once across processes sharing the cache
    (:func:`benchmark.cache.build_once`): an interrupted build leaves nothing that reads."""
    def deal(tmp: Path) -> None:
        tmp.mkdir(parents=True)
        count = 0
        outs = [gzip.open(tmp / f"bucket-{i:04d}.gz", "wt", encoding="utf-8", compresslevel=1)
                for i in range(buckets)]
        try:
            chunk: list[str] = []
            for line in lines:
                chunk.append(line)
                if len(chunk) == DEAL_CHUNK:
                    count += _deal(chunk, count, seed, outs)
                    chunk = []
            count += _deal(chunk, count, seed, outs)
        finally:
            for out in outs:
                out.close()
        (tmp / MANIFEST).write_text(json.dumps({"seed": seed, "buckets": buckets, "lines": count}))

    return build_once(directory, deal, ready=lambda path: (path / MANIFEST).is_file())


def bucket_of(positions: np.ndarray, seed: int, buckets: int) -> np.ndarray:
    """The bucket of each stream position: splitmix64 (Steele, Lea & Flood 2014) of seed and position, mod buckets."""
    with np.errstate(over="ignore"):
        z = positions.astype(np.uint64) + np.uint64(seed) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return (z % np.uint64(buckets)).astype(np.int64)


def _deal(chunk: list[str], start: int, seed: int, outs: list) -> int:
    for line, b in zip(chunk, bucket_of(np.arange(start, start + len(chunk)), seed, len(outs))):
        outs[b].write(line + "\n")
    return len(chunk)


def read(directory: Path) -> Iterator[str]:
    """The shuffled lines of a :func:`build` directory, one bucket in memory at a time."""
    manifest = directory / MANIFEST
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, ValueError):
        raise BenchError(f"shuffled stream {str(directory)!r} is incomplete (no {MANIFEST}); delete it to rebuild")
    for i in range(meta["buckets"]):
        with gzip.open(directory / f"bucket-{i:04d}.gz", "rt", encoding="utf-8") as f:
            bucket = f.read().splitlines()
        for j in np.random.default_rng([meta["seed"], i + 1]).permutation(len(bucket)):
            yield bucket[j]
