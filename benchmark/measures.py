"""Measure names (rows level): how a dataset row or ``eval.measures`` names what is measured, as ir_measures
strings. ``benchmark.evaluation`` computes them.

nDCG@10 is always measured: it is the key of the report's main table.
"""

from __future__ import annotations

from collections.abc import Iterable

import ir_measures

from .errors import BenchError

MAIN_MEASURE = "nDCG@10"
FIRST_STAGE_RECALL = "R@100"  # recorded for the first stage besides the dataset's measures


def parse_measures(measures: Iterable[str], where: str) -> tuple[str, ...]:
    """The measures as ir_measures writes them; an unparsable one is named in a one-line error."""
    out = []
    for m in measures:
        try:
            out.append(str(ir_measures.parse_measure(m)))
        except (ValueError, NameError, TypeError, AttributeError, SyntaxError):
            raise BenchError(f"{where}: {m!r} is not an ir_measures measure (e.g. 'nDCG@10', 'RR(rel=2)', "
                             f"'AP(rel=2)', 'Judged@10')") from None
    return tuple(out)


def dataset_measures(row_measures: Iterable[str], extra: Iterable[str] = ()) -> tuple[str, ...]:
    """nDCG@10, then the row's measures, then ``eval.measures``, each once."""
    return tuple(dict.fromkeys((MAIN_MEASURE, *row_measures, *extra)))
