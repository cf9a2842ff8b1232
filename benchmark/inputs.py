"""Reading input files (grid TOML, queries, documents, qrels, runs, teacher files): one layer that strips a UTF-8
byte-order mark and turns every defect (unreadable file, bytes that are not UTF-8, malformed JSON, non-finite numbers,
duplicate ids) into a one-line :class:`BenchError` naming the file and line."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from .errors import BenchError

V = TypeVar("V")
BOM = "\ufeff"


def read_text(path: Path, what: str = "file") -> str:
    """The whole file as text: UTF-8, a leading BOM dropped, CRLF left to :meth:`str.splitlines`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise BenchError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        line = data[:err.start].count(b"\n") + 1
        column = err.start - (data.rfind(b"\n", 0, err.start) + 1) + 1
        raise BenchError(f"{path}:{line}: not UTF-8 (byte 0x{data[err.start]:02x} at column {column}); "
                         f"re-save the {what} as UTF-8") from None
    return text.removeprefix(BOM)


def lines(path: Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line (line endings removed)."""
    for lineno, line in enumerate(read_text(path, what).splitlines(), 1):
        if line.strip():
            yield lineno, line


def _no_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"non-finite number {text}")
    return value


def json_lines(path: Path, what: str = "file") -> Iterator[tuple[int, Any]]:
    """(line number, object) for every non-blank line of a JSONL file; NaN/Infinity/overflowing numbers rejected."""
    for lineno, line in lines(path, what):
        try:
            yield lineno, json.loads(line, parse_constant=_no_constant, parse_float=_finite_float)
        except ValueError as err:
            raise BenchError(f"{path}:{lineno}: not valid JSON in {what} ({err})") from None


def finite(text: str, path: Path, lineno: int, what: str) -> float:
    """A finite float from a text field, or a one-line error naming the file and line."""
    try:
        return _finite_float(text)
    except ValueError:
        raise BenchError(f"{path}:{lineno}: {what} {text!r} is not a finite number") from None


def unique(rows: Iterable[tuple[int, str, V]], path: Path, what: str) -> dict[str, V]:
    """``{id: value}`` from (line number, id, value) rows; a repeated id is an error naming both lines, since
    keeping either copy silently changes what is evaluated."""
    out: dict[str, V] = {}
    first: dict[str, int] = {}
    for lineno, key, value in rows:
        if key in first:
            raise BenchError(f"{path}:{lineno}: duplicate {what} {key!r} (first on line {first[key]})")
        first[key] = lineno
        out[key] = value
    return out


def read_toml(path: Path, what: str = "grid file") -> dict[str, Any]:
    """A TOML document; malformed TOML is one line naming the file (tomllib's message carries line and column)."""
    try:
        return tomllib.loads(read_text(path, what))
    except tomllib.TOMLDecodeError as err:
        raise BenchError(f"{path}: malformed TOML: {err}") from None
