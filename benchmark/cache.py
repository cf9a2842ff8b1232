"""Where generated data, first-stage runs, fine-tuned teachers and teacher scores are cached."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from .errors import BenchError
from .paths import safe_name, within


def cache_root() -> Path:
    """``$RDB_CACHE``, else ``~/.cache/rerank-distill-bench`` (read at call time so tests can point it elsewhere)."""
    return Path(os.environ.get("RDB_CACHE", Path.home() / ".cache" / "rerank-distill-bench"))


def digest(*parts: Any) -> str:
    """A short stable key for cache file names (JSON of the parts, sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def cache_file(kind: str, name: str, key: str, suffix: str) -> Path:
    """``<cache root>/<kind>/<name>-<key><suffix>``: ``name`` (a row name, free text in a grid file) made a safe
    slug, and the result checked to stay under the cache root."""
    root = cache_root()
    return within(root, root / kind / f"{safe_name(name) or 'row'}-{key}{suffix}")


class RunStore:
    """First-stage candidates of single queries, kept in a JSON-lines file (``{"qid", "run", "sha"}``).

    Each query is appended as one line in one ``write`` call, so processes sharing the cache (Ray workers) add
    queries side by side. ``sha`` is a checksum of the line's run: a line that does not parse or whose run does not
    match it (a write cut short, a full disk, a damaged file, a line of an older layout) is not read, and that query
    is searched again and appended. Two lines for one query hold the same deterministic run."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> dict[str, dict[str, float]]:
        run: dict[str, dict[str, float]] = {}
        if not self.path.is_file():
            return run
        with self.path.open("rb") as f:
            for raw in f:
                try:
                    row = json.loads(raw)
                    if row["sha"] != _checksum(row["run"]):
                        continue
                    run[str(row["qid"])] = {str(d): float(s) for d, s in row["run"].items()}
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
        return run

    def add(self, run: dict[str, dict[str, float]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":  # after a line cut short: never glue onto it
                os.write(fd, b"\n")
            for qid, cands in run.items():
                os.write(fd, (json.dumps({"qid": qid, "run": cands, "sha": _checksum(cands)}) + "\n").encode())
        except OSError as err:  # a line cut short fails its checksum: read() skips it
            raise BenchError(f"cannot write run cache {str(self.path)!r}: {err.strerror or err}") from None
        finally:
            os.close(fd)


def _checksum(cands: Any) -> str:
    return hashlib.sha256(json.dumps(cands).encode()).hexdigest()[:16]
