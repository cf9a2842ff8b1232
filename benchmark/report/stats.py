"""Statistics over seeds and queries: which systems (rows without the seed axis) differ, against baselines and as
tiers.

**The pairwise test.** Two systems A and B are compared on one dataset by two tests; they *differ* only when both
reject, so the combined p-value is the larger of the two (an intersection–union test, Berger 1982, level α whenever
each part is):

1. *Queries*: a paired two-sided randomization test (Fisher's sign-flip test, the test Smucker, Allan & Carterette
   2007, CIKM, recommend for IR evaluation) on per-query values averaged over each system's seeds, over the queries
   both systems hold. The statistic is the sum of the per-query differences d_q = A_q − B_q; under the null each d_q
   is equally likely ±d_q. With at most ``EXACT_MAX`` non-zero differences every sign vector is enumerated (exact p =
   share of vectors with |Σ ±d_q| ≥ |Σ d_q|); otherwise ``PERMUTATIONS`` seeded random sign vectors give
   p = (1 + #{|T*| ≥ |T|}) / (1 + ``PERMUTATIONS``) (Phipson & Smyth 2010).
2. *Seeds*: when both systems have at least two seeds, a two-sided Welch t-test on their per-seed means (the cells'
   aggregate values), so a gap that seed-to-seed spread explains is not called a difference. With fewer seeds only
   the query test applies.

Several tests are corrected together with Holm–Bonferroni (Holm 1979).

**Tiers** (``tiers``): all pairs of the table's systems are tested and Holm-corrected as one family. Systems are
sorted by their mean (over queries of the seed-averaged values); the best remaining system leads a new tier, which
holds it and every remaining system that does not differ from it; those leave and the next tier is formed the same
way. So every system shares a tier with the best system it is not significantly worse than among those left, and
tiers do not overlap (unlike a compact letter display, Piepho 2004).
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

ALPHA = 0.05
PERMUTATIONS = 10_000
EXACT_MAX = 12  # 2**12 = 4096 sign vectors: enumerate instead of sampling
SEED = 0  # the randomization test's sign vectors are seeded: the report is a pure function of the records

Key = tuple[tuple[str, str], ...]  # a system: its sorted (axis, value) pairs without the seed


def holm(pvalues: list[float]) -> list[float]:
    """Holm–Bonferroni step-down adjusted p-values (Holm 1979), in input order."""
    m = len(pvalues)
    order = np.argsort(pvalues)
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def system_key(rec: dict[str, Any]) -> Key:
    return tuple(sorted((k, str(v)) for k, v in rec["axes"].items() if k != "seed"))


def per_query_means(records: list[dict[str, Any]], dataset: str, metric: str = "nDCG@10"
                    ) -> dict[Key, dict[str, float]]:
    """(axes without seed) -> qid -> value averaged over seeds."""
    sums: dict[Key, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        values = ((rec.get("per_query") or {}).get(dataset) or {}).get(metric)
        if rec.get("status") != "ok" or not values:
            continue
        for q, v in values.items():
            sums[system_key(rec)][q].append(v)
    return {k: {q: float(np.mean(v)) for q, v in qs.items()} for k, qs in sums.items()}


def seed_means(records: list[dict[str, Any]], dataset: str, metric: str = "nDCG@10") -> dict[Key, list[float]]:
    """(axes without seed) -> the aggregate value of each of its seeds' cells."""
    out: dict[Key, list[float]] = defaultdict(list)
    for rec in records:
        value = ((rec.get("metrics") or {}).get(dataset) or {}).get(metric)
        if rec.get("status") == "ok" and isinstance(value, (int, float)):
            out[system_key(rec)].append(float(value))
    return dict(out)


def randomization_test(a: dict[str, float], b: dict[str, float], permutations: int = PERMUTATIONS,
                       seed: int = SEED) -> float:
    """Two-sided paired sign-flip randomization test of Σ (a_q − b_q) over the queries both hold (see the module
    docstring)."""
    common = sorted(set(a) & set(b))
    d = np.array([a[q] - b[q] for q in common], dtype=float)
    d = d[np.abs(d) > 1e-12]  # a zero difference flips to itself: it changes no statistic
    if not len(d):
        return 1.0
    observed = abs(d.sum()) - 1e-9 * np.abs(d).sum()  # float slack: a flip giving the same |T| counts as extreme
    if len(d) <= EXACT_MAX:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
        return float((np.abs(signs @ d) >= observed).mean())
    signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(permutations, len(d)))
    return float((1 + (np.abs(signs @ d) >= observed).sum()) / (1 + permutations))


def seed_test(a: list[float], b: list[float]) -> float | None:
    """Two-sided Welch t-test over per-seed means; None with fewer than two seeds on either side."""
    if len(a) < 2 or len(b) < 2:
        return None
    if np.ptp(a) == 0 and np.ptp(b) == 0:  # no seed spread: the t statistic is undefined; equal means never differ
        return 1.0 if np.mean(a) == np.mean(b) else 0.0
    p = float(stats.ttest_ind(a, b, equal_var=False).pvalue)
    return 1.0 if np.isnan(p) else p


@dataclass(frozen=True)
class Systems:
    """One dataset's systems: seed-averaged per-query values and per-seed aggregates, keyed alike."""

    per_query: dict[Key, dict[str, float]]
    seeds: dict[Key, list[float]]

    @classmethod
    def from_records(cls, records: list[dict[str, Any]], dataset: str, metric: str = "nDCG@10") -> Systems:
        per_query = per_query_means(records, dataset, metric)
        seeds = seed_means(records, dataset, metric)
        return cls(per_query, {k: seeds.get(k, []) for k in per_query})

    def mean(self, key: Key) -> float:
        return float(np.mean(list(self.per_query[key].values())))

    def pvalue(self, a: Key, b: Key) -> float:
        """Combined (intersection–union) p-value of the query test and, where seeds allow, the seed test."""
        query = randomization_test(self.per_query[a], self.per_query[b])
        seed = seed_test(self.seeds[a], self.seeds[b])
        return query if seed is None else max(query, seed)


def _adjusted(systems: Systems, pairs: list[tuple[Key, Key]]) -> dict[tuple[Key, Key], float]:
    raw = [systems.pvalue(a, b) for a, b in pairs]
    return dict(zip(pairs, holm(raw)))


def significance(records: list[dict[str, Any]], dataset: str, baselines: list[dict[str, str]],
                 metric: str = "nDCG@10") -> dict[Key, dict[str, float]]:
    """Per system: baseline label -> Holm-adjusted combined p-value against the baseline system that shares its other
    axes (all tests of the table corrected together). A baseline label is its axes, ``"objective=bce teacher=labels"``;
    a system that is a baseline is not tested against itself."""
    systems = Systems.from_records(records, dataset, metric)
    pairs, labels = [], []
    for baseline in baselines:
        label = baseline_label(baseline)
        for key in systems.per_query:
            axes = dict(key)
            if all(axes.get(k) == v for k, v in baseline.items()):
                continue
            base = tuple(sorted({**axes, **baseline}.items()))
            if base in systems.per_query:
                pairs.append((key, base))
                labels.append(label)
    out: dict[Key, dict[str, float]] = defaultdict(dict)
    for (pair, p), label in zip(_adjusted(systems, pairs).items(), labels):
        out[pair[0]][label] = p
    return dict(out)


def baseline_label(baseline: dict[str, str]) -> str:
    return " ".join(f"{k}={v}" for k, v in baseline.items())


def tiers(systems: Systems, keys: list[Key] | None = None) -> tuple[dict[Key, int], dict[tuple[Key, Key], float]]:
    """(system -> tier, 1 = best; Holm-adjusted p-value of every tested pair) by the procedure of the module
    docstring, over ``keys`` (default: every system)."""
    keys = sorted(keys if keys is not None else systems.per_query, key=lambda k: (-systems.mean(k), k))
    adjusted = _adjusted(systems, list(itertools.combinations(keys, 2)))

    def p(a: Key, b: Key) -> float:
        return adjusted.get((a, b), adjusted.get((b, a), 1.0))

    tier_of: dict[Key, int] = {}
    left = list(keys)
    while left:
        leader, tier = left[0], len(set(tier_of.values())) + 1
        members = [k for k in left if k == leader or p(leader, k) >= ALPHA]
        tier_of.update({k: tier for k in members})
        left = [k for k in left if k not in tier_of]
    return tier_of, adjusted


def grouped(records: list[dict[str, Any]], dataset: str, group_of: Callable[[dict[str, str]], str | None],
            metric: str = "nDCG@10") -> Systems:
    """Systems formed by pooling: per group, per query the mean over the group's systems' seed-averaged values, and
    per seed the mean over the group's cells of that seed (``group_of(axes)`` names a system's group; None drops
    it)."""
    base = Systems.from_records(records, dataset, metric)
    per_query: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for key, values in base.per_query.items():
        group = group_of(dict(key))
        if group is not None:
            for q, v in values.items():
                per_query[group][q].append(v)
    seeds: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for rec in records:
        value = ((rec.get("metrics") or {}).get(dataset) or {}).get(metric)
        group = group_of(dict(system_key(rec))) if rec.get("status") == "ok" else None
        if group is not None and isinstance(value, (int, float)):
            seeds[group][str(rec["axes"].get("seed"))].append(float(value))
    return Systems({(("group", g),): {q: float(np.mean(v)) for q, v in qs.items()} for g, qs in per_query.items()},
                   {(("group", g),): [float(np.mean(v)) for v in seeds[g].values()] for g in per_query})
