"""Results store: one JSON record per grid cell, written atomically, read back as plain dicts.

Layout: ``<results_dir>/<experiment>/<cell_id>.json``. A record is the unit of truth for reports.

Record schema (``schema`` = 1)::

    {
      "schema": 1,
      "experiment": "default",             # experiment name (TOML [experiment].name)
      "cell_id": "bert-tiny__bce__labels__s0__1a2b3c4d",  # readable axes + config hash prefix
      "config_hash": "<sha256 of the canonical resolved config>",
      "status": "ok" | "failed",
      "axes": {"backbone": "bert-tiny", "objective": "bce", "teacher": "labels", "seed": 0, ...},
      "config": {...},                     # the full resolved cell config (CellConfig.to_dict())
      "metrics": {                         # per evaluation dataset row
        "embedded-test": {"nDCG@10": 0.61, "RR@10": 0.7, "R@100": 0.9,
                          "first_stage": {"nDCG@10": 0.4, "RR@10": 0.5}, "n_queries": 60,
                          "random_order": {"nDCG@10": 0.06, "std": 0.02, "shuffles": 20,   # shuffled candidates
                                           "per_query": {"nDCG@10": {"q1": 0.1, ...}}},
                          "teacher": {"name": "minilm-l6-ce", "nDCG@10": 0.78, "RR@10": 0.8,  # model teachers only
                                      "per_query": {"nDCG@10": {...}, "RR@10": {...}}}}
      },
      "per_query": {"embedded-test": {"nDCG@10": {"q1": 0.5, ...}, "RR@10": {...}}},
      "latency": {"cpu": {...}, "cuda": {...} or null},   # see benchmark.latency
      "train": {"seconds": 12.3, "steps": 200, "examples": 800, "loss_curve": [[step, loss], ...]},
      "provenance": {"git_sha": "...", "versions": {...}, "hardware": {...},
                     "started": "ISO-8601", "finished": "ISO-8601"},
      "error": {"type": "...", "message": "...", "traceback_file": "..."}   # only when status == "failed"
    }
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from .errors import BenchError

SCHEMA_VERSION = 1


def record_path(results_dir: Path, experiment: str, cell_id: str) -> Path:
    return Path(results_dir) / experiment / f"{cell_id}.json"


def atomic_write_text(path: Path, text: str) -> None:
    """Write via a temp file in the same directory + rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_record(results_dir: Path, record: dict[str, Any]) -> Path:
    """Write one cell record atomically; returns its path."""
    path = record_path(results_dir, record["experiment"], record["cell_id"])
    atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n")
    return path


def read_record(path: Path) -> dict[str, Any] | None:
    """A valid record, or None for a file that is not one (half-written by a crash, foreign JSON)."""
    try:
        rec = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(rec, dict) or rec.get("schema") != SCHEMA_VERSION or "cell_id" not in rec:
        return None
    return rec


def load_records(results_dir: Path, experiment: str | None = None) -> list[dict[str, Any]]:
    """All valid records under ``results_dir`` (one experiment, or all), sorted by experiment and cell id."""
    root = Path(results_dir)
    if not root.is_dir():
        raise BenchError(f"results directory {str(root)!r} does not exist or is not a directory")
    pattern = f"{experiment}/*.json" if experiment else "*/*.json"
    recs = [r for p in sorted(root.glob(pattern)) if (r := read_record(p)) is not None]
    return sorted(recs, key=lambda r: (r["experiment"], r["cell_id"]))
