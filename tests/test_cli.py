"""The command line: one-line errors (exit 2) for bad input, dry-run listing, report re-rendering."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, culprit", [
    (["/nonexistent.toml"], "cannot read grid file '/nonexistent.toml'"),
    (["experiments/smoke.toml", "--only", "backbone"], "--only expects AXIS=VALUE"),
    (["experiments/smoke.toml", "--only", "backbone=nope", "--dry-run"], "no cell has backbone 'nope'"),
    (["experiments/smoke.toml", "--executor", "pbs"], "unknown executor 'pbs'"),
    (["experiments/smoke.toml", "--gpus-per-cell", "-1"], "executor.gpus_per_cell must be >= 0, got -1.0"),
    (["report", "/nonexistent-results"], "results directory '/nonexistent-results' does not exist"),
])
def test_bad_input_is_one_line_on_stderr(args, culprit, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(args)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and culprit in err


def test_malformed_toml_through_the_script(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[experiment\nname = 'x'\n")
    proc = subprocess.run([sys.executable, str(ROOT / "run_grid.py"), str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"error: {bad}: malformed TOML") and proc.stderr.count("\n") == 1
    assert "Traceback" not in proc.stderr


def test_dry_run_lists_every_cell(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(ROOT)
    assert main(["experiments/smoke.toml", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "grid smoke: 30 cell(s)"
    assert sum("[todo]" in line for line in out) == 30
    assert "GPU-h" in out[1] and "embedded-train" in out[1]


def test_paper_grid_dry_run_offline(capsys, monkeypatch, tmp_path):
    """The seed paper's grid (5 backbones x 6 recipes x 3 seeds) lists every cell with its step shape, data and models
    and every evaluation set's first stage, depths and measures, offline; the files a user must fetch or make are
    listed, one line each with where they come from, as information (exit 0); no cell would be refused."""
    monkeypatch.chdir(ROOT)
    assert main(["experiments/paper.toml", "--dry-run", "--results", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    out = captured.out.splitlines()
    assert out[0] == "grid paper: 90 cell(s)" and sum("[todo]" in line for line in out) == 90
    cells = [line for line in out if "[todo]" in line]
    assert sum("__margin-mse__hofstaetter-ensemble__" in line and "bert_cat_ensemble" in line for line in cells) == 15
    assert sum("(200000 steps x 32 x 2 pairs, 40 validations on 13 set(s), " in line for line in cells) == 45  # BCE, Hinge, MarginMSE
    assert sum("(200000 steps x 4 x 8 pairs, 40 validations on 13 set(s), " in line for line in cells) == 15  # InfoNCE
    assert sum("(200000 steps x 1 x 50 pairs, 40 validations on 13 set(s), " in line for line in cells) == 30  # the list losses
    assert ("        eval trec-dl-2019: first stage splade-v3-distilbert (run:data/splade-v3-distilbert/trec-dl-2019.run) "
            "top-1000, rerank top-1000, measures nDCG@10 RR(rel=2) AP(rel=2) Judged@10 AP RR@10") in out
    assert sum(line.startswith("        eval ") for line in out) == 22
    missing = [line for line in out if line.startswith("  missing: ")]
    assert "  missing: dataset 'robust04': run file 'data/splade-v3-distilbert/robust04.run' does not exist (get it: " \
        "the splade-v3-distilbert top-1000 of ir_datasets 'disks45/nocr/trec-robust-2004' as a TREC run)" in missing
    assert any("teacher 'hofstaetter-ensemble'" in line and "zenodo.org/records/4068216" in line for line in missing)
    assert f"{len(missing)} input file(s) to fetch or make before a run:" in out
    assert "0 cell(s) a run would refuse" in out and not [line for line in out if "refused:" in line]
    assert "--dry-run" not in captured.out + captured.err  # never tells the user to run what they just ran


@pytest.mark.parametrize("grid, n, shape, rc", [
    ("rank-distillm", 2, "(939 steps x 32 x 100 pairs, max 291 tokens (query 32, passage 256)", 0),  # the DL runs are listed
    ("hofstaetter", 1, "(300000 steps x 32 x 2 pairs, max 233 tokens (query 30, passage 200), fp16)", 0),
])
def test_reproduction_grids_dry_run_offline(capsys, monkeypatch, tmp_path, grid, n, shape, rc):
    """Each reproduced paper's own protocol as a grid: its cell count and step shapes, offline."""
    monkeypatch.chdir(ROOT)
    assert main([f"experiments/{grid}.toml", "--dry-run", "--results", str(tmp_path)]) == rc
    cells = [line for line in capsys.readouterr().out.splitlines() if "[todo]" in line]
    assert len(cells) == n and all(shape in line for line in cells)
