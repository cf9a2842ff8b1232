"""Tracker rows (``[tracking] backend``): where a cell's training curves and final measures are also sent, beside
its record. A row names the package it needs; ``benchmark.tracking`` holds one writer per row under the same name.
Off (``none``) by default; a tracker is an output option and never enters a cell's config hash."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec
from typing import Annotated

from . import typed
from .errors import BenchError
from .registry import Registry


@dataclass(frozen=True)
class TrackerSpec:
    module: str | None  # imported when a cell starts (None: nothing to import)
    package: str | None  # what ``pip install`` brings it
    description: str


TRACKERS: Registry[TrackerSpec] = Registry("tracker")
TRACKERS.add("none", TrackerSpec(None, None, "no tracker: the record's JSON curves only"))
TRACKERS.add("tensorboard", TrackerSpec("tensorboard", "tensorboard",
                                        "TensorBoard event files under <dir>/<experiment>/<cell_id>"))
TRACKERS.add("wandb", TrackerSpec("wandb", "wandb", "Weights & Biases: one run per cell in project <project>"))
TRACKERS.add("mlflow", TrackerSpec("mlflow", "mlflow", "MLflow: one run per cell in experiment <project>"))


@dataclass(frozen=True)
class TrackingConfig:
    """``[tracking]``: ``backend`` (a ``TRACKERS`` row), ``dir`` (TensorBoard's log root; W&B's files; MLflow's
    file store unless ``MLFLOW_TRACKING_URI`` names a server), ``project`` (W&B project / MLflow experiment;
    default: the grid's name)."""

    backend: Annotated[str, TRACKERS] = "none"
    dir: str = "runs"
    project: str | None = None

    def __post_init__(self) -> None:
        typed.check_choices(self, "tracking.")
        row = TRACKERS.get(self.backend)
        if row.module is not None and find_spec(row.module) is None:
            raise BenchError(f"tracking.backend {self.backend!r} needs the {row.package} package "
                             f"(pip install {row.package})")
