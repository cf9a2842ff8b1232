"""Significance against a baseline row: paired two-sided t-tests on per-query nDCG@10, Holm–Bonferroni corrected."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values (Holm 1979), in input order."""
    m = len(pvalues)
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def per_query_means(records: list[dict[str, Any]], dataset: str, metric: str = "nDCG@10"
                    ) -> dict[tuple, dict[str, float]]:
    """(axes without seed) -> qid -> value averaged over seeds."""
    sums: dict[tuple, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        values = ((rec.get("per_query") or {}).get(dataset) or {}).get(metric)
        if rec.get("status") != "ok" or not values:
            continue
        key = tuple(sorted((k, str(v)) for k, v in rec["axes"].items() if k != "seed"))
        for q, v in values.items():
            sums[key][q].append(v)
    return {k: {q: float(np.mean(v)) for q, v in qs.items()} for k, qs in sums.items()}


def significance(records: list[dict[str, Any]], dataset: str, baseline: dict[str, str]) -> dict[tuple, float]:
    """Holm-adjusted p-value of every non-baseline row vs the baseline row that shares its other axes."""
    rows = per_query_means(records, dataset)
    tests: list[tuple[tuple, float]] = []
    for key, values in rows.items():
        axes = dict(key)
        if all(axes.get(k) == v for k, v in baseline.items()):
            continue
        base_key = tuple(sorted({**axes, **baseline}.items()))
        base = rows.get(base_key)
        if not base:
            continue
        common = sorted(set(values) & set(base))
        a, b = np.array([values[q] for q in common]), np.array([base[q] for q in common])
        if len(common) < 2 or np.allclose(a, b):
            tests.append((key, 1.0))
            continue
        tests.append((key, float(stats.ttest_rel(a, b).pvalue)))
    adjusted = holm([p for _, p in tests])
    return {key: p for (key, _), p in zip(tests, adjusted)}
