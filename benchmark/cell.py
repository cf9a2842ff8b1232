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
from .operating_points import DIRECTORY as OPERATING_POINTS
from .operating_points import FigureStore
from .losses import get_objective
from .measures import FIRST_STAGE_RECALL, dataset_measures
from .models import build_cross_encoder
from .results import SCHEMA_VERSION, axes_label
from .teaching import TeacherContext, compute_targets, initial_weights, teacher_run, teacher_setup


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
    store = FigureStore(None if outputs is None else outputs.experiment_dir / OPERATING_POINTS)
    latency = measure_all_latency(model, tokenizer, cell, evaluated[0], store)

    record = {
        "schema": SCHEMA_VERSION, "experiment": cell.experiment, "cell_id": cell.cell_id,
        "config_hash": cell.config_hash, "status": "ok", "axes": cell.record_axes, "config": cell.to_dict(),
        "metrics": {e.name: e.metrics for e in evaluated}, "per_query": {e.name: e.per_query for e in evaluated},
        "depths": {e.name: e.depths for e in evaluated}, "latency": latency, "train": train,
        "provenance": provenance(started),
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

    start = None if cell.init_teacher is None else initial_weights(cell.init_teacher, ctx)

    def fit(cfg):
        model, tokenizer = build_cross_encoder(cell.backbone, seed=cell.seed, quiet=start is not None)
        if start is not None:
            copied = start_from(model, *start, cell)
        stats = training.train_model(model, tokenizer, train_data, targets, get_objective(cell.objective), cfg,
                                     seed=cell.seed, use_token_type_ids=cell.backbone.token_type_ids,
                                     backbone_dtype=cell.backbone.dtype, desc=axes_label(cell.axes),
                                     checkpoint_dir=checkpoint_dir, validate=validator(cell, tokenizer), track=track)
        if start is not None:
            stats["init_from"] = {"teacher": cell.init_teacher.name, "backbone": start[0], "tensors": copied,
                                  "of": len(model.state_dict())}
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


def start_from(model, backbone: str, state: dict[str, Any], cell: CellConfig) -> int:
    """Copy into ``model`` every tensor of ``state`` whose name and shape it shares (the teacher's embeddings, the
    first layers, the head); returns how many. A teacher that shares none is refused in one line."""
    own = model.state_dict()
    shared = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not any(".layer." in k for k in shared):
        raise BenchError(f"train.init_from = {cell.init_teacher.name!r}: its model {backbone!r} shares no encoder "
                         f"layer with backbone {cell.backbone.name!r} (another family or hidden size)")
    model.load_state_dict(shared, strict=False)
    return len(shared)


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
    depths: list[dict[str, Any]]  # the record's ``depths`` entry: measures per rerank depth (``at_depths``)
    run: dict[str, Any] | None  # the record's ``runs`` entry
    scores: dict[str, dict[str, float]]  # the student's score of every reranked candidate, for the precision rows


def rerank_candidates(cell: CellConfig, name: str, depth: int | None = None) -> tuple[Collection, list[str], Collection]:
    """(collection, judged queries, view): ``view`` holds the top-``depth`` (default ``eval.top_k``) of each judged
    query, cut with the row's cut policy as the first stage's own depth was: the candidates the student reranks.
    ``eval.top_k`` never exceeds the row's depth (refused when the grid loads, ``benchmark.config``)."""
    data = load(cell, name)
    qids = judged_queries(data, f"eval dataset {name!r}")
    run = cut({q: data.run[q] for q in qids}, depth or cell.eval.top_k, f"dataset {name!r}", cell.datasets[name].cut)
    return data, qids, dataclasses.replace(data, run=run)


def rerank_and_measure(cell: CellConfig, name: str, reranker: Reranker, ctx: TeacherContext | None,
                       outputs: CellOutputs | None) -> Evaluated:
    """Rerank the candidates of eval set ``name`` and measure the run against its first stage, the random order of
    the same candidates and (a trained cell's model teacher) the teacher's own reranking, at ``eval.top_k`` and at
    each of ``eval.depths``; with ``outputs``, stage the run beside the first stage whose top-k it reranked."""
    data, qids, view = rerank_candidates(cell, name)
    spec, measures = cell.datasets[name], measures_of(cell, name)
    first = fold_passages({q: dict(data.run[q]) for q in qids}, data)
    scores = reranker.rerank(view, qids, k=None, desc=f"rerank {name}")
    reranked = fold_passages(scores, data)
    agg, per_q = evaluate(reranked, data.qrels, measures, name=name)
    fs_agg, fs_per_q = evaluate(first, data.qrels, dict.fromkeys((*measures, FIRST_STAGE_RECALL)),
                                name=f"{name} first stage")
    sizes = [len(c) for c in view.run.values()]
    references, teacher_scores = reference_metrics(cell, ctx, view, qids)
    metrics = {**agg, "first_stage": {**fs_agg, "per_query": fs_per_q}, "n_queries": len(qids), "first_stage_info": {
        "name": spec.first_stage_name, "first_stage": spec.first_stage, "depth": spec.top_k,
        "rerank_depth": cell.eval.top_k, "reranked_max": max(sizes), "reranked_mean": sum(sizes) / len(sizes),
        "measures": list(measures)}, **references}
    run = None if outputs is None else {
        "reranked": outputs.stage_run(name, reranked, tag=cell.cell_id), "first_stage": spec.first_stage,
        "first_stage_name": spec.first_stage_name, "rerank_depth": cell.eval.top_k}
    depths = at_depths(cell, name, scores, teacher_scores, measures)
    return Evaluated(name, metrics, per_q, depths, run, scores)


def at_depths(cell: CellConfig, name: str, scores: dict[str, dict[str, float]],
              teacher_scores: dict[str, dict[str, float]] | None, measures) -> list[dict[str, Any]]:
    """Per rerank depth d of the cell (``CellConfig.depths``): the measures (aggregate and per query) of the
    first stage's top-d reordered by the student's scores, and by the teacher's where it has some. Scores are per
    pair, so this is what reranking the top-d alone gives, without scoring anything again."""
    out = []
    for depth in cell.depths:
        data, _, view = rerank_candidates(cell, name, depth)
        entry: dict[str, Any] = {"depth": depth}
        for who, run in (("student", scores), ("teacher", teacher_scores)):
            if run is not None:
                kept = fold_passages({q: {d: run[q][d] for d in docs} for q, docs in view.run.items()}, data)
                agg, per_q = evaluate(kept, data.qrels, measures, name=f"{name} top-{depth} ({who})")
                entry[who] = {"measures": agg, "per_query": per_q}
        out.append(entry)
    return out


def reference_metrics(cell: CellConfig, ctx: TeacherContext | None, data: Collection,
                      qids: list[str]) -> tuple[dict[str, Any], dict[str, dict[str, float]] | None]:
    """(what a student is read against on one eval set, the teacher's scores): ``data`` holds the candidates it
    reranks; those candidates in random order (``random_order``) and, for a model teacher of a trained cell
    (``ctx`` is None for an eval-only one), the teacher's own reranking of them (``teacher``: the measures the
    student gets on that set, and per-query values)."""
    candidates = {q: data.ranked(q) for q in qids}
    out: dict[str, Any] = {"random_order": random_order(candidates, data.qrels, fold=lambda r: fold_passages(r, data),
                                                        name=data.name)}
    run = None if ctx is None else teacher_run(cell.teacher, ctx, data, candidates)
    if run is not None:
        agg, per_q = evaluate(fold_passages(run, data), data.qrels, measures_of(cell, data.name),
                              name=f"{data.name} teacher")
        out["teacher"] = {"name": cell.teacher.name, **agg, "per_query": per_q}
    return out, run


def timed_lists(cell: CellConfig, first: Evaluated) -> dict[int, list[tuple[str, list[str]]]]:
    """Per rerank depth, the candidate lists latency is timed on: the first ``eval.latency_queries`` judged queries
    of the first eval set (the one its quality was measured on), their top-d candidates."""
    data, qids, view = rerank_candidates(cell, first.name)
    timed = qids[:cell.eval.latency_queries]
    return {depth: [(data.queries[q], [data.docs[d] for d in view.ranked(q)[:depth]]) for q in timed]
            for depth in cell.depths}


def precision_quality(cell: CellConfig, first: Evaluated) -> QualityCheck:
    """nDCG@10 at each rerank depth of a reranker on the first eval set's candidates, fp32's from the cell."""
    data, qids, view = rerank_candidates(cell, first.name)
    fp32 = {e["depth"]: e["student"]["measures"]["nDCG@10"] for e in first.depths}

    def score(reranker) -> dict[int, float]:
        scores = reranker.rerank(view, qids, k=None, desc=f"rerank {first.name} ({reranker.precision})")
        depths = at_depths(cell, first.name, scores, None, ["nDCG@10"])
        return {e["depth"]: e["student"]["measures"]["nDCG@10"] for e in depths}

    return QualityCheck(first.name, fp32, score)


def point_settings(cell: CellConfig, backbone, precision: str, depth: int, device: str, dataset: str
                   ) -> dict[str, Any]:
    """Everything an operating point's cost depends on (``benchmark.operating_points``)."""
    arch = {k: v for k, v in dataclasses.asdict(backbone).items() if k not in ("name", "description")}
    return {"backbone": arch, "scoring": scoring_settings(cell), "precision": precision, "depth": depth,
            "device": device, "dataset": dataclasses.asdict(cell.datasets[dataset]),
            "timing": [cell.eval.latency_queries, cell.eval.latency_repeats, cell.eval.latency_warmup],
            "cpu": hardware_info().get("cpu"), "threads": torch.get_num_threads()}


def measure_all_latency(model, tokenizer, cell: CellConfig, first: Evaluated, store: FigureStore) -> dict[str, Any]:
    """The cell's operating points, each timed once per grid (``store``): CPU always, CUDA too when a GPU is
    present, at every rerank depth, for the student and a model teacher; ``cpu`` / ``cuda`` are the student's
    figures at ``eval.top_k``; with ``eval.precision`` beyond fp32, ``precision``: each precision row's CPU latency
    and quality per depth."""
    timing = {"warmup": cell.eval.latency_warmup, "repeats": cell.eval.latency_repeats}
    lists = timed_lists(cell, first)
    out: dict[str, Any] = {"operating_points": []}

    def points(backbone, precision: str, device: str, reranker: Callable[[], Reranker]) -> dict[int, dict]:
        figures = {}
        for depth in cell.depths:
            figures[depth] = store.shared(point_settings(cell, backbone, precision, depth, device, first.name),
                                          lambda d=depth: measure_latency(reranker(), lists[d], **timing))
            out["operating_points"].append({"role": "student" if backbone is cell.backbone else "teacher",
                                            "backbone": backbone.name, "precision": precision, "depth": depth,
                                            "device": device, **figures[depth]})
        return figures

    fp32 = {}
    for device in ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]:
        student = cell_reranker(model.to(device), tokenizer, cell, device)
        fp32[device] = points(cell.backbone, "fp32", device, lambda s=student: s)
        out[device] = fp32[device][cell.eval.top_k]
        for backbone in teacher_backbones(cell):
            points(backbone, "fp32", device, lambda b=backbone, d=device: architecture_reranker(b, cell, d))
    out.setdefault("cuda", None)
    if tuple(cell.eval.precision) != DEFAULT_PRECISION and out["cpu"]:
        def timed(precision: str, depth: int, measure: Callable[[], dict]) -> dict:
            figure = store.shared(point_settings(cell, cell.backbone, precision, depth, "cpu", first.name), measure)
            out["operating_points"].append({"role": "student", "backbone": cell.backbone.name,
                                            "precision": precision, "depth": depth, "device": "cpu", **figure})
            return figure

        out["precision"] = measure_precisions(model.to("cpu"), tokenizer, cell.eval.precision, lists,
                                              precision_quality(cell, first), fp32_latency=fp32["cpu"], timed=timed,
                                              **timing, **scoring_settings(cell))
    return out


def architecture_reranker(backbone, cell: CellConfig, device: str) -> Reranker:
    """A model of ``backbone``'s architecture scoring with the cell's settings, to time a teacher's operating point:
    its cost depends on the architecture, not on the weights a fine-tuning gave it."""
    model, tokenizer = build_cross_encoder(backbone, seed=0, quiet=True)
    return cell_reranker(model.to(device), tokenizer, cell, device)


def teacher_backbones(cell: CellConfig) -> list:
    """The backbone rows a trained cell's cross-encoder teacher scores with (an ensemble: each member)."""
    if cell.train.eval_only or cell.teacher.kind != "cross-encoder":
        return []
    return [cell.teacher_models[name] for name in cell.teacher.models]


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
