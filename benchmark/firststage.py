"""First-stage retrieval: BM25 with the bm25s library, and TREC run files (read with ir_measures)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from .collection import Run
from .errors import BenchError

BM25_PARAMS = {"method": "lucene", "k1": 1.5, "b": 0.75}  # bm25s defaults, pinned so cached runs stay valid


def bm25_run(docs: Mapping[str, str], queries: Mapping[str, str], k: int = 100, *,
             cache_dir: str | Path | None = None, cache_key: str | None = None) -> Run:
    """BM25 top-``k`` per query with bm25s (its tokenizer, English stopwords); ties broken by docid.

    With ``cache_dir`` the run is stored as JSON keyed by a hash of the inputs: the document texts, or ``cache_key``
    when the caller has a cheaper identity for them (an ir_datasets id), so a cache hit never reads the corpus.
    Queries without any matching term get no candidates (an empty dict).
    """
    import bm25s

    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"bm25-{_inputs_digest(docs, queries, k, cache_key)}.json"
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    items = sorted(docs.items())  # one pass over a lazy docstore; sorted ids make index order = tie-break order
    if not items:
        raise BenchError("BM25: the collection has no documents")
    doc_ids = [d for d, _ in items]
    retriever = bm25s.BM25(**BM25_PARAMS)
    retriever.index(bm25s.tokenize([t for _, t in items], stopwords="en", show_progress=False), show_progress=False)
    del items
    qids = sorted(queries)
    q_tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", return_ids=False, show_progress=False)
    run: Run = {q: _top_k(retriever, tokens, doc_ids, k) for q, tokens in zip(qids, q_tokens)}
    if path is not None:
        from .results import atomic_write_text

        atomic_write_text(path, json.dumps(run))
    return run


def _top_k(retriever, tokens: list[str], doc_ids: list[str], k: int) -> dict[str, float]:
    """The k best-scoring documents (score > 0); among equal scores the smaller docid wins, whatever numpy's
    partition order (bm25s' own top-k leaves ties at the cut-off to chance)."""
    import numpy as np

    tokens = [t for t in tokens if t in retriever.vocab_dict]
    if not tokens:
        return {}
    scores = retriever.get_scores(tokens)
    hits = np.flatnonzero(scores > 0)
    if len(hits) > k:
        order = np.lexsort((hits, -scores[hits]))  # by score desc, then index (= docid order)
        hits = hits[order[:k]]
    return {doc_ids[i]: round(float(scores[i]), 6) for i in sorted(hits, key=lambda i: (-scores[i], i))}


def _inputs_digest(docs: Mapping[str, str], queries: Mapping[str, str], k: int, cache_key: str | None) -> str:
    import bm25s

    h = hashlib.sha256(json.dumps([k, BM25_PARAMS, bm25s.__version__, cache_key, sorted(queries.items())]).encode())
    if cache_key is None:
        for d in sorted(docs):
            h.update(f"{d}\t{docs[d]}\n".encode())
    return h.hexdigest()[:20]


def read_trec_run(path: str | Path, k: int | None = None) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``) -> {qid: {docid: score}}, top-k per query by score.

    Lines are checked first so a malformed one is reported as ``file:line``; ir_measures then parses the file.
    """
    import ir_measures

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"run file {str(path)!r} does not exist")
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if parts and (len(parts) != 6 or not _is_float(parts[4])):
                raise BenchError(f"{path}:{lineno}: not a TREC run line (qid Q0 docid rank score tag): "
                                 f"{line.strip()[:80]!r}")
    run: Run = {}
    for sd in ir_measures.read_trec_run(str(path)):
        run.setdefault(sd.query_id, {})[sd.doc_id] = float(sd.score)
    if not run:
        raise BenchError(f"run file {str(path)!r} is empty")
    if k is not None:
        run = {q: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:k]) for q, d in run.items()}
    return run


def write_trec_run(run: Run, path: str | Path, tag: str = "run") -> None:
    """Write ``run`` as a TREC run file, ranks by descending score (ties by docid)."""
    lines = [f"{q} Q0 {d} {rank} {s:.6f} {tag}"
             for q in sorted(run)
             for rank, (d, s) in enumerate(sorted(run[q].items(), key=lambda kv: (-kv[1], kv[0])), 1)]
    if not lines:
        raise BenchError(f"refusing to write an empty run to {str(path)!r}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
