"""Miniatures of a grid's external inputs, each in its released layout and read back by the real parser: ir_datasets
ids (datasets built from ir_datasets' own format classes over small files, registered under the real id for the
rehearsal's duration), first-stage run files, teacher score files, LLM rankings and training triples. Ids and texts
come from the embedded collection: train queries stand in for training sets, dev queries for validation sets and
test queries for test sets; every corpus is the embedded corpus.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import ir_datasets
from ir_datasets.datasets.base import Dataset
from ir_datasets.formats import TrecQrels, TrecScoredDocs, TsvDocPairs, TsvDocs, TsvQueries
from ir_datasets.util import GzipExtract, LocalDownload

from ..collection import Collection, Run, by_score
from ..datasets import load_collection
from ..dataset_rows import EMBEDDED_BM25, get_dataset
from ..firststage import BM25Index

ROLES = ("train", "validation", "eval")
SPLIT_OF_ROLE = {"train": "train", "validation": "dev", "eval": "test"}
# Queries per miniature set: enough for per-query statistics, few enough that 22 test sets of a paper cell rerank in
# a second with a tiny model.
QUERIES = {"train": 32, "validation": 6, "eval": 8}
DEPTH = 20  # candidates per query in a miniature first-stage run or ranking
GRADES = {0: "not relevant", 1: "related", 2: "highly relevant", 3: "perfectly relevant"}


@dataclass(frozen=True)
class RunLayout:
    """How a released run file writes its lines: column separator, the Q0 column, the tag."""

    pattern: str  # file-name glob
    sep: str
    q0: str
    tag: str
    source: str


# Released layouts of the run files the grids name (first match wins); other run files get the TREC layout.
RUN_LAYOUTS = [
    RunLayout("__colbert__*", "\t", "0", "ColBERT",
              "webis-de/rank-distillm: data/__colbert__msmarco-passage-trec-dl-2019-judged.run @07105cf"),
    RunLayout("__bm25__*", " ", "Q0", "pyterrier.default_pipelines.wmodel_batch_retrieve",
              "webis-de/rank-distillm: data/__bm25__msmarco-passage-trec-dl-2019-judged.run @07105cf"),
    # utils/subsample.py writes the RankZephyr sub-samples tab-separated (RUN_HEADER query_id q0 doc_id rank score
    # system), sorted by query and rank
    RunLayout("__rankzephyr*", "\t", "Q0", "rankzephyr",
              "webis-de/rank-distillm: utils/subsample.py @cbe8753"),
    RunLayout("*", " ", "Q0", "rehearsal", "TREC run format: qid Q0 docid rank score tag"),
]


def _open_text(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    return gzip.open(path, "wt", encoding="utf-8") if path.suffix == ".gz" else path.open("w", encoding="utf-8")


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


class World:
    """The embedded collection, split by role, with a BM25 index that ranks every miniature run and ranking."""

    def __init__(self) -> None:
        test = load_collection(get_dataset("embedded-test"))
        self.docs: dict[str, str] = dict(test.docs)
        self.split: dict[str, Collection] = {"test": test}
        for split in ("train", "dev"):
            self.split[split] = load_collection(get_dataset(f"embedded-{split}"))
        self.index = BM25Index.from_docs(self.docs, EMBEDDED_BM25)  # the embedded collection's own BM25
        self._runs: dict[str, Run] = {}

    def texts(self) -> list[str]:
        """Every text a tokenizer may see: documents and all queries."""
        return [*self.docs.values(), *(t for c in self.split.values() for t in c.queries.values())]

    def queries(self, role: str, row: str = "") -> dict[str, str]:
        """The judged queries a miniature of ``row`` (a dataset row or ir_datasets id) in ``role`` holds: a slice of
        the role's split that depends on ``row``, so two test sets of a grid hold different queries."""
        coll = self.split[SPLIT_OF_ROLE[role]]
        qids = [q for q in sorted(coll.queries) if any(g > 0 for g in coll.qrels.get(q, {}).values())]
        n = QUERIES[role]
        start = int(hashlib.sha256(row.encode()).hexdigest(), 16) % max(len(qids) - n, 1) if role == "eval" else 0
        return {q: coll.queries[q] for q in qids[start:start + n]}

    def qrels(self, role: str, row: str = "") -> dict[str, dict[str, int]]:
        coll = self.split[SPLIT_OF_ROLE[role]]
        return {q: coll.qrels[q] for q in self.queries(role, row)}

    def run(self, role: str, row: str = "") -> Run:
        """BM25 top-:data:`DEPTH` of the queries of ``row`` in ``role``."""
        key = role if role != "eval" else f"{role}:{row}"
        if key not in self._runs:
            self._runs[key] = self.index.search(self.queries(role, row), DEPTH)
        return self._runs[key]


# -- files in released layouts --------------------------------------------------------------------------------------

def write_run(path: Path, run: Run, *, ranking: bool = False) -> Path:
    """A run file in the layout its released name has (:data:`RUN_LAYOUTS`); gzip when the name ends ``.gz``.
    ``ranking``: an LLM teacher's ranked list, its scores falling with rank (depth - rank + 1)."""
    layout = next(r for r in RUN_LAYOUTS if fnmatch(path.name, r.pattern))

    def lines() -> Iterator[str]:
        for q in sorted(run):
            for rank, (d, s) in enumerate(by_score(run[q]), 1):
                score = float(len(run[q]) - rank + 1) if ranking else round(s, 6)
                yield layout.sep.join([q, layout.q0, d, str(rank), repr(score), layout.tag])

    return write_lines(path, lines())


NEGATIVES = 4  # training triples per query: its first judged positive against its 4 best unjudged candidates


def triples(world: World) -> Iterator[tuple[str, str, str]]:
    """(qid, d+, d-): each training query's first judged-relevant doc against its best unjudged BM25 candidates."""
    qrels, run = world.qrels("train"), world.run("train")
    for q in sorted(run):
        pos = sorted(d for d, g in qrels[q].items() if g > 0)
        negs = [d for d, _ in by_score(run[q]) if qrels[q].get(d, 0) <= 0]
        for neg in negs[:NEGATIVES] if pos else ():
            yield q, pos[0], neg


def write_lines(path: Path, lines: Iterator[str]) -> Path:
    with _open_text(path) as f:
        f.writelines(f"{line}\n" for line in lines)
    return path


def write_score_tsv(path: Path, world: World) -> Path:
    """Hofstaetter et al. 2020's teacher file: ``pos_score neg_score qid pid_pos pid_neg``, tab-separated
    (sebastian-hofstaetter/neural-ranking-kd: README.md); BM25 scores (the positive's raised by 2) stand in for
    the ensemble's."""
    run = world.run("train")
    return write_lines(path, (f"{run[q].get(p, 0.0) + 2.0:.4f}\t{run[q][n]:.4f}\t{q}\t{p}\t{n}"
                              for q, p, n in triples(world)))


def write_docpairs(path: Path, world: World) -> Path:
    """The MS MARCO id triples' layout (``qidpidtriples.train.full.2.tsv``: ``qid pid+ pid-``, tab-separated)."""
    return write_lines(path, (f"{q}\t{p}\t{n}" for q, p, n in triples(world)))


def write_rankings_jsonl(path: Path, world: World) -> Path:
    """JSONL rankings (``{"qid": ..., "ranking": [docid, ...]}``, best first)."""
    return write_lines(path, (json.dumps({"qid": q, "ranking": [d for d, _ in by_score(c)]})
                              for q, c in sorted(world.run("train").items())))


# -- ir_datasets ----------------------------------------------------------------------------------------------------

def _dataset_files(directory: Path, world: World, role: str, row: str) -> tuple[Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    queries, qrels = directory / "queries.tsv", directory / "qrels"
    queries.write_text("".join(f"{q}\t{t}\n" for q, t in world.queries(role, row).items()), encoding="utf-8")
    qrels.write_text("".join(f"{q} 0 {d} {g}\n" for q, r in world.qrels(role, row).items()
                             for d, g in sorted(r.items())), encoding="utf-8")
    return queries, qrels


@contextlib.contextmanager
def irds_registered(ids: dict[str, str], docpairs: set[str], directory: Path, world: World) -> Iterator[None]:
    """Register, for the ``with`` block, a miniature ir_datasets dataset under each id (id -> role): its corpus,
    queries, qrels and scoreddocs as ``TsvDocs`` / ``TsvQueries`` / ``TrecQrels`` / ``TrecScoredDocs`` files, docpairs (ids in ``docpairs``) as a
    gzipped ``TsvDocPairs`` file. Ids whose real datasets share a corpus (``ir_datasets.docs_parent_id``) share one
    miniature corpus, registered under that parent id too, so an index built over it is shared as for the real
    corpus. The real registry entries come back afterwards."""
    registry = ir_datasets.registry._registered
    saved = {}
    corpora: dict[str, TsvDocs] = {}
    minis: dict[str, Dataset] = {}
    for dataset_id, role in sorted(ids.items()):
        parent = _docs_parent(dataset_id)
        if parent not in corpora:
            corpus = directory / _slug(parent) / "collection.tsv"
            corpus.parent.mkdir(parents=True, exist_ok=True)
            corpus.write_text("".join(f"{d}\t{' '.join(t.split())}\n" for d, t in world.docs.items()),
                              encoding="utf-8")
            corpora[parent] = TsvDocs(LocalDownload(corpus), namespace=parent, lang="en")
        queries, qrels = _dataset_files(directory / _slug(dataset_id), world, role, dataset_id)
        # scoreddocs as MS MARCO ships its official top-1000 (``qid pid``, no score): an unranked list
        scored = write_lines(directory / _slug(dataset_id) / "top1000", (
            f"{q} {d}" for q, r in sorted(world.run(role, dataset_id).items()) for d, _ in by_score(r)))
        parts = [corpora[parent], TsvQueries(LocalDownload(queries), namespace=dataset_id, lang="en"),
                 TrecQrels(LocalDownload(qrels), GRADES), TrecScoredDocs(LocalDownload(scored))]
        if dataset_id in docpairs:
            triples = write_docpairs(directory / _slug(dataset_id) / "qidpidtriples.train.full.2.tsv.gz", world)
            parts.append(TsvDocPairs(GzipExtract(LocalDownload(triples))))
        minis[dataset_id] = Dataset(*parts)
    for parent, docs in corpora.items():
        minis.setdefault(parent, Dataset(docs))
    try:
        for dataset_id, mini in minis.items():
            saved[dataset_id] = registry.pop(dataset_id, None)
            registry[dataset_id] = mini
        yield
    finally:
        for dataset_id, original in saved.items():
            registry.pop(dataset_id, None)
            if original is not None:
                registry[dataset_id] = original


def _docs_parent(dataset_id: str) -> str:
    """The real id whose corpus ``dataset_id`` shares (itself when ir_datasets does not know it)."""
    try:
        return ir_datasets.docs_parent_id(dataset_id)
    except KeyError:
        return dataset_id


def _slug(dataset_id: str) -> str:
    return dataset_id.replace("/", "__")
