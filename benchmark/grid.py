"""Running a grid: each cell trains a student (an eval-only row loads its checkpoint instead), reranks every eval
set, measures latency, writes one record, and leaves its reranked runs (and, by ``train.save_model``, the student)
beside it (``benchmark.artifacts``).

Finished cells (a valid ``status: ok`` record with the same config hash, over the same data) are skipped, so a
stopped or crashed grid resumes where it left off. A failing cell writes a failure record (reason + traceback file)
and the grid goes on; a failing rerun of a finished cell writes its failure beside the finished record, never over it.
Inputs (dataset directories, run and teacher files) and the results directory are checked before any cell runs.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import secrets
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .artifacts import CellOutputs, model_card, should_save_model
from .collection import Collection, CollectionCache
from .config import DEFAULT_PRECISION, CellConfig, Experiment
from .errors import BenchError
from .results import (FAILED_RERUN, SCHEMA_VERSION, atomic_write_text, inspect_record, read_record, record_path,
                      write_record)

# Sources whose files a user can edit under a finished record; their data hash is compared before a cell counts as
# done. ir_datasets verifies its own downloads against the checksums it ships, so those rows are not re-hashed (that
# would mean reading MS MARCO to decide that nothing needs to run).
LOCAL_SOURCES = ("embedded", "trec-dir", "beir-dir")


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")


# Collections are shared by the cells of a grid (keyed by the row's full definition), bounded by memory.
_collection = CollectionCache()


def load(cell: CellConfig, name: str) -> Collection:
    from .datasets import load_collection

    spec = cell.datasets[name]
    return _collection.get(json.dumps(dataclasses.asdict(spec), sort_keys=True), lambda: load_collection(spec))


def run_cell(cell: CellConfig, checkpoint_dir: Path | None = None,
             outputs: CellOutputs | None = None) -> dict[str, Any]:
    """Train (or, for an eval-only row, load), evaluate and time one cell; returns its ``ok`` record (raises on
    failure). With ``outputs``, the reranked runs and (``should_save_model``) the student are staged there."""
    from .datasets import fold_passages
    from .evaluation import FIRST_STAGE_RECALL, dataset_measures, evaluate
    from .firststage import cut
    from .hardware import git_sha, hardware_info, library_versions
    from .inference import Reranker
    from .models import build_cross_encoder
    from .training import resolve_device

    started = _now()
    if cell.train.eval_only:
        model, tokenizer = build_cross_encoder(cell.backbone, seed=cell.seed)
        ctx, train = None, {"seconds": 0.0, "steps": 0, "examples": 0, "loss_curve": [], "eval_only": True}
    else:
        model, tokenizer, train, ctx = train_student(cell, checkpoint_dir)

    device = resolve_device(cell.train.device)
    max_length = cell.eval.max_length or cell.train.max_length
    reranker = Reranker(model, tokenizer, max_length=max_length, batch_size=cell.eval.batch_size, device=device,
                        dtype=cell.backbone.dtype if device.type == "cuda" else "fp32",
                        use_token_type_ids=cell.backbone.token_type_ids)
    metrics, per_query, runs = {}, {}, {}
    latency_lists, quality = None, None
    for name in cell.eval.datasets:
        data, spec = load(cell, name), cell.datasets[name]
        qids = [q for q in data.queries if data.qrels.get(q) and data.run.get(q)]
        if not qids:
            raise BenchError(f"eval dataset {name!r}: no query has both qrels and first-stage candidates")
        # The rerank depth goes through the same tie-safe cut as the first stage's own depth.
        candidates = cut({q: data.run[q] for q in qids}, cell.eval.top_k, f"dataset {name!r}")
        view = dataclasses.replace(data, run=candidates)
        measures = dataset_measures(spec.measures, cell.eval.measures)
        first = fold_passages({q: dict(data.run[q]) for q in qids}, data)
        reranked = fold_passages(reranker.rerank(view, qids, k=None), data)
        agg, per_q = evaluate(reranked, data.qrels, measures, name=name)
        fs_agg, _ = evaluate(first, data.qrels, dict.fromkeys((*measures, FIRST_STAGE_RECALL)),
                             name=f"{name} first stage")
        sizes = [len(c) for c in candidates.values()]
        metrics[name] = {**agg, "first_stage": fs_agg, "n_queries": len(qids), "first_stage_info": {
            "name": spec.first_stage_name, "first_stage": spec.first_stage, "depth": spec.top_k,
            "rerank_depth": cell.eval.top_k, "reranked_max": max(sizes), "reranked_mean": sum(sizes) / len(sizes),
            "measures": list(measures)}, **reference_metrics(cell, ctx, view, qids)}
        per_query[name] = per_q
        if outputs is not None:  # the run just evaluated, and the first stage whose top-k it reranked
            runs[name] = {"reranked": outputs.stage_run(name, reranked, tag=cell.cell_id),
                          "first_stage": spec.first_stage, "first_stage_name": spec.first_stage_name,
                          "rerank_depth": cell.eval.top_k}
        if latency_lists is None:  # latency on the same candidate lists as quality
            latency_lists = [(data.queries[q], [data.docs[d] for d in view.ranked(q)])
                             for q in qids[:cell.eval.latency_queries]]
            quality = precision_quality(name, agg["nDCG@10"], view, data, qids)
    latency = measure_all_latency(model, tokenizer, cell, latency_lists or [], quality)
    record = {
        "schema": SCHEMA_VERSION, "experiment": cell.experiment, "cell_id": cell.cell_id,
        "config_hash": cell.config_hash, "status": "ok", "axes": cell.axes, "config": cell.to_dict(),
        "metrics": metrics, "per_query": per_query, "latency": latency, "train": train,
        "provenance": {"git_sha": git_sha(Path(__file__).resolve().parent.parent), "versions": library_versions(),
                       "hardware": hardware_info(), "started": started, "finished": _now()},
    }
    if outputs is not None:
        record["runs"] = runs
        if should_save_model(cell):
            record["model"] = outputs.stage_model(
                model, tokenizer, max_length=max_length, token_type_ids=cell.backbone.token_type_ids,
                card=model_card(record, cell, {d: r["reranked"] for d, r in runs.items()}))
    return record


def train_student(cell: CellConfig, checkpoint_dir: Path | None):
    """(model, tokenizer, training stats, teacher context): the cell's student trained on its teacher's targets,
    holding the weights it is evaluated with (the best validated step when the cell validates)."""
    from .losses import get_objective
    from .models import build_cross_encoder
    from .teaching import TeacherContext, compute_targets
    from .training import student_pairs, train_model

    import torch

    train_data = load(cell, cell.train.dataset)
    ctx = TeacherContext(train_data, student_pairs(train_data, cell.train, cell.seed), cell,
                         cell.teacher_models.__getitem__)
    targets = compute_targets(cell.teacher, ctx)

    def fit(cfg):
        model, tokenizer = build_cross_encoder(cell.backbone, seed=cell.seed)
        stats = train_model(model, tokenizer, train_data, targets, get_objective(cell.objective), cfg,
                            seed=cell.seed, use_token_type_ids=cell.backbone.token_type_ids,
                            backbone_dtype=cell.backbone.dtype, desc=short_name(cell),
                            checkpoint_dir=checkpoint_dir, validate=validator(cell, tokenizer))
        return model, tokenizer, stats

    try:
        model, tokenizer, train = fit(cell.train)
    except torch.cuda.OutOfMemoryError:
        # One retry: half the micro-batch, twice the accumulation, so the effective batch is unchanged.
        torch.cuda.empty_cache()
        retry = dataclasses.replace(cell.train, grad_accum=cell.train.grad_accum * 2)
        model, tokenizer, train = fit(retry)
        train["oom_retry"] = {"grad_accum": retry.grad_accum}
    return model, tokenizer, train, ctx


def reference_metrics(cell: CellConfig, ctx, data: Collection, qids: list[str]) -> dict[str, Any]:
    """What a student is read against on one eval set (``data`` holds the candidates it reranks): those candidates in
    random order (``random_order``) and, for a model teacher of a trained cell (``ctx`` is None for an eval-only
    one), the teacher's own reranking of them (``teacher``: its measures and per-query values)."""
    from .datasets import fold_passages
    from .evaluation import MEASURES, evaluate, random_order
    from .teaching import teacher_run

    candidates = {q: data.ranked(q) for q in qids}
    out: dict[str, Any] = {"random_order": random_order(candidates, data.qrels, fold=lambda r: fold_passages(r, data),
                                                        name=data.name)}
    run = None if ctx is None else teacher_run(cell.teacher, ctx, data, candidates)
    if run is not None:
        agg, per_q = evaluate(fold_passages(run, data), data.qrels, MEASURES, name=f"{data.name} teacher")
        out["teacher"] = {"name": cell.teacher.name, **agg, "per_query": per_q}
    return out


def validator(cell: CellConfig, tokenizer) -> Callable[[Any], float] | None:
    """``train.validation_measure`` of a model reranking the first-stage top-``train.validation_top_k`` of
    ``train.validation_dataset`` (its queries with qrels and candidates), with the evaluation's scoring settings;
    None when the cell does not validate."""
    if not cell.train.validate_every:
        return None
    from .datasets import fold_passages
    from .evaluation import evaluate
    from .inference import Reranker
    from .training import resolve_device

    name, measure = cell.train.validation_dataset, cell.train.validation_measure
    data = load(cell, name)
    qids = [q for q in data.queries if data.qrels.get(q) and data.run.get(q)]
    if not qids:
        raise BenchError(f"validation dataset {name!r}: no query has both qrels and first-stage candidates")
    device = resolve_device(cell.train.device)

    def validate(model) -> float:
        reranker = Reranker(model, tokenizer, max_length=cell.eval.max_length or cell.train.max_length,
                            batch_size=cell.eval.batch_size, device=device,
                            dtype=cell.backbone.dtype if device.type == "cuda" else "fp32",
                            use_token_type_ids=cell.backbone.token_type_ids)
        run = fold_passages(reranker.rerank(data, qids, k=cell.train.validation_top_k), data)
        aggregate, _ = evaluate(run, data.qrels, [measure], name=f"validation on {name}")
        return next(iter(aggregate.values()))

    return validate


def precision_quality(name: str, fp32_ndcg: float, view: Collection, data: Collection, qids: list[str]):
    """nDCG@10 of a reranker on the candidates ``view`` holds for ``qids`` (the cell's first eval dataset)."""
    from .datasets import fold_passages
    from .evaluation import evaluate
    from .latency import QualityCheck

    def score(reranker) -> float:
        agg, _ = evaluate(fold_passages(reranker.rerank(view, qids, k=None), data), data.qrels, ["nDCG@10"],
                          name=f"{name} ({reranker.precision})")
        return agg["nDCG@10"]

    return QualityCheck(name, fp32_ndcg, score)


def measure_all_latency(model, tokenizer, cell: CellConfig, lists, quality=None) -> dict[str, Any]:
    """CPU latency always; CUDA latency too when a GPU is present (same model, same candidate lists); with
    ``eval.precision`` beyond fp32 and a ``QualityCheck``, ``precision``: each precision's CPU latency and quality."""
    import torch

    from .inference import Reranker
    from .latency import measure_latency, measure_precisions

    max_length = cell.eval.max_length or cell.train.max_length
    settings = dict(max_length=max_length, batch_size=cell.eval.batch_size,
                    use_token_type_ids=cell.backbone.token_type_ids)
    timing = dict(warmup=cell.eval.latency_warmup, repeats=cell.eval.latency_repeats)
    out: dict[str, Any] = {}
    for device, dtype in [("cpu", "fp32"), *([("cuda", cell.backbone.dtype)] if torch.cuda.is_available() else [])]:
        reranker = Reranker(model.to(device), tokenizer, device=device, dtype=dtype, **settings)
        out[device] = measure_latency(reranker, lists, **timing)
    out.setdefault("cuda", None)
    if quality is not None and tuple(cell.eval.precision) != DEFAULT_PRECISION and out["cpu"]:
        out["precision"] = measure_precisions(model.to("cpu"), tokenizer, cell.eval.precision, lists, quality,
                                              fp32_latency=out["cpu"], **timing, **settings)
    return out


def short_name(cell: CellConfig) -> str:
    return " · ".join(str(v) for v in cell.axes.values())


def failure_record(cell: CellConfig, err: BaseException, results_dir: Path, started: str) -> dict[str, Any]:
    from .hardware import git_sha, hardware_info, library_versions

    tb_path = record_path(results_dir, cell.experiment, cell.cell_id, ".traceback.txt")
    try:
        atomic_write_text(tb_path, "".join(traceback.format_exception(err)), results_dir)
    except OSError:  # the record says why the cell failed; the traceback is a convenience
        tb_path = Path("")
    message = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
    return {
        "schema": SCHEMA_VERSION, "experiment": cell.experiment, "cell_id": cell.cell_id,
        "config_hash": cell.config_hash, "status": "failed", "axes": cell.axes, "config": cell.to_dict(),
        "error": {"type": type(err).__name__, "message": " ".join(message.split())[:500],
                  "traceback_file": tb_path.name},
        "provenance": {"git_sha": git_sha(Path(__file__).resolve().parent.parent), "versions": library_versions(),
                       "hardware": hardware_info(), "started": started, "finished": _now()},
    }


def data_hashes(cell: CellConfig, sources: tuple[str, ...] | None = None) -> dict[str, Any]:
    """``Collection.meta["hash"]`` of every dataset the cell reads (of the given sources only, when given)."""
    return {name: load(cell, name).meta.get("hash") for name, spec in cell.datasets.items()
            if sources is None or spec.source in sources}


def cell_state(results_dir: Path, cell: CellConfig) -> tuple[str, str]:
    """(state, why): ``done`` (a usable ok record of this config over unchanged data), ``todo``, ``stale`` (its
    local data changed since the record: to rerun) or ``blocked`` (the file there is not a usable record: it is
    neither taken as done nor overwritten)."""
    path = record_path(results_dir, cell.experiment, cell.cell_id)
    if not path.exists():
        return "todo", ""
    rec, problem = inspect_record(path)
    if rec is None:
        return "blocked", f"{path} is not a record this version can use ({problem}); move it away to rerun the cell"
    if rec["status"] != "ok" or rec["config_hash"] != cell.config_hash:
        return "todo", ""
    recorded = rec.get("data", {})
    try:
        now = data_hashes(cell, LOCAL_SOURCES)
    except BenchError as err:
        return "stale", f"its data can no longer be read ({err}): rerunning"
    # Records written before data hashes were recorded carry none; their data cannot be compared.
    changed = [n for n, h in now.items() if n in recorded and recorded[n] != h]
    if changed:
        return "stale", f"data of {', '.join(changed)} changed since its record was written: rerunning"
    return "done", ""


def is_done(results_dir: Path, cell: CellConfig) -> bool:
    return cell_state(results_dir, cell)[0] == "done"


def checkpoint_problem(directory: Path) -> str | None:
    """Why a checkpoint directory cannot be resumed from (None when every file in it reads back): weights,
    optimiser state and any side file are loaded in full, so a truncated file is caught before training."""
    import torch
    from safetensors.torch import load_file

    for path in sorted(Path(directory).iterdir()) if Path(directory).is_dir() else []:
        try:
            if path.suffix == ".safetensors":
                load_file(str(path))
            elif path.suffix in (".pt", ".pth", ".bin"):
                torch.load(path, weights_only=False, map_location="cpu")
            elif path.suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif path.is_file():
                path.read_bytes()
        except Exception as err:  # noqa: BLE001 -- any reader error means the file cannot be resumed from
            return f"{path.name}: {type(err).__name__}: {' '.join(str(err).split())[:200]}"
    return None


def execute_cell(cell: CellConfig, results_dir: str) -> dict[str, Any]:
    """Run one cell and write its record (ok or failed); never raises for a cell's own failure or for a record
    that cannot be written (both come back as a failed record)."""
    from .checkpoint import remove

    results = Path(results_dir)
    started = _now()
    checkpoint_dir = record_path(results, cell.experiment, cell.cell_id, ".ckpt")
    problem = checkpoint_problem(checkpoint_dir)
    if problem:
        print(f"{cell.cell_id}: checkpoint {checkpoint_dir} is unreadable ({problem}); starting the cell over",
              file=sys.stderr)
        remove(checkpoint_dir)
    outputs = CellOutputs(results, cell.experiment, cell.cell_id)
    try:
        record = run_cell(cell, checkpoint_dir, outputs)
        record["data"] = data_hashes(cell)
        outputs.commit()  # runs and model in place before the record that names them
    except (KeyboardInterrupt, SystemExit):
        outputs.discard()
        raise
    except Exception as err:  # noqa: BLE001 -- any cell failure becomes a failure record; the grid goes on
        outputs.discard()
        record = failure_record(cell, err, results, started)
    previous = read_record(record_path(results, cell.experiment, cell.cell_id))
    keep_previous = record["status"] != "ok" and previous is not None and previous["status"] == "ok"
    try:
        write_record(results, record, FAILED_RERUN if keep_previous else ".json")
    except BenchError as err:
        return {**record, "status": "failed", "error": {"type": "BenchError", "message": str(err)}}
    if record["status"] == "ok":
        record_path(results, cell.experiment, cell.cell_id, FAILED_RERUN).unlink(missing_ok=True)
        remove(checkpoint_dir)
    return record


def missing_inputs(experiment: Experiment) -> list[str]:
    """The local files the grid's dataset rows name (directories, run files) that do not exist, one line each.
    (Teacher files may be fetched on first use, so they are not checked.)"""
    missing = []
    for name, spec in {n: s for c in experiment.cells for n, s in c.datasets.items()}.items():
        if spec.source in ("trec-dir", "beir-dir") and not Path(spec.path or "").is_dir():
            missing.append(f"dataset {name!r}: directory {spec.path!r} does not exist")
        if spec.first_stage.startswith("run:") and not Path(spec.first_stage[4:]).is_file():
            missing.append(f"dataset {name!r}: run file {spec.first_stage[4:]!r} does not exist")
    return missing


def check_inputs(experiment: Experiment) -> None:
    """Every local input the grid names exists: found before any cell trains, not when the first cell that reads
    it fails."""
    missing = missing_inputs(experiment)
    if missing:
        more = (f" (and {len(missing) - 1} more missing input(s): run --dry-run to list them)"
                if len(missing) > 1 else "")
        raise BenchError(missing[0] + more)


def check_data(experiment: Experiment) -> None:
    """Every local dataset the grid reads loads (its files parse: encoding, duplicate ids, malformed lines), so a
    defect in them is one line before any cell trains; the collections stay cached for the cells."""
    seen = set()
    for cell in experiment.cells:
        for name, spec in cell.datasets.items():
            if spec.source in LOCAL_SOURCES and name not in seen:
                seen.add(name)
                load(cell, name)


def check_writable(results_dir: Path, experiment: Experiment) -> None:
    """The experiment's results directory can hold a record, checked before any work (a file in the way, no
    permission, a full disk), so no trained cell is lost to it."""
    directory = record_path(results_dir, experiment.name, "probe").parent
    probe = directory / f".write-probe-{secrets.token_hex(6)}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        try:
            with open(probe, "wb") as fh:
                fh.write(b"\0" * 65536)  # a full disk accepts an empty file
                fh.flush()
                os.fsync(fh.fileno())
        finally:
            probe.unlink(missing_ok=True)
    except OSError as err:
        raise BenchError(f"results directory {str(results_dir)!r} is not writable: {err.strerror or err}") from None


@dataclass
class GridSummary:
    ran: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[CellConfig] = field(default_factory=list)
    blocked: list[tuple[CellConfig, str]] = field(default_factory=list)  # not run: a foreign file holds its place

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.ran if r["status"] != "ok"]


def matches(cell: CellConfig, only: dict[str, str]) -> bool:
    return all(str(cell.axes.get(k)) == v for k, v in only.items())


def select_cells(experiment: Experiment, results_dir: Path, *, force: bool = False,
                 only: dict[str, str] | None = None) -> tuple[list[CellConfig], list[CellConfig]]:
    """(cells to run, finished cells skipped). ``only`` filters by axis value; ``force`` reruns finished cells."""
    chosen = [c for c in experiment.cells if matches(c, only or {})]
    if only and not chosen:
        raise BenchError(f"--only {' '.join(f'{k}={v}' for k, v in only.items())} matches no cell of the grid")
    done = [] if force else [c for c in chosen if is_done(results_dir, c)]
    return [c for c in chosen if c not in done], done


def run_grid(experiment: Experiment, results_dir: Path, *, executor: str = "local", force: bool = False,
             only: dict[str, str] | None = None, executor_options: dict[str, Any] | None = None,
             echo: Callable[[str], None] = print) -> GridSummary:
    from .executors import get_executor

    check_inputs(experiment)
    check_data(experiment)
    check_writable(results_dir, experiment)
    todo, done = select_cells(experiment, results_dir, force=force, only=only)
    summary = GridSummary(skipped=done)
    if done:
        echo(f"{len(done)} finished cell(s) skipped (use --force to rerun)")
    runnable = []
    for cell in todo:
        state, why = cell_state(results_dir, cell)
        if state == "blocked":
            summary.blocked.append((cell, why))
            echo(f"not run: {cell.cell_id}: {why}")
            continue
        if state == "stale":
            echo(f"{cell.cell_id}: {why}")
        runnable.append(cell)
    run = get_executor(executor)
    started = time.perf_counter()

    def on_start(cell: CellConfig) -> None:
        echo(f"running {short_name(cell)} ({len(runnable) - len(summary.ran)} cell(s) left)")

    for record in run(runnable, str(results_dir), on_start=on_start, **(executor_options or {})):
        summary.ran.append(record)
        left = len(runnable) - len(summary.ran)
        per_cell = (time.perf_counter() - started) / len(summary.ran)
        eta = f"; {left} left, about {per_cell * left / 60:.0f} min more" if left else ""
        echo(describe(record, len(summary.ran) + len(done), len(experiment.cells)) + eta)
    return summary


def describe(record: dict[str, Any], i: int, n: int) -> str:
    axes = " · ".join(str(v) for v in record["axes"].values())
    if record["status"] != "ok":
        return f"[{i}/{n}] {axes}: FAILED: {record['error']['message']}"
    parts = [f"{name} nDCG@10 {m['nDCG@10']:.3f} ({m['first_stage_info']['name']} {m['first_stage']['nDCG@10']:.3f})"
             for name, m in record["metrics"].items()]
    cpu = record["latency"]["cpu"]
    return (f"[{i}/{n}] {axes}: {'; '.join(parts)}; CPU p50 {cpu['p50_ms']:.1f} ms/query; "
            f"train {record['train']['seconds']:.0f} s")
