"""Progress of the long stages (training, reranking, teacher scoring, first-stage indexing and search, hub
downloads), one mechanism for all: a tqdm bar when stderr is a terminal, a plain line every :func:`log_every`
seconds when it is a file (a cluster job's log), nothing with ``--quiet`` (``RDB_QUIET=1``).

A stage hooks in with one call: ``Progress(total, desc, unit)`` updated as work is done (``desc=None``: silent, for
callers such as latency timing that score in small pieces), :func:`each` around an iterable, or
:func:`hub_downloads` around loading a hub checkpoint."""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tqdm.auto import tqdm

LOG_EVERY = 30.0  # seconds between plain progress lines (default)
QUIET_ENV = "RDB_QUIET"
EVERY_ENV = "RDB_PROGRESS_EVERY"  # seconds between plain progress lines, overriding LOG_EVERY
T = TypeVar("T")


def quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


def log_every() -> float:
    """Seconds between two plain lines of a stage in a log file (``RDB_PROGRESS_EVERY``, default 30)."""
    value = os.environ.get(EVERY_ENV, "")
    try:
        return float(value) if value else LOG_EVERY
    except ValueError:
        return LOG_EVERY


def terminal(stream: Any = None) -> bool:
    stream = stream if stream is not None else sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


class Progress:
    """``update(n)`` as work is done; a context manager (the bar or the last line closes on exit). ``desc=None``
    makes it silent."""

    def __init__(self, total: int | None, desc: str | None, unit: str = "it", *, initial: int = 0,
                 stream: Any = None, clock=time.monotonic) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self._stream = stream if stream is not None else sys.stderr
        self._clock, self._every, self._shown = clock, log_every(), initial
        self._started = self._last = clock()
        on = desc is not None and not quiet()
        tty = terminal(self._stream)
        self._bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                          file=self._stream) if on and tty else None)
        self._log = on and not tty

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._log and self._clock() - self._last >= self._every:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def _line(self) -> None:
        self._last, self._shown = self._clock(), self.done
        of = f"/{self.total}" if self.total else ""
        print(f"{self.desc}: {self.done}{of} {self.unit} in {self._last - self._started:.0f} s", file=self._stream,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._log and self.done != self._shown and self._clock() - self._started >= self._every:
            self._line()  # a long stage ends with its total; a short one stays silent

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def each(items: Iterable[T], desc: str | None, unit: str = "it", total: int | None = None) -> Iterator[T]:
    """``items`` as they are, counted on a :class:`Progress` (``total``: ``len(items)`` where it has one)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, unit) as bar:
        for item in items:
            yield item
            bar.update()


@contextmanager
def hub_downloads(*repos: str | None, poll: float = 1.0) -> Iterator[None]:
    """Around ``from_pretrained`` of hub checkpoints ``repos`` (local paths and None are skipped): transformers' own
    per-model "loading weights" bar stays off, but its ``disable_progress_bar()`` also switches off
    huggingface_hub's download bars (transformers ``utils/logging.py``), so those are switched back on for a
    terminal; in a log file (where the hub's tqdm bars are off, ``disable=None``) a thread counts the bytes
    arriving in each repo's hub cache folder (``models--ORG--NAME``, huggingface_hub's documented cache layout) and
    prints them as progress lines; ``--quiet`` silences both."""
    from huggingface_hub import constants
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    transformers_bars, hub_off = hf_logging.is_progress_bar_enabled(), are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    if not hub_off and not quiet():
        enable_progress_bars()
    hub = [r for r in dict.fromkeys(repos) if r and "/" in r and not Path(r).exists()]
    watches = [] if quiet() or terminal() else [
        _CacheWatch(Path(constants.HF_HUB_CACHE) / f"models--{r.replace('/', '--')}", f"download {r}", poll)
        for r in hub]
    try:
        yield
    finally:
        for watch in watches:
            watch.stop()
        if transformers_bars:
            hf_logging.enable_progress_bar()
        if hub_off:
            disable_progress_bars()
        elif not quiet():
            enable_progress_bars()


def _folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (a download's ``.incomplete`` blobs included); 0 when it is absent."""
    total = 0
    for path in folder.rglob("*") if folder.is_dir() else ():
        try:
            if path.is_file() and not path.is_symlink():
                total += path.stat().st_size
        except OSError:
            continue  # renamed while we looked: counted on the next poll
    return total


class _CacheWatch:
    """MB arriving in a hub cache folder, counted every ``poll`` seconds on a :class:`Progress` (and once more at
    :meth:`stop`); what the folder held before is not counted."""

    def __init__(self, folder: Path, desc: str, poll: float) -> None:
        self.folder, self.poll = folder, poll
        self.start, self.counted = _folder_bytes(folder), 0
        self.bar = Progress(None, desc, "MB")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _count(self) -> None:
        mb = max(0, _folder_bytes(self.folder) - self.start) // 2**20
        if mb > self.counted:
            self.bar.update(mb - self.counted)
            self.counted = mb

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            self._count()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self._count()
        self.bar.close()
