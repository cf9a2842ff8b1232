"""Progress lines: a bar on a terminal, a plain line every LOG_EVERY seconds in a log file, nothing when quiet."""

from __future__ import annotations

import io

from benchmark.progress import LOG_EVERY, Progress


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
