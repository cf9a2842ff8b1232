"""Plots (matplotlib, Agg): quality vs latency with the Pareto frontier. SVG for the page, PNG alongside."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

MARKERS = "osD^vP*Xh<>"


def pareto_front(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Points not dominated by any other (lower latency and higher quality are better), sorted by latency."""
    front, best = [], float("-inf")
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            front.append((x, y))
            best = y
    return front


def quality_vs_latency(frame: pd.DataFrame, dataset: str, out: Path) -> list[str]:
    """Scatter of cells (marker = backbone, so it reads without colour) with the Pareto frontier drawn."""
    part = frame[(frame["dataset"] == dataset) & frame["cpu_p50_ms"].notna()]
    if part.empty:
        return []
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (backbone, g) in enumerate(part.groupby("backbone")):
        ax.scatter(g["cpu_p50_ms"], g["nDCG@10"], marker=MARKERS[i % len(MARKERS)], s=42, label=backbone,
                   edgecolors="black", linewidths=0.5)
    front = pareto_front(list(zip(part["cpu_p50_ms"], part["nDCG@10"])))
    ax.plot(*zip(*front), "k--", lw=1, label="Pareto frontier")
    bm25 = part["first_stage_nDCG@10"].dropna()
    if not bm25.empty:
        ax.axhline(float(bm25.iloc[0]), color="grey", lw=1, ls=":", label="first stage (BM25)")
    ax.set_xlabel("CPU latency, p50 ms per query (100 candidates)")
    ax.set_ylabel("nDCG@10")
    ax.set_title(f"Quality vs latency — {dataset}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    names = []
    for ext in ("svg", "png"):
        path = out.with_suffix(f".{ext}")
        fig.savefig(path, dpi=120, metadata={"Date": None} if ext == "svg" else None)
        names.append(path.name)
    plt.close(fig)
    return names
