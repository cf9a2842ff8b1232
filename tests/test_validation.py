"""Step-based training (max_steps, warmup_steps, the LR schedule, clipping) and periodic validation that keeps the
best step's weights."""

import dataclasses
import math

import pytest
import torch

import benchmark.training as training
from benchmark.config import TrainConfig, load_experiment
from benchmark.errors import BenchError
from benchmark.cell import load, run_cell, validator
from benchmark.losses import get_objective
from benchmark.models import build_cross_encoder
from tests_support import TINY_GRID, embedded_row, merged, write_toml

VALIDATED_GRID = merged(TINY_GRID, {
    "grid": {"backbone": ["bert-tiny"], "objective": ["infonce"], "teacher": ["labels"]},
    "train": {"max_steps": 4, "validate_every": 2, "validation_dataset": "tiny-dev", "validation_top_k": 10},
    "datasets": {"tiny-dev": embedded_row("dev", 6, top_k=20)},
})


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    path = write_toml(tmp_path_factory.mktemp("grid") / "tiny.toml", VALIDATED_GRID)
    cell = load_experiment(path).cells[0]
    data = load(cell, cell.train.dataset)  # 24 training queries, batch 8: 3 steps an epoch
    return cell, data


def train(setup, validate=None, checkpoint_dir=None, **changes):
    cell, data = setup
    cfg = dataclasses.replace(cell.train, **changes)
    model, tok = build_cross_encoder(cell.backbone, seed=0)
    stats = training.train_model(model, tok, data, training.Targets(data.qrels, "labels"), get_objective("infonce"),
                                 cfg, seed=0, use_token_type_ids=True, validate=validate,
                                 checkpoint_dir=checkpoint_dir)
    return model, stats


def planted(values, snapshots=None):
    """A validate callback returning ``values`` in turn (and keeping each call's weights in ``snapshots``)."""
    it = iter(values)

    def validate(model):
        assert not model.training
        if snapshots is not None:
            snapshots.append({k: v.detach().clone() for k, v in model.state_dict().items()})
        return next(it)

    return validate


def same_weights(model, weights):
    return all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_linear_schedule_with_warmup_steps_at_known_steps():
    """lr 1e-3, 2 warmup steps, 6 steps: 0 -> 1e-3 linearly over the warmup, then linearly down to 0 at step 6."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    cfg = TrainConfig(warmup_steps=2, warmup_ratio=0.5)
    sched = training.make_scheduler(opt, training.warmup_steps(cfg, 6), 6)
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 7.5e-4, 5e-4, 2.5e-4, 0.0])
    assert training.warmup_steps(TrainConfig(warmup_ratio=0.25), 6) == 1  # without warmup_steps: the ratio


def test_constant_schedule_keeps_the_rate_after_warmup():
    """lr_schedule = "constant" (Lightning without a scheduler, as Rank-DistiLLM's finetune.yaml): 2 warmup steps,
    then 1e-3 to the end."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = training.make_scheduler(opt, 2, 6, "constant")
    lrs = []
    for _ in range(7):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 1e-3, 1e-3, 1e-3, 1e-3])
    with pytest.raises(BenchError, match="train.lr_schedule must be one of linear, constant, cosine"):
        TrainConfig(lr_schedule="step")


def lr_sequence(sched, opt, steps):
    """The rate each of ``steps`` optimiser steps runs at, with the scheduler stepped after each, as training does."""
    lrs = []
    for _ in range(steps):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return lrs


def test_cosine_schedule_stepped_every_n_batches_as_matchmaker():
    """Matchmaker v2.0 (train.py:168, 552-553 @ cb1d35d8): get_cosine_schedule_with_warmup(opt, 1, total) stepped
    after batch i when i > 0 and i % N == 0. With N = 2, warmup 1, total 4 (schedule steps) and lr 1e-3, batch i
    runs at factor f(k), k = max(i - 1, 0) // 2 schedule steps taken: f(0) = 0 (warmup), then
    f(k) = 0.5 * (1 + cos(pi * (k - 1) / 3)): f(1) = 1, f(2) = 0.75, f(3) = 0.25, f(4) = 0."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    sched = training.make_scheduler(opt, 1, 4, "cosine", every=2)
    # batches:       0    1    2     3     4       5       6       7       8    9
    expected = [0.0, 0.0, 0.0, 1e-3, 1e-3, 7.5e-4, 7.5e-4, 2.5e-4, 2.5e-4, 0.0]
    assert lr_sequence(sched, opt, 10) == pytest.approx(expected)
    # transformers' own cosine schedule, stepped by hand on matchmaker's condition, gives the same rates
    from transformers import get_cosine_schedule_with_warmup
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    reference, lrs = get_cosine_schedule_with_warmup(opt2, 1, 4), []
    for i in range(10):
        lrs.append(opt2.param_groups[0]["lr"])
        opt2.step()
        if i > 0 and i % 2 == 0:
            reference.step()
    assert lrs == pytest.approx(expected)


def test_hofstaetter_schedule_resolves_to_matchmaker_values():
    """hofstaetter.toml: 0 for batches 0-100, the full 7e-6 from batch 101, and at the 300,000th step
    7e-6 * 0.5 * (1 + cos(pi * (2999 - 1) / 8499)) = 7e-6 * 0.72314 (k = 299,998 // 100 = 2,999 schedule steps)."""
    cell = load_experiment("experiments/hofstaetter.toml").cells[0]
    cfg = cell.train
    assert (cfg.lr_schedule, cfg.lr_step_every, cfg.warmup_steps, cfg.lr_total_steps) == ("cosine", 100, 1, 8500)
    length = training.schedule_length(cfg, cfg.max_steps)
    assert length == 8500 and training.warmup_steps(cfg, length) == 1

    def rate(step):
        clock = training.schedule_clock(step, cfg.lr_step_every)
        return cfg.lr * training.schedule_factor(clock, 1, length, cfg.lr_schedule)

    assert rate(0) == rate(100) == 0.0 and rate(101) == pytest.approx(7e-6)
    assert rate(299_999) == pytest.approx(7e-6 * 0.5 * (1 + math.cos(math.pi * 2998 / 8499)))
    assert rate(299_999) / 7e-6 == pytest.approx(0.72314, abs=1e-5)


def test_weight_decay_all_puts_every_parameter_in_the_decayed_group():
    """weight_decay_all (torch AdamW over model.parameters(), as Rank-DistiLLM): one group with every parameter;
    by default biases and LayerNorm weights (ndim <= 1) sit in a group without decay."""
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.LayerNorm(2))  # weight 2x3, bias, LN weight, bias
    all_groups = training.optimizer_groups(model, 0.01, True)
    assert [(len(g["params"]), g["weight_decay"]) for g in all_groups] == [(4, 0.01)]
    split = training.optimizer_groups(model, 0.01, False)
    assert [(len(g["params"]), g["weight_decay"]) for g in split] == [(1, 0.01), (3, 0.0)]
    assert load_experiment("experiments/rank-distillm.toml").cells[0].train.weight_decay_all


def test_max_steps_cycles_epochs_with_the_schedule_and_clipping(setup, monkeypatch):
    """7 steps over 3-step epochs: 3 epochs, each step at its scheduled lr, gradients clipped at max_grad_norm."""
    lrs, eps, norms = [], [], []
    real_step, real_clip = torch.optim.AdamW.step, torch.nn.utils.clip_grad_norm_

    def step(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        eps.append(self.param_groups[0]["eps"])
        return real_step(self, *args, **kwargs)

    def clip(params, max_norm, *args, **kwargs):
        norms.append(max_norm)
        return real_clip(params, max_norm, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", step)
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", clip)
    _, stats = train(setup, max_steps=7, warmup_steps=2, lr=1e-3, max_grad_norm=0.5, adam_eps=1e-6, validate_every=0)
    assert stats["steps"] == 7 and stats["epochs"] == 3 and stats["warmup_steps"] == 2
    # warmup over steps 0-1, then (7 - s) / 5 of the peak
    assert lrs == pytest.approx([0.0, 5e-4, 1e-3, 8e-4, 6e-4, 4e-4, 2e-4])
    assert norms == [0.5] * 7 and eps == [1e-6] * 7
    norms.clear()
    train(setup, max_steps=1, max_grad_norm=0.0, validate_every=0)
    assert norms == []  # 0 = no clipping


def test_teacher_pairs_follow_the_cycled_epochs(setup):
    """With max_steps beyond one epoch, the pairs a teacher must score include the later epochs' draws."""
    cell, data = setup
    one = training.student_pairs(data, dataclasses.replace(cell.train, epochs=1), seed=0)
    seven = training.student_pairs(data, dataclasses.replace(cell.train, max_steps=7), seed=0)
    two = training.student_pairs(data, dataclasses.replace(cell.train, epochs=2, max_steps=None), seed=0)
    assert all(set(d) <= set(seven[q]) for q, d in two.items())  # epochs 1-2 lie inside the 7 steps' 3 epochs
    assert sum(map(len, seven.values())) > sum(map(len, two.values())) > sum(map(len, one.values()))


def test_planted_decline_keeps_the_best_step(setup):
    """Validation rises then falls: the best step (4) is chosen and its weights are the model's at the end."""
    snapshots = []
    model, stats = train(setup, planted([0.2, 0.5, 0.4, 0.1], snapshots), max_steps=8, validate_every=2)
    val = stats["validation"]
    assert val["curve"] == [[2, 0.2], [4, 0.5], [6, 0.4], [8, 0.1]]
    assert val["best_step"] == 4 and val["best_value"] == 0.5
    assert same_weights(model, snapshots[1]) and not same_weights(model, snapshots[3])


def test_ties_keep_the_earlier_step_and_the_last_step_is_validated(setup):
    _, stats = train(setup, planted([0.3, 0.3, 0.3]), max_steps=7, validate_every=3)
    assert [s for s, _ in stats["validation"]["curve"]] == [3, 6, 7]  # step 7 is not a multiple of 3
    assert stats["validation"]["best_step"] == 3


def test_non_finite_validation_is_one_line_error(setup):
    with pytest.raises(BenchError, match="validation at step 2 gave nan"):
        train(setup, planted([float("nan")]), max_steps=2, validate_every=2)


def test_validation_config_errors():
    with pytest.raises(BenchError, match="validate_every needs train.validation_dataset"):
        TrainConfig(validate_every=10)
    with pytest.raises(BenchError, match="not an ir_measures measure"):
        TrainConfig(validation_measure="nDCG@x")
    with pytest.raises(BenchError, match="max_steps must be positive"):
        TrainConfig(max_steps=0)


def test_cell_validates_on_its_dev_row_and_evaluates_the_best_step(setup, monkeypatch):
    """run_cell reranks the dev row every 2 steps; the model it evaluates scores the best recorded value."""
    cell, _ = setup
    real, trained = training.train_model, []

    def keep(model, tokenizer, *args, **kwargs):
        trained.append((model, tokenizer))
        return real(model, tokenizer, *args, **kwargs)

    monkeypatch.setattr(training, "train_model", keep)
    record = run_cell(cell)
    val = record["train"]["validation"]
    assert [s for s, _ in val["curve"]] == [2, 4] and val["dataset"] == "tiny-dev" and val["measure"] == "nDCG@10"
    assert val["best_value"] == pytest.approx(max(v for _, v in val["curve"]), abs=1e-6)
    (model, tok), = trained
    assert validator(cell, tok)(model) == {"tiny-dev": pytest.approx(val["best_value"], abs=1e-6)}  # weights kept
    assert val["per_set"] == {"tiny-dev": val["curve"]} and val["aggregate"] is None


def test_several_validation_sets_are_averaged_and_kept_per_set(setup, monkeypatch):
    """validation_dataset = [a, b]: the curve holds the mean of the two sets' values, the record each set's own."""
    cell, data = setup
    values = iter([{"a": 0.2, "b": 0.4}, {"a": 0.9, "b": 0.1}, {"a": 0.6, "b": 0.6}])
    _, stats = train(setup, lambda model: next(values), max_steps=6, validate_every=2,
                     validation_dataset=("a", "b"))
    val = stats["validation"]
    assert val["curve"] == [[2, 0.3], [4, 0.5], [6, 0.6]] and val["best_step"] == 6
    assert val["per_set"] == {"a": [[2, 0.2], [4, 0.9], [6, 0.6]], "b": [[2, 0.4], [4, 0.1], [6, 0.6]]}
    assert val["dataset"] == ("a", "b") and val["aggregate"] == "mean"


def test_cell_validator_reranks_each_validation_row(setup, tmp_path):
    """A cell with two validation rows: the validator gives each row's measure, and that of the row on its own."""
    doc = merged(VALIDATED_GRID, {"train": {"validation_dataset": ["tiny-dev", "tiny-dev2"],
                                            "validation_measure": "nDCG"},
                                  "datasets": {"tiny-dev2": embedded_row("dev", 4, top_k=20)}})
    cell = load_experiment(write_toml(tmp_path / "two.toml", doc)).cells[0]
    assert {"tiny-dev", "tiny-dev2"} <= set(cell.datasets)
    model, tok = build_cross_encoder(cell.backbone, seed=0)
    both = validator(cell, tok)(model)
    alone = validator(dataclasses.replace(cell, train=dataclasses.replace(cell.train,
                                                                           validation_dataset="tiny-dev2")), tok)
    assert set(both) == {"tiny-dev", "tiny-dev2"} and both["tiny-dev2"] == pytest.approx(alone(model)["tiny-dev2"])


def test_dtype_by_backbone_reaches_training_and_gpu_scoring(setup, monkeypatch):
    """dtype_by_backbone overrides train.dtype for its backbone: the config train_model gets, and the autocast
    dtype a GPU scores in; the CPU scores in fp32 whatever the cell asks."""
    from benchmark import cell as cell_mod

    cell, _ = setup
    other = dataclasses.replace(cell, train=dataclasses.replace(cell.train, dtype="fp32",
                                                                 dtype_by_backbone={"roberta-tiny": "fp16"}))
    cell = dataclasses.replace(cell, train=dataclasses.replace(cell.train, dtype="fp32",
                                                                dtype_by_backbone={"bert-tiny": "bf16"}))
    assert cell_mod.cell_dtype(cell) == "bf16" and cell_mod.cell_dtype(other) == "fp32"
    assert training.compute_dtype(torch.device("cuda"), cell_mod.cell_dtype(cell), cell.backbone.dtype) == "bf16"
    model, tok = build_cross_encoder(cell.backbone, seed=0)
    assert cell_mod.cell_reranker(model, tok, cell, "cpu").dtype == "fp32"
    seen = []
    monkeypatch.setattr(training, "train_model", lambda *a, **k: seen.append(a[5]) or {})
    cell_mod.train_student(cell, None)
    assert [c.dtype for c in seen] == ["bf16"] and seen[0].max_length == cell.train.max_length
