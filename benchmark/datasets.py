"""Dataset rows: evaluation and training sets addressed by ir_datasets ids, local directories, or the embedded default.

Sources (``LOADERS``, one function each):

- ``ir_datasets`` — any ir_datasets id; queries, qrels and a lazy docstore come from ir_datasets itself.
- ``beir-dir`` — a directory in BEIR layout: ``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``.
- ``trec-dir`` — a directory of TREC-style files: ``docs.jsonl`` (doc_id, text), ``queries.tsv`` (qid<TAB>text),
  ``qrels.txt`` (TREC qrels), optional ``run*.txt`` (TREC run), optional ``splits.json`` ({split: [qids]}).
- ``embedded`` — the generated default collection (``benchmark.embedded``), read with the ``trec-dir`` loader.

First stage (``first_stage``): ``bm25`` (bm25s over the corpus, cached), ``scoreddocs`` (the run ir_datasets ships,
e.g. the official BM25 top-1000 of TREC DL), ``run:<path>`` (a TREC run file), or ``file`` (the run in the directory).

Long documents (``passages``): ``first`` keeps the first ``max_length`` tokens (FirstP); ``maxp`` splits each document
into windows of ``window`` words starting every ``stride`` words and scores a document by its best window (MaxP, Dai &
Callan 2019) — the reranker sees windows, the evaluation sees documents.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import typed
from .collection import Collection, Qrels, Run
from .errors import BenchError
from .firststage import bm25_run, read_trec_run
from .registry import Registry

SOURCES = ("embedded", "ir_datasets", "beir-dir", "trec-dir")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: str
    id: str | None = None  # ir_datasets id
    path: str | None = None  # local directory (beir-dir / trec-dir)
    split: str | None = None  # embedded / trec-dir splits.json key, or BEIR qrels split
    first_stage: str = "bm25"  # bm25 | scoreddocs | file | run:<path>
    top_k: int = 100
    passages: str = "first"  # first (FirstP) | maxp
    window: int = 150  # MaxP window and stride, in words
    stride: int = 75
    max_queries: int | None = None  # evaluate the first N queries only (sorted ids)
    description: str = ""

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}"
        if self.source not in SOURCES:
            raise BenchError(f"{where}: source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.source == "ir_datasets" and not self.id:
            raise BenchError(f"{where}: an ir_datasets row needs id = \"<ir_datasets id>\"")
        if self.source in ("beir-dir", "trec-dir") and not self.path:
            raise BenchError(f"{where}: a {self.source} row needs path = \"<directory>\"")
        if self.first_stage not in ("bm25", "scoreddocs", "file") and not self.first_stage.startswith("run:"):
            raise BenchError(f"{where}: first_stage must be bm25, scoreddocs, file or run:<path>, "
                             f"got {self.first_stage!r}")
        if self.passages not in ("first", "maxp"):
            raise BenchError(f"{where}: passages must be 'first' or 'maxp', got {self.passages!r}")
        if self.top_k <= 0 or self.window <= 0 or self.stride <= 0:
            raise BenchError(f"{where}: top_k, window and stride must be positive")

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> DatasetSpec:
        return typed.build(cls, data, f"datasets.{name}", name=name)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _add(name: str, source: str, **kw: Any) -> None:
    DATASETS.add(name, DatasetSpec(name=name, source=source, **kw))


for _split in ("train", "dev", "test"):
    _add(f"embedded-{_split}", "embedded", split=_split, first_stage="file",
         description=f"embedded default collection, {_split} queries, bm25s top-100")
_add("trec-dl-2019", "ir_datasets", id="msmarco-passage/trec-dl-2019/judged", first_stage="scoreddocs",
     description="TREC DL 2019 passage, judged queries, official BM25 top-1000")
_add("trec-dl-2020", "ir_datasets", id="msmarco-passage/trec-dl-2020/judged", first_stage="scoreddocs",
     description="TREC DL 2020 passage, judged queries, official BM25 top-1000")
_add("msmarco-dev", "ir_datasets", id="msmarco-passage/dev/small", first_stage="scoreddocs",
     description="MS MARCO passage dev (small), official BM25 top-1000")
_add("msmarco-train", "ir_datasets", id="msmarco-passage/train/judged", first_stage="bm25",
     description="MS MARCO passage train, judged queries")
_add("vaswani", "ir_datasets", id="vaswani", first_stage="bm25", description="Vaswani / NPL abstracts")
_add("robust04", "ir_datasets", id="disks45/nocr/trec-robust-2004", first_stage="bm25", passages="maxp",
     description="TREC Robust 2004 (licensed TREC disks 4+5), MaxP over 150-word windows")
# BEIR test sets (Thakur et al. 2021) by ir_datasets id.
for _name, _id in [
    ("trec-covid", "beir/trec-covid"), ("nfcorpus", "beir/nfcorpus/test"), ("fiqa", "beir/fiqa/test"),
    ("arguana", "beir/arguana"), ("touche2020", "beir/webis-touche2020/v2"),
    ("dbpedia-entity", "beir/dbpedia-entity/test"), ("scidocs", "beir/scidocs"), ("scifact", "beir/scifact/test"),
    ("climate-fever", "beir/climate-fever"), ("quora", "beir/quora/test"), ("nq", "beir/nq"),
    ("hotpotqa", "beir/hotpotqa/test"), ("fever", "beir/fever/test"),
]:
    _add(f"beir-{_name}", "ir_datasets", id=_id, description=f"BEIR {_name} (test)")
# LoTTE (Santhanam et al. 2022): five domains x search/forum queries, test split.
for _domain in ("writing", "recreation", "science", "technology", "lifestyle"):
    for _kind in ("search", "forum"):
        _add(f"lotte-{_domain}-{_kind}", "ir_datasets", id=f"lotte/{_domain}/test/{_kind}",
             description=f"LoTTE {_domain} {_kind} queries (test)")


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS.get(name)


def load_collection(spec: DatasetSpec, cache_dir: str | Path | None = None) -> Collection:
    """Queries (judged ones only, capped at ``max_queries``), docs, qrels and the first-stage top-k of ``spec``.

    ``cache_dir`` holds BM25 runs (default ``$RDB_CACHE/runs``); ``meta["hash"]`` identifies the data for caches.
    """
    from .teachers import cache_root

    coll = LOADERS.get(spec.source)(spec, Path(cache_dir) if cache_dir else cache_root() / "runs")
    return _maxp(coll, spec) if spec.passages == "maxp" else coll


LOADERS: Registry[Callable[[DatasetSpec, Path], Collection]] = Registry("dataset source")


def _select(spec: DatasetSpec, queries: dict[str, str], qrels: Qrels, where: str) -> dict[str, str]:
    """The queries a dataset evaluates: those with qrels (as trec_eval), the first ``max_queries`` by id."""
    judged = sorted(q for q in queries if qrels.get(q))
    if not judged:
        raise BenchError(f"dataset {spec.name!r}: none of the queries of {where} has qrels")
    return {q: queries[q] for q in judged[:spec.max_queries]}


# ---- local directories ----------------------------------------------------------------------------------------------


class _JsonlDocs(Mapping[str, str]):
    """docid -> text from a JSONL corpus (title + text joined, as BEIR does)."""

    def __init__(self, path: Path, id_key: str) -> None:
        if not path.is_file():
            raise BenchError(f"corpus file {str(path)!r} does not exist")
        self._docs: dict[str, str] = {}
        with open(path, encoding="utf-8") as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    did = str(row[id_key])
                except (ValueError, KeyError, TypeError):
                    raise BenchError(f"{path}:{lineno}: expected a JSON object with {id_key!r} and 'text'") from None
                self._docs[did] = " ".join(str(t) for t in (row.get("title"), row.get("text")) if t)
        if not self._docs:
            raise BenchError(f"corpus file {str(path)!r} is empty")

    def __getitem__(self, key: str) -> str:
        return self._docs[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._docs)

    def __len__(self) -> int:
        return len(self._docs)


def _read_qrels(path: Path) -> Qrels:
    """TREC qrels (``qid iter docid grade``) via ir_measures, or BEIR TSV (``query-id corpus-id score`` + header)."""
    import ir_measures

    if not path.is_file():
        raise BenchError(f"qrels file {str(path)!r} does not exist")
    qrels: Qrels = {}
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].lower().startswith("query-id"):
        for lineno, line in enumerate(lines[1:], 2):
            parts = line.split("\t")
            if len(parts) != 3 or not parts[2].strip().lstrip("-").isdigit():
                raise BenchError(f"{path}:{lineno}: expected query-id<TAB>corpus-id<TAB>score")
            qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    else:
        for lineno, line in enumerate(lines, 1):
            parts = line.split()
            if parts and (len(parts) != 4 or not parts[3].lstrip("-").isdigit()):
                raise BenchError(f"{path}:{lineno}: not a TREC qrels line (qid iter docid grade)")
        for q in ir_measures.read_trec_qrels(str(path)):
            qrels.setdefault(q.query_id, {})[q.doc_id] = int(q.relevance)
    if not qrels:
        raise BenchError(f"qrels file {str(path)!r} is empty")
    return qrels


def _read_queries_tsv(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise BenchError(f"queries file {str(path)!r} does not exist")
    queries = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            qid, sep, text = line.partition("\t")
            if not sep:
                raise BenchError(f"{path}:{lineno}: expected qid<TAB>text")
            queries[qid] = text
    return queries


def _read_queries_jsonl(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise BenchError(f"queries file {str(path)!r} does not exist")
    queries = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                row = json.loads(line)
                queries[str(row["_id"])] = str(row["text"])
            except (ValueError, KeyError, TypeError):
                raise BenchError(f"{path}:{lineno}: expected a JSON object with '_id' and 'text'") from None
    return queries


def _first_stage(spec: DatasetSpec, docs: Mapping[str, str], queries: dict[str, str], cache_dir: Path, *,
                 directory: Path | None = None, cache_key: str | None = None) -> Run:
    """The top-k candidates of every query; a query left without candidates is an error naming the dataset."""
    if spec.first_stage.startswith("run:"):
        run = read_trec_run(spec.first_stage[4:], k=spec.top_k)
        where = spec.first_stage[4:]
    elif spec.first_stage == "file":
        files = sorted(directory.glob("run*.txt")) if directory else []
        if not files:
            raise BenchError(f"dataset {spec.name!r}: first_stage = 'file' but no run*.txt in {directory}")
        run, where = read_trec_run(files[0], k=spec.top_k), str(files[0])
    elif spec.first_stage == "bm25":
        run, where = bm25_run(docs, queries, k=spec.top_k, cache_dir=cache_dir, cache_key=cache_key), "BM25"
    else:
        raise BenchError(f"dataset {spec.name!r}: first_stage 'scoreddocs' needs an ir_datasets source")
    return _require_candidates(spec, run, queries, where)


def _require_candidates(spec: DatasetSpec, run: Run, queries: Mapping[str, str], where: str) -> Run:
    """``run`` restricted to ``queries``; a query without candidates is an error naming the dataset and the run."""
    empty = sorted(q for q in queries if not run.get(q))
    if empty:
        raise BenchError(f"dataset {spec.name!r}: the first-stage run ({where}) has no candidates for query "
                         f"{empty[0]!r}" + (f" and {len(empty) - 1} more" if len(empty) > 1 else ""))
    return {q: run[q] for q in queries}


def _dir(spec: DatasetSpec) -> Path:
    path = Path(spec.path or "")
    if not path.is_dir():
        raise BenchError(f"dataset {spec.name!r}: directory {str(path)!r} does not exist")
    return path


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _hash_files(*paths: Path) -> str:
    h = hashlib.sha256()
    for p in paths:
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()[:16]


def _meta(spec: DatasetSpec, data_hash: str, **extra: Any) -> dict[str, Any]:
    return {"source": spec.source, **extra, "split": spec.split, "first_stage": spec.first_stage, "top_k": spec.top_k,
            "hash": _digest(data_hash, spec.split, spec.first_stage, spec.top_k, spec.max_queries)}


@LOADERS.register("trec-dir")
def _trec_dir(spec: DatasetSpec, cache_dir: Path, directory: Path | None = None) -> Collection:
    d = directory or _dir(spec)
    queries = _read_queries_tsv(d / "queries.tsv")
    if spec.split:
        splits = json.loads((d / "splits.json").read_text()) if (d / "splits.json").is_file() else {}
        if spec.split not in splits:
            raise BenchError(f"dataset {spec.name!r}: split {spec.split!r} not in {d / 'splits.json'}")
        queries = {q: queries[q] for q in splits[spec.split] if q in queries}
    qrels = _read_qrels(d / "qrels.txt")
    queries = _select(spec, queries, qrels, str(d / "queries.tsv"))
    docs = _JsonlDocs(d / "docs.jsonl", "doc_id")
    run = _first_stage(spec, docs, queries, cache_dir, directory=d)
    data_hash = _hash_files(d / "docs.jsonl", d / "queries.tsv", d / "qrels.txt", d / "splits.json",
                            *sorted(d.glob("run*.txt")))
    return Collection(spec.name, queries, docs, {q: qrels[q] for q in queries}, run,
                      meta=_meta(spec, data_hash, path=str(d)))


@LOADERS.register("embedded")
def _embedded(spec: DatasetSpec, cache_dir: Path) -> Collection:
    from .embedded import embedded_dir

    return _trec_dir(spec, cache_dir, embedded_dir())


@LOADERS.register("beir-dir")
def _beir_dir(spec: DatasetSpec, cache_dir: Path) -> Collection:
    d = _dir(spec)
    split = spec.split or "test"
    qrels = _read_qrels(d / "qrels" / f"{split}.tsv")
    queries = _select(spec, _read_queries_jsonl(d / "queries.jsonl"), qrels, str(d / "queries.jsonl"))
    docs = _JsonlDocs(d / "corpus.jsonl", "_id")
    run = _first_stage(spec, docs, queries, cache_dir, directory=d)
    data_hash = _hash_files(d / "corpus.jsonl", d / "queries.jsonl", d / "qrels" / f"{split}.tsv")
    return Collection(spec.name, queries, docs, {q: qrels[q] for q in queries}, run,
                      meta=_meta(spec, data_hash, path=str(d)))


# ---- ir_datasets --------------------------------------------------------------------------------------------------


class _DocstoreDocs(Mapping[str, str]):
    """Lazy docid -> text over an ir_datasets docstore: the reranker fetches only its candidates, and a full pass
    (BM25 indexing) streams ``docs_iter`` instead of looking documents up one by one."""

    def __init__(self, spec: DatasetSpec, dataset: Any) -> None:
        self._spec, self._dataset, self._store = spec, dataset, None

    def __getitem__(self, key: str) -> str:
        if self._store is None:
            self._store = _irds_call(self._spec, "documents", self._dataset.docs_store)
        return self._store.get(key).default_text()

    def __iter__(self) -> Iterator[str]:
        return (doc_id for doc_id, _ in self.items())

    def items(self) -> Iterator[tuple[str, str]]:  # type: ignore[override]
        docs = _irds_call(self._spec, "documents", self._dataset.docs_iter)
        return ((d.doc_id, d.default_text()) for d in docs)

    def __len__(self) -> int:
        return self._dataset.docs_count() or 0


def _irds_call(spec: DatasetSpec, what: str, fn: Callable[[], Any]) -> Any:
    """Run an ir_datasets access; turn download and licence failures into one line naming the dataset."""
    import logging

    from ir_datasets.util import DownloadConfig

    # ir_datasets' loggers print download retries and instructions that would bury the one-line message.
    logging.disable(logging.WARNING)
    try:
        return fn()
    except BenchError:
        raise
    except Exception as err:  # noqa: BLE001 -- ir_datasets raises many types for missing data
        family = DownloadConfig.contents().get(spec.id.split("/")[0], {})
        if isinstance(err, FileNotFoundError) and any("instructions" in v for v in family.values()):
            raise BenchError(f"dataset {spec.name!r} ({spec.id}): its {what} cannot be downloaded (a licence is "
                             f"required, see https://ir-datasets.com); obtain them and place them at {err}") from None
        home = os.environ.get("IR_DATASETS_HOME", "~/.ir_datasets")
        raise BenchError(f"dataset {spec.name!r}: could not read the {what} of ir_datasets id {spec.id!r} (offline or "
                         f"not downloaded: {type(err).__name__}); put its files under IR_DATASETS_HOME ({home}) "
                         f"or use a local beir-dir/trec-dir row") from None
    finally:
        logging.disable(logging.NOTSET)


@LOADERS.register("ir_datasets")
def _ir_datasets(spec: DatasetSpec, cache_dir: Path) -> Collection:
    import ir_datasets

    try:
        ds = ir_datasets.load(spec.id)
    except KeyError:
        raise BenchError(f"dataset {spec.name!r}: {spec.id!r} is not an ir_datasets id") from None
    qrels: Qrels = {}
    for qrel in _irds_call(spec, "qrels", lambda: list(ds.qrels_iter())):
        qrels.setdefault(qrel.query_id, {})[qrel.doc_id] = int(qrel.relevance)
    all_queries = _irds_call(spec, "queries", lambda: {q.query_id: q.default_text() for q in ds.queries_iter()})
    queries = _select(spec, all_queries, qrels, spec.id)
    docs = _DocstoreDocs(spec, ds)
    data_hash = _digest(spec.id, sorted(queries.items()), sum(len(qrels[q]) for q in queries))
    if spec.first_stage == "scoreddocs":
        if not ds.has_scoreddocs():
            raise BenchError(f"dataset {spec.name!r}: {spec.id!r} ships no scoreddocs; use first_stage = 'bm25'")
        run: Run = {}
        for sd in _irds_call(spec, "scoreddocs", ds.scoreddocs_iter):
            if sd.query_id in queries:
                run.setdefault(sd.query_id, {})[sd.doc_id] = float(sd.score)
        run = {q: dict(sorted(r.items(), key=lambda kv: (-kv[1], kv[0]))[:spec.top_k]) for q, r in run.items()}
        run = _require_candidates(spec, run, queries, f"scoreddocs of {spec.id}")
    else:  # an ir_datasets id names its documents, so a cached BM25 run is found without reading the corpus
        run = _first_stage(spec, docs, queries, cache_dir, cache_key=f"ir_datasets:{spec.id}")
    return Collection(spec.name, queries, docs, {q: qrels[q] for q in queries}, run,
                      meta=_meta(spec, data_hash, ir_datasets_id=spec.id))


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
