"""Command line: ``run_grid.py [GRID.toml]`` runs a grid and renders its report; ``run_grid.py report DIR`` re-renders.

Exit codes: 0 all cells ok, 1 some cell failed (their records say why), 2 bad input (one line on stderr).
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
    p.add_argument("--dry-run", action="store_true", help="list the cells and what they need; run nothing")
    p.add_argument("--no-report", action="store_true", help="do not render the report after the grid")
    return p


def _report_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="run_grid.py report", description="Render the HTML report of a results dir.")
    p.add_argument("results", nargs="?", default="results", help="results directory (default: %(default)s)")
    p.add_argument("--out", default="reports", help="output directory (default: %(default)s)")
    return p


def _parse_only(items: list[str], experiment: Experiment) -> dict[str, str]:
    """``AXIS=VALUE`` filters, each axis once, checked against the grid's cells (:func:`benchmark.grid.check_only`)."""
    from .grid import check_only

    only: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key or not value:
            raise BenchError(f"--only expects AXIS=VALUE, got {item!r}")
        if key in only:
            raise BenchError(f"--only names axis {key!r} twice ({key}={only[key]} and {item})")
        only[key] = value
    check_only(experiment, only)
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
    from .grid import check_inputs, missing_inputs, run_grid
    from .report import check_out_dir

    experiment = load_experiment(args.grid)
    only = _parse_only(args.only, experiment)
    if args.dry_run:
        print(describe_grid(experiment, Path(args.results), only=only))
        for line in missing_inputs(experiment):  # the listing stands; then what a run would refuse, a line each
            print(f"missing: {line}")
        check_inputs(experiment)
        return 0
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


def _report_options(experiment) -> dict:
    """``[report] baseline = {...}`` and/or ``baselines = [{...}, ...]``: the rows the tables test against."""
    options = {k: experiment.report[k] for k in ("baseline", "baselines") if experiment.report.get(k)}
    chosen = ([options["baseline"]] if "baseline" in options else []) + list(options.get("baselines") or [])
    if not all(isinstance(b, dict) for b in chosen):
        raise BenchError("[report] baseline must be a table and baselines a list of tables (axis = value)")
    return options
