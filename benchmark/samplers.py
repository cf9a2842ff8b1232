"""Sampler rows: how a training step's groups of candidates are built (the ``train.sampler`` axis).

Rows (``SAMPLERS``) are declarative; each row's behaviour is one function in ``SAMPLE_FUNCS`` under the same name.
Every function turns the training queries and their ``Candidates`` into one epoch's ``Groups`` (a group = one query
and the K documents the objective compares); ``training.epoch_groups`` orders them into batches. Sources, per recipe
of the seed paper (``xpmir/cross-encoders: src/training_utils.py`` ``build_trainer``):

- ``xpmir-negatives`` — InfoNCE as the seed paper samples it (``msmarco_colbertv2_annotated(passages_per_query=8)``,
  the ColBERTv2 top-500, read by ``DistillationNegativesSampler`` in ``experimaestro/experimaestro-ir:
  src/xpmir/letor/distillation/samplers.py @ 57f7c2747139``): the first judged-relevant document of the query's
  first-stage list, K-1 negatives drawn with replacement from the rest of the list minus every judged-relevant
  document, queries without a retrieved positive skipped, the run's queries in file order every epoch (xpm_torch
  ``InfiniteDataset`` over a ``QueryGroupedFileDataset``, no shuffle: ``experimaestro/xpm-torch:
  src/xpm_torch/datasets.py @ 5f0ac90e48b8``); batch 32 // 8 = 4 queries.
- ``groups`` — one judged positive drawn among all of the query's judged-relevant documents + K-1 negatives from
  its first-stage list (or random documents), every judged query kept, groups reshuffled every epoch.
- ``triples`` — BCE and Hinge on the official MS MARCO train triples (``msmarco_v1_docpairs_efficient_sampler``,
  ``PairwiseTrainer``), Margin-MSE on the Hofstätter et al. ensemble file
  (``msmarco_hofstaetter_ensemble_hard_negatives`` -> ``DistillationPairwiseSampler``, which "just loops over
  samples" in file order); K = 2, anchor = the file's d+, batch 32 triples.
- ``lists`` — ADR-MSE and DistillRankNET on the teacher's whole ranked list (``msmarco_rankdistillm_colbert_top50``,
  batch 1 list; Rank-DistiLLM ``webis-de/rank-distillm: configs/finetune.yaml``: ``sampling_strategy: top``,
  ``depth: 100``, ``sample_size: 100``, ``train_batch_size: 32``), no forced positive, reshuffled every epoch.
- ``lists-in-order`` — the same lists in the order the teacher's file lists its queries, every epoch, as xpmir's
  ``DistillationListwiseSampler`` loops over the file (``ListwiseDistillationSamplesTSV.as_dataset``: an
  ``InfiniteDataset`` over a ``QueryGroupedFileDataset``, same files and commits as above).
"""

from __future__ import annotations

from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from .collection import Collection
from .errors import BenchError
from .registry import Registry

Triple = tuple[str, str, str]  # (qid, d+, d-) as a teacher file or the MS MARCO train triples list it


class TripleTable(Sequence[Triple]):
    """(q, d+, d-) triples in the order appended, as three int64 columns: an id written as a plain integer (MS MARCO's
    are) is stored as its value, any other as an index into a table of those ids (negative), so a triple costs 24
    bytes and no string (a list of tuples of strings costs ~10x that)."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._columns = (array("q"), array("q"), array("q"))

    def _code(self, name: str) -> int:
        if name.isdigit() and (name == "0" or name[0] != "0") and len(name) < 19:
            return int(name)
        i = self._index.get(name)
        if i is None:
            i = self._index[name] = len(self._names)
            self._names.append(name)
        return -1 - i

    def _name(self, code: int) -> str:
        return str(code) if code >= 0 else self._names[-1 - code]

    def append(self, qid: str, pos: str, neg: str) -> None:
        for column, name in zip(self._columns, (qid, pos, neg)):
            column.append(self._code(name))

    def __len__(self) -> int:
        return len(self._columns[0])

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        return tuple(self._name(column[i]) for column in self._columns)

    def __iter__(self) -> Iterator[Triple]:
        name = self._name
        for q, p, n in zip(*self._columns):
            yield name(q), name(p), name(n)

    def __eq__(self, other: object) -> bool:  # equal to any sequence of the same triples, as a list would be
        return isinstance(other, Sequence) and len(other) == len(self) and all(map(tuple.__eq__, self, other))

    __hash__ = None  # type: ignore[assignment]


class TriplePool(Mapping[str, list[str]]):
    """A triples file's candidates per query (its d+ and d- in order, each once), read off a :class:`TripleTable`
    when a query is looked up: the queries are kept, not the lists (the ``triples`` sampler needs only which queries
    there are)."""

    def __init__(self, table: TripleTable) -> None:
        self._table = table
        self._queries = dict.fromkeys(q for q, _, _ in table)

    def __getitem__(self, qid: str) -> list[str]:
        if qid not in self._queries:
            raise KeyError(qid)
        return list(dict.fromkeys(d for q, p, n in self._table if q == qid for d in (p, n)))

    def __iter__(self) -> Iterator[str]:
        return iter(self._queries)

    def __len__(self) -> int:
        return len(self._queries)


@dataclass
class Groups:
    qids: list[str]  # one entry per group (a query holds several groups under the triples sampler)
    docids: list[list[str]]  # [n][K]


@dataclass(frozen=True)
class Candidates:
    """What the samplers draw from: each training query's candidate list (a file teacher's list, best first, or the
    first-stage top-``negatives_depth``) and, where the teacher lists them, its triples in file order."""

    lists: Mapping[str, Sequence[str]]
    triples: Sequence[Triple] | None = None


@dataclass(frozen=True)
class SamplerSpec:
    name: str
    positive: bool  # every group holds a judged positive, so training queries need one
    needs_triples: bool  # the teacher must list (q, d+, d-) triples (a score-file TSV or a docpairs row)
    shuffle: bool  # a fresh permutation of the groups every epoch (else the order the source lists them)
    source: str
    # what one example holds: group_size documents, a (d+, d-) triple, or a whole list (up to negatives_depth)
    example: Literal["group", "triple", "list"] = "group"
    description: str = ""


_XPMIR = "experimaestro/experimaestro-ir: src/xpmir/letor/distillation/samplers.py @ 57f7c2747139"
SAMPLERS: Registry[SamplerSpec] = Registry("sampler")
for _spec in [
    SamplerSpec("groups", positive=True, needs_triples=False, shuffle=True,
                source="xpmir/cross-encoders: src/training_utils.py "
                       "(infoNCE_RankDistiLLM, msmarco_colbertv2_annotated)",
                description="1 judged positive (any) + K-1 negatives from the first-stage top-negatives_depth, "
                            "reshuffled every epoch"),
    SamplerSpec("xpmir-negatives", positive=True, needs_triples=False, shuffle=False,
                source=f"{_XPMIR} (DistillationNegativesSampler)",
                description="the first retrieved judged positive + K-1 non-positives with replacement from the "
                            "first-stage top-negatives_depth, in the run's query order"),
    SamplerSpec("triples", positive=False, needs_triples=True, shuffle=False, example="triple",
                source="xpmir/cross-encoders: src/training_utils.py (bce, hingeLoss, marginMSE samplers)",
                description="the teacher file's (q, d+, d-) triples exactly as listed, K = 2, anchor d+"),
    SamplerSpec("lists", positive=False, needs_triples=False, shuffle=True, example="list",
                source="xpmir/cross-encoders: src/training_utils.py (ADR_MSE, distillRankNET); "
                       "webis-de/rank-distillm: configs/finetune.yaml",
                description="the teacher's whole ranked list (its first negatives_depth), no forced positive, "
                            "reshuffled every epoch"),
    SamplerSpec("lists-in-order", positive=False, needs_triples=False, shuffle=False, example="list",
                source=f"{_XPMIR} (DistillationListwiseSampler)",
                description="the lists sampler's lists in the order the teacher's file lists its queries"),
]:
    SAMPLERS.add(_spec.name, _spec)


def get_sampler(name: str) -> SamplerSpec:
    return SAMPLERS.get(name)


SampleFn = Callable[[Collection, Sequence[str], Any, np.random.Generator, Candidates], Groups]
SAMPLE_FUNCS: Registry[SampleFn] = Registry("sampler function")


def sample(collection: Collection, qids: Sequence[str], cfg: Any, rng: np.random.Generator,
           cands: Candidates) -> Groups:
    """One epoch's groups under ``cfg.sampler`` (``cfg``: a ``TrainConfig``)."""
    groups = SAMPLE_FUNCS.get(cfg.sampler)(collection, qids, cfg, rng, cands)
    if not groups.qids:
        raise BenchError(f"dataset {collection.name!r}: sampler {cfg.sampler!r} built no training group")
    return groups


@SAMPLE_FUNCS.register("groups")
def _groups(collection: Collection, qids: Sequence[str], cfg: Any, rng: np.random.Generator,
            cands: Candidates) -> Groups:
    """One positive (uniform over judged-relevant docs) + K-1 negatives per query.

    ``negatives = "first-stage"``: from the query's candidate list (hard negatives); ``"random"``: from the union of
    all training queries' candidates (random docs of the collection without enumerating a lazy docstore). Without
    replacement (default) K-1 distinct negatives, at most as many as there are; with ``negatives_replacement`` always
    K-1, drawn with replacement as ``DistillationNegativesSampler`` does. Candidates that happen to be judged keep
    their grade as target.
    """
    all_cands = sorted({d for ds in cands.lists.values() for d in ds}) if cfg.negatives == "random" else None
    out_q, out_d = [], []
    for q in qids:
        rels = sorted(d for d, g in collection.qrels.get(q, {}).items() if g > 0)
        pos = rels[rng.integers(len(rels))]
        pool = [d for d in (all_cands if all_cands is not None else cands.lists.get(q, ())) if d != pos]
        if not pool:
            continue
        if cfg.negatives_replacement:
            take = rng.choice(len(pool), size=cfg.group_size - 1, replace=True)
        else:
            take = np.sort(rng.choice(len(pool), size=min(cfg.group_size - 1, len(pool)), replace=False))
        out_q.append(q)
        out_d.append([pos, *(pool[i] for i in take)])
    return Groups(out_q, out_d)


@SAMPLE_FUNCS.register("xpmir-negatives")
def _xpmir_negatives(collection: Collection, qids: Sequence[str], cfg: Any, rng: np.random.Generator,
                     cands: Candidates) -> Groups:
    """``DistillationNegativesSampler._sample_docs`` per query, the queries in the order the first stage lists them:
    the candidate list (best first) split into judged-relevant documents (grade > 0) and the others; no positive, no
    group; else [first positive, K-1 others drawn uniformly with replacement]. Candidates judged 0 are negatives with
    target 0, as there. ``negatives``/``negatives_replacement`` do not apply (always the list, with replacement)."""
    if cfg.negatives != "first-stage":
        raise BenchError("sampler 'xpmir-negatives' draws its negatives from the first stage: set "
                         "train.negatives = \"first-stage\" or use sampler 'groups'")
    out_q, out_d = [], []
    for q in _in_order(qids, collection.run):
        relevant = {d for d, g in collection.qrels.get(q, {}).items() if g > 0}
        docs = cands.lists.get(q, ())
        positives = [d for d in docs if d in relevant]
        negatives = [d for d in docs if d not in relevant]
        if positives and negatives:
            take = rng.choice(len(negatives), size=cfg.group_size - 1, replace=True)
            out_q.append(q)
            out_d.append([positives[0], *(negatives[i] for i in take)])
    return Groups(out_q, out_d)


def _in_order(qids: Sequence[str], source: Iterable[str]) -> list[str]:
    """``qids`` in the order ``source`` lists them (a run's or a teacher file's queries, as read)."""
    keep = set(qids)
    return [q for q in source if q in keep]


@SAMPLE_FUNCS.register("triples")
def _triples(collection: Collection, qids: Sequence[str], cfg: Any, rng: np.random.Generator,
             cands: Candidates) -> Groups:
    """Every listed triple of a training query, in the source's order, as the group [d+, d-]."""
    if cands.triples is None:
        raise BenchError("sampler 'triples' needs a teacher that lists (q, d+, d-) triples (a score-file TSV or a "
                         "docpairs row)")
    keep = set(qids)
    rows = [t for t in cands.triples if t[0] in keep]
    return Groups([q for q, _, _ in rows], [[pos, neg] for _, pos, neg in rows])


@SAMPLE_FUNCS.register("lists")
def _lists(collection: Collection, qids: Sequence[str], cfg: Any, rng: np.random.Generator,
           cands: Candidates) -> Groups:
    """Each training query's candidate list as it stands (best first), cut at ``negatives_depth``; queries with
    fewer than two candidates have nothing to rank and are left out."""
    return _lists_of(qids, cfg, cands)


@SAMPLE_FUNCS.register("lists-in-order")
def _lists_in_order(collection: Collection, qids: Sequence[str], cfg: Any, rng: np.random.Generator,
                    cands: Candidates) -> Groups:
    """The ``lists`` sampler's lists, the queries in the order the candidate lists come (a teacher file's order;
    the training queries' order for a first-stage pool)."""
    return _lists_of(_in_order(qids, cands.lists), cfg, cands)


def _lists_of(qids: Sequence[str], cfg: Any, cands: Candidates) -> Groups:
    out_q, out_d = [], []
    for q in qids:
        docs = list(cands.lists.get(q, ()))[:cfg.negatives_depth]
        if len(docs) >= 2:
            out_q.append(q)
            out_d.append(docs)
    return Groups(out_q, out_d)
