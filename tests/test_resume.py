"""Grids that survive: kill -9 mid-grid then resume, OOM retry with gradient accumulation, the Ray executor."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from benchmark.config import load_experiment
from benchmark.results import load_records, read_record
from tests_support import TINY_GRID, merged, write_toml

ROOT = Path(__file__).resolve().parents[1]
LABELS_ONLY = merged(TINY_GRID, {"grid": {"teacher": ["labels"]}})


def _grid(tmp_path, name, doc=LABELS_ONLY):
    return write_toml(tmp_path / f"{name}.toml", merged(doc, {"experiment": {"name": name}}))


def test_kill_9_mid_grid_then_resume(tmp_path):
    grid = _grid(tmp_path, "killed")
    results = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "run_grid.py"), str(grid), "--results", str(results), "--no-report"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path)
    deadline = time.time() + 600
    while time.time() < deadline and len(list((results / "killed").glob("*.json"))) < 2:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p: p.stat().st_mtime_ns for p in (results / "killed").glob("*.json")}
    assert 2 <= len(finished) < 4, "the kill should land mid-grid"
    assert subprocess.run(cmd, capture_output=True, cwd=tmp_path, timeout=900).returncode == 0
    exp = load_experiment(grid)
    files = sorted((results / "killed").glob("*.json"))
    assert [p.stem for p in files] == sorted(c.cell_id for c in exp.cells)  # exactly one record per cell
    assert all(read_record(p)["status"] == "ok" for p in files)
    assert all(p.stat().st_mtime_ns == t for p, t in finished.items())  # finished cells were not recomputed
    assert not list((results / "killed").glob(".*.tmp"))  # no half-written temp file left behind


def test_oom_retries_once_with_half_the_micro_batch(tmp_path, monkeypatch):
    import torch

    import benchmark.training as training
    from benchmark.cell import run_cell

    real, calls = training.train_model, []

    def flaky(*args, **kwargs):
        calls.append(args[5].grad_accum)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")
        return real(*args, **kwargs)

    monkeypatch.setattr(training, "train_model", flaky)
    cell = load_experiment(_grid(tmp_path, "oom")).cells[0]
    record = run_cell(cell)
    assert calls == [1, 2]
    assert record["status"] == "ok" and record["train"]["oom_retry"] == {"grad_accum": 2}


def test_ray_executor_matches_local(tmp_path):
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rerank-distill-bench[ray]')")
    from benchmark.grid import run_grid

    doc = merged(LABELS_ONLY, {"grid": {"backbone": ["bert-tiny"]}})
    exp_local = load_experiment(_grid(tmp_path, "local", doc))
    exp_ray = load_experiment(_grid(tmp_path, "viaray", doc))
    run_grid(exp_local, tmp_path / "r", echo=lambda _: None)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {k: v for k, v in os.environ.items() if k in ("RDB_CACHE", "HF_HUB_OFFLINE")}})
    try:
        summary = run_grid(exp_ray, tmp_path / "r", executor="ray", echo=lambda _: None)
    finally:
        ray.shutdown()
    assert len(summary.ran) == 2 and not summary.failures
    local = {r["config_hash"]: r for r in load_records(tmp_path / "r", "local")}
    remote = {r["config_hash"]: r for r in load_records(tmp_path / "r", "viaray")}
    assert set(local) == set(remote)
    for key, rec in local.items():  # same config, same seed, same CPU kernels -> same effectiveness
        assert remote[key]["metrics"] == rec["metrics"] and remote[key]["per_query"] == rec["per_query"]


def test_interrupted_training_resumes_from_its_checkpoint_exactly(tmp_path, monkeypatch):
    import dataclasses

    import torch

    import benchmark.training as training
    from benchmark.cell import load
    from benchmark.losses import get_objective
    from benchmark.models import build_cross_encoder

    cell = load_experiment(_grid(tmp_path, "ckpt")).cells[0]
    cfg = dataclasses.replace(cell.train, epochs=2, checkpoint_every=1)  # 24 queries / 8 = 3 steps an epoch
    data = load(cell, cfg.dataset)
    targets = training.Targets(data.qrels, "labels")

    def train(checkpoint_dir):
        model, tok = build_cross_encoder(cell.backbone, seed=0)
        stats = training.train_model(model, tok, data, targets, get_objective("infonce"), cfg, seed=0,
                                     use_token_type_ids=True, checkpoint_dir=checkpoint_dir)
        return model, stats

    reference, _ = train(None)
    real_step, calls = training._step, []

    def crash_at_fifth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt  # killed mid-epoch 2, after 4 checkpointed steps
        return real_step(*args, **kwargs)

    monkeypatch.setattr(training, "_step", crash_at_fifth)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "ckpt")
    monkeypatch.setattr(training, "_step", real_step)
    resumed, stats = train(tmp_path / "ckpt")
    assert stats["resumed_from_step"] == 4 and stats["steps"] == 6
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


def test_resumed_training_keeps_the_best_step_so_far(tmp_path, monkeypatch):
    """Killed after the best validation (step 4 of 8), the resumed run still knows step 4 and its weights."""
    import dataclasses

    import torch

    import benchmark.training as training
    from benchmark.cell import load
    from benchmark.losses import get_objective
    from benchmark.models import build_cross_encoder

    cell = load_experiment(_grid(tmp_path, "best")).cells[0]
    cfg = dataclasses.replace(cell.train, max_steps=8, checkpoint_every=1, validate_every=2,
                              validation_dataset="tiny-test")
    data = load(cell, cfg.dataset)
    targets = training.Targets(data.qrels, "labels")

    def planted():
        values = iter([0.2, 0.5, 0.4, 0.1])  # rises then falls: step 4 is best
        return lambda model: next(values)

    def train(checkpoint_dir, validate):
        model, tok = build_cross_encoder(cell.backbone, seed=0)
        stats = training.train_model(model, tok, data, targets, get_objective("infonce"), cfg, seed=0,
                                     use_token_type_ids=True, checkpoint_dir=checkpoint_dir, validate=validate)
        return model, stats

    reference, ref_stats = train(None, planted())
    real_step, calls = training._step, []

    def crash_at_sixth(*args, **kwargs):
        calls.append(1)
        if len(calls) == 6:
            raise KeyboardInterrupt  # after 5 checkpointed steps and the validations at steps 2 and 4
        return real_step(*args, **kwargs)

    validate = planted()  # one sequence of values across the killed and the resumed run
    monkeypatch.setattr(training, "_step", crash_at_sixth)
    with pytest.raises(KeyboardInterrupt):
        train(tmp_path / "ckpt", validate)
    monkeypatch.setattr(training, "_step", real_step)
    resumed, stats = train(tmp_path / "ckpt", validate)
    assert stats["resumed_from_step"] == 5 and stats["steps"] == 8
    assert stats["validation"]["curve"] == ref_stats["validation"]["curve"] == [[2, 0.2], [4, 0.5], [6, 0.4],
                                                                                 [8, 0.1]]
    assert stats["validation"]["best_step"] == 4
    for (name, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name  # both end on step 4's weights
