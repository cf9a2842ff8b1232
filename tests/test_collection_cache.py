"""The per-process collection cache: bounded by an estimate of each collection's memory, least recently used out."""

import os

import pytest

from benchmark.collection import ENTRY_BYTES, Collection, CollectionCache, cache_limit, estimate_bytes
from benchmark.errors import BenchError


def _collection(name: str, n_docs: int, length: int) -> Collection:
    """A fake collection of ``n_docs`` texts of ``length`` characters, one query with one judged candidate."""
    docs = {f"{name}{i:04d}": "x" * length for i in range(n_docs)}
    return Collection(name, {"q": "x"}, docs, {"q": {f"{name}0000": 1}}, {"q": {f"{name}0000": 1.0}})


def test_estimate_is_text_lengths_plus_an_entry_cost():
    coll = _collection("a", 10, 1000)  # doc ids are 5 characters
    docs = 10 * (ENTRY_BYTES + 5 + 1000)
    query, judgement, candidate = ENTRY_BYTES + 1 + 1, ENTRY_BYTES + 1 + ENTRY_BYTES, ENTRY_BYTES + 1 + ENTRY_BYTES
    assert estimate_bytes(coll) == docs + query + judgement + candidate


def test_least_recently_used_collections_leave_when_the_sizes_pass_the_limit():
    sizes = {n: estimate_bytes(_collection(n, 10, 1000)) for n in "abc"}  # about 11 kB each
    cache = CollectionCache(limit=sizes["a"] + sizes["b"])
    loads = []

    def loader(name):
        return lambda: loads.append(name) or _collection(name, 10, 1000)

    for name in "ab":
        cache.get(name, loader(name))
    assert cache.keys() == ["a", "b"]
    assert cache.get("a", loader("a")).name == "a" and cache.keys() == ["b", "a"]  # a hit: no load, a is recent
    cache.get("c", loader("c"))  # three do not fit: b, the least recently used, leaves
    assert cache.keys() == ["a", "c"] and loads == ["a", "b", "c"]
    cache.get("b", loader("b"))
    assert cache.keys() == ["c", "b"] and loads == ["a", "b", "c", "b"]


def test_a_collection_over_the_limit_alone_is_kept_while_in_use():
    cache = CollectionCache(limit=5_000)
    cache.get("small", lambda: _collection("s", 1, 10))
    big = cache.get("big", lambda: _collection("b", 10, 1000))
    assert big.name == "b" and cache.keys() == ["big"]


def test_limit_from_the_environment(monkeypatch):
    monkeypatch.setenv("RDB_COLLECTION_CACHE_MB", "1.5")
    assert cache_limit() == 1_572_864
    monkeypatch.setenv("RDB_COLLECTION_CACHE_MB", "lots")
    with pytest.raises(BenchError, match="^RDB_COLLECTION_CACHE_MB must be a number of megabytes >= 0, got 'lots'$"):
        cache_limit()
    monkeypatch.delenv("RDB_COLLECTION_CACHE_MB")
    assert cache_limit() == os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4  # a quarter of the RAM
