"""Quality at a latency budget: operating points (architecture, precision, rerank depth) with their measured cost
and the quality each system reaches there, the noise-aware frontier, and the budget table (for each per-query
budget, the best quality reachable and what reaches it, beside the first stage alone).

A point's cost is its operating point's CPU latency per query, median and quartiles (``q1``, ``q3``) of one timing
shared by every cell at that point (``benchmark.operating_points``); its quality is the mean over queries of the
seed-averaged per-query values. Two points are *apart* when their interquartile ranges do not overlap; the
frontier only steps between points that are apart, so it never claims a gain in speed inside the timing noise.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import numpy as np

from .stats import holm, randomization_test

DEFAULT_BUDGETS_MS = (10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
FIRST_STAGE = "first stage alone"


@dataclass(frozen=True)
class Point:
    """One system at one operating point: ``label`` says what it is (backbone · objective · teacher, precision,
    depth); ``per_query`` holds seed-averaged values of ``measure``."""

    label: str
    role: str  # "student", "teacher" or "first stage"
    system: str
    precision: str
    depth: int
    p50: float
    q1: float
    q3: float
    quality: float
    per_query: dict[str, float]
    seeds: int

    def apart(self, other: Point) -> bool:
        return self.q3 < other.q1 or other.q3 < self.q1


def _system(axes: dict[str, Any]) -> str:
    return " · ".join(str(v) for k, v in axes.items() if k != "seed")


def _cpu_points(rec: dict[str, Any]) -> dict[tuple[str, str, int], list[dict[str, Any]]]:
    out: dict[tuple[str, str, int], list[dict[str, Any]]] = defaultdict(list)
    for p in (rec.get("latency") or {}).get("operating_points") or []:
        if p.get("device") == "cpu" and p.get("p50_ms") is not None:
            out[(p["role"], p["precision"], int(p["depth"]))].append(p)
    return out


def _cost(figures: list[dict[str, Any]]) -> tuple[float, float, float]:
    """(p50, q1, q3) of an operating point; an ensemble teacher's members run one after another: their sum."""
    return tuple(float(sum(f.get(k, f["p50_ms"]) for f in figures)) for k in ("p50_ms", "q1_ms", "q3_ms"))


def operating_points(records: list[dict[str, Any]], dataset: str, measure: str = "nDCG@10") -> list[Point]:
    """Every timed point on ``dataset`` (the first eval set of its cells, where latency is measured): each student
    system (seeds averaged) at each rerank depth in fp32 and in each ``eval.precision`` row (nDCG@10 only), each
    model teacher at each depth, and the first stage alone at no rerank cost."""
    acc: dict[tuple, dict[str, Any]] = {}

    def add(key: tuple, label: str, role: str, system: str, precision: str, depth: int, cost, per_query, value):
        slot = acc.setdefault(key, {"label": label, "role": role, "system": system, "precision": precision,
                                    "depth": depth, "costs": [], "per_query": defaultdict(list), "values": []})
        slot["costs"].append(cost)
        slot["values"].append(value)
        for q, v in (per_query or {}).items():
            slot["per_query"][q].append(v)

    for rec in records:
        if rec.get("status") != "ok" or dataset not in (rec.get("depths") or {}):
            continue
        points, system = _cpu_points(rec), _system(rec.get("axes") or {})
        first = (rec["metrics"][dataset].get("first_stage") or {})
        if measure in first:
            add(("first stage",), FIRST_STAGE, "first stage", FIRST_STAGE, "-", 0, (0.0, 0.0, 0.0),
                (first.get("per_query") or {}).get(measure), first[measure])
        teacher = ((rec["metrics"][dataset].get("teacher") or {}).get("name"))
        for entry in rec["depths"][dataset]:
            depth = int(entry["depth"])
            student = entry.get("student") or {}
            if points.get(("student", "fp32", depth)) and measure in (student.get("measures") or {}):
                add((system, "fp32", depth), f"{system} · top-{depth}", "student", system, "fp32", depth,
                    _cost(points[("student", "fp32", depth)]), student["per_query"].get(measure),
                    student["measures"][measure])
            mine = entry.get("teacher") or {}
            if teacher and points.get(("teacher", "fp32", depth)) and measure in (mine.get("measures") or {}):
                add(("teacher", teacher, depth), f"teacher {teacher} · top-{depth}", "teacher", f"teacher {teacher}",
                    "fp32", depth, _cost(points[("teacher", "fp32", depth)]), mine["per_query"].get(measure),
                    mine["measures"][measure])
        if measure != "nDCG@10":
            continue
        for precision, row in ((rec.get("latency") or {}).get("precision") or {}).items():
            if precision == "fp32" or not row.get("supported"):
                continue
            by_depth = {int(d): v for d, v in (row.get("depths") or {}).items()}
            by_depth[max(int(e["depth"]) for e in rec["depths"][dataset])] = row
            for depth, v in by_depth.items():
                if points.get(("student", precision, depth)) and v.get("nDCG@10") is not None:
                    add((system, precision, depth), f"{system} · {precision} · top-{depth}", "student", system,
                        precision, depth, _cost(points[("student", precision, depth)]), None, v["nDCG@10"])
    out = []
    for slot in acc.values():
        costs = np.asarray(slot["costs"], dtype=float)
        per_query = {q: float(np.mean(v)) for q, v in slot["per_query"].items()}
        quality = float(np.mean(list(per_query.values()))) if per_query else float(np.mean(slot["values"]))
        out.append(Point(slot["label"], slot["role"], slot["system"], slot["precision"], slot["depth"],
                         *np.median(costs, axis=0).tolist(), quality, per_query, len(slot["values"])))
    return sorted(out, key=lambda p: (p.p50, -p.quality, p.label))


def frontier(points: list[Point]) -> list[Point]:
    """The points worth their cost, cheapest first: each is better than every cheaper point, and consecutive ones
    are apart (non-overlapping interquartile ranges). A better point inside the previous one's noise replaces it:
    the cheaper one was not measurably cheaper."""
    front: list[Point] = []
    for p in sorted(points, key=lambda p: (p.p50, -p.quality)):
        if front and p.quality <= front[-1].quality:
            continue
        while front and not front[-1].apart(p):
            front.pop()
        if front and p.quality <= front[-1].quality:
            continue
        front.append(p)
    return front


@dataclass(frozen=True)
class BudgetRow:
    budget_ms: float | None  # None: the first stage alone
    best: Point
    delta: float | None  # quality minus the first stage's
    p_value: float | None  # paired randomization test against the first stage, Holm-corrected over the rows


def budgets_for(points: list[Point], chosen: list[float] | None = None) -> list[float]:
    """``chosen`` (``[report] budgets_ms``), else the default budgets between the cheapest timed point's cost
    and the costliest one's (one budget above it, where every point fits)."""
    if chosen:
        return sorted(float(b) for b in chosen)
    timed = [p.p50 for p in points if p.role != "first stage"]
    if not timed:
        return []
    wanted = [b for b in DEFAULT_BUDGETS_MS if b >= min(timed)]
    inside = [b for b in wanted if b < max(timed)]
    return [float(b) for b in inside + wanted[len(inside):len(inside) + 1]]


def budget_table(points: list[Point], budgets: list[float]) -> list[BudgetRow]:
    """For each budget, the best point whose median cost fits it (the first stage alone always fits); the tests
    against the first stage's per-query values are corrected together (Holm)."""
    base = next((p for p in points if p.role == "first stage"), None)
    rows = [BudgetRow(None, base, None, None)] if base else []
    picks = []
    for budget in budgets:
        fits = [p for p in points if p.p50 <= budget]
        if fits:
            picks.append((budget, max(fits, key=lambda p: (p.quality, -p.p50))))
    raw = [randomization_test(p.per_query, base.per_query) if base and p.per_query and p is not base else None
           for _, p in picks]
    tested = [r for r in raw if r is not None]
    adjusted = iter(holm(tested)) if tested else iter(())
    for (budget, p), r in zip(picks, raw):
        rows.append(BudgetRow(budget, p, None if base is None else p.quality - base.quality,
                              None if r is None else next(adjusted)))
    return rows
