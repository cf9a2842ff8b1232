"""The SLURM executor through submitit's local executor (the same job pickles, folders and polling as on a cluster,
the jobs run as processes here): records land in the grid's results directory and a rerun skips finished cells."""

import pytest

from benchmark.config import load_experiment
from benchmark.grid import run_grid
from benchmark.results import load_records
from tests_support import TINY_GRID, merged, write_toml

pytest.importorskip("submitit", reason="submitit is not installed (pip install 'rerank-distill-bench[slurm]')")


def test_grid_through_submitit_jobs_then_a_rerun_skips_them(tmp_path):
    doc = merged(TINY_GRID, {"experiment": {"name": "viaslurm"},
                             "grid": {"backbone": ["bert-tiny"], "teacher": ["labels"]},
                             "executor": {"name": "slurm", "cluster": "local", "time_min": 20}})
    experiment = load_experiment(write_toml(tmp_path / "grid.toml", doc))
    results = tmp_path / "results"
    summary = run_grid(experiment, results, echo=lambda _: None)
    assert len(summary.ran) == 2 and not summary.failures
    records = {r["cell_id"]: r for r in load_records(results, "viaslurm")}
    assert sorted(records) == sorted(c.cell_id for c in experiment.cells)
    assert all(r["status"] == "ok" for r in records.values())
    assert {r["cell_id"] for r in summary.ran} == set(records)  # what the jobs returned is what they wrote
    assert len(list((results / ".submitit").glob("*/*_result.pkl"))) == 2  # one job per cell, its log folder
    again = run_grid(experiment, results, echo=lambda _: None)
    assert again.ran == [] and len(again.skipped) == 2
