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


def test_paper_cell_estimate_by_hand():
    """paper.toml, BERT-base MarginMSE: N = 110M, T = 128 (a typical pair, under the row's 512);
    training 6·N·T x 200,000 steps x 32 triples x 2 pairs; validation 2·N·T x 40 passes x 649 NanoBEIR queries
    (12 sets of 50, Touché 49) x top-100; evaluation 2·N·T x 44,430 test queries x top-1000. 5.35 GPU-h in all."""
    from benchmark.config import load_experiment

    if not dryrun.irds_query_counts():
        pytest.skip("ir_datasets' etc/metadata.json is not installed")
    cell = next(c for c in load_experiment("experiments/paper.toml").cells
                if c.backbone.name == "bert-base" and c.objective == "margin-mse")
    assert sum(dryrun._queries(cell, n) for n in cell.eval.datasets) == 44_430
    assert sum(dryrun._queries(cell, n) for n in cell.train.validation_datasets) == 649
    n, t = 110e6, 128
    flops = 6 * n * t * 200_000 * 32 * 2 + 2 * n * t * 40 * 649 * 100 + 2 * n * t * 44_430 * 1000
    assert dryrun.estimate_gpu_hours(cell) == pytest.approx(hours(flops))
    assert hours(flops) == pytest.approx(5.35, abs=0.005)


def test_typical_pair_length_is_capped_by_the_side_limits():
    """T = 128 unless the cell's limits are smaller: 64-token pairs, or query 10 + passage 20 + 3 specials."""
    assert dryrun.pair_tokens(_cell(max_length=512), 512) == 128
    assert dryrun.pair_tokens(_cell(), 64) == 64
    assert dryrun.pair_tokens(_cell(max_query_length=10, max_doc_length=20), 64) == 33
