"""Names that become paths: one slug function for every user-chosen name (experiment, cell-id parts, row names in
cache keys) and one check that a path stays under the directory the user named."""

from __future__ import annotations

import re
from pathlib import Path

from .errors import BenchError

_UNSAFE = re.compile(r"[^A-Za-z0-9_.=-]+|\.{2,}")  # also '..', so a path-like name reads as words, not steps up


def safe_name(text: str, limit: int = 40) -> str:
    """``text`` as one path component: letters, digits and ``_ . = -``; any other run of characters (and ``..``)
    becomes one ``-``; no leading dot (so never ``.``, ``..`` or a hidden file), at most ``limit`` characters."""
    return re.sub("-{2,}", "-", _UNSAFE.sub("-", str(text))).lstrip(".-")[:limit].rstrip("-")


def within(root: Path, path: Path) -> Path:
    """``path`` itself when it resolves under ``root``; otherwise a one-line error naming both."""
    root, path = Path(root), Path(path)
    if not path.resolve().is_relative_to(root.resolve()):
        raise BenchError(f"refusing to write {str(path)!r}: it is outside {str(root)!r}")
    return path
