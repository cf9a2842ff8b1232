"""First-stage retrieval: BM25 with the bm25s library, and TREC run files (read with ir_measures)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .collection import Run
from .errors import BenchError


def bm25_run(docs: Mapping[str, str], queries: Mapping[str, str], k: int = 100) -> Run:
    """BM25 (bm25s defaults: Lucene variant, k1=1.5, b=0.75) top-k per query; ties broken by docid."""
    import bm25s

    doc_ids = sorted(docs)
    if not doc_ids:
        raise BenchError("BM25: the collection has no documents")
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([docs[d] for d in doc_ids], stopwords="en", show_progress=False),
                    show_progress=False)
    qids = sorted(queries)
    q_tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False)
    k = min(k, len(doc_ids))
    results, scores = retriever.retrieve(q_tokens, k=k, show_progress=False, n_threads=1)
    run: Run = {}
    for qi, q in enumerate(qids):
        hits = [(doc_ids[int(i)], float(s)) for i, s in zip(results[qi], scores[qi]) if s > 0]
        run[q] = dict(sorted(hits, key=lambda h: (-h[1], h[0])))
    return run


def read_trec_run(path: str | Path, k: int | None = None) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``) -> {qid: {docid: score}}, top-k per query by score."""
    import ir_measures

    path = Path(path)
    if not path.is_file():
        raise BenchError(f"run file {str(path)!r} does not exist")
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if parts and (len(parts) != 6 or not _is_float(parts[4])):
            raise BenchError(f"{path}:{lineno}: not a TREC run line (qid Q0 docid rank score tag): {line[:80]!r}")
    run: Run = {}
    for sd in ir_measures.read_trec_run(str(path)):
        run.setdefault(sd.query_id, {})[sd.doc_id] = float(sd.score)
    if not run:
        raise BenchError(f"run file {str(path)!r} is empty")
    if k is not None:
        run = {q: dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0]))[:k]) for q, d in run.items()}
    return run


def write_trec_run(run: Run, path: str | Path, tag: str = "run") -> None:
    lines = []
    for q in sorted(run):
        for rank, (d, s) in enumerate(sorted(run[q].items(), key=lambda kv: (-kv[1], kv[0])), 1):
            lines.append(f"{q} Q0 {d} {rank} {s:.6f} {tag}")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
