"""Step-based training (max_steps, warmup_steps, the LR schedule, clipping) and periodic validation that keeps the
best step's weights."""

import dataclasses

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
    with pytest.raises(BenchError, match="train.lr_schedule must be one of linear, constant"):
        TrainConfig(lr_schedule="cosine")


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
    assert validator(cell, tok)(model) == pytest.approx(val["best_value"], abs=1e-6)  # the weights evaluated
