"""``rdb`` subcommands as users of mteb / LightningCLI expect them: help, version, registry listings, dotted
overrides entering the cell hash, one cell's resolved TOML, repeatable --only, and bad input answered before torch
is imported."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from benchmark.backbones import BACKBONES
from benchmark.cli import main, rdb_main
from benchmark.config import load_experiment

ROOT = Path(__file__).resolve().parents[1]
SMOKE = "experiments/smoke.toml"


@pytest.fixture(autouse=True)
def _root(monkeypatch):
    monkeypatch.chdir(ROOT)


def test_help_lists_the_commands_and_version_prints(capsys):
    with pytest.raises(SystemExit):
        rdb_main(["--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: rdb") and all(c in out for c in ("run", "dry-run", "rehearse", "report", "list"))
    with pytest.raises(SystemExit):
        rdb_main(["--version"])
    assert capsys.readouterr().out.strip() == "rdb 0.1.0"


def test_list_backbones_lists_every_row(capsys):
    assert rdb_main(["list", "backbones"]) == 0
    names = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert names == BACKBONES.names()


def test_set_changes_every_cell_and_its_id(capsys):
    plain = load_experiment(SMOKE)
    changed = load_experiment(SMOKE, overrides=["train.lr=1e-5", "eval.top_k=20"])
    assert {c.train.lr for c in changed.cells} == {1e-5} and {c.eval.top_k for c in changed.cells} == {20}
    assert [c.axes for c in changed.cells] == [c.axes for c in plain.cells]
    assert not {c.cell_id for c in changed.cells} & {c.cell_id for c in plain.cells}


def test_set_replaces_a_recipe_value_and_an_axis(tmp_path):
    grid = tmp_path / "g.toml"
    grid.write_text('[experiment]\nname = "g"\n[grid]\nbackbone = ["bert-tiny"]\ntrain.max_queries = [5, 10]\n'
                    'recipe = [{ objective = "bce", teacher = "labels", train.batch_size = 2 }]\n')
    exp = load_experiment(grid, overrides=["train.batch_size=8", "train.max_queries=7"])
    assert [(c.train.batch_size, c.train.max_queries) for c in exp.cells] == [(8, 7)]


def test_print_config_is_the_cells_resolved_toml(capsys):
    cell = load_experiment(SMOKE).cells[3]
    assert main([SMOKE, "--print-config", cell.cell_id[:-3]]) == 0
    printed = tomllib.loads(capsys.readouterr().out)
    assert printed["backbone"]["name"] == cell.backbone.name and printed["train"]["lr"] == cell.train.lr
    assert printed["objective"] == cell.objective and "checkpoint" not in printed["backbone"]  # None: a comment


def test_only_repeated_ors_values_of_one_axis(capsys):
    assert rdb_main(["dry-run", SMOKE, "--only", "objective=bce", "--only", "objective=infonce",
                     "--only", "backbone=bert-tiny"]) == 0
    cells = [line for line in capsys.readouterr().out.splitlines() if "[todo]" in line]
    assert len(cells) == 4 and all("bert-tiny__bce__" in c or "bert-tiny__infonce__" in c for c in cells)


@pytest.mark.parametrize("args, culprit", [
    (["run", "missing.toml"], "cannot read grid file 'missing.toml'"),
    (["run", SMOKE, "--set", "lr=1"], "--set expects SECTION.KEY=VALUE"),
    (["run", SMOKE, "--set", "train.nope=1"], "nope"),
    (["run", SMOKE, "--print-config", "nope"], "names no cell(s) of grid 'smoke'"),
])
def test_bad_arguments_answer_in_one_line_without_torch(args, culprit):
    """Answered before torch is imported (the reason such errors take well under a second)."""
    code = ("import sys; from benchmark.cli import rdb_main; rc = rdb_main(sys.argv[1:]); "
            "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)")
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("error: ") and culprit in proc.stderr
