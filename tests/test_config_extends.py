"""A grid file can extend another (``[experiment] extends``): the base's tables, the variant's keys on top."""

from __future__ import annotations

import pytest

from benchmark.config import load_experiment
from benchmark.errors import BenchError

BASE = """
[experiment]
name = "base"
description = "the base grid"
[grid]
backbone = ["bert-tiny"]
recipe = [{ objective = "bce", teacher = "labels" }, { objective = "infonce", teacher = "labels" }]
seed = [0, 1]
[train]
lr = 1e-5
max_steps = 10
[backbones.own]
family = "bert"
config = { hidden_size = 64, num_hidden_layers = 1, num_attention_heads = 1, intermediate_size = 64 }
"""


def test_variant_replaces_axes_and_keys_and_keeps_the_rest(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "sub").mkdir()
    variant = tmp_path / "sub" / "variant.toml"
    variant.write_text('[experiment]\nname = "variant"\nextends = "../base.toml"\n'
                       '[grid]\nbackbone = ["own"]\nrecipe = [{ objective = "hinge", teacher = "labels" }]\n'
                       '[train]\nlr = 7e-6\n')
    exp = load_experiment(variant)
    assert exp.name == "variant" and exp.description == ""
    assert [(c.backbone.name, c.objective, c.seed) for c in exp.cells] == [("own", "hinge", 0), ("own", "hinge", 1)]
    assert {(c.train.lr, c.train.max_steps) for c in exp.cells} == {(7e-6, 10)}
    assert exp.cells[0].backbone.config["hidden_size"] == 64


@pytest.mark.parametrize("extends, message", [
    ('"missing.toml"', "experiment.extends 'missing.toml': no grid file"),
    ('"self.toml"', "extends itself"),
    ("3", "experiment.extends must be the path of a grid file"),
])
def test_bad_extends_is_one_line(tmp_path, extends, message):
    grid = tmp_path / "self.toml"
    grid.write_text(f'[experiment]\nname = "x"\nextends = {extends}\n')
    with pytest.raises(BenchError, match=message):
        load_experiment(grid)
