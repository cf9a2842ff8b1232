"""Command line: ``run_grid.py [GRID.toml]`` runs a grid and renders its report; ``run_grid.py report DIR`` re-renders.

Exit codes: 0 all cells ok, 1 some cell failed (their records say why), 2 bad input (one line on stderr).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .errors import BenchError

DEFAULT_GRID = Path("experiments/default.toml")


def _run_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_grid.py", description="Train and evaluate a grid of distilled rerankers.",
                                epilog="Re-render a report without running: run_grid.py report [RESULTS_DIR]")
    p.add_argument("grid", nargs="?", default=str(DEFAULT_GRID), help="grid TOML (default: %(default)s)")
    p.add_argument("--results", default="results", help="results directory (default: %(default)s)")
    p.add_argument("--reports", default="reports", help="report output directory (default: %(default)s)")
    p.add_argument("--force", action="store_true", help="rerun cells that already have a record")
    p.add_argument("--only", nargs="+", default=[], metavar="AXIS=VALUE",
                   help="run only cells whose axes match, e.g. --only backbone=bert-tiny objective=margin-mse")
    p.add_argument("--executor", default="local", help="local (default) or ray")
    p.add_argument("--address", default=None, help="Ray cluster address for --executor ray")
    p.add_argument("--dry-run", action="store_true", help="list the cells, what they need and what would be refused; "
                   "run nothing")
    p.add_argument("--rehearse", action="store_true",
                   help="run every cell at toy scale (tiny models of each row's architecture, miniature inputs in "
                        "their released layouts, seeds folded), offline on a CPU, and render its report")
    p.add_argument("--rehearsal-dir", default="rehearsal",
                   help="where --rehearse keeps its inputs, results and report (default: %(default)s)")
    p.add_argument("--no-report", action="store_true", help="do not render the report after the grid")
    return p


def _report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_grid.py report", description="Render the HTML report of a results dir.")
    p.add_argument("results", nargs="?", default="results", help="results directory (default: %(default)s)")
    p.add_argument("--out", default="reports", help="output directory (default: %(default)s)")
    return p


def _parse_only(items: list[str]) -> dict[str, str]:
    only = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchError(f"--only expects AXIS=VALUE, got {item!r}")
        only[key] = value
    return only


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        if argv[:1] == ["report"]:
            args = _report_parser().parse_args(argv[1:])
            return _report(Path(args.results), Path(args.out))
        return _run(_run_parser().parse_args(argv))
    except BenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished cells are saved; rerun the same command to resume", file=sys.stderr)
        return 130


# Each subcommand imports its own stack when it runs: ``report`` needs no torch, and ``--help`` or a bad argument
# answers without loading either.
def _report(results: Path, out: Path, **options) -> int:
    from .report import render_report

    index = render_report(results, out, warn=lambda line: print(f"report: {line}", file=sys.stderr), **options)
    print(f"report: {index.resolve()}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from .config import load_experiment
    from .dryrun import describe_grid
    from .grid import missing_inputs, refusals, run_grid
    from .report import check_out_dir

    experiment = load_experiment(args.grid)
    only = _parse_only(args.only)
    if args.dry_run:
        return _dry_run(experiment, Path(args.results), only, describe_grid, missing_inputs, refusals)
    if args.rehearse:
        return _rehearse(args, experiment, only)
    results = Path(args.results)
    if not args.no_report:
        check_out_dir(Path(args.reports))
    print(f"grid {experiment.name}: {len(experiment.cells)} cell(s) from {args.grid} -> {results}/{experiment.name}/")
    start = time.perf_counter()
    options = {"address": args.address} if args.address else {}
    summary = run_grid(experiment, results, executor=args.executor, force=args.force, only=only,
                       executor_options=options)
    blocked = f", {len(summary.blocked)} not run (a foreign file holds their record)" if summary.blocked else ""
    print(f"{len(summary.ran)} cell(s) ran, {len(summary.skipped)} skipped, {len(summary.failures)} failed{blocked} "
          f"in {time.perf_counter() - start:.0f} s")
    for rec in summary.failures:
        print(f"  failed: {rec['cell_id']}: {rec['error']['message']}")
    if not args.no_report:
        _report(results, Path(args.reports), **_report_options(experiment))
    return 1 if summary.failures or summary.blocked else 0


def _dry_run(experiment, results: Path, only, describe_grid, missing_inputs, refusals) -> int:
    """The cells and what they need; then the inputs to fetch first (information) and what a run would refuse
    (exit 2 when any cell is refused)."""
    print(describe_grid(experiment, results, only=only))
    missing, refused = missing_inputs(experiment), refusals(experiment)
    print(f"{len(missing)} input file(s) to fetch or make before a run" + (":" if missing else ""))
    for line in missing:
        print(f"  missing: {line}")
    print(f"{len(refused)} cell(s) a run would refuse" + (":" if refused else ""))
    for line in refused:
        print(f"  refused: {line}")
    return 2 if refused else 0


def _rehearse(args: argparse.Namespace, experiment, only: dict[str, str]) -> int:
    """Every cell of the grid at toy scale (benchmark.rehearsal): results and report under --rehearsal-dir."""
    from .grid import run_grid
    from .rehearsal import rehearse

    root = Path(args.rehearsal_dir)
    results, reports = root / "results", root / "reports"
    start = time.perf_counter()
    with rehearse(experiment, root / "inputs" / experiment.name) as toy:
        print(f"rehearsal of {experiment.name}: {len(toy.cells)} cell(s) at toy scale -> {results}/{experiment.name}/")
        summary = run_grid(toy, results, force=args.force, only=only)
    print(f"rehearsal: {len(summary.ran) - len(summary.failures)} ok, {len(summary.skipped)} skipped, "
          f"{len(summary.failures)} failed in {time.perf_counter() - start:.0f} s")
    for rec in summary.failures:
        print(f"  failed: {rec['cell_id']}: {rec['error']['message']}")
    if not args.no_report:
        _report(results, reports, **_report_options(experiment))
    return 1 if summary.failures or summary.blocked else 0


def _report_options(experiment) -> dict:
    """``[report] baseline = {...}`` and/or ``baselines = [{...}, ...]``: the rows the tables test against."""
    options = {k: experiment.report[k] for k in ("baseline", "baselines") if experiment.report.get(k)}
    chosen = ([options["baseline"]] if "baseline" in options else []) + list(options.get("baselines") or [])
    if not all(isinstance(b, dict) for b in chosen):
        raise BenchError("[report] baseline must be a table and baselines a list of tables (axis = value)")
    return options
