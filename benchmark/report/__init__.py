"""The report: a static HTML page (plus CSV/Markdown tables and plots) rendered from the results directory alone."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import jinja2
import pandas as pd

from ..results import load_records
from .plots import quality_vs_latency
from .stats import ALPHA, significance
from .tables import cells_frame, display_quality, latency_table, quality_table, to_markdown

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def _env() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def _ranks(means: pd.DataFrame) -> dict[tuple[int, int], str]:
    """(row, col) -> 'best' / 'second' per column of a means table."""
    marks = {}
    for j, col in enumerate(means.columns):
        order = means[col].dropna().sort_values(ascending=False)
        for label, rank in zip(order.index[:2], ("best", "second")):
            marks[(means.index.get_loc(label), j)] = rank
    return marks


def _table_view(table: pd.DataFrame, pvalues: dict[tuple, float]) -> dict[str, Any]:
    shown = display_quality(table)
    marks = _ranks(table["mean"])
    index_names = [str(n) for n in shown.index.names]
    tested = [(dict(key), p) for key, p in pvalues.items()]
    rows = []
    for i, (label, values) in enumerate(shown.iterrows()):
        label = label if isinstance(label, tuple) else (label,)
        row_axes = {n: str(x) for n, x in zip(index_names, label)}
        cells = []
        for j, (col, text) in enumerate(zip(shown.columns, values)):
            want = {**row_axes, "objective": str(col[0]), "teacher": str(col[1])}
            p = next((p for axes, p in tested if all(axes.get(k) == v for k, v in want.items())), None)
            sig = p is not None and p < ALPHA
            cells.append({"text": text + (" †" if sig and text else ""), "mark": marks.get((i, j), ""),
                          "title": "" if p is None else f"Holm-adjusted p = {p:.3g}"})
        rows.append({"label": [str(x) for x in label], "cells": cells})
    return {"index": index_names, "columns": [list(map(str, c)) for c in shown.columns], "rows": rows}


def _families(part: pd.DataFrame) -> str:
    """The seed papers' question: do pairwise/listwise objectives beat pointwise ones here?"""
    from scipy import stats

    from ..objectives import OBJECTIVES

    fam = part["objective"].map(lambda o: OBJECTIVES.get(o).family if o in OBJECTIVES else "other")
    point = part.loc[fam == "pointwise", "nDCG@10"]
    rest = part.loc[fam.isin(["pairwise", "listwise"]), "nDCG@10"]
    if len(point) < 2 or len(rest) < 2:
        return ""
    p = float(stats.ttest_ind(rest, point, equal_var=False).pvalue)
    verdict = ("beat" if rest.mean() > point.mean() else "trail") if p < ALPHA else "do not clearly differ from"
    return (f"Pairwise/listwise objectives ({rest.mean():.3f} ± {rest.std():.3f} over {len(rest)} cells) {verdict} "
            f"pointwise ones ({point.mean():.3f} ± {point.std():.3f} over {len(point)} cells); Welch t-test p = "
            f"{p:.3g}.")


def _provenance(records: list[dict[str, Any]]) -> dict[str, Any]:
    prov = [r.get("provenance") or {} for r in records]
    hardware = Counter(str((p.get("hardware") or {}).get("cpu")) for p in prov)
    gpus = Counter(str((p.get("hardware") or {}).get("gpu")) for p in prov if (p.get("hardware") or {}).get("gpu"))
    versions = (prov[-1].get("versions") or {}) if prov else {}
    return {"shas": sorted({str(p.get("git_sha")) for p in prov}), "cpus": sorted(hardware), "gpus": sorted(gpus),
            "versions": versions, "newest": max((str(p.get("finished", "")) for p in prov), default="")}


DEFAULT_BASELINE = {"objective": "bce", "teacher": "labels"}


def render_report(results_dir: Path, out_dir: Path, *, baseline: dict[str, str] | None = None) -> Path:
    """Render ``out_dir/index.html`` (and tables/plots beside it) from every record under ``results_dir``."""
    records = load_records(Path(results_dir))
    baseline = {k: str(v) for k, v in (baseline or DEFAULT_BASELINE).items()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    frame = cells_frame(records)
    experiments = []
    for name in sorted({r["experiment"] for r in records}):
        recs = [r for r in records if r["experiment"] == name]
        part = frame[frame["experiment"] == name] if not frame.empty else frame
        exp: dict[str, Any] = {"name": name, "n_ok": sum(r["status"] == "ok" for r in recs), "n": len(recs),
                               "failures": [{"cell": r["cell_id"], "message": (r.get("error") or {}).get("message", "")}
                                            for r in recs if r["status"] != "ok"],
                               "tables": [], "latency": None, "plots": []}
        if not part.empty:
            for dataset, table in quality_table(part).items():
                stem = f"{name}-{dataset}-ndcg10"
                table["mean"].round(4).to_csv(out_dir / f"{stem}.csv")
                (out_dir / f"{stem}.md").write_text(to_markdown(display_quality(table)), encoding="utf-8")
                (out_dir / f"{stem}.tex").write_text(display_quality(table).style.to_latex(hrules=True),
                                                     encoding="utf-8")
                rows = part[part["dataset"] == dataset]
                first = rows["first_stage_nDCG@10"].dropna()
                exp["tables"].append({"dataset": dataset, "view": _table_view(table, significance(recs, dataset,
                                                                                                  baseline)),
                                      "csv": f"{stem}.csv", "md": f"{stem}.md", "tex": f"{stem}.tex",
                                      "first_stage": f"{first.iloc[0]:.3f}" if len(first) else "",
                                      "families": _families(rows)})
                exp["plots"] += quality_vs_latency(part, dataset, out_dir / f"{name}-{dataset}-pareto")[:1]
            lat = latency_table(part)
            lat.to_csv(out_dir / f"{name}-latency.csv")
            (out_dir / f"{name}-latency.md").write_text(to_markdown(lat), encoding="utf-8")
            exp["latency"] = {"columns": list(lat.columns), "csv": f"{name}-latency.csv", "md": f"{name}-latency.md",
                              "rows": [{"label": str(i), "cells": ["" if pd.isna(v) else f"{v:g}" for v in row]}
                                       for i, row in lat.iterrows()]}
        experiments.append(exp)
    html = _env().get_template("index.html.j2").render(experiments=experiments, provenance=_provenance(records),
                                                       baseline=" / ".join(f"{k} {v}" for k, v in baseline.items()))
    index = out_dir / "index.html"
    index.write_text(html, encoding="utf-8")
    return index
