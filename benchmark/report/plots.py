"""Plots (matplotlib, Agg), each written as SVG (for the pages) and PNG beside it, readable without colour (markers,
line styles, hatches, annotated values): quality vs latency with the Pareto frontier, a backbone × objective heatmap,
the label-budget curve, per-dataset bars and each cell's training loss and validation curves.

Every function returns the written file names (SVG first), or [] when the data does not warrant the plot."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
matplotlib.rcParams["svg.hashsalt"] = "rerank-distill-bench"  # fixed SVG ids: the same results give the same files
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import BenchError  # noqa: E402

MARKERS = "osD^vP*Xh<>"
LINESTYLES = ("-", "--", "-.", ":")
HATCHES = ("", "//", "..", "xx", "\\\\", "--", "++", "oo", "**", "||")


def _save(fig: plt.Figure, out: Path) -> list[str]:
    fig.tight_layout()
    names = []
    for ext in ("svg", "png"):
        path = out.parent / f"{out.name}.{ext}"  # not with_suffix: names may hold dots
        tmp = path.with_name(f".{path.name}.tmp")
        try:  # written beside, then renamed: a full disk or a kill leaves the previous figure
            fig.savefig(tmp, format=ext, dpi=120, metadata={"Date": None} if ext == "svg" else None)
            os.replace(tmp, path)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            plt.close(fig)
            raise BenchError(f"cannot write report file {str(path)!r}: {err.strerror or err}") from None
        names.append(path.name)
    plt.close(fig)
    return names


def _finish(fig: plt.Figure, ax: plt.Axes, xlabel: str, title: str, out: Path) -> list[str]:
    """Labels, grid and legend shared by the nDCG@10 line and scatter plots; then save."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel("nDCG@10")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    return _save(fig, out)


def _column_label(frame: pd.DataFrame) -> pd.Series:
    """``objective`` alone, or ``objective / teacher`` when the teacher varies."""
    if frame["teacher"].nunique() > 1:
        return frame["objective"].astype(str) + " / " + frame["teacher"].astype(str)
    return frame["objective"].astype(str)


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by any other (lower latency and higher quality are better), sorted by latency."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def quality_vs_latency(frame: pd.DataFrame, dataset: str, out: Path,
                       precisions: pd.DataFrame | None = None) -> list[str]:
    """Scatter of cells (marker = backbone, so it reads without colour) with the Pareto frontier drawn; the other
    precisions of ``precision_frame`` evaluated on ``dataset`` are hollow markers (one per precision), on the front
    too."""
    part = frame[(frame["dataset"] == dataset) & frame["cpu_p50_ms"].notna()]
    if part.empty:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (backbone, g) in enumerate(part.groupby("backbone")):
        ax.scatter(g["cpu_p50_ms"], g["nDCG@10"], marker=MARKERS[i % len(MARKERS)], s=42, label=backbone,
                   edgecolors="black", linewidths=0.5)
    points = list(zip(part["cpu_p50_ms"], part["nDCG@10"]))
    if precisions is not None and not precisions.empty:
        other = precisions[(precisions["dataset"] == dataset) & (precisions["precision"] != "fp32")
                           & precisions["cpu_p50_ms"].notna()]
        for i, (precision, g) in enumerate(other.groupby("precision")):
            ax.scatter(g["cpu_p50_ms"], g["nDCG@10"], marker=MARKERS[::-1][i % len(MARKERS)], s=48,
                       facecolors="none", edgecolors="black", linewidths=1, label=f"{precision} (all backbones)")
        points += list(zip(other["cpu_p50_ms"], other["nDCG@10"]))
    front = pareto_front(points)
    ax.plot(*zip(*front), "k--", lw=1, label="Pareto frontier")
    bm25 = part["first_stage_nDCG@10"].dropna()
    if not bm25.empty:
        ax.axhline(float(bm25.iloc[0]), color="grey", lw=1, ls=":", label="first stage (BM25)")
    return _finish(fig, ax, "CPU latency, p50 ms per query (its eval top-k candidates)", f"Quality vs latency — {dataset}", out)


def heatmap(frame: pd.DataFrame, dataset: str, out: Path) -> list[str]:
    """Backbone × objective(/teacher) grid of nDCG@10 (mean over seeds and other axes), every value written in its
    square; only for at least two backbones and two columns."""
    part = frame[frame["dataset"] == dataset].assign(column=lambda f: _column_label(f))
    grid = part.pivot_table(index="backbone", columns="column", values="nDCG@10", aggfunc="mean")
    if min(grid.shape) < 2:
        return []
    fig, ax = plt.subplots(figsize=(1.4 + 1.25 * grid.shape[1], 1.2 + 0.55 * grid.shape[0]))
    values = grid.to_numpy(dtype=float)
    image = ax.imshow(values, cmap="Greys", vmin=np.nanmin(values) - 0.05, vmax=np.nanmax(values) + 0.05,
                      aspect="auto")
    middle = (np.nanmin(values) + np.nanmax(values)) / 2
    for (i, j), v in np.ndenumerate(values):
        text, colour = ("no cell", "grey") if np.isnan(v) else (f"{v:.3f}", "white" if v > middle else "black")
        ax.text(j, i, text, ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(grid.shape[1]), grid.columns, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(grid.shape[0]), grid.index, fontsize=8)
    ax.set_title(f"nDCG@10 — {dataset}", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.04)
    return _save(fig, out)


def budget_curve(frame: pd.DataFrame, dataset: str, out: Path) -> list[str]:
    """nDCG@10 (mean ± std over seeds) against the label budget ``train.max_queries``, one line per
    objective/teacher (and backbone, when several); only for at least two budgets."""
    part = frame[(frame["dataset"] == dataset) & frame["budget"].notna()]
    if part["budget"].nunique() < 2:
        return []
    keys = ["backbone", "objective", "teacher"] if part["backbone"].nunique() > 1 else ["objective", "teacher"]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (key, g) in enumerate(part.groupby(keys)):
        stats = g.groupby("budget")["nDCG@10"].agg(["mean", "std"]).sort_index()
        ax.errorbar(stats.index, stats["mean"], yerr=stats["std"].fillna(0), marker=MARKERS[i % len(MARKERS)],
                    ls=LINESTYLES[i % len(LINESTYLES)], capsize=3, label=" / ".join(map(str, key)))
    if part["budget"].max() / part["budget"].min() >= 10:
        ax.set_xscale("log")
    return _finish(fig, ax, "label budget: training queries (train.max_queries)", f"Label budget — {dataset}", out)


def dataset_bars(means: pd.DataFrame, out: Path) -> list[str]:
    """Grouped bars: one group per dataset column of ``means`` (rows = table rows, told apart by hatch); only for at
    least two datasets."""
    if means.shape[1] < 2:
        return []
    width = 0.8 / max(len(means), 1)
    fig, ax = plt.subplots(figsize=(max(6.4, 1.2 * means.shape[1] + 0.25 * means.size), 4.2))
    x = np.arange(means.shape[1])
    for i, (label, row) in enumerate(means.iterrows()):
        label = " / ".join(map(str, label)) if isinstance(label, tuple) else str(label)
        ax.bar(x + (i - (len(means) - 1) / 2) * width, row.to_numpy(dtype=float), width, label=label,
               hatch=HATCHES[i % len(HATCHES)], edgecolor="black", linewidth=0.5)
    ax.set_xticks(x, means.columns, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("nDCG@10")
    ax.set_title("nDCG@10 per dataset")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, out)


def loss_curve(points: list[list[float]], title: str, out: Path) -> list[str]:
    """Training loss against optimiser step; [] without points."""
    if not points:
        return []
    steps, losses = zip(*[(p[0], p[1]) for p in points])
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(steps, losses, "k-", marker="o" if len(steps) < 40 else None, ms=3, lw=1)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel("training loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def validation_curve(points: list[list[float]], best_step: int | None, measure: str, title: str,
                     out: Path) -> list[str]:
    """The validation measure against optimiser step, the kept (best) step marked; [] without points."""
    if not points:
        return []
    steps, values = zip(*[(p[0], p[1]) for p in points])
    fig, ax = plt.subplots(figsize=(5.6, 3.4))
    ax.plot(steps, values, "k-", marker="o" if len(steps) < 40 else None, ms=3, lw=1)
    if best_step is not None:
        ax.plot([best_step], [dict(zip(steps, values))[best_step]], "r*", ms=11, label=f"kept: step {best_step}")
        ax.legend(fontsize=8)
    ax.set_xlabel("optimiser step")
    ax.set_ylabel(f"validation {measure}")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    return _save(fig, out)


def operating_points_plot(points, front, dataset: str, measure: str, out: Path) -> list[str]:
    """Each operating point (``benchmark.report.budget.Point``) at its median CPU latency with its interquartile
    range as a horizontal bar (marker = system, hollow for a teacher), labelled with its depth and precision; the
    frontier drawn only between points whose ranges do not overlap; the first stage alone as a horizontal line."""
    timed = [p for p in points if p.role != "first stage"]
    if len(timed) < 2:
        return []
    fig, ax = plt.subplots(figsize=(9.6, 4.6))
    systems = list(dict.fromkeys(p.system for p in timed))
    for i, system in enumerate(systems):
        mine = sorted((p for p in timed if p.system == system), key=lambda p: p.p50)
        teacher = mine[0].role == "teacher"
        ax.errorbar([p.p50 for p in mine], [p.quality for p in mine],
                    xerr=[[p.p50 - p.q1 for p in mine], [p.q3 - p.p50 for p in mine]],
                    fmt=MARKERS[i % len(MARKERS)], ms=6, capsize=2, lw=0.8, color="black",
                    mfc="white" if teacher else None, label=system)
        for p in mine:
            tag = f"{p.depth}" + ("" if p.precision == "fp32" else f" {p.precision}")
            ax.annotate(tag, (p.p50, p.quality), textcoords="offset points", xytext=(4, 3), fontsize=6)
    edges = [p for p in front if p.role != "first stage"]
    if len(edges) > 1:
        ax.plot([p.p50 for p in edges], [p.quality for p in edges], "k--", lw=1,
                label="frontier (steps only between points apart beyond the noise)")
    base = next((p for p in points if p.role == "first stage"), None)
    if base is not None:
        ax.axhline(base.quality, color="grey", lw=1, ls=":", label=FIRST_STAGE_LABEL)
    ax.set_xscale("log")
    ax.set_ylabel(measure)
    ax.set_xlabel("CPU rerank latency per query, ms (median; bar: interquartile range); label: depth, precision")
    ax.set_title(f"Quality vs latency per operating point — {dataset}")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1.01, 1.0))  # beside the axes: points fill them
    return _save(fig, out)


FIRST_STAGE_LABEL = "first stage alone"
