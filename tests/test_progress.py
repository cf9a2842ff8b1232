"""Progress lines: a bar on a terminal, a plain line every LOG_EVERY seconds in a log file, nothing when quiet; every
long stage of a run (BM25, teacher, training, reranking, hub downloads) reports through it."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import termios
import threading

import pytest

from benchmark.progress import LOG_EVERY, Progress, each, hub_downloads


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_log_file_gets_a_line_per_interval_and_the_total():
    log, clock = io.StringIO(), Clock()
    with Progress(100, "rerank trec-dl-2019", "queries", stream=log, clock=clock) as bar:
        for _ in range(100):
            clock.now += LOG_EVERY / 40
            bar.update()
    assert log.getvalue().splitlines() == [
        "rerank trec-dl-2019: 40/100 queries in 30 s", "rerank trec-dl-2019: 80/100 queries in 60 s",
        "rerank trec-dl-2019: 100/100 queries in 75 s"]


def test_a_short_stage_in_a_log_file_is_silent_and_quiet_silences_a_terminal(monkeypatch):
    log = io.StringIO()
    with Progress(3, "short", stream=log, clock=Clock()) as bar:
        bar.update(3)
    assert log.getvalue() == ""
    monkeypatch.setenv("RDB_QUIET", "1")
    tty = Tty()
    with Progress(3, "quiet", stream=tty) as bar:
        bar.update(3)
    assert tty.getvalue() == ""


def test_a_terminal_gets_a_bar():
    tty = Tty()
    with Progress(4, "train", "steps", stream=tty) as bar:
        bar.update(4)
    assert "train:" in tty.getvalue() and "/4 [" in tty.getvalue()  # tqdm draws it; leave=False clears it


def test_each_counts_an_iterable_and_none_is_silent(monkeypatch):
    monkeypatch.setenv("RDB_PROGRESS_EVERY", "0")
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    assert list(each("abc", "letters", "chars")) == ["a", "b", "c"]
    assert list(each(iter("de"), None)) == ["d", "e"]
    assert log.getvalue().splitlines() == [f"letters: {n}/3 chars in 0 s" for n in (1, 2, 3)]


def test_hub_downloads_keep_the_hubs_bars_on_a_terminal_and_count_cache_bytes_in_a_log(monkeypatch, tmp_path):
    """transformers' disable_progress_bar() would switch the hub's download bars off too; in a log file the bytes
    arriving in the repo's cache folder become progress lines."""
    from huggingface_hub import constants
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers.utils import logging as hf_logging

    monkeypatch.setattr("sys.stderr", Tty())
    with hub_downloads("org/model", None):
        assert not are_progress_bars_disabled() and not hf_logging.is_progress_bar_enabled()
    assert not are_progress_bars_disabled() and hf_logging.is_progress_bar_enabled()
    monkeypatch.setenv("RDB_QUIET", "1")
    with hub_downloads("org/model"):
        assert are_progress_bars_disabled()
    monkeypatch.delenv("RDB_QUIET")

    monkeypatch.setenv("RDB_PROGRESS_EVERY", "0")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    blobs = tmp_path / "models--org--model" / "blobs"
    blobs.mkdir(parents=True)
    (blobs / "cached").write_bytes(b"\0" * 2**20)  # already there: not counted
    log = io.StringIO()
    monkeypatch.setattr("sys.stderr", log)
    with hub_downloads("org/model", str(tmp_path), poll=3600):  # a local path is not watched
        (blobs / "weights.incomplete").write_bytes(b"\0" * 3 * 2**20)
    assert log.getvalue().splitlines() == ["download org/model: 3 MB in 0 s"]


def run_logged(tmp_path, monkeypatch, stream) -> None:
    """One cell of the tiny grid on BM25 candidates with a fine-tuned cross-encoder teacher, its stderr ``stream``."""
    from benchmark import cell, cli
    from tests_support import TINY_GRID, merged, write_toml

    cell.clear_collections()
    monkeypatch.setenv("RDB_CACHE", str(tmp_path / "cache"))  # nothing scored or indexed before
    monkeypatch.setenv("RDB_PROGRESS_EVERY", "0")
    bm25 = {"first_stage": "bm25", "file": None}
    grid = write_toml(tmp_path / "grid.toml", merged(TINY_GRID, {
        "grid": {"backbone": ["bert-tiny"], "objective": ["margin-mse"], "teacher": ["tiny-ce"]},
        "datasets": {"tiny-train": {**bm25, "max_queries": 8}, "tiny-test": {**bm25, "max_queries": 4}}}))
    monkeypatch.setattr("sys.stderr", stream)
    assert cli.main(["run", str(grid), "--results", str(tmp_path / "results"), "--no-report"]) == 0


STAGES = ("BM25 index: tokenise", "BM25 index: score", "BM25 search", "teacher minilm-l3",
          "teacher minilm-l3 scores", "rerank tiny-test")


@pytest.mark.slow
def test_a_run_logged_to_a_file_prints_lines_for_every_stage(tmp_path, monkeypatch):
    log = tmp_path / "stderr.log"
    with log.open("w") as stream:
        run_logged(tmp_path, monkeypatch, stream)
    lines = log.read_text().splitlines()
    assert "\r" not in log.read_text()  # plain lines, no bar redraws
    for stage in (*STAGES, "bert-tiny · margin-mse · tiny-ce · 0"):
        assert any(re.fullmatch(rf"{re.escape(stage)}: \d+(/\d+)? \w+ in \d+ s", line) for line in lines), stage


@pytest.mark.slow
def test_a_run_on_a_terminal_draws_bars_for_every_stage(tmp_path, monkeypatch):
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))  # a terminal's size: tqdm's width
    out = bytearray()
    reader = threading.Thread(target=_drain, args=(master, out), daemon=True)
    reader.start()
    with os.fdopen(slave, "w") as stream:
        assert stream.isatty()
        run_logged(tmp_path, monkeypatch, stream)
    reader.join(timeout=10)
    text = out.decode(errors="replace")
    for stage in STAGES:
        assert re.search(rf"{re.escape(stage)}: +\d+%\|", text), stage  # tqdm's bar: "desc:  50%|###  | 2/4"
    assert not re.search(r"^rerank tiny-test: \d+/\d+ pairs in", text, re.M)  # bars, not log lines


def _drain(fd: int, out: bytearray) -> None:
    """Read the pty until its writer closes (a full pty buffer would block the run)."""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            break
        if not chunk:
            break
        out += chunk
    os.close(fd)
