"""What each teacher kind does: the training targets of a teacher row (``benchmark.teachers``), one function per
kind in ``TARGETS``, and a model teacher's own run on an evaluation split.

- ``labels`` — the qrels grades themselves (no distillation).
- ``score-file`` — published teacher scores: the Hofstätter et al. 2020 TSV (``score_pos score_neg qid pid_pos
  pid_neg``, whose triples also feed the ``triples`` sampler) or a TREC run file (the score column); targets are
  those scores on exactly the pairs the file covers.
- ``llm-ranking`` — ranked lists of an LLM teacher (RankGPT / RankZephyr style), as a TREC run file (ordered by the
  score column, ranks breaking ties) or JSONL (``{"qid": ..., "ranking": [docid, ...]}``, best first); targets are
  ranks (ADR-MSE uses them as they are, score-based objectives see -rank, BCE sees the top-ranked candidate as
  positive).
- ``docpairs`` — (q, d+, d-) training triples without scores (the official MS MARCO train triples through
  ir_datasets, or a file in their layout); targets are the qrels grades.

File teachers stream their files (plain or ``.gz``), check the row's ``md5`` first where given, and keep only the
queries of the cell's label budget, drawn from the queries the file covers.
- ``cross-encoder`` — one or several cross-encoders (backbone rows) score every (query, doc) the student will see in
  its groups; several form an ensemble whose per-model z-normalised scores are averaged (Hofstätter et al. 2020
  average their teachers' scores; normalising first keeps one model's scale from dominating). A row with
  ``finetune_epochs > 0`` first fine-tunes each model on the training labels — how the bi-encoder weights of
  all-MiniLM-L6-v2 become a cross-encoder teacher. Fine-tuned weights (safetensors) and scores are cached on disk,
  keyed by model + data hash; the score cache grows as cells ask for pairs it lacks.
- ``bi-encoder`` — the cosine similarity of a sentence-transformers model's embeddings, x 20.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ir_datasets
import numpy as np
import torch
from ir_datasets.formats import TsvDocPairs
from ir_datasets.util import GzipExtract, LocalDownload
from safetensors.torch import load_file, save_file

from . import inputs, shuffle
from .backbones import BackboneSpec, resolve_model_path
from .cache import ScoreStore, build_once, cache_file, cache_root
from .cache import digest as _digest
from .collection import Collection, by_score
from .config import CellConfig, TrainConfig
from .dataset_rows import DatasetSpec
from .datasets import _irds_call
from .errors import BenchError
from .inference import Reranker
from .losses import get_objective
from .models import build_cross_encoder
from .progress import each, hub_downloads
from .registry import Registry
from .samplers import TriplePool, TripleTable, get_sampler
from .teachers import TEACHER_KINDS, TeacherSpec
from .training import Targets, resolve_device, train_model, training_qids


@dataclass(frozen=True)
class TeacherContext:
    """What a teacher needs besides its row: the training data and the cell's training settings."""

    collection: Collection
    pool: dict[str, list[str]]  # qid -> docids the student will see (training.student_pairs): the teacher scores them
    cell: CellConfig
    backbone_of: Callable[[str], BackboneSpec]  # backbone row lookup (grid-local rows included)


def compute_targets(spec: TeacherSpec, ctx: TeacherContext) -> Targets:
    check_sampler(spec, ctx)
    return TARGETS.get(spec.kind)(spec, ctx)


TARGETS: Registry[Callable[[TeacherSpec, TeacherContext], Targets]] = Registry("teacher function",
                                                                               rows=TEACHER_KINDS)


@TARGETS.register("labels")
def _labels(spec: TeacherSpec, ctx: TeacherContext):
    return Targets(ctx.collection.qrels, "labels")


@TARGETS.register("cross-encoder")
def _cross_encoder(spec: TeacherSpec, ctx: TeacherContext):
    return _ensemble([_cached_scores(spec, ctx, ctx.backbone_of(m), _cross_encoder_scores) for m in spec.models])


@TARGETS.register("bi-encoder")
def _bi_encoder(spec: TeacherSpec, ctx: TeacherContext):
    return _ensemble([_cached_scores(spec, ctx, ctx.backbone_of(m), _bi_encoder_scores) for m in spec.models])


def _ensemble(per_model: list[dict[str, dict[str, float]]]):
    """One model: its scores. Several: the mean of per-model z-normalised scores (statistics over the pool)."""
    if len(per_model) == 1:
        return Targets(per_model[0], "scores")
    table: dict[str, dict[str, float]] = {}
    for scores in per_model:
        flat = np.array([v for row in scores.values() for v in row.values()])
        mu, sd = float(flat.mean()), float(flat.std()) or 1.0
        for q, row in scores.items():
            dst = table.setdefault(q, {})
            for d, v in row.items():
                dst[d] = dst.get(d, 0.0) + (v - mu) / sd / len(per_model)
    return Targets(table, "scores")


Scorer = Callable[[TeacherSpec, TeacherContext, Any, list[str], list[str]], Any]


def _cached_scores(spec: TeacherSpec, ctx: TeacherContext, backbone, scorer: Scorer) -> dict[str, dict[str, float]]:
    """Scores of one teacher model on every (query, doc) of the pool. They are cached on disk per model + data hash
    (:class:`benchmark.cache.ScoreStore`) and only pairs the cache lacks are scored: the cells of a grid that share a
    seed share their groups, so the first one scores and the rest read, in this process or any other sharing the
    cache. A cache an earlier version wrote as one JSON file is moved into the store on first use."""
    key = _digest(scorer.__name__, backbone.to_dict(), repr(_finetune_config(spec, ctx, backbone)),
                  spec.finetune_objective, ctx.collection.meta.get("hash", ctx.collection.name))
    store = ScoreStore(cache_root() / "teacher-scores" / f"{backbone.name}-{key}.sqlite")
    store.import_json(store.path.with_suffix(".json"))

    def score(pairs: list[tuple[str, str]]) -> list[float]:
        values = scorer(spec, ctx, backbone, [ctx.collection.queries[q] for q, _ in pairs],
                        [ctx.collection.docs[d] for _, d in pairs])
        return [round(float(v), 6) for v in values]

    return store.fill(ctx.pool, score)


def _cross_encoder_scores(spec: TeacherSpec, ctx: TeacherContext, backbone, queries: list[str], docs: list[str]):
    model, tokenizer = _teacher_model(spec, ctx, backbone)
    cfg = _finetune_config(spec, ctx, backbone)
    reranker = Reranker(model, tokenizer, max_length=cfg.max_length, batch_size=ctx.cell.eval.batch_size,
                        device=resolve_device(cfg.device), dtype=cfg.dtype,
                        use_token_type_ids=backbone.token_type_ids)
    return reranker.score(queries, docs, desc=f"teacher {backbone.name} scores")


BI_ENCODER_SCALE = 20.0  # cosine x 20 (the usual contrastive temperature) puts scores on a logit-like scale
BI_ENCODER_CHUNK = 8192  # texts encoded per call: one progress step (each call sorts its texts by length)


def _bi_encoder_scores(spec: TeacherSpec, ctx: TeacherContext, backbone, queries: list[str], docs: list[str]):
    """Cosine similarity of sentence-transformers embeddings (each distinct text encoded once), x 20."""
    from sentence_transformers import SentenceTransformer  # optional: the bi-encoder teacher only

    device = str(resolve_device(ctx.cell.train.device))
    with hub_downloads(backbone.checkpoint):
        model = SentenceTransformer(resolve_model_path(backbone.checkpoint or ""), device=device)
    texts = sorted(set(queries) | set(docs))
    parts = [texts[i:i + BI_ENCODER_CHUNK] for i in range(0, len(texts), BI_ENCODER_CHUNK)] or [texts]
    emb = torch.cat([model.encode(part, batch_size=64, convert_to_tensor=True, normalize_embeddings=True,
                                  show_progress_bar=False)
                     for part in each(parts, f"teacher {backbone.name} embeddings", "chunks")])
    row = {t: i for i, t in enumerate(texts)}
    q, d = emb[[row[t] for t in queries]], emb[[row[t] for t in docs]]
    return ((q * d).sum(dim=1) * BI_ENCODER_SCALE).cpu().numpy()


def teacher_run(spec: TeacherSpec, ctx: TeacherContext, data: Collection, candidates: dict[str, list[str]]
                ) -> dict[str, dict[str, float]] | None:
    """A model teacher's own scores on ``candidates`` (qid -> docids) of ``data`` (an evaluation split): the run it
    would rerank to, combined over an ensemble's models as their training targets are; None for a teacher that is
    no model (labels, files). Each model's scores are cached like its training scores (model, fine-tuning, training
    data) plus the evaluation data and candidates, so a grid scores them once per teacher and dataset."""
    scorer = {"cross-encoder": _cross_encoder_scores, "bi-encoder": _bi_encoder_scores}.get(spec.kind)
    if scorer is None:
        return None
    per_model = []
    for name in spec.models:
        backbone = ctx.backbone_of(name)
        key = _digest(scorer.__name__, backbone.to_dict(), repr(_finetune_config(spec, ctx, backbone)),
                      spec.finetune_objective, ctx.collection.meta.get("hash", ctx.collection.name),
                      data.meta.get("hash", data.name), candidates)

        def run_file(tmp: Path) -> None:
            pairs = [(q, d) for q, docids in candidates.items() for d in docids]
            values = scorer(spec, ctx, backbone, [data.queries[q] for q, _ in pairs], [data.docs[d] for _, d in pairs])
            run: dict[str, dict[str, float]] = {}
            for (q, d), v in zip(pairs, values):
                run.setdefault(q, {})[d] = float(v)
            tmp.write_text(json.dumps(run))

        path = build_once(cache_root() / "teacher-runs" / f"{backbone.name}-{key}.json", run_file)
        per_model.append(json.loads(path.read_text()))
    return _ensemble(per_model).table


def teacher_setup(spec: TeacherSpec, ctx: TeacherContext) -> dict[str, Any] | None:
    """How a model teacher's scores are computed, for the record: per model its backbone row and, when fine-tuned,
    the fine-tuning's budget, device and compute dtype; None for a teacher that is no model."""
    if not TEACHER_KINDS.get(spec.kind).models:
        return None
    models = []
    for name in spec.models:
        entry: dict[str, Any] = {"backbone": name}
        if spec.kind == "cross-encoder" and spec.finetune_epochs > 0:
            cfg = _finetune_config(spec, ctx, ctx.backbone_of(name))
            entry["fine_tuning"] = {"objective": spec.finetune_objective, "epochs": cfg.epochs, "lr": cfg.lr,
                                    "batch_size": cfg.batch_size, "group_size": cfg.group_size,
                                    "device": resolve_device(cfg.device).type, "dtype": cfg.dtype}
        models.append(entry)
    return {"name": spec.name, "kind": spec.kind, "models": models}


def _finetune_config(spec: TeacherSpec, ctx: TeacherContext, backbone):
    """How a teacher is fine-tuned and run: every training label (no label budget), the cell's grouping and length
    (the row's own batch size where it sets one), the row's dtype on CUDA and fp32 on every CPU (bf16 where a CPU
    has it would make the targets depend on the machine, and rounds the teacher's scores to 8 significant bits,
    which ties candidates the fp32 teacher orders)."""
    base = ctx.cell.train
    cuda = resolve_device(base.device).type == "cuda"
    return TrainConfig(dataset=base.dataset, max_queries=None, group_size=spec.finetune_group_size or base.group_size,
                       negatives="first-stage",
                       negatives_depth=base.negatives_depth, epochs=max(spec.finetune_epochs, 1),
                       batch_size=spec.finetune_batch_size or base.batch_size, lr=spec.finetune_lr,
                       max_length=base.max_length,
                       dtype=backbone.dtype if cuda else "fp32", device=base.device)


def _teacher_model(spec: TeacherSpec, ctx: TeacherContext, backbone):
    """The teacher cross-encoder, fine-tuned on all training labels once and cached as safetensors."""
    model, tokenizer = build_cross_encoder(backbone, seed=0)
    if spec.finetune_epochs <= 0:
        return model, tokenizer
    cfg = _finetune_config(spec, ctx, backbone)
    key = _digest(backbone.to_dict(), repr(cfg), spec.finetune_objective, ctx.collection.meta.get("hash"))

    def fine_tune(tmp: Path) -> None:
        train_model(model, tokenizer, ctx.collection, Targets(ctx.collection.qrels, "labels"),
                    get_objective(spec.finetune_objective), cfg, seed=0,
                    use_token_type_ids=backbone.token_type_ids, backbone_dtype=backbone.dtype,
                    desc=f"teacher {backbone.name}")
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))

    path = build_once(cache_root() / "teachers" / f"{backbone.name}-{key}.safetensors", fine_tune)
    model.load_state_dict(load_file(str(path)))  # what every process sharing the cache reads
    return model.eval(), tokenizer


def initial_weights(spec: TeacherSpec, ctx: TeacherContext) -> tuple[str, dict[str, Any]]:
    """(backbone row, state dict) of a cross-encoder teacher's first model as the teacher scores with it
    (fine-tuned first where the row asks, cached like its scores): what a ``train.init_from`` student starts from."""
    backbone = ctx.backbone_of(spec.models[0])
    model, _ = _teacher_model(spec, ctx, backbone)
    return backbone.name, model.state_dict()


def teacher_file(spec: TeacherSpec) -> Path | None:
    """The row's file (a path, or a name shipped in ``benchmark/data``); None when neither exists."""
    path = Path(spec.path or "")
    if spec.path and not path.is_absolute() and not path.exists():
        packaged = Path(__file__).resolve().parent / "data" / spec.path
        path = packaged if packaged.exists() else path
    return path if spec.path and path.is_file() else None


def _file(spec: TeacherSpec) -> Path:
    """:func:`teacher_file`, its md5 checked where the row gives one."""
    path = teacher_file(spec)
    if path is None:
        raise BenchError(f"teacher {spec.name!r}: file {spec.path!r} does not exist")
    if spec.md5:
        digest = hashlib.md5()
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                digest.update(chunk)
        if digest.hexdigest() != spec.md5.lower():
            raise BenchError(f"teacher {spec.name!r}: {path} has md5 {digest.hexdigest()}, the row expects {spec.md5} "
                             "(a truncated or different file)")
    return path


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, line) streamed from the file by :func:`benchmark.inputs.stream`: plain or gzip (by content),
    a BOM and CRLF endings dropped, a truncated download one line (the released files are 2-4 GB, never read
    whole)."""
    return inputs.stream(path, "teacher file")


def _number(text: str, path: Path, lineno: int) -> float:
    return inputs.finite(text, path, lineno, "score")


def _check_ids(path: Path, lineno: int, ctx: TeacherContext, qid: str, docids: list[str]) -> None:
    """Query ids are checked always (an in-memory dict); document ids only against a materialised collection: a lazy
    docstore (MS MARCO's 8.8M passages) would cost one lookup per line of a 40M-line file, and a missing passage
    still fails, in one line, when the student reads it."""
    if qid not in ctx.collection.queries:
        raise BenchError(f"{path}:{lineno}: unknown query id {qid!r} (not in dataset {ctx.collection.name!r})")
    if isinstance(ctx.collection.docs, dict):
        for d in docids:
            if d not in ctx.collection.docs:
                raise BenchError(f"{path}:{lineno}: unknown document id {d!r} (not in dataset "
                                 f"{ctx.collection.name!r})")


Record = tuple[int, str, tuple[Any, ...]]  # (line number, qid, what the line says about it)


def _budgeted(spec: TeacherSpec, ctx: TeacherContext, records: Callable[[], Iterator[Record]]) -> Iterator[Record]:
    """The file's records of the training queries only. With a label budget (``train.max_queries``) the file is
    streamed twice: once for the queries it covers (every line checked), then for the records of the budget's queries,
    drawn from those covered (``training.training_qids``, the same draw training makes) — so a 20k budget keeps
    20k of the file's queries rather than the few of 20k judged queries it happens to cover."""
    train = ctx.cell.train
    if not train.max_queries:
        yield from records()
        return
    covered = dict.fromkeys(q for _, q, _ in records())
    if not covered:
        return
    keep = set(training_qids(ctx.collection, train.max_queries, among=covered,
                             positive=get_sampler(train.sampler).positive))
    yield from (r for r in records() if r[1] in keep)


def sampler_problem(spec: TeacherSpec, sampler_name: str) -> str | None:
    """Why ``spec`` cannot feed sampler ``sampler_name`` (None when it can)."""
    sampler = get_sampler(sampler_name)
    if sampler.needs_triples and not TEACHER_KINDS.get(spec.kind).triples:
        return (f"teacher {spec.name!r}: sampler {sampler.name!r} needs a teacher that lists (q, d+, d-) triples (a "
                f"score-file TSV or a docpairs row), not a {spec.kind} teacher")
    return None


def check_sampler(spec: TeacherSpec, ctx: TeacherContext) -> None:
    """Refuse a teacher that cannot feed the cell's sampler before any work (a fine-tuned teacher takes minutes)."""
    problem = sampler_problem(spec, ctx.cell.train.sampler)
    if problem:
        raise BenchError(problem)


def cell_problems(cell: CellConfig) -> list[str]:
    """What the cell's teaching would refuse, known from its config alone (``--dry-run`` lists them per cell)."""
    problem = None if cell.train.eval_only else sampler_problem(cell.teacher, cell.train.sampler)
    return [problem] if problem else []


def _score_records(spec: TeacherSpec, ctx: TeacherContext, path: Path) -> Iterator[Record]:
    """The 5-column Hofstätter TSV (a (query, doc) pair recurs across triples: its last score counts, see
    :func:`_score_file`) or 6-column TREC run lines (integer rank, each pair once: :class:`benchmark.inputs.PairRule`),
    one layout per file."""
    rule = inputs.PairRule(path)
    width = 0
    for lineno, line in _lines(path):
        parts = line.split()
        if not parts:
            continue
        width = width or len(parts)
        if len(parts) != width or width not in (5, 6):
            raise BenchError(f"{path}:{lineno}: expected 5 columns (score_pos score_neg qid pid_pos pid_neg) or a "
                             f"6-column TREC run line, as the file's first line, got {len(parts)}")
        if width == 5:  # Hofstätter et al. 2020: score_pos score_neg qid pid_pos pid_neg
            pos, neg, qid, dpos, dneg = parts
            _check_ids(path, lineno, ctx, qid, [dpos, dneg])
            yield lineno, qid, (dpos, dneg, _number(pos, path, lineno), _number(neg, path, lineno))
        else:  # TREC run: qid Q0 docid rank score tag
            qid, _, did, rank, score, _ = parts
            rule.check(lineno, qid, did)
            inputs.integer(rank, path, lineno, "rank")
            _check_ids(path, lineno, ctx, qid, [did])
            yield lineno, qid, (did, _number(score, path, lineno))


@TARGETS.register("score-file")
def _score_file(spec: TeacherSpec, ctx: TeacherContext):
    """Scores as the file gives them. The Hofstätter TSV (``bert_cat_ensemble_msmarcopassage_train_scores_ids.tsv``,
    Zenodo 4068216; layout per ``sebastian-hofstaetter/neural-ranking-kd: README.md``, tab-separated
    ``pos_score neg_score query_id pos_passage_id neg_passage_id``) also yields its triples in file order, for the
    ``triples`` sampler (the ~40M lines are read only as far as its steps reach, :func:`triples_needed`); a pair
    listed in several triples keeps its last score. Lists (``pool``) are best first."""
    path = _file(spec)
    table: dict[str, dict[str, float]] = {}
    triples = TripleTable()
    records = _budgeted(spec, ctx, lambda: _score_records(spec, ctx, path))
    for _, qid, rec in itertools.islice(records, triples_needed(ctx.cell.train)):
        row = table.setdefault(qid, {})
        if len(rec) == 4:
            dpos, dneg, row[rec[0]], row[rec[1]] = rec[0], rec[1], rec[2], rec[3]
            triples.append(qid, dpos, dneg)
        else:
            row[rec[0]] = rec[1]
    if not table:
        raise BenchError(f"teacher {spec.name!r}: {path} holds no scores")
    pool = {q: [d for d, _ in by_score(r)] for q, r in table.items()}
    return Targets(table, "scores", pool=pool, triples=triples if len(triples) else None)


def _ranking_records(spec: TeacherSpec, ctx: TeacherContext, path: Path) -> Iterator[Record]:
    """JSONL ``{"qid", "ranking"}`` lines (a document once per ranking) or TREC run lines
    (:func:`benchmark.inputs.trec_run_lines`: integer rank, finite score, each (query, doc) pair once)."""
    if ".jsonl" not in path.suffixes:
        for lineno, qid, did, rank, score in inputs.trec_run_lines(path, "teacher file"):
            _check_ids(path, lineno, ctx, qid, [did])
            yield lineno, qid, (did, float(rank), score)
        return
    for lineno, row in inputs.json_lines(path, "teacher file"):
        try:
            qid, ranking = str(row["qid"]), [str(d) for d in row["ranking"]]
        except (KeyError, TypeError):
            raise BenchError(f"{path}:{lineno}: expected {{\"qid\": ..., \"ranking\": [docids]}}") from None
        if len(set(ranking)) < len(ranking):
            twice = next(d for i, d in enumerate(ranking) if d in ranking[:i])
            raise BenchError(f"{path}:{lineno}: query {qid!r} ranks document {twice!r} twice")
        _check_ids(path, lineno, ctx, qid, ranking)
        yield lineno, qid, tuple(ranking)


def _by_score(qid: str, rows: list[tuple[int, str, float, float]], path: Path) -> list[str]:
    """A TREC run's documents best first: by descending score, as every source tool orders a run (xpmir
    ``ListwiseDistillationSamplesTSV`` keeps column 5, the score; lightning-ir ranks ir_datasets scoreddocs by score),
    the rank column breaking ties only. Ranks that contradict the scores (a better rank on a lower score) make the
    file ambiguous, since lightning-ir's run-file reader sorts by rank instead: that is an error naming the line."""
    ordered = sorted(rows, key=lambda r: (-r[3], r[2], r[1]))
    for (_, _, rank, _), (lineno, doc, next_rank, _) in zip(ordered, ordered[1:]):
        if next_rank < rank:
            raise BenchError(f"{path}:{lineno}: query {qid!r} document {doc!r} has rank {next_rank:g} but a lower "
                             f"score than the document ranked {rank:g} (ranks and scores disagree)")
    return [doc for _, doc, _, _ in ordered]


@TARGETS.register("llm-ranking")
def _llm_ranking(spec: TeacherSpec, ctx: TeacherContext):
    """Ranked lists: JSONL ``{"qid", "ranking"}`` best first, or a TREC run such as the Rank-DistiLLM release
    (``__rankzephyr-colbert-10000-sampled-100__msmarco-passage-train-judged.run``, Zenodo 12528410, registered with
    its md5 in ``webis-de/lightning-ir: lightning_ir/data/external_datasets/rank_distillm.py@b1a10720``). Targets
    are ranks, 1 = best."""
    path = _file(spec)
    ranked: dict[str, list[str]] = {}
    run_rows: dict[str, list[tuple[int, str, float, float]]] = {}
    for lineno, qid, rec in _budgeted(spec, ctx, lambda: _ranking_records(spec, ctx, path)):
        if ".jsonl" in path.suffixes:
            ranked[qid] = list(rec)
        else:
            run_rows.setdefault(qid, []).append((lineno, *rec))
    ranked.update({q: _by_score(q, rows, path) for q, rows in run_rows.items()})
    if not ranked:
        raise BenchError(f"teacher {spec.name!r}: {path} holds no rankings")
    table = {q: {d: float(i + 1) for i, d in enumerate(docs)} for q, docs in ranked.items()}
    return Targets(table, "ranks", pool=ranked)


IRDS_PREFIX = "irds:"


def _docpair_source(spec: TeacherSpec) -> tuple[str, Iterator[tuple[str, str, str]], int | None]:
    """(what to name in a message, the (q, d+, d-) stream in file order, its length where known) through
    ir_datasets' own ``TsvDocPairs`` reader: an ir_datasets id (``irds:<id>``, e.g.
    ``irds:msmarco-passage/train/triples-v2``) or a local file in that layout (``qid pid+ pid-``, tab-separated, as
    ``qidpidtriples.train.full.2.tsv``), gzip included."""
    path = spec.path or ""
    if path.startswith(IRDS_PREFIX):
        irds_id = path[len(IRDS_PREFIX):]
        where = DatasetSpec(name=f"teacher {spec.name}", source="ir_datasets", id=irds_id)
        try:
            dataset = ir_datasets.load(irds_id)
        except KeyError:
            raise BenchError(f"teacher {spec.name!r}: {irds_id!r} is not an ir_datasets id") from None
        # asking for the path downloads (or builds) the file here, so an offline failure is one line
        _irds_call(where, "docpairs", lambda: dataset.docpairs_handler().docpairs_path())
        pairs = dataset.docpairs_iter()
        count = _count_hint(dataset)
        shown = irds_id
    else:
        file = _file(spec)
        dlc = LocalDownload(file)
        pairs = TsvDocPairs(GzipExtract(dlc) if file.suffix == ".gz" else dlc).docpairs_iter()
        count, shown = None, str(file)
    return shown, ((p.query_id, p.doc_id_a, p.doc_id_b) for p in pairs), count


def _count_hint(dataset: Any) -> int | None:
    """ir_datasets' docpairs count from its metadata, where it has one (it only sizes the shuffle's buckets)."""
    try:
        return int(dataset.docpairs_count())
    except Exception:  # noqa: BLE001 -- no metadata for this id (or not an int): the shuffle uses its default
        return None


def _shuffled_docpairs(spec: TeacherSpec, shown: str, pairs: Iterator[tuple[str, str, str]],
                       count: int | None) -> Iterator[tuple[str, str, str]]:
    """The triples in the row's seeded one-time shuffle (:mod:`benchmark.shuffle`), built on first use into the
    cache (keyed by the source, its md5 or size and time, and the seed) and read bucket by bucket."""
    source: Any = spec.path
    if not (spec.path or "").startswith(IRDS_PREFIX):
        stat = Path(shown).stat()
        source = [spec.path, spec.md5 or [stat.st_size, stat.st_mtime_ns]]
    directory = cache_file("docpairs", spec.name, _digest(source, spec.shuffle_seed, "bucket-deal-v1"), "")
    shuffle.build((f"{q}\t{a}\t{b}" for q, a, b in pairs), directory, spec.shuffle_seed, shuffle.buckets_for(count))
    return (tuple(line.split("\t")) for line in shuffle.read(directory))


def _docpair_records(spec: TeacherSpec, ctx: TeacherContext) -> Iterator[Record]:
    """The row's (q, d+, d-) triples, in file order or (``shuffle_seed``) its seeded shuffle; every d+ is checked to
    be judged relevant."""
    shown, pairs, count = _docpair_source(spec)
    if spec.shuffle_seed is not None:  # a message names the position in the shuffled order
        pairs = _shuffled_docpairs(spec, shown, pairs, count)
        shown = f"{shown} shuffled (seed {spec.shuffle_seed})"
    for lineno, (qid, dpos, dneg) in enumerate(pairs, 1):
        _check_ids(Path(shown), lineno, ctx, qid, [dpos, dneg])
        if ctx.collection.qrels.get(qid, {}).get(dpos, 0) <= 0:
            raise BenchError(f"{shown}:{lineno}: d+ {dpos!r} is not judged relevant for query {qid!r} in dataset "
                             f"{ctx.collection.name!r}")
        yield lineno, qid, (dpos, dneg)


def triples_needed(train: TrainConfig) -> int | None:
    """How many of a file's triples the ``triples`` sampler can reach: ``max_steps`` x ``batch_size`` (it takes them
    in order, one epoch after another), None when the run counts epochs (each epoch reads them all)."""
    if train.max_steps is None or not get_sampler(train.sampler).needs_triples:
        return None
    return train.max_steps * train.batch_size


@TARGETS.register("docpairs")
def _docpairs(spec: TeacherSpec, ctx: TeacherContext):
    """Training triples without teacher scores (BCE and Hinge in the seed paper, ``xpmir/cross-encoders:
    src/training_utils.py`` ``msmarco_v1_docpairs_efficient_sampler``): targets are the qrels grades, so d+ (judged
    relevant, checked per line) is the positive and an unjudged d- scores 0. Only the triples the run's steps reach
    are read (:func:`triples_needed`), into a compact table."""
    triples = TripleTable()
    records = _budgeted(spec, ctx, lambda: _docpair_records(spec, ctx))
    for _, qid, (dpos, dneg) in itertools.islice(records, triples_needed(ctx.cell.train)):
        triples.append(qid, dpos, dneg)
    if not len(triples):
        raise BenchError(f"teacher {spec.name!r}: {spec.path} lists no triples")
    return Targets(ctx.collection.qrels, "labels", pool=TriplePool(triples), triples=triples)
