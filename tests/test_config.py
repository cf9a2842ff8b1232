"""Grid expansion from TOML, config hashing and one-line errors for bad grids."""

from pathlib import Path

import pytest

from benchmark.config import load_experiment, parse_experiment
from benchmark.errors import BenchError

ROOT = Path(__file__).resolve().parents[1]


def _grid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(text)
    return path


def test_default_grid_expands_to_every_cell():
    exp = load_experiment(ROOT / "experiments" / "default.toml")
    assert exp.name == "default"
    assert len(exp.cells) == 5 * 3 * 2
    combos = {(c.backbone.name, c.objective, c.teacher.name) for c in exp.cells}
    assert len(combos) == 30
    assert {c.backbone.family for c in exp.cells} == {"bert", "roberta", "electra", "deberta-v2", "modernbert"}
    assert len({c.cell_id for c in exp.cells}) == 30
    cell = exp.cells[0]
    assert cell.train.group_size == 8 and cell.eval.datasets == ("embedded-test",)
    assert set(cell.datasets) == {"embedded-train", "embedded-test"}


def test_axes_cross_in_file_order_and_train_fields_are_axes():
    exp = parse_experiment({
        "experiment": {"name": "budget"},
        "grid": {"objective": ["bce", "infonce"], "train": {"max_queries": [20, 50, 100]}},
    })
    assert len(exp.cells) == 6
    assert [c.train.max_queries for c in exp.cells] == [20, 50, 100, 20, 50, 100]
    assert list(exp.cells[0].axes) == ["backbone", "objective", "teacher", "seed", "train.max_queries"]


def test_hash_is_stable_and_ignores_experiment_name():
    doc = {"experiment": {"name": "a"}, "grid": {"objective": ["bce"]}}
    a = parse_experiment(doc).cells[0]
    b = parse_experiment({**doc, "experiment": {"name": "b"}}).cells[0]
    c = parse_experiment({**doc, "train": {"lr": 1e-4}}).cells[0]
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash
    assert a.cell_id.startswith("bert-tiny__bce__labels__0__")


def test_extra_backbone_row_from_toml_only(tmp_path):
    exp = load_experiment(_grid(tmp_path, """
[experiment]
name = "newrow"
[grid]
backbone = ["my-bert"]
[backbones.my-bert]
family = "bert"
config = { hidden_size = 64, num_hidden_layers = 1, num_attention_heads = 1, intermediate_size = 64 }
"""))
    spec = exp.cells[0].backbone
    assert spec.name == "my-bert" and spec.config["hidden_size"] == 64
    assert exp.cells[0].to_dict()["backbone"]["config"]["num_hidden_layers"] == 1


def test_missing_grid_file():
    with pytest.raises(BenchError, match="cannot read grid file"):
        load_experiment("/nonexistent/grid.toml")
