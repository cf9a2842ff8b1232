"""Where generated data, first-stage runs, fine-tuned teachers and teacher scores are cached."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any


def cache_root() -> Path:
    """``$RDB_CACHE``, else ``~/.cache/rerank-distill-bench`` (read at call time so tests can point it elsewhere)."""
    return Path(os.environ.get("RDB_CACHE", Path.home() / ".cache" / "rerank-distill-bench"))


def digest(*parts: Any) -> str:
    """A short stable key for cache file names (JSON of the parts, sorted keys)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]
