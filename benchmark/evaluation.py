"""Effectiveness with ir_measures: aggregate and per-query values of the reranked and first-stage runs.

Each dataset row names its measures as ir_measures strings (``DatasetSpec.measures``: the dataset's official
measures plus Judged@10); ``eval.measures`` adds measures to every dataset. nDCG@10 is always measured: it is the
key of the report's main table.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import ir_measures

from .collection import Qrels, Run
from .errors import BenchError
from .measures import MAIN_MEASURE

MEASURES = (MAIN_MEASURE, "RR@10")  # MRR@10 is ir_measures' RR@10


def evaluate(run: Run, qrels: Qrels, measures: Iterable[str] = MEASURES, *, name: str = "run"
             ) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(aggregate, per-query) values keyed by the measure strings as given; only queries with qrels count."""
    judged = {q: docs for q, docs in qrels.items() if docs}
    if not judged:
        raise BenchError(f"{name}: no qrels to evaluate against")
    run = {q: docs for q, docs in run.items() if q in judged}
    if not any(run.values()):
        raise BenchError(f"{name}: the run has no candidates for any judged query")
    names = list(dict.fromkeys(measures))
    parsed = {ir_measures.parse_measure(m): m for m in names}
    values = ir_measures.calc_aggregate(list(parsed), judged, run)
    aggregate = {name: float(values[m]) for m, name in parsed.items()}  # in the order given
    per_query: dict[str, dict[str, float]] = {m: {} for m in names}
    for metric in ir_measures.iter_calc(list(parsed), judged, run):
        per_query[parsed[metric.measure]][metric.query_id] = float(metric.value)
    return aggregate, per_query


RANDOM_SHUFFLES = 20


def random_order(candidates: dict[str, list[str]], qrels: Qrels, *, shuffles: int = RANDOM_SHUFFLES,
                 measure: str = "nDCG@10", fold: Callable[[Run], Run] = lambda run: run, name: str = "run"
                 ) -> dict[str, object]:
    """The random-order baseline of a reranker: ``measure`` of the candidate lists shuffled, aggregate and per query
    each the mean over ``shuffles`` shuffles (shuffle i draws from seed i, so every cell of a grid records the same
    baseline), with the standard deviation of the aggregate over the shuffles. ``fold`` maps a passage run to the
    documents it scores (MaxP)."""
    import numpy as np

    aggregates, per_query = [], []
    for i in range(shuffles):
        rng = np.random.default_rng(i)
        run = {q: {docs[j]: float(len(docs) - r) for r, j in enumerate(rng.permutation(len(docs)))}
               for q, docs in candidates.items()}
        agg, per_q = evaluate(fold(run), qrels, [measure], name=f"{name} random order")
        aggregates.append(agg[measure])
        per_query.append(per_q[measure])
    qids = sorted(set().union(*per_query))
    return {measure: float(np.mean(aggregates)), "std": float(np.std(aggregates)), "shuffles": shuffles,
            "per_query": {measure: {q: float(np.mean([p[q] for p in per_query])) for q in qids}}}
