"""The in-memory shape every dataset loader returns and every other module consumes, and the per-process cache of
loaded collections (bounded by an estimate of their memory)."""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .errors import BenchError

Qrels = dict[str, dict[str, int]]  # qid -> docid -> graded relevance (ir_measures' dict form)
Run = dict[str, dict[str, float]]  # qid -> docid -> score (ir_measures' dict form; higher is better)

# Approximate CPython cost of one entry of a dict of short strings (two str headers, a hash slot), in bytes: the
# estimates add it to the text lengths.
ENTRY_BYTES = 100
# The collection cache's default bound: this share of the machine's physical memory.
DEFAULT_CACHE_SHARE = 0.25
CACHE_ENV = "RDB_COLLECTION_CACHE_MB"


def by_score(scores: Mapping[str, float]) -> list[tuple[str, float]]:
    """(doc id, score) by descending score, ties by doc id: the one order every run, pool and cut uses, so a ranking
    is deterministic."""
    return sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))


@dataclass
class Collection:
    """One evaluation or training set: queries, a document lookup, qrels and a first-stage run.

    ``docs`` may be lazy (e.g. an ir_datasets docstore wrapped as a Mapping) so large corpora are not materialised;
    only the documents in ``run`` are ever read by the reranker. ``run`` may be lazy too
    (:class:`benchmark.firststage.BM25Run`): a query's candidates are computed when first read.
    """

    name: str  # dataset row name, e.g. "embedded-test" or "trec-dl-2019"
    queries: dict[str, str]
    docs: Mapping[str, str]
    qrels: Qrels
    run: Mapping[str, dict[str, float]]  # first-stage candidates, top-k per query
    meta: dict[str, object] = field(default_factory=dict)  # ir_datasets id, first stage, k, data hash, ...

    def ranked(self, qid: str, k: int | None = None) -> list[str]:
        """First-stage candidates of ``qid`` by descending score (ties by docid, so order is deterministic)."""
        return [d for d, _ in by_score(self.run.get(qid, {}))[:k]]


def _held_bytes(value: Mapping) -> int:
    """What a mapping holds in memory: its own ``nbytes`` estimate where it has one (a lazy docstore or run), else
    text lengths plus :data:`ENTRY_BYTES` per entry (a dict of texts, or of candidate / judgement dicts)."""
    own = getattr(value, "nbytes", None)
    if own is not None:
        return int(own)
    if not isinstance(value, dict):
        return 0  # a lazy view over files on disk (an ir_datasets docstore) holds no texts
    total = 0
    for key, item in value.items():
        total += ENTRY_BYTES + len(key)
        total += len(item) if isinstance(item, str) else ENTRY_BYTES * len(item) if isinstance(item, dict) else 0
    return total


def estimate_bytes(coll: Collection) -> int:
    """An estimate of the memory a collection holds: query and document texts, qrels and first-stage candidates."""
    return sum(_held_bytes(part) for part in (coll.queries, coll.docs, coll.qrels, coll.run))


def cache_limit() -> int:
    """``$RDB_COLLECTION_CACHE_MB`` megabytes, else :data:`DEFAULT_CACHE_SHARE` of physical memory."""
    text = os.environ.get(CACHE_ENV)
    if text is not None:
        try:
            mb = float(text)
        except ValueError:
            mb = -1.0
        if mb < 0:
            raise BenchError(f"{CACHE_ENV} must be a number of megabytes >= 0, got {text!r}")
        return int(mb * 2**20)
    return int(DEFAULT_CACHE_SHARE * os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


class CollectionCache:
    """Loaded collections by key, least recently used evicted first while their estimated sizes
    (:func:`estimate_bytes`) exceed ``limit`` bytes (default :func:`cache_limit`, read at each access). Queries,
    documents and qrels are measured once, at load; the first-stage run again at each access, since a lazy run grows
    as queries are read. The collection just asked for is always kept, even alone over the limit: it is the one in
    use."""

    def __init__(self, limit: int | None = None) -> None:
        self._limit = limit
        self._items: OrderedDict[str, Collection] = OrderedDict()
        self._fixed: dict[str, int] = {}  # bytes of queries + docs + qrels, measured at load

    def get(self, key: str, load: Callable[[], Collection]) -> Collection:
        if key in self._items:
            self._items.move_to_end(key)
        else:
            coll = self._items[key] = load()
            self._fixed[key] = sum(_held_bytes(part) for part in (coll.queries, coll.docs, coll.qrels))
        limit = cache_limit() if self._limit is None else self._limit
        sizes = {k: self._fixed[k] + _held_bytes(c.run) for k, c in self._items.items()}
        while len(self._items) > 1 and sum(sizes.values()) > limit:
            oldest, _ = self._items.popitem(last=False)
            del sizes[oldest], self._fixed[oldest]
        return self._items[key]

    def cache_clear(self) -> None:
        """Drop every collection (``functools.lru_cache``'s name for it)."""
        self._items.clear()
        self._fixed.clear()

    def keys(self) -> list[str]:
        """Cached keys, least recently used first."""
        return list(self._items)
