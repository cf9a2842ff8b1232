"""What a cell asks its scheduler for: ``[executor]`` and the ``rdb run`` flags, read into the Ray task options
and the submitit job parameters (checked on a CPU: the request is inspected, nothing is scheduled)."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.cli import _run_parser, executor_config
from benchmark.config import ExecutorConfig, load_experiment
from benchmark.errors import BenchError
from benchmark.executors import EXECUTORS, ray_options, slurm_parameters
from tests_support import TINY_GRID, merged, write_toml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER = {"name": "ray", "gpus_per_cell": 1, "cpus_per_cell": 4, "resources": {"a100": 1},
           "partition": "gpu", "time_min": 600, "mem_gb": 50, "slurm": {"account": "ir-lab"}}


def _experiment(tmp_path, executor):
    return load_experiment(write_toml(tmp_path / "grid.toml", merged(TINY_GRID, {"executor": executor})))


def test_executor_table_is_read_typed(tmp_path):
    cfg = _experiment(tmp_path, CLUSTER).executor
    assert cfg == ExecutorConfig(name="ray", gpus_per_cell=1.0, cpus_per_cell=4.0, resources={"a100": 1},
                                 partition="gpu", time_min=600, mem_gb=50.0, slurm={"account": "ir-lab"})
    assert load_experiment(write_toml(tmp_path / "plain.toml", TINY_GRID)).executor == ExecutorConfig()


def test_executor_settings_are_no_part_of_a_cell(tmp_path):
    plain = load_experiment(write_toml(tmp_path / "plain.toml", TINY_GRID))
    assert [c.cell_id for c in _experiment(tmp_path, CLUSTER).cells] == [c.cell_id for c in plain.cells]


@pytest.mark.parametrize("executor, culprit", [
    ({"gpu_per_cell": 1}, "executor: unknown key(s) gpu_per_cell (known: address, "),
    ({"gpus_per_cell": -1}, "executor.gpus_per_cell must be >= 0, got -1"),
    ({"cpus_per_cell": 0}, "executor.cpus_per_cell must be positive, got 0"),
    ({"resources": {"a100": 0}}, "executor.resources.a100 must be a positive number, got 0"),
    ({"resources": {"a100": "one"}}, "executor.resources.a100 must be a positive number, got 'one'"),
    ({"cluster": "pbs"}, "executor.cluster must be one of slurm, local, debug, got 'pbs'"),
    ({"time_min": "1h"}, "executor.time_min: expected int, got str '1h'"),
])
def test_bad_executor_settings_are_one_line(tmp_path, executor, culprit):
    with pytest.raises(BenchError) as err:
        _experiment(tmp_path, executor)
    assert str(err.value).startswith(culprit) and "\n" not in str(err.value)


def test_flags_override_the_table(tmp_path):
    experiment = _experiment(tmp_path, CLUSTER)
    args = _run_parser().parse_args(["g.toml", "--executor", "slurm", "--gpus-per-cell", "2", "--cpus-per-cell",
                                     "8", "--slurm-partition", "a100", "--slurm-time", "90"])
    cfg = executor_config(experiment, args)
    assert (cfg.name, cfg.gpus_per_cell, cfg.cpus_per_cell, cfg.partition, cfg.time_min) == ("slurm", 2, 8, "a100", 90)
    assert cfg.resources == {"a100": 1} and cfg.mem_gb == 50  # what no flag sets stays as the table has it
    assert executor_config(experiment, _run_parser().parse_args(["g.toml"])) == experiment.executor
    with pytest.raises(BenchError, match="^unknown executor 'pbs'"):
        executor_config(experiment, _run_parser().parse_args(["g.toml", "--executor", "pbs"]))


def test_the_flags_are_read_without_torch(tmp_path):
    grid = write_toml(tmp_path / "grid.toml", merged(TINY_GRID, {"executor": CLUSTER}))
    code = ("import sys; from benchmark.cli import _run_parser, executor_config; "
            "from benchmark.config import load_experiment; "
            f"cfg = executor_config(load_experiment({str(grid)!r}), _run_parser().parse_args(['g', '--gpus-per-cell', "
            "'1'])); assert 'torch' not in sys.modules, 'torch imported'; print(cfg.gpus_per_cell)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout == "1.0\n"


def test_ray_task_asks_for_the_cells_gpus_cpus_and_resources(monkeypatch):
    """The options of the remote function the Ray executor submits: Ray grants each task that many GPUs and sets
    its CUDA_VISIBLE_DEVICES to them, so a cell sees only its own device."""
    ray = pytest.importorskip("ray")
    from benchmark.grid import execute_cell

    monkeypatch.setenv("RDB_CACHE", "/shared/cache")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("UNRELATED_SECRET", "x")
    cfg = ExecutorConfig(name="ray", gpus_per_cell=1, cpus_per_cell=4, resources={"node_b": 1}, retries=2)
    options = ray.remote(**ray_options(cfg))(execute_cell)._default_options
    assert {k: options[k] for k in ("num_gpus", "num_cpus", "resources", "max_retries", "retry_exceptions")} == {
        "num_gpus": 1, "num_cpus": 4, "resources": {"node_b": 1}, "max_retries": 2, "retry_exceptions": False}
    env = options["runtime_env"]["env_vars"]
    assert env["RDB_CACHE"] == "/shared/cache" and env["HF_HUB_OFFLINE"] == "1" and "UNRELATED_SECRET" not in env
    assert "CUDA_VISIBLE_DEVICES" not in env  # Ray sets it to the granted GPU
    cpu_only = ray.remote(**ray_options(ExecutorConfig(name="ray")))(execute_cell)._default_options
    assert cpu_only["num_gpus"] == 0 and cpu_only["runtime_env"]["env_vars"]["CUDA_VISIBLE_DEVICES"] == ""


def test_slurm_job_parameters():
    cfg = ExecutorConfig(name="slurm", gpus_per_cell=1, cpus_per_cell=3.5, partition="gpu", time_min=600,
                         mem_gb=50, retries=2, slurm={"constraint": "a100"})
    assert slurm_parameters(cfg, "rdb-paper") == {
        "name": "rdb-paper", "timeout_min": 600, "cpus_per_task": 4, "gpus_per_node": 1, "nodes": 1,
        "tasks_per_node": 1, "mem_gb": 50, "slurm_partition": "gpu", "slurm_constraint": "a100"}


def test_unknown_sbatch_setting_is_one_line(tmp_path):
    pytest.importorskip("submitit")
    cfg = ExecutorConfig(name="slurm", cluster="local", slurm={"acount": "x"})
    cell = load_experiment(write_toml(tmp_path / "grid.toml", TINY_GRID)).cells[0]
    with pytest.raises(BenchError) as err:
        list(EXECUTORS.get("slurm")([cell], str(tmp_path / "results"), lambda c, r: {}, cfg))
    assert str(err.value).startswith("executor.slurm: Unknown argument 'acount' for executor 'slurm'")
    assert "\n" not in str(err.value)
