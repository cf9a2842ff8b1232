"""One cell of a grid, top to bottom: resolve its data, teach (the teacher's targets), train the student (keeping
its best validated step), rerank each eval set, measure (the dataset's measures, reference rows, latency and
precision rows), and build its ``ok`` record with the reranked runs and the student staged beside it
(``benchmark.artifacts``).

:func:`run_cell` reads in that order; each step is a small function below it. Writing the record, failure records
and resuming a grid are ``benchmark.grid``'s.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from . import training
from .artifacts import CellOutputs, model_card, should_save_model
from .collection import Collection, CollectionCache
from .config import DEFAULT_PRECISION, CellConfig, TrainConfig
from .datasets import fold_passages, load_collection
from .errors import BenchError
from .evaluation import evaluate, random_order
from .firststage import cut
from .hardware import git_sha, hardware_info, library_versions
from .inference import Reranker
from .latency import QualityCheck, measure_latency, measure_precisions
from .losses import get_objective
from .measures import FIRST_STAGE_RECALL, dataset_measures
from .models import build_cross_encoder
from .results import SCHEMA_VERSION, axes_label
from .teaching import TeacherContext, compute_targets, teacher_run, teacher_setup


def run_cell(cell: CellConfig, checkpoint_dir: Path | None = None, outputs: CellOutputs | None = None,
             track: training.Track | None = None) -> dict[str, Any]:
    """Train (or, for an eval-only row, load), evaluate and time one cell; returns its ``ok`` record (raises on
    failure). With ``outputs``, the reranked runs and (``should_save_model``) the student are staged there;
    ``track`` gets the training curves (``training.train_model``)."""
    started = now()
    for name in cell.eval.datasets:  # an eval set that cannot be loaded (offline, missing) fails before training
        load(cell, name)
    if cell.train.eval_only:
        model, tokenizer = build_cross_encoder(cell.backbone, seed=cell.seed, require_head=True)
        ctx, train = None, {"seconds": 0.0, "steps": 0, "examples": 0, "loss_curve": [], "eval_only": True}
    else:
        model, tokenizer, train, ctx = train_student(cell, checkpoint_dir, track)

    reranker = cell_reranker(model, tokenizer, cell)
    evaluated = [rerank_and_measure(cell, name, reranker, ctx, outputs) for name in cell.eval.datasets]
    latency = measure_all_latency(model, tokenizer, cell, *latency_inputs(cell, evaluated[0]))

    record = {
        "schema": SCHEMA_VERSION, "experiment": cell.experiment, "cell_id": cell.cell_id,
        "config_hash": cell.config_hash, "status": "ok", "axes": cell.record_axes, "config": cell.to_dict(),
        "metrics": {e.name: e.metrics for e in evaluated}, "per_query": {e.name: e.per_query for e in evaluated},
        "latency": latency, "train": train, "provenance": provenance(started),
    }
    if outputs is not None:
        record["runs"] = {e.name: e.run for e in evaluated}
        stage_student(record, cell, outputs, model, tokenizer)
    return record


# -- resolve --------------------------------------------------------------------------------------------------------

def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# Collections are shared by the cells of a grid (keyed by the row's full definition), bounded by memory.
_collection = CollectionCache()


def clear_collections() -> None:
    """Forget every loaded collection (a rehearsal swaps the data behind the same rows)."""
    _collection.cache_clear()


def load(cell: CellConfig, name: str) -> Collection:
    """The cell's dataset row ``name``, loaded once per grid."""
    spec = cell.datasets[name]
    return _collection.get(json.dumps(dataclasses.asdict(spec), sort_keys=True), lambda: load_collection(spec))


def judged_queries(data: Collection, where: str) -> list[str]:
    """The queries of ``data`` with both qrels and first-stage candidates; ``where`` names the set in a refusal."""
    qids = [q for q in data.queries if data.qrels.get(q) and data.run.get(q)]
    if not qids:
        raise BenchError(f"{where}: no query has both qrels and first-stage candidates")
    return qids


def measures_of(cell: CellConfig, name: str) -> tuple[str, ...]:
    """What the cell measures on eval set ``name``: nDCG@10, the dataset row's official measures, ``eval.measures``."""
    return dataset_measures(cell.datasets[name].measures, cell.eval.measures)


def cell_reranker(model, tokenizer, cell: CellConfig, device: str | torch.device | None = None) -> Reranker:
    """``model`` scoring with the cell's evaluation settings on ``device`` (default: ``train.device``), in the dtype
    the cell trains in (``cell_dtype``) on a GPU and fp32 on the CPU."""
    device = torch.device(device) if device is not None else training.resolve_device(cell.train.device)
    dtype = training.compute_dtype(device, cell_dtype(cell), cell.backbone.dtype) if device.type == "cuda" else "fp32"
    return Reranker(model, tokenizer, device=device, dtype=dtype, **scoring_settings(cell))


def cell_dtype(cell: CellConfig) -> str:
    """The dtype the cell asks for: its backbone's ``train.dtype_by_backbone`` entry, else ``train.dtype``
    (``auto``: the backbone row's GPU dtype on CUDA, fp32 on the CPU)."""
    return cell.train.dtype_for(cell.backbone.name)


def resolved_train(cell: CellConfig) -> TrainConfig:
    """``cell.train`` as it runs: ``max_length = "model"`` replaced by the backbone row's length and ``dtype`` by
    the cell's (``cell_dtype``)."""
    length = cell.backbone.max_length if cell.train.max_length == "model" else cell.train.max_length
    return dataclasses.replace(cell.train, max_length=length, dtype=cell_dtype(cell))


def scoring_settings(cell: CellConfig) -> dict[str, Any]:
    """The ``Reranker`` settings every scoring pass of the cell shares: length caps (the pair's, and the query's
    and passage's own, as in training), batch, segment embeddings."""
    return {"max_length": scoring_max_length(cell), "max_query_length": cell.train.max_query_length,
            "max_doc_length": cell.train.max_doc_length, "batch_size": cell.eval.batch_size,
            "use_token_type_ids": cell.backbone.token_type_ids}


def scoring_max_length(cell: CellConfig) -> int:
    """Token cap of a scored pair: ``eval.max_length``, else the training one (``resolved_train``)."""
    return cell.eval.max_length or resolved_train(cell).max_length


# -- teach and train -----------------------------------------------------------------------------------------------

def teach(cell: CellConfig) -> tuple[Collection, TeacherContext, training.Targets]:
    """(training collection, teacher context, targets): the teacher's targets for exactly the (query, doc) pairs
    the student's training will visit."""
    train_data = load(cell, cell.train.dataset)
    # The teacher reads the lengths and dtype the student trains with.
    ctx = TeacherContext(train_data, training.student_pairs(train_data, cell.train, cell.seed),
                         dataclasses.replace(cell, train=resolved_train(cell)), cell.teacher_models.__getitem__)
    return train_data, ctx, compute_targets(cell.teacher, ctx)


def train_student(cell: CellConfig, checkpoint_dir: Path | None, track: training.Track | None = None):
    """(model, tokenizer, training stats, teacher context): the cell's student trained on its teacher's targets,
    holding the weights it is evaluated with (the best validated step when the cell validates). A CUDA
    out-of-memory error is retried once with half the micro-batch and twice the accumulation (the effective batch
    is unchanged); the stats then say so under ``oom_retry``. A model teacher's setup (``teacher_setup``) is
    recorded under ``teacher``."""
    train_data, ctx, targets = teach(cell)

    def fit(cfg):
        model, tokenizer = build_cross_encoder(cell.backbone, seed=cell.seed)
        stats = training.train_model(model, tokenizer, train_data, targets, get_objective(cell.objective), cfg,
                                     seed=cell.seed, use_token_type_ids=cell.backbone.token_type_ids,
                                     backbone_dtype=cell.backbone.dtype, desc=axes_label(cell.axes),
                                     checkpoint_dir=checkpoint_dir, validate=validator(cell, tokenizer), track=track)
        return model, tokenizer, stats

    try:
        model, tokenizer, train = fit(resolved_train(cell))
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        retry = dataclasses.replace(resolved_train(cell), grad_accum=cell.train.grad_accum * 2)
        model, tokenizer, train = fit(retry)
        train["oom_retry"] = {"grad_accum": retry.grad_accum}
    setup = teacher_setup(cell.teacher, ctx)
    if setup is not None:
        train["teacher"] = setup
    return model, tokenizer, train, ctx


def validator(cell: CellConfig, tokenizer) -> Callable[[Any], dict[str, float]] | None:
    """``train.validation_measure`` per validation set of a model reranking the first-stage
    top-``train.validation_top_k`` of each of ``train.validation_dataset`` (its queries with qrels and candidates),
    with the evaluation's scoring settings; training keeps the step of the best mean. None when the cell does not
    validate."""
    if not cell.train.validate_every:
        return None
    measure = cell.train.validation_measure
    sets = {name: load(cell, name) for name in cell.train.validation_datasets}
    qids = {name: judged_queries(data, f"validation dataset {name!r}") for name, data in sets.items()}
    device = training.resolve_device(cell.train.device)

    def validate(model) -> dict[str, float]:
        reranker = cell_reranker(model, tokenizer, cell, device)
        values = {}
        for name, data in sets.items():
            run = fold_passages(reranker.rerank(data, qids[name], k=cell.train.validation_top_k), data)
            aggregate, _ = evaluate(run, data.qrels, [measure], name=f"validation on {name}")
            values[name] = next(iter(aggregate.values()))
        return values

    return validate


# -- rerank and measure --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Evaluated:
    """One eval set after reranking: its record entries and, with outputs, where its reranked run is staged (the run
    itself is not kept: a cell's eval sets are reranked one after another in flat memory)."""

    name: str
    metrics: dict[str, Any]
    per_query: dict[str, Any]
    run: dict[str, Any] | None  # the record's ``runs`` entry


def rerank_candidates(cell: CellConfig, name: str) -> tuple[Collection, list[str], Collection]:
    """(collection, judged queries, view): ``view`` holds the top-``eval.top_k`` of each judged query, cut with the
    row's cut policy as the first stage's own depth was: the candidates the student reranks. ``eval.top_k`` never
    exceeds the row's depth (refused when the grid loads, ``benchmark.config``)."""
    data = load(cell, name)
    qids = judged_queries(data, f"eval dataset {name!r}")
    run = cut({q: data.run[q] for q in qids}, cell.eval.top_k, f"dataset {name!r}", cell.datasets[name].cut)
    return data, qids, dataclasses.replace(data, run=run)


def rerank_and_measure(cell: CellConfig, name: str, reranker: Reranker, ctx: TeacherContext | None,
                       outputs: CellOutputs | None) -> Evaluated:
    """Rerank the candidates of eval set ``name`` and measure the run against its first stage, the random order of
    the same candidates and (a trained cell's model teacher) the teacher's own reranking; with ``outputs``, stage
    the run beside the first stage whose top-k it reranked."""
    data, qids, view = rerank_candidates(cell, name)
    spec, measures = cell.datasets[name], measures_of(cell, name)
    first = fold_passages({q: dict(data.run[q]) for q in qids}, data)
    reranked = fold_passages(reranker.rerank(view, qids, k=None, desc=f"rerank {name}"), data)
    agg, per_q = evaluate(reranked, data.qrels, measures, name=name)
    fs_agg, _ = evaluate(first, data.qrels, dict.fromkeys((*measures, FIRST_STAGE_RECALL)), name=f"{name} first stage")
    sizes = [len(c) for c in view.run.values()]
    metrics = {**agg, "first_stage": fs_agg, "n_queries": len(qids), "first_stage_info": {
        "name": spec.first_stage_name, "first_stage": spec.first_stage, "depth": spec.top_k,
        "rerank_depth": cell.eval.top_k, "reranked_max": max(sizes), "reranked_mean": sum(sizes) / len(sizes),
        "measures": list(measures)}, **reference_metrics(cell, ctx, view, qids)}
    run = None if outputs is None else {
        "reranked": outputs.stage_run(name, reranked, tag=cell.cell_id), "first_stage": spec.first_stage,
        "first_stage_name": spec.first_stage_name, "rerank_depth": cell.eval.top_k}
    return Evaluated(name, metrics, per_q, run)


def reference_metrics(cell: CellConfig, ctx: TeacherContext | None, data: Collection,
                      qids: list[str]) -> dict[str, Any]:
    """What a student is read against on one eval set (``data`` holds the candidates it reranks): those candidates in
    random order (``random_order``) and, for a model teacher of a trained cell (``ctx`` is None for an eval-only
    one), the teacher's own reranking of them (``teacher``: the measures the student gets on that set, and per-query
    values)."""
    candidates = {q: data.ranked(q) for q in qids}
    out: dict[str, Any] = {"random_order": random_order(candidates, data.qrels, fold=lambda r: fold_passages(r, data),
                                                        name=data.name)}
    run = None if ctx is None else teacher_run(cell.teacher, ctx, data, candidates)
    if run is not None:
        agg, per_q = evaluate(fold_passages(run, data), data.qrels, measures_of(cell, data.name),
                              name=f"{data.name} teacher")
        out["teacher"] = {"name": cell.teacher.name, **agg, "per_query": per_q}
    return out


def latency_inputs(cell: CellConfig, first: Evaluated) -> tuple[list[tuple[str, list[str]]], QualityCheck]:
    """Latency is timed on the first eval set's candidate lists (the ones its quality was measured on); the
    precision rows are scored on that set too."""
    data, qids, view = rerank_candidates(cell, first.name)
    lists = [(data.queries[q], [data.docs[d] for d in view.ranked(q)]) for q in qids[:cell.eval.latency_queries]]
    return lists, precision_quality(first.name, first.metrics["nDCG@10"], view, data, qids)


def precision_quality(name: str, fp32_ndcg: float, view: Collection, data: Collection, qids: list[str]):
    """nDCG@10 of a reranker on the candidates ``view`` holds for ``qids`` (the cell's first eval dataset)."""
    def score(reranker) -> float:
        label = f"{name} ({reranker.precision})"
        agg, _ = evaluate(fold_passages(reranker.rerank(view, qids, k=None, desc=f"rerank {label}"), data),
                          data.qrels, ["nDCG@10"], name=label)
        return agg["nDCG@10"]

    return QualityCheck(name, fp32_ndcg, score)


def measure_all_latency(model, tokenizer, cell: CellConfig, lists, quality=None) -> dict[str, Any]:
    """CPU latency always; CUDA latency too when a GPU is present (same model, same candidate lists); with
    ``eval.precision`` beyond fp32 and a ``QualityCheck``, ``precision``: each precision's CPU latency and quality."""
    timing = {"warmup": cell.eval.latency_warmup, "repeats": cell.eval.latency_repeats}
    out: dict[str, Any] = {}
    for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
        out[device] = measure_latency(cell_reranker(model.to(device), tokenizer, cell, device), lists, **timing)
    out.setdefault("cuda", None)
    if quality is not None and tuple(cell.eval.precision) != DEFAULT_PRECISION and out["cpu"]:
        out["precision"] = measure_precisions(model.to("cpu"), tokenizer, cell.eval.precision, lists, quality,
                                              fp32_latency=out["cpu"], **timing, **scoring_settings(cell))
    return out


# -- record --------------------------------------------------------------------------------------------------------

def provenance(started: str) -> dict[str, Any]:
    """Where and with what a record was computed: git commit, library versions, hardware, start and end times."""
    return {"git_sha": git_sha(Path(__file__).resolve().parent.parent), "versions": library_versions(),
            "hardware": hardware_info(), "started": started, "finished": now()}


def stage_student(record: dict[str, Any], cell: CellConfig, outputs: CellOutputs, model, tokenizer) -> None:
    """By ``should_save_model``, stage the student with its model card; the record names it under ``model``."""
    if should_save_model(cell):
        length = scoring_max_length(cell)
        record["model"] = outputs.stage_model(
            model, tokenizer, max_length=length, token_type_ids=cell.backbone.token_type_ids,
            card=model_card(record, cell, {d: r["reranked"] for d, r in record["runs"].items()}, length),
            precisions=cell.eval.precision)
