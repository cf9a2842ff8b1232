"""Progress of the long stages (training, reranking, teacher scoring, first-stage indexing): a tqdm bar when
stderr is a terminal, a plain line every :data:`LOG_EVERY` seconds when it is a file (a cluster job's log), nothing
with ``--quiet`` (``RDB_QUIET=1``)."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from tqdm.auto import tqdm

LOG_EVERY = 30.0  # seconds between plain progress lines
QUIET_ENV = "RDB_QUIET"


def quiet() -> bool:
    return os.environ.get(QUIET_ENV, "") not in ("", "0")


class Progress:
    """``update(n)`` as work is done; a context manager (the bar or the last line closes on exit)."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", *, initial: int = 0, stream: Any = None,
                 clock=time.monotonic) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self._stream = stream if stream is not None else sys.stderr
        self._clock = clock
        self._started = self._last = clock()
        terminal = bool(getattr(self._stream, "isatty", lambda: False)())
        self._bar = (tqdm(total=total, initial=initial, desc=desc, unit=unit, leave=False, dynamic_ncols=True,
                          file=self._stream) if terminal and not quiet() else None)
        self._log = not terminal and not quiet()

    def update(self, n: int = 1) -> None:
        self.done += n
        if self._bar is not None:
            self._bar.update(n)
        elif self._log and self._clock() - self._last >= LOG_EVERY:
            self._line()

    def set_postfix(self, **values: Any) -> None:
        if self._bar is not None:
            self._bar.set_postfix(**values)

    def _line(self) -> None:
        self._last = self._clock()
        of = f"/{self.total}" if self.total else ""
        print(f"{self.desc}: {self.done}{of} {self.unit} in {self._last - self._started:.0f} s", file=self._stream,
              flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
        elif self._log and self._clock() - self._started >= LOG_EVERY:
            self._line()  # a long stage ends with its total; a short one stays silent

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
