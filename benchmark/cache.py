"""Where generated data, first-stage runs, fine-tuned teachers and teacher scores are cached."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

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
