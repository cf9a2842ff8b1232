"""One reference vocabulary: every published row in benchmark/data/reference_ndcg10.csv either matches a cell of a
grid in experiments/ (same backbone, objective, teacher and dataset row names, and the protocol the cell runs), or
says in its ``unmatched`` column why none can."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from benchmark.config import load_experiment
from benchmark.report.references import REFERENCE_CSV, cell_protocol, load_references
from benchmark.report.tables import AGGREGATES

ROOT = Path(__file__).resolve().parent.parent


def _matched() -> set[tuple[str, str, str, str, float]]:
    """(backbone, objective, teacher, dataset, value) of every reference row some grid cell matches."""
    references = load_references(REFERENCE_CSV)
    found = set()
    for grid in sorted((ROOT / "experiments").glob("*.toml")):
        for cell in load_experiment(grid).cells:
            record = {"config": cell.to_dict(), "metrics": {d: {} for d in cell.eval.datasets}}
            columns = [*cell.eval.datasets, *(a.name for a in AGGREGATES if set(a.members) & set(cell.eval.datasets))]
            for dataset in columns:
                key = (cell.backbone.name, cell.objective, cell.teacher.name, dataset)
                ours = cell_protocol(record, dataset)
                found |= {(*key, ref.value) for ref in references.get(key, []) if not ref.differences(ours)}
    return found


def test_every_reference_row_matches_a_grid_cell_or_says_why_not():
    table = pd.read_csv(REFERENCE_CSV, dtype=str, keep_default_na=False)
    table = table[table["metric"] == "nDCG@10"]
    matched = _matched()
    rows = {(r.backbone, r.objective, r.teacher, r.dataset, float(r.value)): r.unmatched.strip()
            for r in table.itertuples()}
    expected = {k for k, why in rows.items() if not why}
    assert expected - matched == set()  # a row without a reason must match
    assert {k for k, why in rows.items() if why} & matched == set()  # a reason on a row that matches is stale


def test_single_stage_cells_never_match_two_stage_rows():
    """Rank-DistiLLM's notebook has single- and two-stage ELECTRA rows on the same sets: the grid's single-stage
    cells (backbone electra-base, from the hub checkpoint) match the single-stage rows only."""
    table = pd.read_csv(REFERENCE_CSV, dtype=str, keep_default_na=False)
    two_stage = table[table["note"].str.contains("two-stage", case=False)]
    assert len(two_stage) and set(two_stage["backbone"]) == {"electra-base-stage1"}
    rd = load_experiment(ROOT / "experiments" / "rank-distillm.toml")
    assert {c.backbone.name for c in rd.cells} == {"electra-base"}
