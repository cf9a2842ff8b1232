"""Running a grid: which cells run (``--only``, finished ones skipped), each through an executor, one record each.
A cell's own story (train, rerank, measure, stage its runs and student) is ``benchmark.cell``'s; this module writes
its record, or a failure record, and resumes.

Finished cells (a valid ``status: ok`` record with the same config hash, over the same data) are skipped, so a
stopped or crashed grid resumes where it left off. A failing cell writes a failure record (reason + traceback file)
and the grid goes on; a failing rerun of a finished cell writes its failure beside the finished record, never over it.
Inputs (dataset directories, run and teacher files) and the results directory are checked before any cell runs.
"""

from __future__ import annotations

import dataclasses
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

import torch
from safetensors.torch import load_file

from .artifacts import CellOutputs
from .cell import load, now, provenance, run_cell
from .checkpoint import remove
from .config import CellConfig, ExecutorConfig, Experiment, Only, check_only
from .dataset_rows import SOURCES
from .errors import BenchError
from .executors import get_executor
from .models import head_problem
from .teaching import cell_problems, teacher_file
from .tracking import close_tracker, final_values, open_tracker
from .results import (FAILED_RERUN, SCHEMA_VERSION, atomic_write_text, axes_label, inspect_record, read_record,
                      record_path, write_record)


def failure_record(cell: CellConfig, err: BaseException, results_dir: Path, started: str) -> dict[str, Any]:
    """The ``failed`` record of a cell: the error in one line, its traceback in a file beside the record."""
    tb_path = record_path(results_dir, cell.experiment, cell.cell_id, ".traceback.txt")
    try:
        atomic_write_text(tb_path, "".join(traceback.format_exception(err)), results_dir)
    except OSError:  # the record says why the cell failed; the traceback is a convenience
        tb_path = Path("")
    message = str(err) if isinstance(err, BenchError) else f"{type(err).__name__}: {err}"
    return {
        "schema": SCHEMA_VERSION, "experiment": cell.experiment, "cell_id": cell.cell_id,
        "config_hash": cell.config_hash, "status": "failed", "axes": cell.record_axes, "config": cell.to_dict(),
        "error": {"type": type(err).__name__, "message": " ".join(message.split())[:500],
                  "traceback_file": tb_path.name},
        "provenance": provenance(started),
    }


def data_hashes(cell: CellConfig, local_only: bool = False) -> dict[str, Any]:
    """``Collection.meta["hash"]`` of every dataset the cell reads (of local sources only, with ``local_only``)."""
    return {name: load(cell, name).meta.get("hash") for name, spec in cell.datasets.items()
            if not local_only or SOURCES.get(spec.source).local}


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
        now = data_hashes(cell, local_only=True)
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
    results = Path(results_dir)
    started = now()
    checkpoint_dir = record_path(results, cell.experiment, cell.cell_id, ".ckpt")
    problem = checkpoint_problem(checkpoint_dir)
    if problem:
        print(f"{cell.cell_id}: checkpoint {checkpoint_dir} is unreadable ({problem}); starting the cell over",
              file=sys.stderr)
        remove(checkpoint_dir)
    outputs = CellOutputs(results, cell.experiment, cell.cell_id)
    tracker = None
    try:
        tracker = open_tracker(cell)
        record = run_cell(cell, checkpoint_dir, outputs, tracker.log)
        tracker.log(record["train"]["steps"], final_values(record["metrics"]))
        record["data"] = data_hashes(cell)
        outputs.commit()  # runs and model in place before the record that names them
    except (KeyboardInterrupt, SystemExit):
        outputs.discard()
        raise
    except Exception as err:  # noqa: BLE001 -- any cell failure becomes a failure record; the grid goes on
        outputs.discard()
        record = failure_record(cell, err, results, started)
    finally:
        if tracker is not None:
            close_tracker(tracker, cell)
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
    """The local files the grid's rows name (dataset directories, first-stage run files, teacher files) that do not
    exist, one line each with what it is and where it comes from (the row's ``download``, else what the row says it
    holds). Files the package ships and inputs ir_datasets fetches itself (``irds:`` ids) are not listed."""
    missing = []
    for name, spec in {n: s for c in experiment.cells for n, s in c.datasets.items()}.items():
        if spec.source in ("trec-dir", "beir-dir") and not Path(spec.path or "").is_dir():
            missing.append(f"dataset {name!r}: directory {spec.path!r} does not exist"
                           f"{_needs(spec.download or f'a {spec.source} directory: ' + SOURCES.get(spec.source).description)}")
        if spec.first_stage.startswith("run:") and not Path(spec.first_stage[4:]).is_file():
            made = (f"the {spec.first_stage_name} top-{spec.top_k} of ir_datasets {spec.id!r} as a TREC run"
                    if spec.id else f"the {spec.first_stage_name} top-{spec.top_k} as a TREC run")
            missing.append(f"dataset {name!r}: run file {spec.first_stage[4:]!r} does not exist"
                           f"{_needs(spec.download or made)}")
    for name, spec in {c.teacher.name: c.teacher for c in experiment.cells}.items():
        if spec.path and not spec.path.startswith("irds:") and teacher_file(spec) is None:
            missing.append(f"teacher {name!r}: file {spec.path!r} does not exist"
                           f"{_needs(spec.download or spec.description)}")
    return missing


def _needs(source: str) -> str:
    return f" (get it: {source})" if source else ""


def refusals(experiment: Experiment) -> list[str]:
    """What ``run_cell`` would refuse before any work, per cell: ``<cell id>: <reason>``, every problem of every cell
    (a teacher that cannot feed the cell's sampler, ...), so a grid is mended in one pass rather than cell by cell."""
    out = []
    for cell in experiment.cells:
        head = head_problem(cell.backbone) if cell.train.eval_only else None
        for problem in [*cell_problems(cell), *([head] if head else [])]:
            out.append(f"{cell.cell_id}: {problem}")
    return out


def check_inputs(experiment: Experiment) -> None:
    """Every local input the grid names exists and no cell would be refused: found before any cell trains, not when
    the first cell that reads it fails."""
    for found, what in ((refusals(experiment), "refused cell(s)"), (missing_inputs(experiment), "missing input(s)")):
        if found:
            more = f" (and {len(found) - 1} more {what}: --dry-run lists them all)" if len(found) > 1 else ""
            raise BenchError(found[0] + more)


def check_data(experiment: Experiment) -> None:
    """Every local dataset the grid reads loads (its files parse: encoding, duplicate ids, malformed lines), so a
    defect in them is one line before any cell trains; the collections stay cached for the cells."""
    seen = set()
    for cell in experiment.cells:
        for name, spec in cell.datasets.items():
            if SOURCES.get(spec.source).local and name not in seen:
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


def matches(cell: CellConfig, only: Only) -> bool:
    return all(str(cell.axes.get(k)) in ([v] if isinstance(v, str) else v) for k, v in only.items())


def select_cells(experiment: Experiment, results_dir: Path, *, force: bool = False,
                 only: Only | None = None) -> tuple[list[CellConfig], list[CellConfig]]:
    """(cells to run, finished cells skipped). ``only`` filters by axis value (values of one axis are
    alternatives; :func:`check_only`); ``force`` reruns finished cells."""
    check_only(experiment, only or {})
    chosen = [c for c in experiment.cells if matches(c, only or {})]
    if only and not chosen:
        shown = " ".join(f"{k}={x}" for k, v in only.items() for x in ([v] if isinstance(v, str) else v))
        raise BenchError(f"--only {shown} matches no cell of the grid")
    done = [] if force else [c for c in chosen if is_done(results_dir, c)]
    return [c for c in chosen if c not in done], done


def run_grid(experiment: Experiment, results_dir: Path, *, executor: str | ExecutorConfig | None = None,
             force: bool = False, only: Only | None = None, echo: Callable[[str], None] = print) -> GridSummary:
    """Run the cells to run, through ``executor`` (default: the grid's ``[executor]``; a name: that executor with
    the grid's settings)."""
    if not isinstance(executor, ExecutorConfig):
        executor = dataclasses.replace(experiment.executor, **({"name": executor} if executor else {}))
    run = get_executor(executor.name)
    todo, done = select_cells(experiment, results_dir, force=force, only=only)
    chosen = dataclasses.replace(experiment, cells=todo)  # the inputs of the cells that will run
    check_inputs(chosen)
    check_data(chosen)
    check_writable(results_dir, experiment)
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
    started = time.perf_counter()

    def on_start(cell: CellConfig) -> None:
        echo(f"running {axes_label(cell.axes)} ({len(runnable) - len(summary.ran)} cell(s) left)")

    for record in run(runnable, str(results_dir), execute_cell, executor, on_start=on_start):
        summary.ran.append(record)
        left = len(runnable) - len(summary.ran)
        per_cell = (time.perf_counter() - started) / len(summary.ran)
        eta = f"; {left} left, about {per_cell * left / 60:.0f} min more" if left else ""
        echo(describe(record, len(summary.ran) + len(done), len(experiment.cells)) + eta)
    return summary


def describe(record: dict[str, Any], i: int, n: int) -> str:
    axes = axes_label(record["axes"])
    if record["status"] != "ok":
        return f"[{i}/{n}] {axes}: FAILED: {record['error']['message']}"
    parts = [f"{name} nDCG@10 {m['nDCG@10']:.3f} ({m['first_stage_info']['name']} {m['first_stage']['nDCG@10']:.3f})"
             for name, m in record["metrics"].items()]
    cpu = record["latency"]["cpu"]
    return (f"[{i}/{n}] {axes}: {'; '.join(parts)}; CPU p50 {cpu['p50_ms']:.1f} ms/query; "
            f"train {record['train']['seconds']:.0f} s")
