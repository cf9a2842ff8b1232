"""Where generated data, first-stage runs, fine-tuned teachers and teacher scores are cached, and how processes
sharing a cache directory (Ray workers, SLURM jobs, two runs on one machine) write it without racing.

Every writer takes the entry's file lock (``<entry>.lock`` beside it, :func:`lock`) and writes atomically: a whole
entry (a file or a directory) is built under a temporary name and renamed into place by :func:`build_once`, so a
reader sees the entire entry or none, and a process that finds the entry missing while another builds it waits for
the lock and then reads the built entry instead of building it again. Append-only stores (:class:`RunStore`,
:class:`ScoreStore`) lock each append."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

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


@contextmanager
def lock(path: Path) -> Iterator[None]:
    """Hold the file lock of cache entry ``path`` (``<path>.lock``, an OS lock released when the process dies, so a
    killed builder never leaves it held). A process that has to wait says so once on stderr."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    held = FileLock(str(path.with_name(path.name + ".lock")))
    try:
        held.acquire(timeout=0)
    except Timeout:
        print(f"cache: waiting for another process writing {path}", file=sys.stderr)
        held.acquire()
    try:
        yield
    finally:
        held.release()


def build_once(path: Path, build: Callable[[Path], None], ready: Callable[[Path], bool] | None = None) -> Path:
    """The cache entry ``path``, built by ``build(tmp)`` when missing, once across every process sharing the cache.

    ``build`` writes the entry (a file or a directory) at the temporary path it is given, beside ``path``; it is
    renamed into place when ``build`` returns, under the entry's lock, so readers never see half an entry and a
    second process that misses it waits, then reads what the first built. ``ready`` says whether an existing entry
    is complete (default: it exists); an incomplete one (left by an older layout) is removed and rebuilt. Each build
    prints one ``cache: built`` line on stderr."""
    path = Path(path)
    ready = ready or Path.exists
    if ready(path):
        return path
    with lock(path):
        if ready(path):  # another process built it while this one waited
            return path
        _remove(path)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
        start = time.perf_counter()
        try:
            build(tmp)
            os.replace(tmp, path)
        finally:
            _remove(tmp)
        print(f"cache: built {path} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return path


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


class RunStore:
    """First-stage candidates of single queries, kept in a JSON-lines file (``{"qid", "run", "sha"}``).

    Each append holds the store's lock (:func:`lock`) and writes its lines at once, so processes sharing the cache
    (Ray workers, SLURM jobs) add queries side by side, on a network filesystem too, where ``O_APPEND`` alone does
    not keep two writers apart. ``sha`` is a checksum of the line's run: a line that does not parse or whose run
    does not match it (a write cut short, a full disk, a damaged file, a line of an older layout) is not read, and
    that query is searched again and appended. Two lines for one query hold the same deterministic run."""

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
        lines = "".join(json.dumps({"qid": qid, "run": cands, "sha": _checksum(cands)}) + "\n"
                        for qid, cands in run.items()).encode()
        with lock(self.path):
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                size = os.fstat(fd).st_size
                if size and os.pread(fd, 1, size - 1) != b"\n":  # after a line cut short: never glue onto it
                    os.write(fd, b"\n")
                view = memoryview(lines)
                while view:
                    view = view[os.write(fd, view):]
            except OSError as err:  # a line cut short fails its checksum: read() skips it
                raise BenchError(f"cannot write run cache {str(self.path)!r}: {err.strerror or err}") from None
            finally:
                os.close(fd)


Pair = tuple[str, str]


class ScoreStore:
    """A teacher model's scores of (query id, doc id) pairs, one sqlite table keyed by the pair.

    Lookups read a pool's pairs query by query on the primary key; new pairs are scored and inserted by
    :meth:`fill` under the store's file lock, so one process scores a missing pair and a second one asking for it
    waits and reads it (no pair is scored twice, nothing is rewritten whole: a grid's 1M pairs cost what the new
    ones cost). The database keeps sqlite's rollback journal rather than WAL: WAL's shared-memory index does not
    work between hosts on a network filesystem, where a cluster's cache lives; readers wait out a writer's commit
    (busy timeout) rather than fail."""

    TABLE = ("CREATE TABLE IF NOT EXISTS scores (qid TEXT NOT NULL, docid TEXT NOT NULL, score REAL NOT NULL, "
             "PRIMARY KEY (qid, docid)) WITHOUT ROWID")

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        try:
            return sqlite3.connect(self.path, timeout=600, isolation_level=None)
        except sqlite3.Error as err:
            raise BenchError(f"cannot open teacher-score cache {str(self.path)!r}: {err}") from None

    def get(self, pool: Mapping[str, Iterable[str]]) -> dict[str, dict[str, float]]:
        """The stored scores of the pool's pairs (qid -> docid -> score); pairs not stored are left out."""
        if not self.path.is_file():
            return {}
        out: dict[str, dict[str, float]] = {}
        con = self._connect()
        try:
            if not con.execute("SELECT 1 FROM sqlite_master WHERE name = 'scores'").fetchone():
                return {}
            for qid, docids in pool.items():
                stored = dict(con.execute("SELECT docid, score FROM scores WHERE qid = ?", (qid,)))
                row = {d: stored[d] for d in docids if d in stored}
                if row:
                    out[qid] = row
        except sqlite3.DatabaseError as err:
            raise BenchError(f"teacher-score cache {str(self.path)!r} cannot be read ({err}); delete it to "
                             "score again") from None
        finally:
            con.close()
        return out

    def fill(self, pool: Mapping[str, list[str]], score: Callable[[list[Pair]], Iterable[float]]
             ) -> dict[str, dict[str, float]]:
        """Scores of every pair of ``pool``: the stored ones, and ``score(missing pairs)`` for the rest, inserted
        (insert-or-ignore) before they are returned; each insert prints one ``cache: added`` line on stderr."""
        found = self.get(pool)
        if not _missing(pool, found):
            return found
        with lock(self.path):
            found = self.get(pool)  # what another process scored while this one waited
            missing = _missing(pool, found)
            if missing:
                values = [float(v) for v in score(missing)]
                self._insert(zip(missing, values))
                print(f"cache: added {len(missing)} score(s) to {self.path}", file=sys.stderr)
                for (q, d), v in zip(missing, values):
                    found.setdefault(q, {})[d] = v
        return found

    def import_json(self, path: Path) -> None:
        """Add the scores of an earlier version's JSON cache (qid -> docid -> score) once, then remove that file."""
        if not path.is_file():
            return
        with lock(self.path):
            if path.is_file():
                table = json.loads(path.read_text(encoding="utf-8"))
                self._insert(((q, d), float(v)) for q, row in table.items() for d, v in row.items())
                path.unlink()

    def _insert(self, rows: Iterable[tuple[Pair, float]]) -> None:
        """Insert in one transaction (the caller holds the lock)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            con.execute(self.TABLE)
            con.executemany("INSERT OR IGNORE INTO scores VALUES (?, ?, ?)", ((q, d, v) for (q, d), v in rows))
            con.execute("COMMIT")
        except sqlite3.Error as err:
            raise BenchError(f"cannot write teacher-score cache {str(self.path)!r}: {err}") from None
        finally:
            con.close()


def _missing(pool: Mapping[str, list[str]], found: dict[str, dict[str, float]]) -> list[Pair]:
    return [(q, d) for q, docids in pool.items() for d in docids if d not in found.get(q, {})]


def _checksum(cands: Any) -> str:
    return hashlib.sha256(json.dumps(cands).encode()).hexdigest()[:16]
