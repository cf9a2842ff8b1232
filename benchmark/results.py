"""Results store: one JSON record per grid cell, written atomically, read back as plain dicts.

Layout: ``<results_dir>/<experiment>/<cell_id>.json``. A record is the unit of truth for reports.

Record schema (``schema`` = 1)::

    {
      "schema": 1,
      "experiment": "smoke",                     # TOML [experiment].name
      "cell_id": "bert-tiny__bce__labels__0__0afd121de4",   # readable axes + config hash prefix
      "config_hash": "<sha256 of the canonical resolved config>",
      "status": "ok" | "failed",
      "axes": {"backbone": "bert-tiny", "objective": "bce", "teacher": "labels", "seed": 0, ...},
      "config": {...},                           # the full resolved cell (CellConfig.to_dict()), rows included
      "metrics": {"embedded-test": {             # per evaluation dataset row: its measures (ir_measures names)
          "nDCG@10": 0.61, "RR@10": 0.7, "Judged@10": 0.5, "n_queries": 60,
          "first_stage": {"nDCG@10": 0.45, ..., "R@100": 0.88, "per_query": {"nDCG@10": {...}, ...}},
          "first_stage_info": {"name": "bm25", "first_stage": "file", "depth": 100, "rerank_depth": 100,
                               "reranked_max": 100, "reranked_mean": 99.9, "measures": [...]},
          "random_order": {"nDCG@10": 0.07, "std": 0.01, "shuffles": 20, "per_query": {"nDCG@10": {...}}},
          "teacher": {"name": "minilm-l6-ce", "nDCG@10": 0.78, ..., "per_query": {...}}}},  # model teachers
      "per_query": {"embedded-test": {"nDCG@10": {"q1": 0.5, ...}, ...}},
      "depths": {"embedded-test": [              # per rerank depth (eval.depths, then eval.top_k), same scores
          {"depth": 10, "student": {"measures": {...}, "per_query": {...}}, "teacher": {...}}, ...]},
      "latency": {"cpu": {...}, "cuda": {...} | null,      # the student at eval.top_k (benchmark.latency)
                  "operating_points": [{"role": "student" | "teacher", "backbone": "minilm-l3", "precision": "fp32",
                                        "depth": 10, "device": "cpu", "p50_ms": 40.1, "q1_ms": 39.0,
                                        "q3_ms": 41.9, ..., "key": "<shared figure>"}, ...],
                  "precision": {name: {..., "depths": {...}}}},  # only with eval.precision beyond fp32
      "train": {"seconds": 69.0, "steps": 13, "epochs": 1, "queries": 200, "pairs": 1600, "pairs_per_s": 23.2,
                "device": "cpu", "dtype": "fp32", "warmup_steps": 1, "loss_curve": [[step, loss], ...],
                "validation": {...}, "oom_retry": {...}, "resumed_from_step": 4,    # these three when they apply
                "teacher": {"name": "minilm-l6-ce", "kind": "cross-encoder", "models": [{"backbone": "minilm-l6",
                            "fine_tuning": {..., "device": "cpu", "dtype": "fp32"}}]}},  # model teachers
      "runs": {"embedded-test": {"reranked": "<cell_id>.runs/embedded-test.trec.gz", "first_stage": "file",
                                 "first_stage_name": "bm25", "rerank_depth": 100}},
      "model": "<cell_id>.model",                # only when the student is saved
      "provenance": {"git_sha": "...", "versions": {...}, "hardware": {...}, "started": "ISO-8601",
                     "finished": "ISO-8601"},
      "data": {"embedded-test": "<Collection.meta['hash']>", ...},        # every dataset the cell read
      "error": {"type": "...", "message": "...", "traceback_file": "..."}  # failed records, in place of
    }                                                                      # metrics, per_query, latency, train, runs

An eval-only cell's ``train`` is ``{"seconds": 0.0, "steps": 0, "examples": 0, "loss_curve": [], "eval_only": true}``.

A rerun that fails while ``<cell_id>.json`` holds an ``ok`` record writes its failure beside it as
``<cell_id>.failed.json``, so a finished result is never replaced by a failure. Records are checked on read in one
place (:func:`record_problem`); files that fail the check are listed, never taken as done and never overwritten.
"""

from __future__ import annotations

import json
import math
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import BenchError
from .paths import safe_name, within

SCHEMA_VERSION = 1
FAILED_RERUN = ".failed.json"
REQUIRED_AXES = ("backbone", "objective", "teacher", "seed")  # every grid cell has them; reports group by them


def axes_label(axes: dict[str, Any]) -> str:
    """A record's (or cell's) axis values as one label, in axis order: ``bert-tiny · bce · labels · 0``."""
    return " · ".join(str(v) for v in axes.values())


def record_path(results_dir: Path, experiment: str, cell_id: str, suffix: str = ".json") -> Path:
    """``<results_dir>/<experiment>/<cell_id><suffix>``; names that are not safe path components are refused."""
    for what, name in (("experiment", experiment), ("cell id", cell_id)):
        if not isinstance(name, str) or safe_name(name, limit=len(name) + 1) != name or not name:
            raise BenchError(f"{what} {name!r} is not a safe file name (letters, digits, '.', '_', '=', '-')")
    return within(results_dir, Path(results_dir) / experiment / f"{cell_id}{suffix}")


def atomic_write_text(path: Path, text: str, root: Path | None = None) -> None:
    """Write via a temporary file in the same directory + rename, so readers never see half a file. The file gets
    the umask's mode (as ``open`` would), readable by a shared-storage group. With ``root``, a path that resolves
    outside it is refused."""
    path = within(root, path) if root is not None else Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def record_problem(rec: Any) -> str | None:
    """Why ``rec`` is not a record this version can use (None when it is): the one schema check of every read."""
    if not isinstance(rec, dict) or "schema" not in rec:
        return "not a record (no schema field)"
    if not isinstance(rec["schema"], int) or rec["schema"] <= 0:
        return f"unknown schema {rec['schema']!r}"
    if rec["schema"] > SCHEMA_VERSION:
        return f"written by a newer version (schema {rec['schema']}, this version reads {SCHEMA_VERSION})"
    if rec["schema"] != SCHEMA_VERSION:
        return f"old schema {rec['schema']}"
    for key, kind in (("experiment", str), ("cell_id", str), ("config_hash", str), ("status", str),
                      ("axes", dict), ("config", dict)):
        if not isinstance(rec.get(key), kind):
            return f"field {key!r} missing or not a {kind.__name__}"
    missing = [axis for axis in REQUIRED_AXES if axis not in rec["axes"]]
    if missing:
        return f"axes lack {', '.join(missing)}"
    if rec["status"] == "failed":
        err = rec.get("error")
        return None if isinstance(err, dict) and isinstance(err.get("message"), str) else "failed without an error"
    if rec["status"] != "ok":
        return f"unknown status {rec['status']!r}"
    metrics = rec.get("metrics")
    if not isinstance(metrics, dict) or not metrics:
        return "status ok but no metrics"
    for dataset, m in metrics.items():
        if not isinstance(m, dict) or not _number(m.get("nDCG@10")):
            return f"metrics of {dataset!r} hold no nDCG@10 number"
    for key in ("latency", "train"):
        if not isinstance(rec.get(key), dict):
            return f"status ok but {key!r} missing or not an object"
    data = rec.get("data", {})
    if not isinstance(data, dict):
        return "field 'data' is not an object"
    return None


def inspect_record(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(record, None) for a usable record at its own place, else (None, why not)."""
    path = Path(path)
    try:
        rec = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        return None, f"unreadable ({err.strerror or err})"
    except ValueError:
        return None, "not valid JSON (truncated or not a record)"
    problem = record_problem(rec)
    if problem:
        return None, problem
    if path.name.endswith(FAILED_RERUN):
        return None, f"a rerun of {rec['cell_id']} failed ({rec.get('error', {}).get('message', '')}); " \
                     f"its previous ok record is kept"
    if path.stem != rec["cell_id"] or path.parent.name != rec["experiment"]:
        return None, f"misplaced: holds {rec['experiment']}/{rec['cell_id']}"
    return rec, None


def read_record(path: Path) -> dict[str, Any] | None:
    """A usable record, or None (see :func:`inspect_record` for the reason)."""
    return inspect_record(path)[0]


def write_record(results_dir: Path, record: dict[str, Any], suffix: str = ".json") -> Path:
    """Write one cell record atomically; returns its path. A file already there that is not a usable record (a
    newer schema, foreign JSON) is never overwritten; an I/O failure is one line naming the file."""
    path = record_path(results_dir, record["experiment"], record["cell_id"], suffix)
    if path.exists():
        _, problem = inspect_record(path)
        if problem:
            raise BenchError(f"{path} is not a record this version can use ({problem}); left untouched: move it "
                             f"away to rerun the cell")
    try:
        atomic_write_text(path, json.dumps(record, indent=1, sort_keys=True, allow_nan=False) + "\n", results_dir)
    except OSError as err:
        raise BenchError(f"cannot write record {str(path)!r}: {err.strerror or err}") from None
    return path


@dataclass
class Scan:
    """A results directory read in full: the records a report shows, the ones a newer configuration of the same
    grid point superseded, and every ``*.json`` file that is not a usable record, with the reason."""

    records: list[dict[str, Any]] = field(default_factory=list)
    superseded: list[tuple[dict[str, Any], str]] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def _without_seed(rec: dict[str, Any]) -> str:
    """The configuration minus what seeds vary: records that may be averaged as seeds share this."""
    config = {k: v for k, v in rec["config"].items() if k not in ("seed", "experiment", "axes")}
    return json.dumps(config, sort_keys=True, default=str)


def _finished(rec: dict[str, Any]) -> str:
    prov = rec.get("provenance")
    return str(prov.get("finished", "")) if isinstance(prov, dict) else ""


def scan_results(results_dir: Path, experiment: str | None = None) -> Scan:
    """Every record under ``results_dir`` (one experiment, or all). Within a grid point (same experiment and axes
    but the seed), the newest record's configuration wins; records of another configuration (an edited ``lr``
    rerun into the same directory) are superseded, so seeds of different configurations are never averaged."""
    root = Path(results_dir)
    if not root.is_dir():
        raise BenchError(f"results directory {str(root)!r} does not exist or is not a directory")
    scan = Scan()
    valid = []
    for path in sorted(root.glob(f"{experiment}/*.json" if experiment else "*/*.json")):
        rec, problem = inspect_record(path)
        if rec is None:
            scan.skipped.append((path, problem or ""))
        else:
            valid.append(rec)
    points: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rec in valid:
        point = {k: v for k, v in rec["axes"].items() if k != "seed"}
        points.setdefault((rec["experiment"], json.dumps(point, sort_keys=True, default=str)), []).append(rec)
    for recs in points.values():
        newest = max(recs, key=lambda r: (_finished(r), r["cell_id"]))
        for rec in recs:
            if _without_seed(rec) == _without_seed(newest):
                scan.records.append(rec)
            else:
                scan.superseded.append((rec, f"superseded by {newest['cell_id']} (same axes, another configuration)"))
    scan.records.sort(key=lambda r: (r["experiment"], r["cell_id"]))
    return scan


def load_records(results_dir: Path, experiment: str | None = None) -> list[dict[str, Any]]:
    """The current records under ``results_dir`` (see :func:`scan_results`), sorted by experiment and cell id."""
    return scan_results(results_dir, experiment).records
