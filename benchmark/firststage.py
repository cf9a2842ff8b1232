"""First-stage retrieval: BM25 with the bm25s library, TREC run files (read with ir_measures), and the cut.

Every first stage (bm25, scoreddocs, ``run:<path>``, file) is cut to its depth by :func:`cut`, and the evaluation
cuts its rerank depth the same way. A cut orders candidates by score and never chooses among tied scores by doc id:

- a tie that straddles the cut inside an otherwise scored list is kept whole (the query reranks a few more
  candidates; runs printed with 4-6 decimals tie often);
- a list longer than the depth whose scores are *all* equal carries no ranking, and is refused in one line naming
  the dataset. ir_datasets builds the scoreddocs of ``msmarco-passage/{dev/small,trec-dl-2019,trec-dl-2020}`` this
  way: ``ExtractQidPid`` keeps the ``qid pid`` columns of the official top-1000 and ``TrecScoredDocs`` gives every
  two-column line score 0 (ir_datasets 0.6.3: ``ir_datasets/datasets/msmarco_passage.py``, ``ExtractQidPid`` and the
  ``dev/small``, ``trec-dl-2019``, ``trec-dl-2020`` subsets; ``ir_datasets/formats/trec.py``, ``TrecScoredDocs``).
  Such a list is reranked whole (depth >= its length) or replaced by a scored first stage.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
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


def _tokenizer():
    """The tokenisation of ``bm25s.tokenize(texts, stopwords="en")`` as a reusable, vocabulary-growing object."""
    import bm25s

    return bm25s.tokenization.Tokenizer(stopwords="en")


def build_bm25_index(docs: Iterable[tuple[str, str]], directory: Path, chunk: int = 100_000) -> None:
    """Index a corpus streamed as (doc_id, text) pairs with bm25s and save it (index + doc ids) to ``directory``.

    Texts are tokenised in chunks and dropped, so only token ids are held while indexing: this is how the 8.8M
    MS MARCO passages are indexed once and shared by every row over that corpus."""
    import bm25s

    from .results import atomic_write_text

    tokenizer, doc_ids, token_ids, batch = _tokenizer(), [], [], []

    def flush() -> None:
        token_ids.extend(tokenizer.tokenize([t for _, t in batch], update_vocab=True, return_as="ids",
                                            show_progress=False))
        doc_ids.extend(d for d, _ in batch)
        batch.clear()

    for pair in docs:
        batch.append(pair)
        if len(batch) >= chunk:
            flush()
    flush()
    if not doc_ids:
        raise BenchError("BM25: the collection has no documents")
    retriever = bm25s.BM25()
    retriever.index((token_ids, tokenizer.get_vocab_dict()), show_progress=False)
    retriever.save(str(directory / "bm25s"))
    atomic_write_text(directory / "doc_ids.json", json.dumps(doc_ids))  # written last: marks the index complete


def bm25_index_run(directory: Path, queries: Mapping[str, str], k: int = 100) -> Run:
    """Top-k per query from an index saved by :func:`build_bm25_index` (memory-mapped; ties broken by docid)."""
    import bm25s

    doc_ids = json.loads((directory / "doc_ids.json").read_text())
    retriever = bm25s.BM25.load(str(directory / "bm25s"), mmap=True)
    qids = sorted(queries)
    q_tokens = bm25s.tokenize([queries[q] for q in qids], stopwords="en", show_progress=False, return_ids=False)
    results, scores = retriever.retrieve(q_tokens, k=min(k, len(doc_ids)), show_progress=False, n_threads=1)
    return {q: dict(sorted(((doc_ids[int(i)], float(s)) for i, s in zip(results[qi], scores[qi]) if s > 0),
                           key=lambda h: (-h[1], h[0])))
            for qi, q in enumerate(qids)}


def ranking(cands: Mapping[str, float], k: int | None, where: str) -> list[str]:
    """Doc ids by descending score (ties by docid), cut at k without splitting a tie (see the module docstring)."""
    order = sorted(cands.items(), key=lambda kv: (-kv[1], kv[0]))
    if k is None or len(order) <= k:
        return [d for d, _ in order]
    if order[0][1] == order[-1][1]:
        raise BenchError(f"{where}: all {len(order)} first-stage candidates have score {order[0][1]:g} (an unranked "
                         f"list), so a top-{k} cut would keep the {k} smallest doc ids; rerank the whole list "
                         f"(top_k = {len(order)}) or give a scored first stage (first_stage = 'bm25' or "
                         f"'run:<path to a TREC run>')")
    end = k
    while end < len(order) and order[end][1] == order[k - 1][1]:
        end += 1
    return [d for d, _ in order[:end]]


def cut(run: Run, k: int, where: str) -> Run:
    """Each query's top-k candidates (:func:`ranking`); ``where`` names the dataset in a refusal."""
    return {q: {d: cands[d] for d in ranking(cands, k, f"{where}, query {q}")} for q, cands in run.items()}


def read_trec_run(path: str | Path) -> Run:
    """A TREC run file (``qid Q0 docid rank score tag``) -> {qid: {docid: score}}, every line (cut with :func:`cut`)."""
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
    return run


def trec_run_text(run: Run, tag: str = "run", decimals: int | None = None) -> str:
    """A run as TREC run lines (``qid Q0 docid rank score tag``), ranked by score (ties by docid). ``decimals``
    None prints each score in its shortest exact form, so a run read back scores and breaks ties as it was."""
    lines = []
    for q in sorted(run):
        for rank, (d, s) in enumerate(sorted(run[q].items(), key=lambda kv: (-kv[1], kv[0])), 1):
            score = repr(s) if decimals is None else f"{s:.{decimals}f}"
            lines.append(f"{q} Q0 {d} {rank} {score} {tag}")
    return "\n".join(lines) + "\n"


def write_trec_run(run: Run, path: str | Path, tag: str = "run") -> None:
    Path(path).write_text(trec_run_text(run, tag, decimals=6), encoding="utf-8")


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False
