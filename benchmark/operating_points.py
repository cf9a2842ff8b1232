"""Operating points: what reranking costs at one (architecture, precision, rerank depth, device) on one machine.

Latency depends on the architecture, the runtime and how many candidates are scored, not on the weights a cell
learned, so a grid times each operating point once and every cell that shares it records the same figure: four
cells of one architecture no longer spread by the machine's noise. A figure is keyed by everything that sets the
cost (the backbone row without its name, the scoring settings, precision, depth, device, the timed dataset, the
timing protocol, the CPU model and thread count) and kept under ``<results>/<experiment>/operating-points/`` (one
JSON per point, written atomically under a file lock), so a resumed grid and a second worker reuse it. Cells without
a results directory (tests, ``run_cell`` alone) share figures within the process.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .cache import lock
from .results import atomic_write_text

DIRECTORY = "operating-points"


def point_key(what: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()[:20]


class FigureStore:
    """Operating-point figures by key: on disk under ``directory`` (None: this process only)."""

    _process: dict[str, dict[str, Any]] = {}

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = None if directory is None else Path(directory)
        self.memory = FigureStore._process if directory is None else {}

    def shared(self, what: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The figure of the operating point ``what`` describes: read when one is kept, else ``measure()`` once and
        kept. The figure carries its ``key``."""
        key = point_key(what)
        if key not in self.memory:
            self.memory[key] = {**(self._on_disk(key, what, measure) if self.directory else measure()), "key": key}
        return self.memory[key]

    def _on_disk(self, key: str, what: dict[str, Any], measure: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{key}.json"
        with lock(path):  # a second worker waits for the first one's figure
            try:
                kept = json.loads(path.read_text(encoding="utf-8"))
                if kept.get("what") == json.loads(json.dumps(what, default=str)):
                    return kept["figure"]
            except (OSError, ValueError, KeyError, AttributeError):
                pass  # absent or damaged: time it again
            figure = measure()
            atomic_write_text(path, json.dumps({"what": what, "figure": figure}, sort_keys=True, default=str))
            return figure
