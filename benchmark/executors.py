"""Executors: how a grid's cells are spread over processes or machines. Each runs ``execute(cell, results_dir)``
(the grid's ``execute_cell``: one cell and its record) for every cell and yields the records as cells finish."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .config import CellConfig
from .errors import BenchError
from .registry import Registry

Execute = Callable[[CellConfig, str], dict[str, Any]]
Executor = Callable[..., Iterator[dict[str, Any]]]
EXECUTORS: Registry[Executor] = Registry("executor")


@EXECUTORS.register("local")
def local(cells: Sequence[CellConfig], results_dir: str, execute: Execute, *,
          on_start: Callable[[CellConfig], None] | None = None, **options: Any) -> Iterator[dict[str, Any]]:
    """One cell after another in this process (collections and teacher scores are shared in memory); ``on_start``
    hears of each cell as it starts."""
    for cell in cells:
        if on_start:
            on_start(cell)
        yield execute(cell, results_dir)


def get_executor(name: str) -> Executor:
    return EXECUTORS.get(name)


@EXECUTORS.register("ray")
def ray_executor(cells: Sequence[CellConfig], results_dir: str, execute: Execute, *, address: str | None = None,
                 num_cpus: float = 1, num_gpus: float = 0, on_start: Callable[[CellConfig], None] | None = None,
                 **options: Any) -> Iterator[dict[str, Any]]:
    """One Ray task per cell on a local or remote cluster (``address``); ``results_dir`` must be storage every
    worker can write (a shared filesystem path). Each task writes its own record atomically, so a lost worker
    loses only its running cell, and rerunning the grid resumes."""
    try:
        import ray  # optional: the [ray] extra
    except ImportError:
        raise BenchError("--executor ray needs Ray: pip install 'rerank-distill-bench[ray]'") from None
    if not ray.is_initialized():
        ray.init(address=address, **options)
    task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus)(execute)
    pending = [task.remote(cell, results_dir) for cell in cells]
    for cell in cells if on_start else ():  # every task is submitted at once: the cluster runs what it can
        on_start(cell)
    while pending:
        done, pending = ray.wait(pending, num_returns=1)
        yield ray.get(done[0])
