"""Dataset rows (the ``dataset`` axis): evaluation and training sets addressed by ir_datasets ids, local
directories, or the embedded default. ``benchmark.datasets`` loads the collection a row describes.

Sources (``SOURCES``): ``ir_datasets`` (an ir_datasets id), ``beir-dir`` and ``trec-dir`` (a local directory in that
layout), ``embedded`` (the generated default collection). First stage (``first_stage``): ``bm25``, ``scoreddocs``
(the run ir_datasets ships), ``run:<path>`` (a TREC run file) or ``file`` (the run in the directory), cut to
``top_k``. ``first_stage_name`` labels the first stage for comparisons with published rows
("bm25s-lucene-k0.9-b0.4-porter", "bm25-pyterrier", "splade-v3-distilbert", "colbertv2", ...); ``measures`` are the
dataset's official measures (ir_measures strings) plus Judged@10.

BM25 (``bm25_k1``, ``bm25_b``, ``bm25_stemmer``, ``bm25_stopwords``): bm25s' Lucene variant with Anserini's defaults,
k1 0.9 and b 0.4, Porter stemming and Lucene's English stop set (castorini/anserini:
src/main/java/io/anserini/search/SearchArgs.java @ 07f5c0a233a9, ``-bm25.k1 0.9``, ``-bm25.b 0.4``, ``-stemmer
porter``; Lucene's ``EnglishAnalyzer``). The label a ``bm25`` row gets names bm25s and these parameters, so a published
Anserini or PyTerrier BM25 run never reads as the same first stage. ``cut``: ``keep-ties`` keeps a score tie at the
depth whole (the default, :func:`benchmark.firststage.cut`); ``run-order`` keeps exactly ``top_k``, ties in the order
the run lists them (a TREC run file's line order), as lightning-ir cuts a run at ``rank <= depth``. ``passages``: ``first`` keeps the first ``max_length`` tokens (FirstP); ``maxp`` scores a document by
its best window of ``window`` words (``stride`` overlap).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

from . import typed
from .errors import BenchError
from .measures import parse_measures
from .registry import Registry


@dataclass(frozen=True)
class SourceSpec:
    name: str
    needs: tuple[str, str] | None  # the dataset row field that locates the data, and what it holds
    description: str
    # Files a user can edit under a finished record: their data hash is compared before a cell counts as done.
    # ir_datasets verifies its own downloads against the checksums it ships, so its rows are not re-hashed (that
    # would mean reading MS MARCO to decide that nothing needs to run).
    local: bool = False


SOURCES: Registry[SourceSpec] = Registry("dataset source")
for _source in [
    SourceSpec("embedded", None, "the generated default collection (benchmark.embedded), read as a trec-dir",
               local=True),
    SourceSpec("ir_datasets", ("id", "<ir_datasets id>"), "queries, qrels and a lazy docstore from ir_datasets"),
    SourceSpec("beir-dir", ("path", "<directory>"), "corpus.jsonl, queries.jsonl, qrels/<split>.tsv",
               local=True),
    SourceSpec("trec-dir", ("path", "<directory>"),
               "docs.jsonl, queries.tsv, qrels.txt, optional run*.txt and splits.json", local=True),
]:
    SOURCES.add(_source.name, _source)

# Recorded unless a row names its own: nDCG@10 and RR@10 (what every row recorded so far) and Judged@10 (the share
# of the top 10 that is judged: a reranker surfacing unjudged documents scores lower than it may deserve).
DEFAULT_MEASURES = ("nDCG@10", "RR@10", "Judged@10")
# ir_datasets' official measures of msmarco-passage/trec-dl-2019/judged and trec-dl-2020/judged (ir_datasets 0.6.3:
# ir_datasets/docs/msmarco-passage.yaml, `official_measures`).
TREC_DL_MEASURES = ("nDCG@10", "RR(rel=2)", "AP(rel=2)", "Judged@10")
# msmarco-passage/dev/small: RR@10 (same file); nDCG@10 is the seed paper's table measure.
MSMARCO_DEV_MEASURES = ("nDCG@10", "RR@10", "Judged@10")
# lotte/*/test/{search,forum}: Success@5 (ir_datasets 0.6.3: ir_datasets/docs/lotte.yaml, `official_measures`).
LOTTE_MEASURES = ("nDCG@10", "Success@5", "Judged@10")
# BEIR: ir_datasets documents no official measure (ir_datasets/docs/beir.yaml); BEIR's tables report nDCG@10.
BEIR_MEASURES = ("nDCG@10", "Judged@10")


Stemmer = Literal["porter", "none"]  # PyStemmer's original Porter algorithm (Lucene's PorterStemFilter), or none
StopWords = Literal["lucene", "none"]  # Lucene EnglishAnalyzer's 33 words (bm25s' "en" list), or none
CutPolicy = Literal["keep-ties", "run-order"]


@dataclass(frozen=True)
class BM25Params:
    """How a ``bm25`` first stage tokenises and scores (bm25s' ``method="lucene"``: Lucene's idf and length norm)."""

    k1: float = 0.9
    b: float = 0.4
    stemmer: Stemmer = "porter"
    stopwords: StopWords = "lucene"

    @property
    def label(self) -> str:
        """The first-stage label: implementation and parameters, e.g. ``bm25s-lucene-k0.9-b0.4-porter``."""
        stem = "porter" if self.stemmer == "porter" else "nostem"
        stop = "" if self.stopwords == "lucene" else "-nostop"
        return f"bm25s-lucene-k{self.k1:g}-b{self.b:g}-{stem}{stop}"


# The embedded collection's run file (benchmark.embedded) was generated with bm25s' own defaults, and its numbers in
# README.md and docs/ were measured on it: its rows keep these settings and say so in their label.
EMBEDDED_BM25 = BM25Params(k1=1.5, b=0.75, stemmer="none")


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    source: Annotated[str, SOURCES]
    id: str | None = None  # ir_datasets id
    path: str | None = None  # local directory (beir-dir / trec-dir)
    split: str | None = None  # embedded / trec-dir splits.json key, or BEIR qrels split
    first_stage: str = "bm25"  # bm25 | scoreddocs | file | run:<path>
    first_stage_name: str = ""  # label matched against published rows; "" = derived from first_stage
    top_k: int = 100  # first-stage depth kept (eval.top_k, validation_top_k and negatives_depth may not exceed it)
    cut: CutPolicy = "keep-ties"  # how the run is cut to top_k (module docstring)
    bm25_k1: float = BM25Params.k1  # BM25 parameters of a bm25 first stage (module docstring)
    bm25_b: float = BM25Params.b
    bm25_stemmer: Stemmer = BM25Params.stemmer
    bm25_stopwords: StopWords = BM25Params.stopwords
    measures: tuple[str, ...] = DEFAULT_MEASURES  # ir_measures strings; nDCG@10 is always added
    passages: Literal["first", "maxp"] = "first"  # FirstP, or MaxP over word windows
    window: int = 150  # MaxP window and stride, in words
    stride: int = 75
    max_queries: int | None = None  # evaluate the first N queries only (sorted ids)
    download: str = ""  # where a local input (directory, run file) comes from: --dry-run says it when it is missing
    description: str = ""

    def __post_init__(self) -> None:
        where = f"dataset {self.name!r}"
        typed.check_choices(self, f"{where}: ")
        needs = SOURCES.get(self.source).needs
        if needs and not getattr(self, needs[0]):
            article = "an" if self.source[0] in "aeiou" else "a"
            raise BenchError(f"{where}: {article} {self.source} row needs {needs[0]} = \"{needs[1]}\"")
        if self.first_stage not in ("bm25", "scoreddocs", "file") and not self.first_stage.startswith("run:"):
            raise BenchError(f"{where}: first_stage must be bm25, scoreddocs, file or run:<path>, "
                             f"got {self.first_stage!r}")
        if self.top_k <= 0 or self.window <= 0 or self.stride <= 0:
            raise BenchError(f"{where}: top_k, window and stride must be positive")
        if self.bm25_k1 < 0 or not 0 <= self.bm25_b <= 1:
            raise BenchError(f"{where}: bm25_k1 must be >= 0 and bm25_b in [0, 1], got {self.bm25_k1} and {self.bm25_b}")
        object.__setattr__(self, "measures", parse_measures(self.measures, f"{where} measures"))
        if not self.first_stage_name:
            object.__setattr__(self, "first_stage_name", self._first_stage_label())

    @property
    def bm25(self) -> BM25Params:
        return BM25Params(self.bm25_k1, self.bm25_b, self.bm25_stemmer, self.bm25_stopwords)

    def _first_stage_label(self) -> str:
        """The default ``first_stage_name``: the BM25 label, ``scoreddocs``, ``file``, or ``run:<file stem>``."""
        if self.first_stage == "bm25":
            return self.bm25.label
        return f"run:{Path(self.first_stage[4:]).stem}" if self.first_stage.startswith("run:") else self.first_stage

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> DatasetSpec:
        return typed.build(cls, data, f"datasets.{name}", name=name)


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def _add(name: str, source: str, **kw: Any) -> None:
    DATASETS.add(name, DatasetSpec(name=name, source=source, **kw))


for _split in ("train", "dev", "test"):
    _add(f"embedded-{_split}", "embedded", split=_split, first_stage="file", first_stage_name=EMBEDDED_BM25.label,
         **{f"bm25_{k}": v for k, v in dataclasses.asdict(EMBEDDED_BM25).items()}, description=f"embedded default collection, {_split} queries, bm25s top-100 "
                                       f"({EMBEDDED_BM25.label}: the run file shipped with it)")
# The official top-1000 that ir_datasets ships as these ids' scoreddocs is unranked (see benchmark.firststage), so
# these rows rank with bm25s (Anserini's BM25 settings, above) over the MS MARCO passage corpus. The seed paper reranks the naver/splade-v3-distilbert
# top-1000 instead (xpmir/cross-encoders: src/Evaluation/cross-encoders_splade_top1000.yaml, `retrievers_hf_id`,
# `retrieval.k: 1000`), Rank-DistiLLM the BM25 and ColBERTv2 top-100 (webis-de/rank-distillm: configs/re-rank.yaml,
# `depth: 100`): give such a run as first_stage = "run:<path>" with its first_stage_name.
_add("trec-dl-2019", "ir_datasets", id="msmarco-passage/trec-dl-2019/judged", measures=TREC_DL_MEASURES,
     description="TREC DL 2019 passage, judged queries, bm25s top-100 over the MS MARCO passages")
_add("trec-dl-2020", "ir_datasets", id="msmarco-passage/trec-dl-2020/judged", measures=TREC_DL_MEASURES,
     description="TREC DL 2020 passage, judged queries, bm25s top-100 over the MS MARCO passages")
_add("msmarco-dev", "ir_datasets", id="msmarco-passage/dev/small", measures=MSMARCO_DEV_MEASURES,
     description="MS MARCO passage dev (small), bm25s top-100 over the MS MARCO passages")
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
    _add(f"beir-{_name}", "ir_datasets", id=_id, measures=BEIR_MEASURES, description=f"BEIR {_name} (test)")
# LoTTE (Santhanam et al. 2022): five domains x search/forum queries, test split.
for _domain in ("writing", "recreation", "science", "technology", "lifestyle"):
    for _kind in ("search", "forum"):
        _add(f"lotte-{_domain}-{_kind}", "ir_datasets", id=f"lotte/{_domain}/test/{_kind}", measures=LOTTE_MEASURES,
             description=f"LoTTE {_domain} {_kind} queries (test)")


def get_dataset(name: str) -> DatasetSpec:
    return DATASETS.get(name)
