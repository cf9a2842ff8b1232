"""[tracking]: off by default and outside the config hash; TensorBoard event files hold a cell's step loss, lr,
validation values and final measures (read back with TensorBoard's own reader); a backend whose package is absent
is one line when the grid loads."""

from __future__ import annotations

import importlib.util

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from benchmark import cell as cell_module
from benchmark import grid, trackers
from benchmark.config import parse_experiment
from benchmark.errors import BenchError
from benchmark.inputs import read_toml
from benchmark.tracking import WRITERS
from tests_support import TINY_GRID, embedded_row, merged, write_toml


def experiment(tmp_path, tracking=None, **train):
    doc = merged(TINY_GRID, {
        "experiment": {"name": "tracked"},
        "grid": {"backbone": ["bert-tiny"], "objective": ["infonce"], "teacher": None},
        "train": {"max_steps": 4, "validate_every": 2, "validation_dataset": "tiny-dev", "validation_top_k": 10,
                  **train},
        "datasets": {"tiny-train": {"max_queries": 8}, "tiny-test": {"max_queries": 4},
                     "tiny-dev": embedded_row("dev", 3, top_k=20)},
        "teachers": None,
        **({"tracking": tracking} if tracking is not None else {}),
    })
    return parse_experiment(read_toml(write_toml(tmp_path / "grid.toml", doc)))


def test_every_tracker_row_has_a_writer_and_tracking_is_off_and_outside_the_hash(tmp_path):
    assert set(WRITERS) == set(trackers.TRACKERS.names())
    off = experiment(tmp_path).cells[0]
    on = experiment(tmp_path, {"backend": "tensorboard", "dir": str(tmp_path / "tb")}).cells[0]
    assert off.tracking.backend == "none" and on.tracking.backend == "tensorboard"
    assert on.config_hash == off.config_hash and on.cell_id == off.cell_id
    with pytest.raises(BenchError, match="tracking.backend must be one of none, tensorboard, wandb, mlflow, got 'tb'"):
        experiment(tmp_path, {"backend": "tb"})
    with pytest.raises(BenchError, match="tracking: unknown key"):
        experiment(tmp_path, {"backend": "tensorboard", "logdir": "x"})


def test_a_backend_without_its_package_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(trackers, "find_spec", lambda name: None)
    with pytest.raises(BenchError) as err:
        experiment(tmp_path, {"backend": "tensorboard"})
    assert str(err.value) == "tracking.backend 'tensorboard' needs the tensorboard package (pip install tensorboard)"


@pytest.mark.parametrize("backend", ["wandb", "mlflow"])
def test_wandb_and_mlflow_absent_here_are_one_line(tmp_path, backend):
    if importlib.util.find_spec(backend) is not None:
        pytest.skip(f"{backend} is installed here")
    with pytest.raises(BenchError, match=rf"^tracking.backend '{backend}' needs the {backend} package "
                                         rf"\(pip install {backend}\)$"):
        experiment(tmp_path, {"backend": backend})


def test_tensorboard_event_files_hold_the_cells_curves_and_final_measures(tmp_path):
    cell_module.clear_collections()
    cell = experiment(tmp_path, {"backend": "tensorboard", "dir": str(tmp_path / "tb")}).cells[0]
    rec = grid.execute_cell(cell, str(tmp_path / "results"))
    assert rec["status"] == "ok", rec.get("error")
    events = EventAccumulator(str(tmp_path / "tb" / "tracked" / cell.cell_id))
    events.Reload()
    scalars = {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}
    # Tracked by steps done (1 = after the first step); the record's curve keeps every log_every-th step, 0-based.
    curve = dict(map(tuple, rec["train"]["loss_curve"]))
    assert [s for s, _ in scalars["train/loss"]] == [1, 2, 3, 4] and len(curve) >= 2
    for step, value in scalars["train/loss"]:
        if step - 1 in curve:
            assert value == pytest.approx(curve[step - 1], abs=1e-5)
    assert rec["train"]["warmup_steps"] == 0  # int(0.1 * 4): linear decay from the first step, 1 - step / 4
    assert [v for _, v in scalars["train/lr"]] == pytest.approx([cell.train.lr * f for f in (1, 0.75, 0.5, 0.25)])
    assert [(s, pytest.approx(v, abs=1e-6)) for s, v in scalars["validation/nDCG@10"]] == \
        [tuple(p) for p in rec["train"]["validation"]["curve"]]
    measures = rec["metrics"]["tiny-test"]["first_stage_info"]["measures"]
    for measure in measures:
        assert scalars[f"tiny-test/{measure}"] == [(4, pytest.approx(rec["metrics"]["tiny-test"][measure], abs=1e-6))]
