"""The static site: the overview ``index.html``, one page per experiment (``<experiment>/index.html``) and one per
cell (``<experiment>/<cell>.html``, with its loss and validation curves beside it). An experiment's tables, exports
and plots sit beside the overview (``<experiment>-...``). Links are relative, so the site works from ``file://``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ..errors import BenchError
from ..paths import within
from ..results import atomic_write_text, axes_label
from . import budget, plots
from .references import Reference
from .stats import Systems, baseline_label, significance, tiers
from .tables import (AGGREGATE_NAMES, dataset_measures_of, display_quality, latency_table, main_table,
                     precision_frame, quality_table, reference_table, to_markdown)
from .views import (MARKS, budget_frame, budget_view, convergence, families, latency_view, main_references, main_view,
                    marked_latex, points_frame, quality_references, quality_view)

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
TRACEBACK_CHARS = 8000
REFERENCE_PARTS = (("first stage", "first_stage"), ("random order", "random_order"), ("teacher", "teacher"))


def slug(text: str) -> str:
    """A file-name-safe form of an experiment, dataset or cell name (no quoting needed in hrefs); never ``.``,
    ``..`` or a hidden name, so a record's names cannot lead a page out of the report directory."""
    return re.sub(r"[^A-Za-z0-9._=-]+", "-", str(text)).strip("-").lstrip(".") or "_"


def write_file(out_dir: Path, name: str, text: str) -> Path:
    """``out_dir/name`` written atomically (a full disk or a kill leaves the previous file), never outside
    ``out_dir``; an I/O failure is one line naming the file."""
    path = within(out_dir, out_dir / name)
    try:
        atomic_write_text(path, text)
    except OSError as err:
        raise BenchError(f"cannot write report file {str(path)!r}: {err.strerror or err}") from None
    return path


def environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def write_page(env: jinja2.Environment, out_dir: Path, page: str, template: str, **context: Any) -> Path:
    """Render ``template`` to ``out_dir/page``; ``root`` (the way back to ``out_dir``) prefixes every link."""
    root = "../" * (len(Path(page).parts) - 1)
    return write_file(out_dir, page, env.get_template(template).render(root=root, **context))


def export(out_dir: Path, stem: str, numbers: pd.DataFrame, text: pd.DataFrame,
           latex: pd.DataFrame | None = None) -> dict[str, str]:
    """CSV of ``numbers``, Markdown of ``text`` and (given ``latex``) a booktabs LaTeX table; returns the names."""
    names = {"csv": f"{stem}.csv", "md": f"{stem}.md"}
    write_file(out_dir, names["csv"], numbers.to_csv())
    write_file(out_dir, names["md"], to_markdown(text))
    if latex is not None:
        names["tex"] = f"{stem}.tex"
        write_file(out_dir, names["tex"], latex.style.to_latex(hrules=True))
    return names


def cell_page(rec: dict[str, Any]) -> str:
    return f"{slug(rec['experiment'])}/{slug(rec['cell_id'])}.html"


def _number(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _traceback(results_dir: Path, rec: dict[str, Any]) -> str:
    name = str((rec.get("error") or {}).get("traceback_file") or "")
    path = results_dir / rec["experiment"] / name
    if not name or Path(name).name != name or not path.is_file():
        return ""
    return path.read_text(encoding="utf-8", errors="replace")[-TRACEBACK_CHARS:]


def _natural(qid: str) -> list[str | int]:
    """Sort key: q2 before q10 (digit runs compare as numbers; str and int parts alternate, so keys compare)."""
    return [int(part) if i % 2 else part for i, part in enumerate(re.split(r"(\d+)", qid))]


def _per_query(rec: dict[str, Any]) -> list[dict[str, Any]]:
    """Per eval dataset, one row per query with the value of each measure the cell recorded there."""
    out = []
    for dataset, metrics in sorted((rec.get("per_query") or {}).items()):
        names = [m for m in metrics if isinstance(metrics[m], dict)]
        qids = sorted({q for m in names for q in metrics[m]}, key=_natural)
        rows = [(q, *(_number(metrics[m].get(q, "")) for m in names)) for q in qids]
        out.append({"dataset": dataset, "measures": names, "rows": rows})
    return out


def cell_context(rec: dict[str, Any], out_dir: Path, results_dir: Path) -> dict[str, Any]:
    """Everything the cell page shows; writes its training loss and validation curves."""
    page = cell_page(rec)
    curve = (rec.get("train") or {}).get("loss_curve") or []
    validation = (rec.get("train") or {}).get("validation") or {}
    (out_dir / page).parent.mkdir(parents=True, exist_ok=True)
    stem = page.removesuffix(".html")
    loss = plots.loss_curve(curve, f"Training loss — {rec['cell_id']}", out_dir / f"{stem}-loss")
    measure = str(validation.get("measure", ""))
    val_plot = plots.validation_curve(validation.get("curve") or [], validation.get("best_step"), measure,
                                      f"Validation on {validation.get('dataset')} — {rec['cell_id']}",
                                      out_dir / f"{stem}-validation")
    metrics = [{"dataset": d, "values": [(k, _number(v)) for k, v in m.items() if not isinstance(v, dict)]
                + [(f"{label} {k}", _number(v)) for label, part in REFERENCE_PARTS
                   for k, v in (m.get(part) or {}).items() if not isinstance(v, dict)]}
               for d, m in sorted((rec.get("metrics") or {}).items())]
    latency = [{"device": device, "values": [(k, _number(v)) for k, v in sorted(lat.items())
                                             if not isinstance(v, (dict, list))]}
               for device, lat in sorted((rec.get("latency") or {}).items()) if isinstance(lat, dict) and lat]
    train = [(k, _number(v)) for k, v in sorted((rec.get("train") or {}).items())
             if k not in ("loss_curve", "validation")]
    error = rec.get("error") or {}
    return {"id": rec["cell_id"], "files": cell_files(rec, out_dir / page, results_dir),
            "experiment": rec["experiment"], "status": rec.get("status", ""), "page": page,
            "experiment_page": f"{slug(rec['experiment'])}/index.html", "config_hash": rec.get("config_hash", ""),
            "axes": [(k, str(v)) for k, v in (rec.get("axes") or {}).items()], "metrics": metrics,
            "per_query": _per_query(rec), "latency": latency, "train": train,
            "loss_plot": loss[0] if loss else "", "validation_plot": val_plot[0] if val_plot else "",
            "validation": [(k, _number(v)) for k, v in sorted(validation.items()) if k != "curve"],
            "config": json.dumps(rec.get("config"), indent=1, sort_keys=True),
            "provenance": json.dumps(rec.get("provenance"), indent=1, sort_keys=True),
            "error": {"type": str(error.get("type", "")), "message": str(error.get("message", "")),
                      "traceback": _traceback(results_dir, rec)} if rec.get("status") != "ok" else None}


def cell_files(rec: dict[str, Any], page: Path, results_dir: Path) -> list[tuple[str, str, str]]:
    """(what, link from ``page``, file name) for each file the cell left beside its record that is still there:
    the reranked run per dataset (with the first stage it reranked) and the saved student's directory."""
    experiment_dir = results_dir / rec["experiment"]
    named = [(f"reranked run on {dataset} (first stage {r.get('first_stage_name') or r.get('first_stage')}, "
              f"top-{r.get('rerank_depth')})", str(r.get("reranked", "")))
             for dataset, r in sorted((rec.get("runs") or {}).items()) if isinstance(r, dict)]
    if rec.get("model"):
        named.append(("saved student (transformers / sentence-transformers directory, model card README.md)",
                      str(rec["model"])))
    out = []
    for what, name in named:
        path = experiment_dir / name
        # Only files under the experiment's directory: a record's names are never followed elsewhere.
        if name and path.resolve().is_relative_to(experiment_dir.resolve()) and path.exists():
            out.append((what, os.path.relpath(path.resolve(), page.parent.resolve()), name))
    return out


def protocols(recs: list[dict[str, Any]]) -> dict[str, str]:
    """Per eval dataset, the first stage, depths and measures its cells ran with (distinct ones joined by " / ")."""
    seen: dict[str, list[str]] = {}
    for rec in recs:
        for dataset, m in (rec.get("metrics") or {}).items():
            info = m.get("first_stage_info")
            if rec.get("status") == "ok" and info:
                text = (f"first stage {info['name']} top-{info['depth']}, reranked top-{info['rerank_depth']}; "
                        f"measures {', '.join(info['measures'])}")
                seen.setdefault(dataset, [])
                if text not in seen[dataset]:
                    seen[dataset].append(text)
    return {d: " / ".join(texts) for d, texts in sorted(seen.items())}


def _main(name: str, part: pd.DataFrame, recs: list[dict[str, Any]], out_dir: Path,
          references: dict[tuple[str, ...], list[Reference]]) -> dict[str, Any]:
    table = main_table(part)
    main = main_references(main_view(table, references, recs, _retention(part, main_table)), reference_table(part))
    exports = export(out_dir, slug(f"{name}-main-ndcg10"), main.numbers, main.text, main.latex)
    datasets = [d for d in table["mean"].columns if d not in AGGREGATE_NAMES]
    bars = plots.dataset_bars(table["mean"][datasets], out_dir / slug(f"{name}-datasets"))
    return {"view": main.view, "citations": main.citations, "exports": exports, "bars": bars[:1],
            "compared": main.compared}


def _retention(part: pd.DataFrame, build):
    """``build`` (main_table or quality_table) over the cells' retention of their teacher; None when no cell has it."""
    return build(part, "retention") if part["retention"].notna().any() else None


def _dataset_tables(name: str, part: pd.DataFrame, recs: list[dict[str, Any]], out_dir: Path,
                    baselines: list[dict[str, str]], measures: list[str] | None = None) -> list[dict[str, Any]]:
    """Per eval dataset and measure (``[report] measures``, else the dataset's own: its official measures and
    Judged@10), the quality table with significance marks and tiers; nDCG@10's also carries the plots, the
    verdict of objective families and the convergence note."""
    out = []
    labels = [baseline_label(b) for b in baselines]
    retention = _retention(part, quality_table) or {}
    refs = reference_table(part)
    for dataset in sorted(part["dataset"].unique()):
        rows = part[part["dataset"] == dataset]
        first = rows["first_stage_nDCG@10"].dropna()
        for measure in [m for m in measures or dataset_measures_of(recs, dataset) if m in rows and rows[m].notna().any()]:
            table = quality_table(rows, measure)[dataset]
            stem = slug(f"{name}-{dataset}")
            shown = display_quality(table)
            main = measure == "nDCG@10"
            figures = [] if not main else [
                (plots.quality_vs_latency(part, dataset, out_dir / f"{stem}-pareto", precision_frame(recs)),
                 "nDCG@10 versus CPU latency, Pareto frontier dashed"),
                (plots.heatmap(part, dataset, out_dir / f"{stem}-heatmap"),
                 "nDCG@10 per backbone and objective, values written in the squares"),
                (plots.budget_curve(part, dataset, out_dir / f"{stem}-budget"),
                 "nDCG@10 versus label budget (training queries), one line per objective and teacher")]
            tier_of, _ = tiers(Systems.from_records(recs, dataset, measure))
            view = quality_view(table, significance(recs, dataset, baselines, measure), labels, tier_of,
                                retention.get(dataset) if main else None)
            latex = marked_latex(view, shown)
            out.append({"dataset": dataset, "measure": measure,
                        "view": quality_references(view, refs, dataset) if main else view,
                        "baselines": list(zip(MARKS, labels)),
                        "exports": export(out_dir, f"{stem}-{re.sub(r'[^a-z0-9]+', '', measure.lower())}",
                                          table["mean"].round(4), shown, latex),
                        "first_stage": f"{first.iloc[0]:.3f}" if len(first) else "",
                        "families": families(recs, dataset) if main else "",
                        "convergence": convergence(recs) if main else "",
                        "plots": [{"src": names[0], "alt": alt} for names, alt in figures if names]})
    return out


def _budgets(name: str, recs: list[dict[str, Any]], out_dir: Path, chosen: list[float] | None
             ) -> list[dict[str, Any]]:
    """Per eval dataset with timed operating points: the latency-budget table, every point and the frontier plot."""
    out = []
    for dataset in sorted({d for r in recs for d in (r.get("depths") or {})}):
        points = budget.operating_points(recs, dataset)
        if sum(p.role != "first stage" for p in points) < 1:
            continue
        front = budget.frontier(points)
        rows = budget.budget_table(points, budget.budgets_for(points, chosen))
        stem = slug(f"{name}-{dataset}")
        table = budget_frame(rows, "nDCG@10").set_index("budget_ms")
        every = points_frame(points, front)
        plot = plots.operating_points_plot(points, front, dataset, "nDCG@10", out_dir / f"{stem}-points")
        out.append({"dataset": dataset, "view": budget_view(rows, "nDCG@10"),
                    "exports": export(out_dir, f"{stem}-budget-table", table, table),
                    "points": export(out_dir, f"{stem}-operating-points", every, every),
                    "n_points": len(points), "n_front": len(front),
                    "plot": plot[0] if plot else ""})
    return out


def transfer_note(recs: list[dict[str, Any]]) -> str:
    """One line where every eval set is the embedded collection: its numbers say nothing about real text."""
    rows = [((r.get("config") or {}).get("datasets") or {}).get(d) or {}
            for r in recs for d in ((r.get("config") or {}).get("eval") or {}).get("datasets") or []]
    if not rows or any(row.get("source") != "embedded" for row in rows):
        return ""
    return ("These numbers come from the embedded, generated collection: they show the suite's machinery and how the "
            "recipes compare on it, not how they do on real text. For real text, add an ir_datasets eval set "
            "(--set 'eval.datasets=[\"vaswani\"]' or a grid over ir_datasets ids).")


def recorded_report(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The ``[report]`` settings of the newest of ``records`` that carries them ({} for records older than that)."""
    carrying = [r for r in records if isinstance((r.get("config") or {}).get("report"), dict)]
    newest = max(carrying, key=lambda r: str((r.get("provenance") or {}).get("finished", "")), default=None)
    return newest["config"]["report"] if newest else {}


def experiment_context(name: str, recs: list[dict[str, Any]], part: pd.DataFrame, out_dir: Path,
                       baselines: list[dict[str, str]], references: dict[tuple[str, ...], list[Reference]]
                       ) -> dict[str, Any]:
    """One experiment's tables, exports and plots (written beside the overview) and its cells' summaries."""
    cells = [{"id": r["cell_id"], "page": cell_page(r), "status": r.get("status", ""),
              "axes": axes_label(r.get("axes") or {}),
              "message": str((r.get("error") or {}).get("message", ""))} for r in recs]
    exp: dict[str, Any] = {"name": name, "page": f"{slug(name)}/index.html", "n": len(recs),
                           "n_ok": sum(r.get("status") == "ok" for r in recs), "cells": cells,
                           "failures": [c for c in cells if c["status"] != "ok"],
                           "main": None, "tables": [], "latency": None, "protocols": {}, "budgets": [],
                           "transfer": "",
                           "rehearsal": any((r.get("config") or {}).get("origin") for r in recs)}
    if part.empty:
        return exp
    settings = recorded_report(recs)
    exp["main"] = _main(name, part, recs, out_dir, references)
    exp["budgets"] = _budgets(name, recs, out_dir, settings.get("budgets_ms"))
    exp["transfer"] = transfer_note(recs)
    exp["tables"] = _dataset_tables(name, part, recs, out_dir, baselines, settings.get("measures"))
    exp["protocols"] = protocols(recs)
    lat = latency_table(part, precision_frame(recs))
    if lat.columns.empty:
        return exp
    exp["latency"] = {"view": latency_view(lat), "exports": export(out_dir, slug(f"{name}-latency"), lat, lat)}
    return exp
