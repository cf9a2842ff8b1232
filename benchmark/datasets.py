"""Dataset loaders: the collection a dataset row (``benchmark.dataset_rows``) describes, one function per source
in ``LOADERS``.

- ``ir_datasets`` — any ir_datasets id; queries, qrels and a lazy docstore come from ir_datasets itself.
- ``beir-dir`` — a directory in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.
- ``trec-dir`` — a directory of TREC-style files: ``docs.jsonl`` (doc_id, text), ``queries.tsv`` (qid<TAB>text),
  ``qrels.txt`` (TREC qrels), optional ``run*.txt`` or ``run*.txt.gz`` (TREC run), optional ``splits.json``.
- ``embedded`` — the generated default collection (``benchmark.embedded``), read with the ``trec-dir`` loader.

First stage (``first_stage``): ``bm25`` (bm25s over the corpus with the row's BM25 parameters; an ir_datasets corpus is indexed once on disk and
shared by every row over it, e.g. the 8.8M MS MARCO passages of TREC DL 19/20 and MS MARCO dev; runs are cached
per row), ``scoreddocs`` (the run ir_datasets ships), ``run:<path>`` (a TREC run file, e.g. the SPLADE-v3 or
ColBERTv2 top-1000 the papers rerank), or ``file`` (the run in the directory). Every first stage is cut to ``top_k``
by :func:`benchmark.firststage.cut`, which never picks among tied scores by doc id and refuses an unranked list (the
msmarco-passage scoreddocs: every score 0).

Long documents (``passages = "maxp"``): each document is split into word windows of ``window`` words with ``stride``
overlap and scored by its best window (MaxP, Dai & Callan 2019) — the reranker sees windows, the evaluation sees
documents.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import inputs
from .cache import RunStore, build_once, cache_file
from .cache import digest as _digest
from .collection import ENTRY_BYTES, Collection, Qrels, Run
from .dataset_rows import SOURCES, DatasetSpec
from .errors import BenchError
from .firststage import INDEX_VERSION, BM25Index, BM25Run, build_bm25_index, cut, read_trec_run
from .registry import Registry


def load_collection(spec: DatasetSpec) -> Collection:
    coll = LOADERS.get(spec.source)(spec)
    coll.qrels = {q: r for q, r in coll.qrels.items() if q in coll.queries}
    if not coll.qrels:
        raise BenchError(f"dataset {spec.name!r}: no qrels for its queries")
    if spec.passages == "maxp":
        return _maxp(coll, spec)
    return coll


LOADERS: Registry[Callable[[DatasetSpec], Collection]] = Registry("dataset loader", rows=SOURCES)


# ---- local directories ----------------------------------------------------------------------------------------------


class _JsonlDocs(Mapping[str, str]):
    """docid -> text from a JSONL corpus (title + text joined, as BEIR does)."""

    def __init__(self, path: Path, id_key: str) -> None:
        def rows() -> Iterator[tuple[int, str, str]]:
            for lineno, row in inputs.json_lines(path, "corpus"):
                if not isinstance(row, dict) or id_key not in row:
                    raise BenchError(f"{path}:{lineno}: expected a JSON object with {id_key!r} and 'text'")
                yield lineno, str(row[id_key]), " ".join(t for t in (row.get("title"), row.get("text")) if t)

        self._docs = inputs.unique(rows(), path, "doc id")
        # What the texts hold in memory, for the collection cache's bound (benchmark.collection.estimate_bytes).
        self.nbytes = sum(ENTRY_BYTES + len(d) + len(t) for d, t in self._docs.items())

    def __getitem__(self, key: str) -> str:
        return self._docs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)


def _read_qrels(path: Path) -> Qrels:
    """TREC qrels (``qid iter docid grade``) or BEIR TSV (``query-id corpus-id score`` + header), plain or gzip,
    streamed by :func:`benchmark.inputs.lines`; a grade must be an integer."""
    if not path.is_file():
        raise BenchError(f"qrels file {str(path)!r} does not exist")
    qrels: Qrels = {}
    first: dict[tuple[str, str], int] = {}
    for lineno, q, d, g in _qrels_lines(path):
        # A pair judged twice with different grades is ambiguous: neither grade can be taken silently.
        if qrels.get(q, {}).get(d, g) != g:
            raise BenchError(f"{path}:{lineno}: query {q!r} document {d!r} judged {g} here and "
                             f"{qrels[q][d]} on line {first[q, d]}")
        first.setdefault((q, d), lineno)
        qrels.setdefault(q, {})[d] = g
    if not qrels:
        raise BenchError(f"qrels file {str(path)!r} is empty")
    return qrels


def _qrels_lines(path: Path) -> Iterator[tuple[int, str, str, int]]:
    """(line number, qid, docid, grade) of each judgement, in either layout (a BEIR header decides)."""
    beir = None
    for lineno, line in inputs.lines(path, "qrels"):
        if beir is None:
            beir = line.lower().startswith("query-id")
            if beir:
                continue
        parts = line.split("\t") if beir else line.split()
        if beir and (len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit()):
            raise BenchError(f"{path}:{lineno}: expected query-id<TAB>corpus-id<TAB>score")
        if not beir and (len(parts) != 4 or not parts[3].lstrip("-").isdigit()):
            raise BenchError(f"{path}:{lineno}: not a TREC qrels line (qid iter docid grade)")
        q, d, g = (parts[0], parts[1], parts[2]) if beir else (parts[0], parts[2], parts[3])
        yield lineno, q, d, int(g)


def _capped(spec: DatasetSpec, queries: dict[str, str]) -> dict[str, str]:
    """The first ``max_queries`` queries (sorted ids), applied before the first stage so only they are retrieved."""
    if not spec.max_queries:
        return queries
    return {q: queries[q] for q in sorted(queries)[:spec.max_queries]}


def _first_stage(spec: DatasetSpec, queries: dict[str, str], data_hash: str, *, docs: Mapping[str, str] | None = None,
                 directory: Path | None = None, irds: Any = None) -> Mapping[str, dict[str, float]]:
    """The row's first-stage run for ``queries``, cut to ``top_k``: the one place every first stage goes through.
    BM25 is searched per query when the query's candidates are first read (:class:`benchmark.firststage.BM25Run`)."""
    where = f"dataset {spec.name!r}"
    if spec.first_stage == "bm25":
        return _bm25(spec, queries, data_hash, docs, irds)
    run: Mapping[str, dict[str, float]]
    if spec.first_stage.startswith("run:") or spec.first_stage == "file":
        path = Path(spec.first_stage[4:]) if spec.first_stage.startswith("run:") else _run_file(where, directory)
        run = read_trec_run(path, queries, docs, where)
        if not run:
            raise BenchError(f"{where}: run file {str(path)!r} has no line for any of its {len(queries)} queries "
                             f"({run.dropped} line(s) of other queries dropped)")
    else:
        if irds is None:
            raise BenchError(f"{where}: first_stage 'scoreddocs' needs an ir_datasets source")
        if not irds.has_scoreddocs():
            raise BenchError(f"{where}: {spec.id!r} ships no scoreddocs; use first_stage = 'bm25' or 'run:<path>'")
        run = {}
        for sd in _irds_call(spec, "scoreddocs", lambda: list(irds.scoreddocs_iter())):
            if sd.query_id in queries:
                run.setdefault(sd.query_id, {})[sd.doc_id] = float(sd.score)
    run = cut({q: r for q, r in run.items() if q in queries}, spec.top_k, where, spec.cut)
    if not any(run.values()):
        raise BenchError(f"{where}: the first-stage run has no candidates for its queries")
    return run


def _run_file(where: str, directory: Path | None) -> Path:
    """The directory's run file (``first_stage = 'file'``): the first ``run*.txt`` or ``run*.txt.gz``."""
    files = sorted([*directory.glob("run*.txt"), *directory.glob("run*.txt.gz")]) if directory else []
    if not files:
        raise BenchError(f"{where}: first_stage = 'file' but no run*.txt in {directory}")
    return files[0]


def _bm25(spec: DatasetSpec, queries: dict[str, str], data_hash: str, docs: Mapping[str, str] | None,
          irds: Any) -> BM25Run:
    """bm25s top-k of the queries read (the row's BM25 parameters), each kept per row once searched; an ir_datasets
    corpus is indexed once (on disk) per BM25 setting for all rows sharing it, when a first query is searched."""
    params = spec.bm25
    store = RunStore(cache_file("runs", f"bm25-{spec.name}",
                                _digest(data_hash, spec.top_k, INDEX_VERSION, params.label), ".jsonl"))
    if irds is None:
        return BM25Run(queries, lambda: BM25Index.from_docs(docs or {}, params), spec.top_k, store)
    import ir_datasets

    corpus = ir_datasets.docs_parent_id(spec.id)
    index = cache_file("bm25-index", f"{corpus}-{params.label}", _digest(corpus, INDEX_VERSION, params.label), "")

    def open_index() -> BM25Index:
        build_once(index, lambda tmp: _irds_call(spec, "documents", lambda: build_bm25_index(
            ((d.doc_id, d.default_text()) for d in irds.docs_iter()), tmp, params)),
            ready=lambda path: (path / "doc_ids.json").is_file())
        return BM25Index.load(index, params)

    return BM25Run(queries, open_index, spec.top_k, store)


def _dir(spec: DatasetSpec) -> Path:
    path = Path(spec.path or "")
    if not path.is_dir():
        raise BenchError(f"dataset {spec.name!r}: directory {str(path)!r} does not exist")
    return path


def _hash_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


@LOADERS.register("trec-dir")
def _trec_dir(spec: DatasetSpec, directory: Path | None = None) -> Collection:
    d = directory or _dir(spec)
    qpath = d / "queries.tsv"
    if not qpath.is_file():
        raise BenchError(f"dataset {spec.name!r}: missing {qpath}")

    def query_rows() -> Iterator[tuple[int, str, str]]:
        for lineno, line in inputs.lines(qpath, "queries"):
            qid, sep, text = line.partition("\t")
            if not sep:
                raise BenchError(f"{qpath}:{lineno}: expected qid<TAB>text")
            yield lineno, qid, text

    queries = inputs.unique(query_rows(), qpath, "query id")
    if spec.split:
        spath = d / "splits.json"
        try:
            splits = json.loads(inputs.read_text(spath, "splits file")) if spath.is_file() else {}
        except ValueError as err:
            raise BenchError(f"{spath}: not valid JSON ({err})") from None
        if spec.split not in splits:
            raise BenchError(f"dataset {spec.name!r}: split {spec.split!r} not in {d / 'splits.json'}")
        queries = {q: queries[q] for q in splits[spec.split]}
    docs = _JsonlDocs(d / "docs.jsonl", "doc_id") if (d / "docs.jsonl").is_file() else None
    if docs is None:
        raise BenchError(f"dataset {spec.name!r}: missing {d / 'docs.jsonl'}")
    queries = _capped(spec, queries)
    data_hash = _hash_files(d / "docs.jsonl", qpath, d / "qrels.txt", d / "splits.json")
    run = _first_stage(spec, queries, data_hash, docs=docs, directory=d)
    return Collection(spec.name, queries, docs, _read_qrels(d / "qrels.txt"), run,
                      meta={"source": spec.source, "path": str(d), "split": spec.split,
                            "first_stage": spec.first_stage, "top_k": spec.top_k,
                            "hash": _digest(data_hash, spec.split, spec.first_stage, spec.top_k)})


@LOADERS.register("embedded")
def _embedded(spec: DatasetSpec) -> Collection:
    from .embedded import embedded_dir

    return _trec_dir(spec, embedded_dir())


@LOADERS.register("beir-dir")
def _beir_dir(spec: DatasetSpec) -> Collection:
    d = _dir(spec)
    split = spec.split or "test"
    qpath = d / "queries.jsonl"
    if not qpath.is_file():
        raise BenchError(f"dataset {spec.name!r}: missing {qpath}")

    def query_rows() -> Iterator[tuple[int, str, str]]:
        for lineno, row in inputs.json_lines(qpath, "queries"):
            if not isinstance(row, dict) or "_id" not in row or not isinstance(row.get("text"), str):
                raise BenchError(f"{qpath}:{lineno}: expected a JSON object with '_id' and 'text'")
            yield lineno, str(row["_id"]), row["text"]

    queries = inputs.unique(query_rows(), qpath, "query id")
    qrels = _read_qrels(d / "qrels" / f"{split}.tsv")
    queries = _capped(spec, {q: t for q, t in queries.items() if q in qrels})
    docs = _JsonlDocs(d / "corpus.jsonl", "_id")
    data_hash = _hash_files(d / "corpus.jsonl", qpath, d / "qrels" / f"{split}.tsv")
    run = _first_stage(spec, queries, data_hash, docs=docs, directory=d)
    return Collection(spec.name, queries, docs, qrels, run,
                      meta={"source": spec.source, "path": str(d), "split": split, "first_stage": spec.first_stage,
                            "top_k": spec.top_k, "hash": _digest(data_hash, split, spec.first_stage, spec.top_k)})


# ---- ir_datasets --------------------------------------------------------------------------------------------------


class _DocstoreDocs(Mapping[str, str]):
    """Lazy docid -> text over an ir_datasets docstore: only documents the reranker reads are fetched."""

    def __init__(self, dataset: Any, store: Any) -> None:
        self._dataset, self._store = dataset, store

    def __getitem__(self, key: str) -> str:
        return self._store.get(key).default_text()

    def __iter__(self) -> Iterator[str]:
        return (d.doc_id for d in self._dataset.docs_iter())

    def __len__(self) -> int:
        return self._dataset.docs_count() or 0


def _irds_call(spec: DatasetSpec, what: str, fn):
    """Run an ir_datasets access; turn download/licence failures into one line naming the dataset."""
    import logging

    # ir_datasets' per-module loggers print download-retry warnings that would bury our one-line message.
    logging.disable(logging.WARNING)
    try:
        return fn()
    except BenchError:
        raise
    except Exception as err:  # noqa: BLE001 -- ir_datasets raises many types for missing data
        text = f"{type(err).__name__}: {err}".lower()
        home = os.environ.get("IR_DATASETS_HOME", "~/.ir_datasets")
        if spec.id and spec.id.startswith("disks45") or "license" in text or "licence" in text:
            raise BenchError(f"dataset {spec.name!r} ({spec.id}): the corpus needs a licence (TREC disks 4+5); "
                             f"obtain it and place it as ir_datasets documents under {home}") from None
        raise BenchError(f"dataset {spec.name!r}: could not read {what} of ir_datasets id {spec.id!r} (offline or "
                         f"not downloaded: {type(err).__name__}); put its files under IR_DATASETS_HOME ({home}) "
                         f"or use a local beir-dir/trec-dir row") from None
    finally:
        logging.disable(logging.NOTSET)


@LOADERS.register("ir_datasets")
def _ir_datasets(spec: DatasetSpec) -> Collection:
    import ir_datasets

    try:
        ds = ir_datasets.load(spec.id)
    except KeyError:
        raise BenchError(f"dataset {spec.name!r}: {spec.id!r} is not an ir_datasets id") from None
    queries = _irds_call(spec, "queries", lambda: {q.query_id: q.default_text() for q in ds.queries_iter()})
    qrels: Qrels = {}
    for qrel in _irds_call(spec, "qrels", lambda: list(ds.qrels_iter())):
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    queries = _capped(spec, {q: t for q, t in queries.items() if q in qrels})
    docs = _irds_call(spec, "documents", lambda: _DocstoreDocs(ds, ds.docs_store()))
    data_hash = _digest(spec.id, len(queries), sum(len(r) for r in qrels.values()))
    run = _first_stage(spec, queries, data_hash, irds=ds)
    return Collection(spec.name, queries, docs, qrels, run,
                      meta={"source": spec.source, "ir_datasets_id": spec.id, "first_stage": spec.first_stage,
                            "top_k": spec.top_k, "hash": _digest(data_hash, spec.first_stage, spec.top_k)})


# ---- long documents -------------------------------------------------------------------------------------------------


def _maxp(coll: Collection, spec: DatasetSpec) -> Collection:
    """Split candidate documents into windows; doc ids become ``<docid>#<i>`` and qrels/run follow them.

    :func:`fold_passages` folds window scores back into document scores (max)."""
    docs: dict[str, str] = {}
    run: Run = {}
    for q, cands in coll.run.items():
        for did, score in cands.items():
            words = coll.docs[did].split()
            starts = range(0, max(len(words) - spec.window, 0) + 1, spec.stride)
            for i, s in enumerate(starts):
                pid = f"{did}#{i}"
                docs.setdefault(pid, " ".join(words[s:s + spec.window]))
                run.setdefault(q, {})[pid] = score
    meta = {**coll.meta, "passages": "maxp", "window": spec.window, "stride": spec.stride}
    return Collection(coll.name, coll.queries, docs, coll.qrels, run, meta=meta)


def fold_passages(run: Run, coll: Collection) -> Run:
    """MaxP: a document's score is its best window's score; other collections pass through unchanged."""
    if coll.meta.get("passages") != "maxp":
        return run
    out: Run = {}
    for q, cands in run.items():
        row = out.setdefault(q, {})
        for pid, score in cands.items():
            did = pid.rsplit("#", 1)[0]
            row[did] = max(score, row.get(did, float("-inf")))
    return out
