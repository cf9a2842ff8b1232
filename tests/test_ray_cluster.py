"""A grid on a Ray cluster of simulated nodes (``ray start`` processes on this machine, each with its own custom
resource), one node killed mid-cell: the grid finishes, the killed cell is retried on another node and resumes from
its checkpoint, every cell has one ``ok`` record, and each record equals a one-process run's."""

import dataclasses
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from benchmark.config import load_experiment
from benchmark.grid import run_grid
from benchmark.results import load_records, record_path
from tests_support import TINY_GRID, computed, merged, write_toml

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'rerank-distill-bench[ray]')")

ROOT = Path(__file__).resolve().parents[1]
RAY = Path(sys.executable).with_name("ray")
# A node that stops answering is declared dead after ~2 s instead of ~30 s (Ray system settings, read from the
# environment of the processes `ray start` launches); no token authentication between processes of one machine.
RAY_ENV = {"RAY_health_check_initial_delay_ms": "0", "RAY_health_check_period_ms": "1000",
           "RAY_health_check_failure_threshold": "2", "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
# 18 steps of one batch of 4 queries, a checkpoint after each: the kill lands while the cell trains.
DOC = merged(TINY_GRID, {"experiment": {"name": "cluster"},
                         "grid": {"backbone": ["bert-tiny"], "objective": ["bce", "infonce"],
                                  "teacher": ["labels"]},
                         "train": {"epochs": 3, "batch_size": 4, "checkpoint_every": 1}})


class Cluster:
    """Ray processes under one temporary directory: a head that runs no cell (0 CPUs) and worker nodes of one CPU
    each, every one marked by its own resource (``{"node_b": 1}``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = _free_port()
        self.env = {**os.environ, **RAY_ENV, "PYTHONPATH": str(ROOT)}
        self.env.pop("RAY_ADDRESS", None)
        self._start("--head", f"--port={self.port}", "--num-cpus=0", "--include-dashboard=false")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _start(self, *args: str) -> None:
        subprocess.run([str(RAY), "start", *args, f"--temp-dir={self.root}", "--object-store-memory=80000000",
                        "--disable-usage-stats"], env=self.env, check=True, capture_output=True, timeout=180)

    def add_node(self, name: str) -> None:
        self._start(f"--address={self.address}", "--num-cpus=1", f"--resources={json.dumps({name: 1})}")

    def pids(self, marker: str = "") -> list[int]:
        """This cluster's processes (their command line names its temporary directory) that also name ``marker``."""
        found = []
        for proc in Path("/proc").iterdir():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if proc.name.isdigit() and int(proc.name) != os.getpid() and str(self.root) in cmd and marker in cmd:
                found.append(int(proc.name))
        return found

    def kill_node(self, name: str) -> None:
        """SIGKILL the node's raylet and the workers it started (a machine gone, as far as the cluster can tell)."""
        (raylet,) = [p for p in self.pids("raylet") if name in _cmdline(p)]
        for pid in [*_children(raylet), raylet]:
            _kill(pid)

    def stop(self) -> None:
        for _ in range(3):  # a dying raylet may start nothing new, but its workers die a moment after it
            for pid in self.pids():
                _kill(pid)
            time.sleep(0.5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def cluster(monkeypatch):
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # the driver, this process
    root = Path(tempfile.mkdtemp(prefix="rdbray-", dir="/tmp"))  # short: Ray's socket paths stay under 108 bytes
    made = None
    try:
        made = Cluster(root)
        yield made
    finally:
        if ray.is_initialized():
            ray.shutdown()
        if made is not None:
            made.stop()
        shutil.rmtree(root, ignore_errors=True)


def test_grid_survives_a_node_killed_mid_cell(tmp_path, cluster):
    grid = write_toml(tmp_path / "cluster.toml", DOC)
    experiment = load_experiment(grid)
    run_grid(experiment, tmp_path / "reference", echo=lambda _: None)  # one process, no kill
    reference = {r["cell_id"]: r for r in load_records(tmp_path / "reference", "cluster")}

    results = tmp_path / "results"
    cluster.add_node("node_b")  # the only node with a CPU: the first cell starts there
    killed: list[str] = []

    def kill_node_b_once_a_cell_checkpoints() -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            started = [c.cell_id for c in experiment.cells
                       if record_path(results, "cluster", c.cell_id, ".ckpt").is_dir()]
            if started:
                cluster.kill_node("node_b")
                killed.extend(started)
                cluster.add_node("node_c")  # the grid goes on there, the killed cell retried with the others
                return
            time.sleep(0.05)

    killer = threading.Thread(target=kill_node_b_once_a_cell_checkpoints)
    started = time.perf_counter()
    killer.start()
    try:
        summary = run_grid(experiment, results, echo=lambda _: None,
                           executor=dataclasses.replace(experiment.executor, name="ray", address=cluster.address))
    finally:
        killer.join()
    print(f"cluster run: {time.perf_counter() - started:.0f} s")
    assert len(killed) == 1, "the kill should land while exactly one cell trains"
    assert not summary.failures and len(summary.ran) == 2
    files = sorted(p.name for p in (results / "cluster").iterdir() if p.suffix == ".json")
    assert files == sorted(f"{c.cell_id}.json" for c in experiment.cells)  # one record per cell, none failed
    records = {r["cell_id"]: r for r in load_records(results, "cluster")}
    assert all(r["status"] == "ok" for r in records.values())
    resumed = {cid: r["train"].get("resumed_from_step") for cid, r in records.items()}
    assert 0 < resumed[killed[0]] < records[killed[0]]["train"]["steps"]  # from its checkpoint, not step 0
    assert [cid for cid, step in resumed.items() if step] == killed
    print(f"killed node_b while {killed[0]} trained; it resumed at step {resumed[killed[0]]} of "
          f"{records[killed[0]]['train']['steps']} on node_c")  # shown with pytest -s: the run's account
    for cid, record in records.items():
        assert computed(record) == computed(reference[cid]), cid


def test_a_cell_whose_worker_dies_for_good_is_a_failed_record_left_unwritten(tmp_path):
    from benchmark.config import ExecutorConfig
    from benchmark.executors import get_executor

    cell = load_experiment(write_toml(tmp_path / "cluster.toml", DOC)).cells[0]

    def die(cell, results_dir):
        os._exit(3)  # the worker process gone, as an out-of-memory kill leaves it

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    try:
        records = list(get_executor("ray")([cell], str(tmp_path / "results"), die,
                                           ExecutorConfig(name="ray", retries=0)))
    finally:
        ray.shutdown()
    assert [(r["cell_id"], r["status"]) for r in records] == [(cell.cell_id, "failed")]
    assert records[0]["error"]["message"].startswith("the cell's worker was lost (")
    assert records[0]["error"]["message"].endswith("); rerun the grid to resume it")
    assert not (tmp_path / "results").exists()
