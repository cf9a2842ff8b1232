"""Executors: how a grid's cells are spread over processes or machines. Each runs ``execute(cell, results_dir)``
(the grid's ``execute_cell``: one cell and its record) for every cell and yields the records as cells finish, with
the grid's ``[executor]`` settings (:class:`benchmark.config.ExecutorConfig`) saying what each cell asks for.

Cells elsewhere write their records (and checkpoints) into ``results_dir`` themselves, so it and ``RDB_CACHE`` must
be storage every worker reaches under the same path; a worker, node or job lost mid-cell is started again (up to
``retries`` times) and resumes from the cell's last checkpoint, and one lost for good yields a ``failed`` record
that is not written: rerunning the grid resumes the cell."""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .config import CellConfig, ExecutorConfig
from .errors import BenchError
from .registry import Registry
from .results import SCHEMA_VERSION

Execute = Callable[[CellConfig, str], dict[str, Any]]
OnStart = Callable[[CellConfig], None]
Executor = Callable[..., Iterator[dict[str, Any]]]
EXECUTORS: Registry[Executor] = Registry("executor")

# Environment a cell elsewhere needs to read what this process reads (caches, offline hub, ir_datasets home): a
# Ray worker started by ``ray start`` has its own environment, so these travel with each task.
FORWARDED_ENV = ("HF_HOME", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "IR_DATASETS_HOME", "TOKENIZERS_PARALLELISM")
FORWARDED_PREFIX = "RDB_"


@EXECUTORS.register("local")
def local(cells: Sequence[CellConfig], results_dir: str, execute: Execute, config: ExecutorConfig | None = None, *,
          on_start: OnStart | None = None) -> Iterator[dict[str, Any]]:
    """One cell after another in this process (collections and teacher scores are shared in memory); ``on_start``
    hears of each cell as it starts."""
    for cell in cells:
        if on_start:
            on_start(cell)
        yield execute(cell, results_dir)


def get_executor(name: str) -> Executor:
    return EXECUTORS.get(name)


def lost_record(cell: CellConfig, err: BaseException) -> dict[str, Any]:
    """The ``failed`` record of a cell whose worker, node or job was lost for good (not written: the cell keeps its
    checkpoint, and rerunning the grid resumes it)."""
    message = " ".join(f"{type(err).__name__}: {err}".split())[:500]
    return {"schema": SCHEMA_VERSION, "experiment": cell.experiment, "cell_id": cell.cell_id,
            "config_hash": cell.config_hash, "status": "failed", "axes": cell.axes, "config": cell.to_dict(),
            "error": {"type": type(err).__name__, "message": f"the cell's worker was lost ({message}); rerun the "
                                                             "grid to resume it"}}


def forwarded_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k in FORWARDED_ENV or k.startswith(FORWARDED_PREFIX)}


# A cell that asked for no GPU sees none (Ray and SLURM leave CUDA_VISIBLE_DEVICES alone then), so a CPU cell on a
# GPU node does not take a device the scheduler gave another cell.
NO_GPU = {"CUDA_VISIBLE_DEVICES": ""}


def ray_options(config: ExecutorConfig) -> dict[str, Any]:
    """The Ray task options of one cell: its CPUs and GPUs (Ray sets ``CUDA_VISIBLE_DEVICES`` to the GPUs it grants,
    so a cell sees only its own; none without a GPU request), custom resources, retries after a lost worker or
    node, and the environment (:data:`FORWARDED_ENV`, ``RDB_*``)."""
    env = {**forwarded_env(), **({} if config.gpus_per_cell else NO_GPU)}
    return {"num_cpus": config.cpus_per_cell, "num_gpus": config.gpus_per_cell, "resources": dict(config.resources),
            "max_retries": config.retries, "retry_exceptions": False, "runtime_env": {"env_vars": env}}


@EXECUTORS.register("ray")
def ray_executor(cells: Sequence[CellConfig], results_dir: str, execute: Execute,
                 config: ExecutorConfig | None = None, *, on_start: OnStart | None = None
                 ) -> Iterator[dict[str, Any]]:
    """One Ray task per cell on a local or remote cluster (``config.address``; a Ray already initialised in this
    process is used as it is)."""
    try:
        import ray  # optional: the [ray] extra
    except ImportError:
        raise BenchError("--executor ray needs Ray: pip install 'rerank-distill-bench[ray]'") from None
    config = config or ExecutorConfig(name="ray")
    started = not ray.is_initialized()
    if started:
        ray.init(address=config.address)
    try:
        task = ray.remote(**ray_options(config))(execute)
        pending = {task.remote(cell, results_dir): cell for cell in cells}
        for cell in cells if on_start else ():  # every task is submitted at once: the cluster runs what it can
            on_start(cell)
        while pending:
            (done,), _ = ray.wait(list(pending), num_returns=1)
            cell = pending.pop(done)
            try:
                yield ray.get(done)
            except Exception as err:  # noqa: BLE001 -- retries spent (worker or node lost): the grid goes on
                yield lost_record(cell, err)
    finally:
        if started:
            ray.shutdown()


def slurm_parameters(config: ExecutorConfig, name: str) -> dict[str, Any]:
    """submitit's parameters for one cell's job: time limit, CPUs, GPUs and memory from ``[executor]``, the
    partition, and ``executor.slurm`` as ``slurm_<key>``."""
    return {"name": name, "timeout_min": config.time_min, "cpus_per_task": math.ceil(config.cpus_per_cell),
            "gpus_per_node": math.ceil(config.gpus_per_cell), "nodes": 1, "tasks_per_node": 1,
            "mem_gb": config.mem_gb, "slurm_partition": config.partition,
            **{f"slurm_{k}": v for k, v in config.slurm.items()}}


@EXECUTORS.register("slurm")
def slurm_executor(cells: Sequence[CellConfig], results_dir: str, execute: Execute,
                   config: ExecutorConfig | None = None, *, on_start: OnStart | None = None
                   ) -> Iterator[dict[str, Any]]:
    """One SLURM job per cell, submitted as one job array through submitit (``config.cluster = "local"``: the same
    jobs as processes on this machine). Job logs go to ``<results>/.submitit/``. A job that times out or is
    preempted is requeued and the cell resumes from its checkpoint."""
    try:
        import submitit  # optional: the [slurm] extra
    except ImportError:
        raise BenchError("--executor slurm needs submitit: pip install 'rerank-distill-bench[slurm]'") from None
    if not cells:
        return
    config = config or ExecutorConfig(name="slurm")
    results = str(Path(results_dir).resolve())  # jobs start in another directory
    experiment = cells[0].experiment
    try:
        # requeues after a time-out or preemption: ``retries``
        executor = submitit.AutoExecutor(folder=Path(results) / ".submitit" / "%j", cluster=config.cluster,
                                         slurm_max_num_timeout=config.retries, local_max_num_timeout=config.retries)
    except RuntimeError as err:  # no sbatch/srun on this machine
        raise BenchError(f"--executor slurm: {err} (executor.cluster = \"local\" runs the jobs on this machine)"
                         ) from None
    try:
        executor.update_parameters(**slurm_parameters(config, f"rdb-{experiment}"))
    except NameError as err:  # submitit names the unknown sbatch setting and lists the known ones
        raise BenchError(f"executor.slurm: {str(err).splitlines()[0]}") from None
    with executor.batch():
        jobs = [executor.submit(_SlurmCell(execute, {} if config.gpus_per_cell else NO_GPU), cell, results)
                for cell in cells]
    for cell in cells if on_start else ():
        on_start(cell)
    pending = dict(zip(jobs, cells))
    poll = 1.0 if config.cluster != "slurm" else 15.0  # a SLURM poll asks sacct: not every second
    for job in submitit.helpers.as_completed(jobs, poll_frequency=poll):
        cell = pending.pop(job)
        try:
            yield job.result()
        except Exception as err:  # noqa: BLE001 -- the job died (out of memory, requeues spent): the grid goes on
            yield lost_record(cell, err)


class _SlurmCell:
    """A cell as a submitit job: on a time-out or preemption submitit asks it for a resubmission of itself (the
    same cell, which resumes from its checkpoint). Defined without subclassing submitit's ``Checkpointable`` so
    this module imports without submitit."""

    def __init__(self, execute: Execute, env: dict[str, str]) -> None:
        self.execute, self.env = execute, env

    def __call__(self, cell: CellConfig, results_dir: str) -> dict[str, Any]:
        os.environ.update(self.env)  # before the cell first touches CUDA
        return self.execute(cell, results_dir)

    def checkpoint(self, cell: CellConfig, results_dir: str) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self, cell, results_dir)
