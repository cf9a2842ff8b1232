"""Records -> pandas tables: effectiveness per (backbone, objective, teacher, ...) and latency per backbone."""

from __future__ import annotations

from typing import Any

import pandas as pd

STANDARD_AXES = ("backbone", "objective", "teacher")


def cells_frame(records: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (ok cell, eval dataset): axes, metrics, first-stage metrics, CPU/GPU latency."""
    rows = []
    for rec in records:
        if rec.get("status") != "ok":
            continue
        lat = rec.get("latency") or {}
        cpu, gpu = lat.get("cpu") or {}, lat.get("cuda") or {}
        for dataset, m in (rec.get("metrics") or {}).items():
            rows.append({
                "experiment": rec["experiment"], "cell_id": rec["cell_id"], **rec.get("axes", {}),
                "dataset": dataset, "nDCG@10": m.get("nDCG@10"), "RR@10": m.get("RR@10"),
                "first_stage_nDCG@10": (m.get("first_stage") or {}).get("nDCG@10"),
                "first_stage_R@100": (m.get("first_stage") or {}).get("R@100"),
                "cpu_p50_ms": cpu.get("p50_ms"), "cpu_p95_ms": cpu.get("p95_ms"),
                "cpu_pairs_per_s": cpu.get("pairs_per_s"), "cpu_peak_rss_mb": cpu.get("peak_rss_mb"),
                "gpu_p50_ms": gpu.get("p50_ms"), "gpu_p95_ms": gpu.get("p95_ms"),
                "gpu_pairs_per_s": gpu.get("pairs_per_s"), "gpu_peak_mb": gpu.get("peak_memory_mb"),
                "train_s": (rec.get("train") or {}).get("seconds"),
            })
    return pd.DataFrame(rows)


def row_axes(frame: pd.DataFrame) -> list[str]:
    """Axes that identify a table row: backbone plus every varying non-seed axis except the column axes."""
    extra = [c for c in frame.columns if "." in c and frame[c].nunique(dropna=False) > 1]
    return ["backbone", *extra]


def quality_table(frame: pd.DataFrame, metric: str = "nDCG@10") -> dict[str, pd.DataFrame]:
    """Per dataset: rows = backbone (+ varying train axes), columns = (objective, teacher), mean and std over seeds."""
    out = {}
    for dataset, part in frame.groupby("dataset", sort=True):
        rows = row_axes(part)
        g = part.groupby([*rows, "objective", "teacher"], dropna=False)[metric]
        stats = g.agg(["mean", "std", "count"]).reset_index()
        out[dataset] = stats.pivot_table(index=rows, columns=["objective", "teacher"], values=["mean", "std", "count"],
                                         dropna=False)
    return out


def latency_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Median over a backbone's cells (latency depends on the architecture, not the objective or teacher)."""
    cols = [c for c in ("cpu_p50_ms", "cpu_p95_ms", "cpu_pairs_per_s", "cpu_peak_rss_mb", "gpu_p50_ms", "gpu_p95_ms",
                        "gpu_pairs_per_s", "gpu_peak_mb") if c in frame and frame[c].notna().any()]
    return frame.drop_duplicates("cell_id").groupby("backbone")[cols].median().round(2)


def to_markdown(df: pd.DataFrame) -> str:
    """GitHub-flavoured Markdown table (no tabulate dependency)."""
    flat = df.reset_index()
    flat.columns = [" / ".join(map(str, c)).strip(" /") if isinstance(c, tuple) else str(c) for c in flat.columns]
    lines = ["| " + " | ".join(flat.columns) + " |", "|" + "---|" * len(flat.columns)]
    lines += ["| " + " | ".join("" if pd.isna(v) else str(v) for v in row) + " |" for row in flat.itertuples(False)]
    return "\n".join(lines) + "\n"


def display_quality(table: pd.DataFrame) -> pd.DataFrame:
    """``mean ± std`` strings (std only when several seeds) for the page and the Markdown export."""
    means, stds, counts = table["mean"], table["std"], table["count"]
    shown = means.copy().astype(object)
    for col in means.columns:
        shown[col] = [("" if pd.isna(m) else f"{m:.3f}" + (f" ± {s:.3f}" if n and n > 1 and not pd.isna(s) else ""))
                      for m, s, n in zip(means[col], stds[col], counts[col])]
    return shown
