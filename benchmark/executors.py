"""Executors: how a grid's cells are spread over processes or machines. Each yields records as cells finish."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

from .config import CellConfig
from .grid import execute_cell
from .registry import Registry

Executor = Callable[..., Iterator[dict[str, Any]]]
EXECUTORS: Registry[Executor] = Registry("executor")


@EXECUTORS.register("local")
def local(cells: Sequence[CellConfig], results_dir: str, **options: Any) -> Iterator[dict[str, Any]]:
    """One cell after another in this process (collections and teacher scores are shared in memory)."""
    for cell in cells:
        yield execute_cell(cell, results_dir)


def get_executor(name: str) -> Executor:
    return EXECUTORS.get(name)
