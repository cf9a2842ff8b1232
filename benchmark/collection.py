"""The in-memory shape every dataset loader returns and every other module consumes."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Qrels = dict[str, dict[str, int]]  # qid -> docid -> graded relevance (ir_measures' dict form)
Run = dict[str, dict[str, float]]  # qid -> docid -> score (ir_measures' dict form; higher is better)


@dataclass
class Collection:
    """One evaluation or training set: queries, a document lookup, qrels and a first-stage run.

    ``docs`` may be lazy (e.g. an ir_datasets docstore wrapped as a Mapping) so large corpora are not materialised;
    only the documents in ``run`` are ever read by the reranker.
    """

    name: str  # dataset row name, e.g. "embedded-test" or "trec-dl-2019"
    queries: dict[str, str]
    docs: Mapping[str, str]
    qrels: Qrels
    run: Run  # first-stage candidates, top-k per query
    meta: dict[str, object] = field(default_factory=dict)  # ir_datasets id, first stage, k, data hash, ...

    def ranked(self, qid: str, k: int | None = None) -> list[str]:
        """First-stage candidates of ``qid`` by descending score (ties by docid, so order is deterministic)."""
        cands = sorted(self.run.get(qid, {}).items(), key=lambda kv: (-kv[1], kv[0]))
        return [d for d, _ in cands[:k]]
