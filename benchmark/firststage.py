"""First-stage retrieval: BM25 with the bm25s library, TREC run files (streamed by ``benchmark.inputs``), the cut.

BM25 is bm25s' Lucene variant (``method="lucene"``): idf = log(1 + (N - df + 0.5) / (df + 0.5)) and
tf / (tf + k1 * (1 - b + b * dl / avgdl)) per query term, Lucene's ``BM25Similarity`` since Lucene 8 (no (k1 + 1)
factor, which does not change a ranking). Text is lowercased, split into tokens of two or more word characters, the
stop words dropped, then stemmed (:class:`benchmark.dataset_rows.BM25Params`). Left different from Anserini: Lucene's
``StandardTokenizer`` keeps one-character tokens and splits on Unicode word boundaries, and Lucene stores document
lengths in one byte (Anserini's ``-bm25.accurate`` keeps them exact, as bm25s does), so scores agree only to those.

Every first stage (bm25, scoreddocs, ``run:<path>``, file) is cut to its depth by :func:`cut`, and the evaluation
cuts its rerank depth the same way. The ``keep-ties`` cut (the default) orders candidates by score and never chooses
among tied scores by doc id:

- a tie that straddles the cut inside an otherwise scored list is kept whole (the query reranks a few more
  candidates; runs printed with 4-6 decimals tie often);
- a list longer than the depth whose scores are *all* equal carries no ranking, and is refused in one line naming
  the dataset. ir_datasets builds the scoreddocs of ``msmarco-passage/{dev/small,trec-dl-2019,trec-dl-2020}`` this
  way: ``ExtractQidPid`` keeps the ``qid pid`` columns of the official top-1000 and ``TrecScoredDocs`` gives every
  two-column line score 0 (ir_datasets 0.6.3: ``ir_datasets/datasets/msmarco_passage.py``, ``ExtractQidPid`` and the
  ``dev/small``, ``trec-dl-2019``, ``trec-dl-2020`` subsets; ``ir_datasets/formats/trec.py``, ``TrecScoredDocs``).
  Such a list is reranked whole (depth >= its length) or replaced by a scored first stage.

The ``run-order`` cut keeps exactly k, ties in the order the run lists them (a TREC run file's line order, best rank
first), which is lightning-ir's ``rank <= depth`` on a run whose ranks follow its scores (webis-de/lightning-ir:
lightning_ir/data/dataset.py @ 98cb3fd3800, ``RunDataset._clean_run``). It refuses an unranked list as well.
"""

from __future__ import annotations

import json
from array import array
from collections.abc import Callable, Container, ItemsView, Iterable, Iterator, Mapping, ValuesView
from pathlib import Path
from typing import Any

from . import inputs
from .cache import RunStore
from .collection import ENTRY_BYTES, Run, by_score
from .dataset_rows import BM25Params, CutPolicy
from .errors import BenchError
from .progress import Progress, each


class BM25Index:
    """A bm25s index (Lucene variant, the row's k1, b, stemmer and stop words) and the doc id of each of its rows.

    Built in memory (:meth:`from_docs`) or memory-mapped from a directory written by :func:`build_bm25_index`; both
    tokenise through :func:`_token_ids`, so they score alike. Scores depend on the corpus only, never on which other
    queries are searched with a query: a run for some queries is the full run restricted to them."""

    def __init__(self, retriever: Any, doc_ids: list[str], params: BM25Params) -> None:
        self.retriever, self.doc_ids, self.params = retriever, doc_ids, params

    @classmethod
    def from_docs(cls, docs: Mapping[str, str], params: BM25Params) -> BM25Index:
        """An in-memory index over ``docs``, rows in sorted doc id order."""
        doc_ids = sorted(docs)
        return cls(_index(_token_ids(((d, docs[d]) for d in doc_ids), params, total=len(doc_ids))[1], params),
                   doc_ids, params)

    @classmethod
    def load(cls, directory: Path, params: BM25Params) -> BM25Index:
        """The index :func:`build_bm25_index` wrote with ``params`` (its queries are tokenised with them)."""
        import bm25s

        return cls(bm25s.BM25.load(str(directory / "bm25s"), mmap=True),
                   json.loads((directory / "doc_ids.json").read_text()), params)

    @property
    def nbytes(self) -> int:
        """Bytes the index holds in memory (a memory-mapped index's pages belong to the page cache: 0)."""
        import numpy as np

        arrays = [a for a in self.retriever.scores.values() if isinstance(a, np.ndarray)]
        return sum(a.nbytes for a in arrays if not isinstance(a, np.memmap)) + ENTRY_BYTES * len(self.doc_ids)

    def search(self, queries: Mapping[str, str], k: int) -> Run:
        """Top-k per query with a positive score, ranked by score (ties by docid)."""
        import bm25s

        qids, run = sorted(queries), {}
        bar = Progress(len(qids), "BM25 search", "queries")
        # Searched in parts (a query's scores do not depend on the others), each a step of the progress.
        for part in (qids[i:i + SEARCH_PART] for i in range(0, len(qids), SEARCH_PART)):
            tokens = bm25s.tokenize([queries[q] for q in part], stopwords=_stopwords(self.params),
                                    stemmer=_stemmer(self.params), show_progress=False, return_ids=False)
            results, scores = self.retriever.retrieve(tokens, k=min(k, len(self.doc_ids)), show_progress=False,
                                                      n_threads=1)
            run.update({q: dict(by_score({self.doc_ids[int(i)]: float(s) for i, s in zip(results[qi], scores[qi])
                                          if s > 0})) for qi, q in enumerate(part)})
            bar.update(len(part))
        bar.close()
        return run


SEARCH_PART = 1000  # queries searched per bm25s call

# Part of every index and BM25 run cache key (with the BM25 parameters): raised when tokenisation or scoring changes,
# so nothing built before is reused (2: a document without a word has no token, as in ``bm25s.tokenize``).
INDEX_VERSION = 2


def bm25_run(docs: Mapping[str, str], queries: Mapping[str, str], params: BM25Params, k: int = 100) -> Run:
    """BM25 top-k per query over an in-memory corpus (:class:`BM25Index`); ties broken by docid."""
    return BM25Index.from_docs(docs, params).search(queries, k)


def _stopwords(params: BM25Params) -> str | None:
    """bm25s' name of the stop list: its "en" list is Lucene EnglishAnalyzer's ENGLISH_STOP_WORDS_SET (33 words)."""
    return "en" if params.stopwords == "lucene" else None


def _stemmer(params: BM25Params) -> Any:
    """PyStemmer's original Porter algorithm (the one Lucene's PorterStemFilter implements), or None."""
    if params.stemmer == "none":
        return None
    import Stemmer

    return Stemmer.Stemmer("porter")


def _token_ids(docs: Iterable[tuple[str, str]], params: BM25Params, chunk: int = 100_000,
               total: int | None = None) -> tuple[list[str], tuple[list, dict]]:
    """(doc ids, (token ids per doc, vocabulary)) of a corpus streamed as (doc_id, text) pairs.

    The tokenisation of ``bm25s.tokenize(texts, stopwords, stemmer)``, which :meth:`BM25Index.search` applies to
    queries; texts are tokenised in chunks and dropped, so only token ids are held. ``allow_empty=False``: a document
    without a word gets no token, as ``bm25s.tokenize`` does (the default of bm25s' ``Tokenizer`` gives it the empty
    token, a length of 1, which shifts the mean length)."""
    import bm25s

    tokenizer = bm25s.tokenization.Tokenizer(stopwords=_stopwords(params), stemmer=_stemmer(params))
    doc_ids: list[str] = []
    token_ids: list[list[int]] = []
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        token_ids.extend(tokenizer.tokenize([t for _, t in batch], update_vocab=True, return_as="ids",
                                            show_progress=False, allow_empty=False))
        doc_ids.extend(d for d, _ in batch)
        batch.clear()

    for pair in each(docs, "BM25 index: tokenise", "docs", total):
        batch.append(pair)
        if len(batch) >= chunk:
            flush()
    flush()
    if not doc_ids:
        raise BenchError("BM25: the collection has no documents")
    return doc_ids, (token_ids, tokenizer.get_vocab_dict())


def _index(tokens: tuple[list, dict], params: BM25Params) -> Any:
    import bm25s

    retriever = bm25s.BM25(k1=params.k1, b=params.b, method="lucene")
    with Progress(len(tokens[0]), "BM25 index: score", "docs") as bar:  # one bm25s call: done when it returns
        retriever.index(tokens, show_progress=False)
        bar.update(len(tokens[0]))
    return retriever


def build_bm25_index(docs: Iterable[tuple[str, str]], directory: Path, params: BM25Params,
                     chunk: int = 100_000) -> None:
    """Index a corpus streamed as (doc_id, text) pairs with bm25s and save it (index + doc ids) to ``directory``.

    Only token ids are held while indexing (:func:`_token_ids`): this is how the 8.8M MS MARCO passages are indexed
    once and shared by every row over that corpus. Rows keep the stream's order where an in-memory index sorts doc
    ids, so where several documents tie at the k-th score the two may keep different ones."""
    from .results import atomic_write_text

    doc_ids, tokens = _token_ids(docs, params, chunk)
    _index(tokens, params).save(str(directory / "bm25s"))
    atomic_write_text(directory / "doc_ids.json", json.dumps(doc_ids))  # written last: marks the index complete


def bm25_index_run(directory: Path, queries: Mapping[str, str], params: BM25Params, k: int = 100) -> Run:
    """Top-k per query from an index saved by :func:`build_bm25_index` (memory-mapped; ties broken by docid)."""
    return BM25Index.load(directory, params).search(queries, k)


class BM25Run(Mapping[str, dict[str, float]]):
    """The BM25 top-``k`` of ``queries``, searched for a query when its candidates are first read.

    A grid reads the candidates of the queries it trains, validates and evaluates on, and only those are searched
    (msmarco-train holds 503k judged queries; a cell with a label budget trains on a few thousand). ``index`` gives
    the :class:`BM25Index` on the first search; ``store``, when given, keeps every searched query across processes.
    Iterating yields every query id without searching; reading a value searches (:meth:`fetch` batches that)."""

    def __init__(self, queries: Mapping[str, str], index: Callable[[], BM25Index], k: int,
                 store: RunStore | None = None) -> None:
        self._queries, self._open, self.k, self._store = queries, index, k, store
        self._index: BM25Index | None = None
        self._done: Run = {}
        self._stored: Run | None = None

    def fetch(self, qids: Iterable[str]) -> None:
        """Search those of ``qids`` whose candidates are not held yet, in one call."""
        missing = [q for q in dict.fromkeys(qids) if q in self._queries and q not in self._done]
        if missing and self._store is not None:
            if self._stored is None:
                self._stored = self._store.read()
            self._done.update((q, self._stored.pop(q)) for q in missing if q in self._stored)
            missing = [q for q in missing if q not in self._done]
        if missing:
            if self._index is None:
                self._index = self._open()
            self._done.update(self._index.search({q: self._queries[q] for q in missing}, self.k))
            if self._store is not None:
                self._store.add({q: self._done[q] for q in missing})

    @property
    def computed(self) -> int:
        """How many queries' candidates are held (searched here or read from the store)."""
        return len(self._done)

    @property
    def nbytes(self) -> int:
        """Estimated bytes held: the index (once opened) and the candidates searched."""
        index = self._index.nbytes if self._index is not None else 0
        return index + sum(ENTRY_BYTES * (1 + len(c)) for c in self._done.values())

    def __getitem__(self, qid: str) -> dict[str, float]:
        if qid not in self._queries:
            raise KeyError(qid)
        self.fetch([qid])
        return self._done[qid]

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def items(self) -> ItemsView[str, dict[str, float]]:
        """Every query's candidates, searched in one call first (as :meth:`values`)."""
        self.fetch(self._queries)
        return super().items()

    def values(self) -> ValuesView[dict[str, float]]:
        self.fetch(self._queries)
        return super().values()

    def __len__(self) -> int:
        return len(self._queries)


def ranking(cands: Mapping[str, float], k: int | None, where: str, policy: CutPolicy = "keep-ties") -> list[str]:
    """Doc ids by descending score cut at k (see the module docstring): ``keep-ties`` breaks ties by docid and keeps
    a tie at the cut whole, ``run-order`` keeps exactly k with ties in the order ``cands`` lists them."""
    order = by_score(cands) if policy == "keep-ties" else sorted(cands.items(), key=lambda kv: -kv[1])
    if k is None or len(order) <= k:
        return [d for d, _ in order]
    if order[0][1] == order[-1][1]:
        raise BenchError(f"{where}: all {len(order)} first-stage candidates have score {order[0][1]:g} (an unranked "
                         f"list), so a top-{k} cut would keep the {k} smallest doc ids; rerank the whole list "
                         f"(top_k = {len(order)}) or give a scored first stage (first_stage = 'bm25' or "
                         f"'run:<path to a TREC run>')")
    end = k
    while policy == "keep-ties" and end < len(order) and order[end][1] == order[k - 1][1]:
        end += 1
    return [d for d, _ in order[:end]]


def cut(run: Run, k: int, where: str, policy: CutPolicy = "keep-ties") -> Run:
    """Each query's top-k candidates (:func:`ranking`), listed in their ranked order, so a second cut of the same
    policy keeps a prefix; ``where`` names the dataset in a refusal."""
    return {q: {d: cands[d] for d in ranking(cands, k, f"{where}, query {q}", policy)} for q, cands in run.items()}


class TrecRun(Mapping[str, dict[str, float]]):
    """A run read from a file, held compactly: each distinct doc id once, and per query an array of doc numbers
    (4 bytes) and one of float64 scores (8 bytes), where a dict of dicts costs ~100 bytes and a string per candidate.
    Reading a query builds its ``{docid: score}`` dict, in file order. ``dropped`` counts the lines of queries
    that were not asked for."""

    def __init__(self) -> None:
        self._number: dict[str, int] = {}
        self._docids: list[str] = []
        self._rows: dict[str, tuple[array, array]] = {}
        self.dropped = 0

    def add(self, qid: str, docids: Iterable[str], scores: Iterable[float]) -> None:
        """One query's candidates (a query is added once: :class:`benchmark.inputs.PairRule`)."""
        numbers = array("I")
        for d in docids:
            n = self._number.get(d)
            if n is None:
                n = self._number[d] = len(self._docids)
                self._docids.append(d)
            numbers.append(n)
        self._rows[qid] = (numbers, array("d", scores))

    def __getitem__(self, qid: str) -> dict[str, float]:
        numbers, scores = self._rows[qid]
        docids = self._docids
        return {docids[n]: s for n, s in zip(numbers, scores)}

    def __iter__(self) -> Iterator[str]:
        return iter(self._rows)

    def __len__(self) -> int:
        return len(self._rows)


def read_trec_run(path: str | Path, queries: Container[str] | None = None, docs: Container[str] | None = None,
                  where: str = "the dataset") -> TrecRun:
    """A TREC run file (``qid Q0 docid rank score tag``, plain or gzip) -> {qid: {docid: score}}, every line (cut
    with :func:`cut`), streamed line by line through :func:`benchmark.inputs.trec_run_lines` (every field checked,
    a (query, doc) pair once). Lines of queries not in ``queries`` are dropped and counted (a run covers more queries
    than a split); a document not in ``docs`` (``where`` names them) is an error naming the line."""
    path = Path(path)
    if not path.is_file():
        raise BenchError(f"run file {str(path)!r} does not exist")
    run = TrecRun()
    qid, docids, scores = None, [], []
    for lineno, q, d, _, score in inputs.trec_run_lines(path, "run file"):
        if queries is not None and q not in queries:
            run.dropped += 1
            continue
        if docs is not None and d not in docs:
            raise BenchError(f"{path}:{lineno}: document {d!r} is not in {where}")
        if q != qid:
            if qid is not None:
                run.add(qid, docids, scores)
            qid, docids, scores = q, [], []
        docids.append(d)
        scores.append(score)
    if qid is not None:
        run.add(qid, docids, scores)
    return run


def trec_run_text(run: Run, tag: str = "run", decimals: int | None = None) -> str:
    """A run as TREC run lines (``qid Q0 docid rank score tag``), ranked by score (ties by docid). ``decimals``
    None prints each score in its shortest exact form, so a run read back scores and breaks ties as it was."""
    lines = []
    for q in sorted(run):
        for rank, (d, s) in enumerate(by_score(run[q]), 1):
            score = repr(s) if decimals is None else f"{s:.{decimals}f}"
            lines.append(f"{q} Q0 {d} {rank} {score} {tag}")
    return "\n".join(lines) + "\n"


def write_trec_run(run: Run, path: str | Path, tag: str = "run") -> None:
    """The run as a TREC run file, written atomically (a full disk or a kill leaves the previous file or none)."""
    from .results import atomic_write_text

    atomic_write_text(Path(path), trec_run_text(run, tag, decimals=6))
