"""Writers of the ``[tracking]`` backends (one per ``benchmark.trackers`` row, under the same name): a cell's step
loss and learning rate, validation values (``train/*``, ``validation/*``, by optimiser step) and its final measures
(``<dataset>/<measure>``, at the last step). Each package is imported when a cell opens its tracker."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

Values = Mapping[str, float]


class Tracker:
    """The ``none`` backend, and the interface: :meth:`log` values at an optimiser step, :meth:`close` the run."""

    def __init__(self, cell: Any) -> None:
        self.cell = cell

    def log(self, step: int, values: Values) -> None:
        """Values at optimiser step ``step``."""

    def close(self) -> None:
        """Flush and end the run (a failed cell's too: its curves up to the failure are kept)."""

    def folder(self) -> Path:
        return Path(self.cell.tracking.dir) / self.cell.experiment / self.cell.cell_id

    def project(self) -> str:
        return self.cell.tracking.project or self.cell.experiment


class TensorBoard(Tracker):
    """Event files under ``<dir>/<experiment>/<cell_id>`` (``torch.utils.tensorboard.SummaryWriter``)."""

    def __init__(self, cell: Any) -> None:
        from torch.utils.tensorboard import SummaryWriter

        super().__init__(cell)
        self.writer = SummaryWriter(log_dir=str(self.folder()))

    def log(self, step: int, values: Values) -> None:
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)

    def close(self) -> None:
        self.writer.close()


class Wandb(Tracker):
    """One W&B run per cell (named by its cell id, its resolved config as the run's config; the summary keeps each
    value's last, so the final measures)."""

    def __init__(self, cell: Any) -> None:
        import wandb

        super().__init__(cell)
        self.run = wandb.init(project=self.project(), name=cell.cell_id, dir=cell.tracking.dir,
                              config=cell.to_dict())

    def log(self, step: int, values: Values) -> None:
        self.run.log(dict(values), step=step)

    def close(self) -> None:
        self.run.finish()


class MLflow(Tracker):
    """One MLflow run per cell (named by its cell id, its axes as parameters), in ``MLFLOW_TRACKING_URI`` or a file
    store under ``dir``."""

    def __init__(self, cell: Any) -> None:
        import mlflow

        super().__init__(cell)
        self.mlflow = mlflow
        if not os.environ.get("MLFLOW_TRACKING_URI"):
            mlflow.set_tracking_uri(Path(cell.tracking.dir).resolve().as_uri())
        mlflow.set_experiment(self.project())
        mlflow.start_run(run_name=cell.cell_id)
        mlflow.log_params({k: str(v) for k, v in cell.axes.items()})

    def log(self, step: int, values: Values) -> None:
        # MLflow keys allow letters, digits, _ - . space : / only (nDCG@10 -> nDCG_10)
        self.mlflow.log_metrics({re.sub(r"[^\w\-. :/]", "_", k): v for k, v in values.items()}, step=step)

    def close(self) -> None:
        self.mlflow.end_run()


WRITERS: dict[str, type[Tracker]] = {"none": Tracker, "tensorboard": TensorBoard, "wandb": Wandb, "mlflow": MLflow}


def open_tracker(cell: Any) -> Tracker:
    """The cell's ``[tracking]`` writer, opened (a W&B or MLflow run starts here)."""
    return WRITERS[cell.tracking.backend](cell)


def close_tracker(tracker: Tracker, cell: Any) -> None:
    """Close ``tracker``; a tracker that cannot (a W&B or MLflow server gone) costs one line, never the record."""
    try:
        tracker.close()
    except Exception as err:  # noqa: BLE001 -- each backend's client raises its own types
        print(f"{cell.cell_id}: tracking.backend {cell.tracking.backend!r} did not close: {err}", file=sys.stderr)


def final_values(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, float]:
    """``<dataset>/<measure>`` of each eval set's measures in a record's ``metrics``."""
    return {f"{dataset}/{measure}": float(m[measure]) for dataset, m in metrics.items()
            for measure in m.get("first_stage_info", {}).get("measures", ["nDCG@10"])
            if isinstance(m.get(measure), float)}
