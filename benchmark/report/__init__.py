"""The report: a static HTML site (plus CSV/Markdown/LaTeX tables and SVG/PNG plots) rendered from the results
directory alone. ``index.html`` is the overview; see :mod:`benchmark.report.site` for the pages."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import BenchError
from ..results import scan_results
from .references import REFERENCE_CSV, load_references
from .site import cell_context, environment, experiment_context, recorded_report, write_page
from .tables import cells_frame
from .views import provenance

DEFAULT_BASELINE = {"objective": "bce", "teacher": "labels"}


def _recorded(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    report = recorded_report(records)
    return ([report["baseline"]] if report.get("baseline") else []) + list(report.get("baselines") or [])


def _baselines(chosen: list[dict[str, Any]]) -> list[dict[str, str]]:
    return [{k: str(v) for k, v in b.items()} for b in chosen or [DEFAULT_BASELINE]]


def check_out_dir(out_dir: Path) -> None:
    """The report's output directory is a directory (or can become one): one line otherwise."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise BenchError(f"report output {str(out_dir)!r} is a file, not a directory")
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BenchError(f"cannot create report directory {str(out_dir)!r}: {err.strerror or err}") from None


def render_report(results_dir: Path, out_dir: Path, *, baseline: dict[str, str] | None = None,
                  baselines: list[dict[str, str]] | None = None, references: Path | None = REFERENCE_CSV,
                  warn: Callable[[str], None] | None = None) -> Path:
    """Render ``out_dir/index.html``, the experiment and cell pages, tables and plots from every usable record
    under ``results_dir``. Rows are tested against ``baseline`` and every row of ``baselines`` where given, else
    against the baselines each experiment's records carry (their grid's ``[report]`` settings), else BCE on labels;
    ``references`` is the CSV of published numbers (None or a missing file: no comparison). Files that are not
    usable records and records superseded by a newer configuration are left out of the tables and listed on the
    overview (and passed to ``warn``, one line each)."""
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    scan = scan_results(results_dir)
    records = scan.records
    left_out = ([(str(p.relative_to(results_dir)), why) for p, why in scan.skipped]
                + [(f"{r['experiment']}/{r['cell_id']}.json", why) for r, why in scan.superseded])
    for name, why in left_out if warn else []:
        warn(f"left out {name}: {why}")
    check_out_dir(out_dir)
    override = ([baseline] if baseline else []) + list(baselines or [])
    published = load_references(references)
    env = environment()
    frame = cells_frame(records)
    common = {"provenance": provenance(records)}
    experiments = []
    for name in sorted({r["experiment"] for r in records}):
        recs = [r for r in records if r["experiment"] == name]
        part = frame[frame["experiment"] == name] if not frame.empty else frame
        exp = experiment_context(name, recs, part, out_dir, _baselines(override or _recorded(recs)), published)
        for rec in recs:
            cell = cell_context(rec, out_dir, results_dir)
            write_page(env, out_dir, cell["page"], "cell.html.j2", cell=cell, **common)
        write_page(env, out_dir, exp["page"], "experiment.html.j2", exp=exp, **common)
        experiments.append(exp)
    return write_page(env, out_dir, "index.html", "index.html.j2", experiments=experiments, left_out=left_out,
                      **common)
