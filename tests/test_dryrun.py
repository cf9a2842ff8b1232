"""The dry-run GPU-hour estimate from the steps, batch shapes, lengths and validations a cell really runs."""

import dataclasses

import pytest

from benchmark import dryrun
from benchmark.config import parse_experiment


def _cell(**train):
    doc = {"experiment": {"name": "est"}, "grid": {"backbone": ["bert-tiny"]},
           "train": {"dataset": "tiny-train", "group_size": 4, "epochs": 2, "batch_size": 8, "max_length": 64,
                     **train},
           "eval": {"datasets": ["tiny-test"], "top_k": 20, "max_length": 32},
           "datasets": {"tiny-train": {"source": "embedded", "split": "train", "max_queries": 24},
                        "tiny-dev": {"source": "embedded", "split": "dev", "max_queries": 6},
                        "tiny-test": {"source": "embedded", "split": "test", "max_queries": 8}}}
    return parse_experiment(doc).cells[0]


N = 4.4e6  # bert-tiny's params_m
EVAL = 2 * N * 32 * 8 * 20  # 8 test queries x top-20 at length 32


def hours(flops):
    return flops / dryrun.GPU_FLOPS / 3600


def test_epochs_estimate_counts_steps_of_the_label_budget():
    cell = _cell()  # 24 queries / batch 8 = 3 steps an epoch, 2 epochs
    assert dryrun.training_steps(cell) == 6 and dryrun.validations(cell, 6) == 0
    assert dryrun.estimate_gpu_hours(cell) == pytest.approx(hours(6 * N * 64 * 6 * 8 * 4 + EVAL))


def test_max_steps_and_validation_enter_the_estimate():
    """10 steps, validated at 4, 8 and the last step 10: 3 passes over 6 dev queries x top-5 at length 32."""
    cell = _cell(max_steps=10, validate_every=4, validation_dataset="tiny-dev", validation_top_k=5)
    assert dryrun.training_steps(cell) == 10 and dryrun.validations(cell, 10) == 3
    expected = 6 * N * 64 * 10 * 8 * 4 + 2 * N * 32 * 6 * 5 * 3 + EVAL
    assert dryrun.estimate_gpu_hours(cell) == pytest.approx(hours(expected))
    listed = dryrun.describe_grid(parse_experiment({"experiment": {"name": "est"}}), "/nonexistent")
    assert "GPU-h (" in listed.splitlines()[1]


def test_pairs_per_example_follow_the_sampler():
    cell = _cell()
    assert dryrun.pairs_per_group(cell) == 4
    if "sampler" in {f.name for f in dataclasses.fields(cell.train)}:  # the sampler axis, where present
        triples = dataclasses.replace(cell, train=dataclasses.replace(cell.train, sampler="triples"))
        assert dryrun.pairs_per_group(triples) == 2
