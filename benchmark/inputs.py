"""Reading input files (grid TOML, queries, documents, qrels, runs, teacher files): one layer that streams plain and
gzip files alike, strips a UTF-8 byte-order mark and CR line endings, and turns every defect (unreadable file, bytes
that are not UTF-8, corrupt or truncated gzip, an empty file, malformed JSON, wrong column counts, non-finite numbers,
non-integer ranks, duplicate ids or (query, doc) pairs) into a one-line :class:`BenchError` naming the file and line."""

from __future__ import annotations

import gzip
import json
import math
import tomllib
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

from .errors import BenchError

V = TypeVar("V")
BOM = "\ufeff"
GZIP_MAGIC = b"\x1f\x8b"


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


def _decode(raw: bytes, path: Path, lineno: int, what: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise BenchError(f"{path}:{lineno}: not UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
                         f"re-save the {what} as UTF-8") from None


def _open_bytes(path: Path, what: str) -> BinaryIO:
    """The file's bytes, gunzipped on the fly when it starts with the gzip magic (``.gz`` or not)."""
    try:
        f = path.open("rb")
        gzipped = f.read(2) == GZIP_MAGIC
        f.seek(0)
    except OSError as err:
        raise BenchError(f"cannot read {what} {str(path)!r}: {err.strerror or err}") from None
    return gzip.GzipFile(fileobj=f, mode="rb") if gzipped else f  # type: ignore[return-value]


def stream(path: Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, line) for every line, streamed (plain or gzip, never read whole): UTF-8, a leading BOM dropped,
    the line ending (LF or CRLF) removed. A file that cannot be read, bytes that are not UTF-8 and a corrupt or
    truncated gzip stream (an interrupted download) are one line naming the file and line; so is a file without a
    single non-blank line."""
    path = Path(path)
    lineno, blank = 0, True
    f = _open_bytes(path, what)
    try:
        with f:
            for lineno, raw in enumerate(f, 1):
                line = _decode(raw.rstrip(b"\n").rstrip(b"\r"), path, lineno, what)
                if lineno == 1:
                    line = line.removeprefix(BOM)
                blank = blank and not line.strip()
                yield lineno, line
    except (EOFError, OSError, zlib.error) as err:  # gzip.BadGzipFile is an OSError
        raise BenchError(f"{path}:{lineno + 1}: corrupt or truncated gzip data ({err}); download the {what} "
                         "again") from None
    if blank:
        raise BenchError(f"{path}:1: empty {what} (no line with content)")


def lines(path: Path, what: str = "file") -> Iterator[tuple[int, str]]:
    """(line number, line) for every non-blank line of :func:`stream`."""
    return ((n, line) for n, line in stream(path, what) if line.strip())


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


def integer(text: str, path: Path, lineno: int, what: str) -> int:
    """An integer from a text field (a rank, a grade), or a one-line error naming the file and line."""
    try:
        return int(text)
    except ValueError:
        raise BenchError(f"{path}:{lineno}: {what} {text!r} is not an integer") from None


TREC_RUN = "qid Q0 docid rank score tag"


class PairRule:
    """The rule for (query, doc) pairs of a TREC run: each query's lines form one block (as every tool writes a run,
    and as trec_eval reads it after sorting), and a document appears once per query. Two scores for one pair would
    make the first stage depend on which line a reader keeps, so a repeat is an error naming both lines, as is a
    query whose lines are split in two blocks. Memory: the current block's doc ids and the finished query ids."""

    def __init__(self, path: Path) -> None:
        self.path, self.qid, self.block, self.done = path, None, {}, {}

    def check(self, lineno: int, qid: str, docid: str) -> None:
        if qid != self.qid:
            if qid in self.done:
                raise BenchError(f"{self.path}:{lineno}: query {qid!r} again after other queries (its lines began "
                                 f"on line {self.done[qid]}); a run lists each query's lines together")
            if self.qid is not None:
                self.done[self.qid] = self.start
            self.qid, self.block, self.start = qid, {}, lineno
        first = self.block.setdefault(docid, lineno)
        if first != lineno:
            raise BenchError(f"{self.path}:{lineno}: query {qid!r} lists document {docid!r} twice (first on line "
                             f"{first}); which score counts would be a guess")


def trec_run_lines(path: Path, what: str = "run file") -> Iterator[tuple[int, str, str, int, float]]:
    """(line number, qid, docid, rank, score) of every line of a TREC run (``qid Q0 docid rank score tag``), plain or
    gzip: six columns, an integer rank, a finite score, and the pairs of :class:`PairRule`."""
    rule = PairRule(Path(path))
    for lineno, line in lines(path, what):
        parts = line.split()
        if len(parts) != 6:
            raise BenchError(f"{path}:{lineno}: not a TREC run line ({TREC_RUN}): {len(parts)} columns in "
                             f"{line[:80]!r}")
        qid, _, docid, rank, score, _ = parts
        rule.check(lineno, qid, docid)
        yield lineno, qid, docid, integer(rank, path, lineno, "rank"), finite(score, path, lineno, "score")


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
