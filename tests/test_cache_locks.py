"""Caches shared by processes: an entry is built once (a second process waits, then reads it), readers never see
half an entry, teacher scores are added to an sqlite store pair by pair; and two whole grid runs started cold on
one cache directory build each entry once and compute the same records."""

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from benchmark.cache import ScoreStore, build_once
from benchmark.results import load_records
from tests_support import TINY_GRID, computed, merged, write_toml

ROOT = Path(__file__).resolve().parents[1]
MADE = re.compile(r"^cache: (?:built (\S+) in |added \d+ score\(s\) to (\S+)$)", re.M)


def _spawn(code: str, **env: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(ROOT), **env})


def test_a_missing_entry_is_built_once_while_the_other_process_waits(tmp_path):
    """Two processes miss one entry at once: the one holding the lock builds it (slowly, so the other surely arrives
    meanwhile), the other waits and returns the built entry without building."""
    entry, builds = tmp_path / "entry", tmp_path / "builds"
    code = f"""
        import sys, time
        from pathlib import Path
        from benchmark.cache import build_once
        def build(tmp):
            with open({str(builds)!r}, "a") as f:
                f.write("built\\n")
            tmp.mkdir()
            time.sleep(2)
            (tmp / "part").write_text("whole")
        print((build_once(Path({str(entry)!r}), build) / "part").read_text())
    """
    procs = [_spawn(code), _spawn(code)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [out for out, _ in outs] == ["whole\n", "whole\n"]
    assert builds.read_text() == "built\n"
    stderr = "".join(err for _, err in outs)
    assert stderr.count("cache: built") == 1 and stderr.count("cache: waiting for another process") == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["builds", "entry", "entry.lock"]  # no temp dir left


def test_an_interrupted_build_leaves_nothing_and_the_next_one_builds(tmp_path):
    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        build_once(tmp_path / "file.json", broken)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.json.lock"]
    assert build_once(tmp_path / "file.json", lambda tmp: tmp.write_text("{}")).read_text() == "{}"


def test_an_incomplete_entry_is_rebuilt_and_a_complete_one_kept(tmp_path):
    index = tmp_path / "index"
    (index / "bm25s").mkdir(parents=True)  # an older layout's build stopped before its marker file
    calls = []

    def build(tmp: Path) -> None:
        calls.append(tmp)
        tmp.mkdir()
        (tmp / "doc_ids.json").write_text("[]")

    def ready(path: Path) -> bool:
        return (path / "doc_ids.json").is_file()

    build_once(index, build, ready)
    build_once(index, build, ready)
    assert len(calls) == 1 and sorted(p.name for p in index.iterdir()) == ["doc_ids.json"]


def test_score_store_scores_only_missing_pairs_and_keeps_order(tmp_path):
    store, asked = ScoreStore(tmp_path / "scores.sqlite"), []

    def score(pairs):
        asked.append(pairs)
        return [len(q) + 10 * len(d) for q, d in pairs]

    assert store.get({"q1": ["d1"]}) == {}  # no file yet
    assert store.fill({"q1": ["d1", "d22"]}, score) == {"q1": {"d1": 22.0, "d22": 32.0}}
    got = store.fill({"q1": ["d22", "d1", "d333"], "q22": ["d1"]}, score)
    assert got == {"q1": {"d22": 32.0, "d1": 22.0, "d333": 42.0}, "q22": {"d1": 23.0}}
    assert [list(g["q1"]) for g in [got]] == [["d22", "d1", "d333"]]  # the pool's order
    assert asked == [[("q1", "d1"), ("q1", "d22")], [("q1", "d333"), ("q22", "d1")]]
    assert store.fill({"q22": ["d1"]}, score) == {"q22": {"d1": 23.0}} and len(asked) == 2


def test_score_store_moves_an_old_json_cache_in_once(tmp_path):
    old = tmp_path / "minilm-abc.json"
    old.write_text(json.dumps({"q1": {"d1": 0.5, "d2": -1.25}}))
    store = ScoreStore(tmp_path / "minilm-abc.sqlite")
    store.import_json(old)
    assert not old.exists()
    assert store.fill({"q1": ["d2", "d1"]}, lambda pairs: pytest.fail(f"scored {pairs}")) == {
        "q1": {"d2": -1.25, "d1": 0.5}}


def test_a_damaged_score_store_is_one_line(tmp_path):
    path = tmp_path / "scores.sqlite"
    path.write_bytes(b"not a database" * 100)
    from benchmark.errors import BenchError

    with pytest.raises(BenchError, match=f"^teacher-score cache '{path}' cannot be read .*; delete it to score"):
        ScoreStore(path).get({"q": ["d"]})


def test_two_processes_score_a_pool_once(tmp_path):
    """Both processes miss the same 2,000 pairs at once: one scores and inserts them, the other waits and reads."""
    log = tmp_path / "scored"
    code = f"""
        import time
        from pathlib import Path
        from benchmark.cache import ScoreStore
        pool = {{f"q{{i}}": [f"d{{j}}" for j in range(100)] for i in range(20)}}
        def score(pairs):
            with open({str(log)!r}, "a") as f:
                f.write(f"{{len(pairs)}}\\n")
            time.sleep(1)
            return [int(q[1:]) + int(d[1:]) / 1000 for q, d in pairs]
        got = ScoreStore(Path({str(tmp_path / "s.sqlite")!r})).fill(pool, score)
        print(sum(len(r) for r in got.values()), got["q7"]["d42"])
    """
    procs = [_spawn(code), _spawn(code)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert [out for out, _ in outs] == ["2000 7.042\n", "2000 7.042\n"]
    assert log.read_text() == "2000\n"


@pytest.mark.slow
def test_two_grid_runs_cold_on_one_cache_build_each_entry_once(tmp_path):
    """Two grid runs started together on an empty cache directory: the embedded collection, the fine-tuned teacher,
    its scores and its runs are each made by one of them (``cache: built`` / ``cache: added`` lines, counted over
    both runs' stderr), both finish, and their records are the same."""
    grid = write_toml(tmp_path / "grid.toml", merged(TINY_GRID, {
        "experiment": {"name": "shared"}, "grid": {"backbone": ["bert-tiny"], "objective": ["margin-mse"],
                                                   "teacher": ["tiny-ce"]}}))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RDB_CACHE": str(tmp_path / "cache"), "RDB_QUIET": "1"}
    procs = [subprocess.Popen([sys.executable, str(ROOT / "run_grid.py"), str(grid), "--results",
                               str(tmp_path / f"results-{i}"), "--no-report"], cwd=tmp_path, env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in (0, 1)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    made = [m.group(1) or m.group(2) for _, err in outs for m in MADE.finditer(err)]
    kinds = sorted(Path(p).relative_to(tmp_path / "cache").parts[0] for p in made)
    assert kinds == ["embedded", "teacher-runs", "teacher-scores", "teachers"]  # each made once, by either run
    first, second = (load_records(tmp_path / f"results-{i}", "shared") for i in (0, 1))
    assert len(first) == len(second) == 1 and first[0]["status"] == second[0]["status"] == "ok"
    assert computed(first[0]) == computed(second[0])
