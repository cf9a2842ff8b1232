"""Command line. ``rdb run|dry-run|rehearse GRID``, ``rdb report RESULTS``, ``rdb list ROWS``,
``rdb publish CELL_ID --repo ORG/NAME``, ``rdb --version``;
``run_grid.py [GRID] [--dry-run | --rehearse]`` and ``run_grid.py report DIR`` are the same commands.

Exit codes: 0 all cells ok, 1 some cell failed (their records say why), 2 bad input (one line on stderr). Arguments
and grid files are read before torch is imported, so a bad one answers at once.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BenchError

if TYPE_CHECKING:
    from .config import Experiment

DEFAULT_GRID = Path("experiments/default.toml")
PACKAGE = "rerank-distill-bench"
# rdb list: registry modules hold rows only (no torch); each entry -> what a row line shows
LISTS = {
    "backbones": ("backbones", "BACKBONES", lambda r: f"{r.family:<11} {r.checkpoint or 'random init'}"),
    "objectives": ("objectives", "OBJECTIVES", lambda r: f"{r.family:<10} {r.paper}"),
    "teachers": ("teachers", "TEACHERS", lambda r: f"{r.kind:<13} {r.description}"),
    "datasets": ("dataset_rows", "DATASETS", lambda r: f"{r.source:<12} {r.id or r.path or ''}  {r.description}"),
    "samplers": ("samplers", "SAMPLERS", lambda r: r.description),
    "precisions": ("precisions", "PRECISIONS", lambda r: f"{r.runtime:<12} weights {r.weights}"),
}


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown (not installed)"


def _selection(p: argparse.ArgumentParser) -> None:
    """The arguments that say which grid and cells a command works on."""
    p.add_argument("grid", nargs="?", default=str(DEFAULT_GRID), help="grid TOML (default: %(default)s)")
    p.add_argument("--results", default="results", help="results directory (default: %(default)s)")
    p.add_argument("--only", action="append", default=[], metavar="AXIS=VALUE",
                   help="run only cells with this axis value; repeat it (values of one axis are alternatives: "
                        "--only objective=bce --only objective=infonce)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override one grid value for every cell, e.g. --set train.lr=1e-5 (a TOML value; it "
                        "enters each cell's config hash); repeatable")


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--reports", default="reports", help="report output directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rerun cells that already have a record")
    p.add_argument("--no-report", action="store_true", help="do not render the report after the grid")
    p.add_argument("--quiet", action="store_true", help="no progress bars or progress lines")


def _rehearsal_dir(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rehearsal-dir", default="rehearsal",
                   help="where a rehearsal keeps its inputs, results and report (default: %(default)s)")


def _run_parser(prog: str = "run_grid.py") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Train and evaluate a grid of distilled rerankers.",
                                epilog="Re-render a report without running: run_grid.py report [RESULTS_DIR]")
    _selection(p)
    _run_options(p)
    cluster = p.add_argument_group("executor", "where cells run (each overrides the grid's [executor] table)")
    cluster.add_argument("--executor", default=None, help="local (default), ray or slurm")
    cluster.add_argument("--address", default=None, help="Ray cluster address for --executor ray (e.g. auto)")
    cluster.add_argument("--gpus-per-cell", type=float, default=None, metavar="N",
                         help="GPUs each cell asks for (Ray num_gpus, SLURM GPUs per job; default 0)")
    cluster.add_argument("--cpus-per-cell", type=float, default=None, metavar="N",
                         help="CPUs each cell asks for (Ray num_cpus, SLURM cpus-per-task; default 1)")
    cluster.add_argument("--slurm-partition", default=None, metavar="NAME", help="SLURM partition of the jobs")
    cluster.add_argument("--slurm-time", type=int, default=None, metavar="MINUTES",
                         help="SLURM time limit per cell (default 1440; a cell past it is requeued and resumes)")
    p.add_argument("--dry-run", action="store_true", help="list the cells, what they need and what would be refused; "
                   "run nothing")
    p.add_argument("--rehearse", action="store_true",
                   help="run every cell at toy scale (tiny models of each row's architecture, miniature inputs in "
                        "their released layouts, seeds folded), offline on a CPU, and render its report")
    _rehearsal_dir(p)
    p.add_argument("--print-config", metavar="CELL_ID", default=None,
                   help="print one cell's resolved config as TOML (a cell id or a prefix of one) and exit")
    return p


def _report_parser(prog: str = "run_grid.py report") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Render the HTML report of a results dir.")
    p.add_argument("results", nargs="?", default="results", help="results directory (default: %(default)s)")
    p.add_argument("--out", default="reports", help="output directory (default: %(default)s)")
    return p


def _rdb_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rdb", description="rerank-distill-bench: train, evaluate and report grids of "
                                "distilled cross-encoder rerankers.")
    p.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run a grid and render its report", parents=[_run_parser("rdb run")],
                   add_help=False)
    dry = sub.add_parser("dry-run", help="list a grid's cells, what they need and what a run would refuse")
    _selection(dry)
    rehearse = sub.add_parser("rehearse", help="run every cell of a grid at toy scale, offline, before GPU time")
    _selection(rehearse)
    _run_options(rehearse)
    _rehearsal_dir(rehearse)
    sub.add_parser("report", help="re-render the report of a results directory",
                   parents=[_report_parser("rdb report")], add_help=False)
    listing = sub.add_parser("list", help="list the rows of a registry")
    listing.add_argument("rows", choices=sorted(LISTS))
    publish = sub.add_parser("publish", help="upload a cell's saved student (its <cell>.model folder) to the hub")
    publish.add_argument("cell_id", metavar="CELL_ID", help="a cell id, or the start of one")
    publish.add_argument("--repo", required=True, metavar="ORG/NAME", help="hub model repo (created if absent)")
    publish.add_argument("--results", default="results", help="results directory (default: %(default)s)")
    publish.add_argument("--dry-run", action="store_true", help="list the files it would upload; upload nothing")
    return p


def _parse_only(items: list[str], experiment: Experiment) -> dict[str, list[str]]:
    """``AXIS=VALUE`` items -> axis -> the values any of which a cell may have, checked against the grid's cells
    (:func:`benchmark.grid.check_only`)."""
    from .config import check_only

    only: dict[str, list[str]] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchError(f"--only expects AXIS=VALUE, got {item!r}")
        only.setdefault(key, []).append(value)
    check_only(experiment, only)
    return only


COMMANDS = ("run", "dry-run", "rehearse", "report", "list", "publish")


def main(argv: list[str] | None = None) -> int:
    """``run_grid.py``: a grid run (``--dry-run``, ``--rehearse``), ``report DIR``, or any ``rdb`` command."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["report"]:
        return _guarded(lambda: _report_command(_report_parser().parse_args(argv[1:])))
    if argv[:1] and argv[0] in (*COMMANDS, "--version"):
        return rdb_main(argv)
    return _guarded(lambda: _run(_run_parser().parse_args(argv)))


def rdb_main(argv: list[str] | None = None) -> int:
    """``rdb COMMAND ...`` (``rdb --help`` lists the commands)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    return _guarded(lambda: _command(_rdb_parser().parse_args(argv or ["--help"])))


def _guarded(command) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return command()
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; rerun the same command to resume", file=sys.stderr)
        return 130


def _report_command(args: argparse.Namespace) -> int:
    return _report(Path(args.results), Path(args.out))


def _command(args: argparse.Namespace) -> int:
    if args.command == "list":
        return _list(args.rows)
    if args.command == "report":
        return _report_command(args)
    if args.command == "publish":
        return _publish(args)
    if args.command == "dry-run":
        args.dry_run, args.rehearse, args.print_config = True, False, None
    elif args.command == "rehearse":
        args.dry_run, args.rehearse, args.print_config = False, True, None
    return _run(args)


def _list(rows: str) -> int:
    import importlib

    module, name, line = LISTS[rows]
    registry = getattr(importlib.import_module(f"benchmark.{module}"), name)
    for key, row in registry.items():
        print(f"{key:<26} {line(row)}".rstrip())
    return 0


def _publish(args: argparse.Namespace) -> int:
    from .artifacts import publish, saved_model

    model = saved_model(Path(args.results), args.cell_id)
    files = publish(model, args.repo, dry_run=args.dry_run)
    if args.dry_run:
        print(f"would upload {len(files)} file(s) from {model} to {args.repo}:")
        print("\n".join(f"  {name}" for name in files))
    return 0


# Each command imports its own stack when it runs: ``report`` needs no torch, and ``--help``, a bad argument or a
# bad grid file answers without loading either.
def _report(results: Path, out: Path, **options) -> int:
    from .report import render_report

    index = render_report(results, out, warn=lambda line: print(f"report: {line}", file=sys.stderr), **options)
    print(f"report: {index.resolve()}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .config import load_experiment
    from .progress import QUIET_ENV

    if getattr(args, "quiet", False):
        os.environ[QUIET_ENV] = "1"
    experiment = load_experiment(args.grid, overrides=args.overrides)
    only = _parse_only(args.only, experiment)
    if args.print_config:
        return _print_config(experiment, args.print_config)
    if args.dry_run:
        return _dry_run(experiment, Path(args.results), only)
    if args.rehearse:
        return _rehearse(args, experiment, only)
    executor = executor_config(experiment, args)
    print(f"grid {experiment.name}: {len(experiment.cells)} cell(s) from {args.grid} -> {args.results}/"
          f"{experiment.name}/")
    return _run_and_report(experiment, args, Path(args.results), Path(args.reports), only, executor=executor)


# rdb run flag -> [executor] key
EXECUTOR_FLAGS = {"executor": "name", "address": "address", "gpus_per_cell": "gpus_per_cell",
                  "cpus_per_cell": "cpus_per_cell", "slurm_partition": "partition", "slurm_time": "time_min"}


def executor_config(experiment, args: argparse.Namespace):
    """The grid's ``[executor]`` with the flags given on the command line on top, its executor name checked."""
    import dataclasses

    from .executors import get_executor

    given = {key: getattr(args, flag) for flag, key in EXECUTOR_FLAGS.items() if getattr(args, flag) is not None}
    config = dataclasses.replace(experiment.executor, **given)
    get_executor(config.name)
    return config


def _run_and_report(experiment, args: argparse.Namespace, results: Path, reports: Path, only, **run_options) -> int:
    """Run the grid's cells, print what ran and failed, render the report (unless --no-report)."""
    from .grid import run_grid
    from .report import check_out_dir

    if not args.no_report:
        check_out_dir(reports)
    start = time.perf_counter()
    summary = run_grid(experiment, results, force=args.force, only=only, **run_options)
    blocked = f", {len(summary.blocked)} not run (a foreign file holds their record)" if summary.blocked else ""
    print(f"{len(summary.ran)} cell(s) ran, {len(summary.skipped)} skipped, {len(summary.failures)} failed{blocked} "
          f"in {time.perf_counter() - start:.0f} s")
    for rec in summary.failures:
        print(f"  failed: {rec['cell_id']}: {rec['error']['message']}")
    if not args.no_report:
        _report(results, reports, **_report_options(experiment))
    return 1 if summary.failures or summary.blocked else 0


def _print_config(experiment, cell_id: str) -> int:
    from .tomlfmt import dumps

    found = [c for c in experiment.cells if c.cell_id == cell_id] or [
        c for c in experiment.cells if c.cell_id.startswith(cell_id)]
    if len(found) != 1:
        known = ", ".join(c.cell_id for c in experiment.cells[:5]) + (" ..." if len(experiment.cells) > 5 else "")
        raise BenchError(f"--print-config {cell_id!r} names {'no' if not found else len(found)} cell(s) of grid "
                         f"{experiment.name!r} (cells: {known})")
    print(dumps(found[0].to_dict()), end="")
    return 0


def _dry_run(experiment, results: Path, only) -> int:
    """The cells and what they need; then the inputs to fetch first (information) and what a run would refuse
    (exit 2 when any cell is refused)."""
    from .dryrun import describe_grid
    from .grid import missing_inputs, refusals

    print(describe_grid(experiment, results, only=only))
    missing, refused = missing_inputs(experiment), refusals(experiment)
    print(f"{len(missing)} input file(s) to fetch or make before a run" + (":" if missing else ""))
    for line in missing:
        print(f"  missing: {line}")
    print(f"{len(refused)} cell(s) a run would refuse" + (":" if refused else ""))
    for line in refused:
        print(f"  refused: {line}")
    return 2 if refused else 0


def _rehearse(args: argparse.Namespace, experiment, only) -> int:
    """Every cell of the grid at toy scale (benchmark.rehearsal): results and report under --rehearsal-dir."""
    from .rehearsal import rehearse

    root = Path(args.rehearsal_dir)
    with rehearse(experiment, root / "inputs" / experiment.name) as toy:
        print(f"rehearsal of {experiment.name}: {len(toy.cells)} cell(s) at toy scale -> {root / 'results'}/"
              f"{experiment.name}/")
        # toy cells run here, whatever the grid's [executor] says
        return _run_and_report(toy, args, root / "results", root / "reports", only, executor="local")


def _report_options(experiment) -> dict:
    """``[report] baseline = {...}`` and/or ``baselines = [{...}, ...]``: the rows the tables test against."""
    options = {k: experiment.report[k] for k in ("baseline", "baselines") if experiment.report.get(k)}
    chosen = ([options["baseline"]] if "baseline" in options else []) + list(options.get("baselines") or [])
    if not all(isinstance(b, dict) for b in chosen):
        raise BenchError("[report] baseline must be a table and baselines a list of tables (axis = value)")
    return options
