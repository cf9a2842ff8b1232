"""The teacher-score cache at 1M cached pairs (10,000 queries x 100 documents, MS MARCO-like ids): inserting them,
looking them all up, and what a cell pays when it adds 1,000 new pairs to a full store, against the one JSON file
per model an earlier version read and rewrote whole for it.

    pytest tests/benchmarks/test_score_store.py                      # 10k pairs, each step once
    pytest tests/benchmarks/test_score_store.py --benchmark-enable   # 1M pairs, timed

Times are printed, never asserted; what is asserted is what the store returned.
"""

from __future__ import annotations

import json
import shutil

import pytest

from benchmark.cache import ScoreStore

NEW = 1_000  # pairs a cell adds to a full store


@pytest.fixture(scope="module")
def size(timing) -> int:
    return 1_000_000 if timing else 10_000


def _pool(queries: int, start: int = 0) -> dict[str, list[str]]:
    return {str(1_000_000 + q): [str(7_000_000 + q * 100 + d) for d in range(100)]
            for q in range(start, start + queries)}


def _score(pairs):
    return [int(d) / 1e6 - int(q) / 1e7 for q, d in pairs]


@pytest.fixture(scope="module")
def full(tmp_path_factory, size):
    """A store holding ``size`` pairs, and their pool."""
    pool = _pool(size // 100)
    store = ScoreStore(tmp_path_factory.mktemp("scores") / "full.sqlite")
    store.fill(pool, _score)
    return store, pool


def test_insert(benchmark, tmp_path, size):
    pool = _pool(size // 100)

    def fresh():
        for p in tmp_path.iterdir():
            p.unlink()
        return (ScoreStore(tmp_path / "s.sqlite"), pool, _score), {}

    got = benchmark.pedantic(ScoreStore.fill, setup=fresh, rounds=3)
    assert sum(map(len, got.values())) == size


def test_lookup(benchmark, full, size):
    store, pool = full
    got = benchmark.pedantic(store.get, args=(pool,), rounds=3)
    assert sum(map(len, got.values())) == size and got["1000007"]["7000742"] == 7.000742 - 0.1000007


def test_add_new_pairs_to_a_full_store(benchmark, full, tmp_path, size):
    store, _ = full
    new = _pool(NEW // 100, start=size // 100)

    def copy():
        target = tmp_path / "copy.sqlite"
        shutil.copyfile(store.path, target)
        return (ScoreStore(target), new, _score), {}

    got = benchmark.pedantic(ScoreStore.fill, setup=copy, rounds=3)
    assert sum(map(len, got.values())) == NEW


def test_add_new_pairs_to_a_full_json_file(benchmark, full, tmp_path, size):
    """The earlier layout: the whole table read, the new pairs added, the whole table written back."""
    store, pool = full
    path = tmp_path / "scores.json"
    path.write_text(json.dumps(store.get(pool)))
    new = [(q, d) for q, docids in _pool(NEW // 100, start=size // 100).items() for d in docids]

    def add():
        scores = json.loads(path.read_text())
        for (q, d), v in zip(new, _score(new)):
            scores.setdefault(q, {})[d] = v
        path.write_text(json.dumps(scores))
        return scores

    got = benchmark.pedantic(add, rounds=3)
    assert sum(map(len, got.values())) == size + NEW
