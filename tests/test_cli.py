"""The command line: one-line errors (exit 2) for bad input, dry-run listing, report re-rendering."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("args, culprit", [
    (["/nonexistent.toml"], "cannot read grid file '/nonexistent.toml'"),
    (["experiments/default.toml", "--only", "backbone"], "--only expects AXIS=VALUE"),
    (["experiments/default.toml", "--only", "backbone=nope", "--dry-run"], "matches no cell"),
    (["experiments/default.toml", "--executor", "slurm"], "unknown executor 'slurm'"),
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
    assert main(["experiments/default.toml", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "grid default: 30 cell(s)"
    assert sum("[todo]" in line for line in out) == 30
    assert "GPU-h" in out[1] and "embedded-train" in out[1]


def test_paper_grid_dry_run_offline(capsys, monkeypatch, tmp_path):
    """The paper grid lists every cell (5 backbones x 4 recipes), its data and models, with no network."""
    monkeypatch.chdir(ROOT)
    assert main(["experiments/paper.toml", "--dry-run", "--results", str(tmp_path)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "grid paper: 20 cell(s)" and sum("[todo]" in line for line in out) == 20
    assert any("margin-mse__hofstaetter-ensemble" in line and "bert_cat_ensemble" in line for line in out)
    cells = [line for line in out if "[todo]" in line]
    assert all("trec-dl-2019=msmarco-passage/trec-dl-2019/judged" in line for line in cells)
    # every evaluation set's first stage, depths and measures (listed once: all cells share them)
    assert ("        eval trec-dl-2019: first stage bm25 top-100, rerank top-100, measures nDCG@10 RR(rel=2) AP(rel=2) "
            "Judged@10") in out
    assert "        eval msmarco-dev: first stage bm25 top-100, rerank top-100, measures nDCG@10 RR@10 Judged@10" in out
    assert sum(line.startswith("        eval ") for line in out) == 22
    assert out[-1].startswith("total ~") and "GPU-h" in out[-1]
