"""``--dry-run``: every cell of a grid, what it needs (models, data) and an estimate of its GPU hours — offline."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
from pathlib import Path

from .cell import cell_dtype, measures_of, resolved_train, scoring_max_length
from .config import CellConfig, Experiment, Only
from .grid import cell_state, select_cells
from .samplers import get_sampler

# Query counts of the ir_datasets ids: the installed package's etc/metadata.json (read without importing
# ir_datasets), else these rough figures from its documentation pages; unknown ids count DEFAULT_QUERIES.
APPROX_QUERIES = {"msmarco-passage/train/judged": 502_939, "msmarco-passage/dev/small": 6_980,
                  "msmarco-passage/trec-dl-2019/judged": 43, "msmarco-passage/trec-dl-2020/judged": 54}
DEFAULT_QUERIES = 1_000
# Sustained dense bf16 throughput assumed for an estimate: 40% of an A100's 312 TFLOP/s.
GPU_FLOPS = 0.4 * 312e12
# Tokens of a typical scored or trained pair (T): an MS MARCO query (~10 WordPiece tokens) and passage (~80) with
# the special tokens, rounded up for the longer BEIR and LoTTE passages; a cell's own limits cap it.
TYPICAL_PAIR_TOKENS = 128


@functools.cache
def irds_query_counts() -> dict[str, int]:
    """ir_datasets id -> query count, from the installed package's etc/metadata.json ({} without it)."""
    spec = importlib.util.find_spec("ir_datasets")
    if spec is None or not spec.origin:
        return {}
    path = Path(spec.origin).parent / "etc" / "metadata.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {i: m["queries"]["count"] for i, m in meta.items()
            if isinstance(m.get("queries"), dict) and "count" in m["queries"]}


def _queries(cell: CellConfig, name: str) -> int:
    spec = cell.datasets[name]
    dataset_id = getattr(spec, "id", None) or ""
    known = irds_query_counts().get(dataset_id) or APPROX_QUERIES.get(dataset_id, DEFAULT_QUERIES)
    cap = getattr(spec, "max_queries", None)
    return min(known, cap) if cap else known


def pair_tokens(cell: CellConfig, cap: int) -> int:
    """T of the estimate: ``TYPICAL_PAIR_TOKENS``, at most the pair cap ``cap`` and the query + passage limits."""
    train = cell.train
    separate = (train.max_query_length + train.max_doc_length + 3
                if train.max_query_length and train.max_doc_length else cap)
    return min(TYPICAL_PAIR_TOKENS, cap, separate)


def training_steps(cell: CellConfig) -> int:
    """Optimiser steps the cell will take: 0 for an eval-only row, ``max_steps``, else epochs x ceil(training
    queries / batch)."""
    train = cell.train
    if train.eval_only:
        return 0
    if train.max_steps is not None:
        return train.max_steps
    queries = min(_queries(cell, train.dataset), train.max_queries or 10**9)
    return train.epochs * math.ceil(queries / train.batch_size)


def pairs_per_group(cell: CellConfig) -> int:
    """(query, doc) pairs one training example holds, per sampler: a triple 2, a teacher's ranked list its length
    (at most the first-stage depth it was ranked from), a group ``group_size``."""
    example = get_sampler(cell.train.sampler).example
    return {"triple": 2, "list": cell.train.negatives_depth}.get(example, cell.train.group_size)


def validations(cell: CellConfig, steps: int) -> int:
    """Validation passes: every ``validate_every`` steps and after the last step (as ``train_model`` runs them)."""
    every = cell.train.validate_every
    return 0 if not every else steps // every + (1 if steps % every else 0)


def estimate_gpu_hours(cell: CellConfig) -> float:
    """6·N·T FLOPs per trained token and 2·N·T per scored token (Kaplan et al. 2020), N = backbone parameters, T a
    typical pair's tokens (``pair_tokens``): the steps the cell really takes x batch x pairs per example, each
    validation's reranked top-``validation_top_k`` of every validation set and each eval set's top-``top_k``. The
    first-stage retrieval (indexing and searching the corpora) is not included."""
    params = (cell.backbone.params_m or 110) * 1e6
    tokens = pair_tokens(cell, resolved_train(cell).max_length)
    score_tokens = pair_tokens(cell, scoring_max_length(cell))
    steps = training_steps(cell)
    train_flops = 6 * params * tokens * steps * cell.train.batch_size * pairs_per_group(cell)
    val_queries = sum(_queries(cell, n) for n in cell.train.validation_datasets)
    val_flops = (2 * params * score_tokens * val_queries * cell.train.validation_top_k
                 * validations(cell, steps)) if cell.train.validate_every else 0.0
    eval_flops = sum(2 * params * score_tokens * _queries(cell, n) * cell.eval.top_k for n in cell.eval.datasets)
    return (train_flops + val_flops + eval_flops) / GPU_FLOPS / 3600


def lengths_label(cell: CellConfig) -> str:
    """``max 512 tokens`` and, where set, the query and passage limits: ``max 291 tokens (query 32, passage 256)``."""
    train = cell.train
    sides = [f"{n} {v}" for n, v in (("query", train.max_query_length), ("passage", train.max_doc_length)) if v]
    return f"max {scoring_max_length(cell)} tokens" + (f" ({', '.join(sides)})" if sides else "")


def needs(cell: CellConfig) -> list[str]:
    models = [cell.backbone.checkpoint or f"{cell.backbone.family} (random init)",
              *cell.teacher.models, *([cell.teacher.path] if cell.teacher.path else [])]
    data = [f"{n}={getattr(s, 'id', None) or getattr(s, 'path', None) or s.source}" for n, s in cell.datasets.items()]
    return models + data


def evaluation_protocol(cell: CellConfig) -> list[str]:
    """Per eval dataset: its first stage (label and source), first-stage depth (and its cut where it keeps exactly
    the depth), rerank depth and measures."""
    lines = []
    for name in cell.eval.datasets:
        spec = cell.datasets[name]
        label = spec.first_stage_name + ("" if spec.first_stage_name == spec.first_stage else f" ({spec.first_stage})")
        depth = f"top-{spec.top_k}" + (" in run order" if spec.cut == "run-order" else "")
        lines.append(f"{name}: first stage {label} {depth}, rerank top-{cell.eval.top_k}, "
                     f"measures {' '.join(measures_of(cell, name))}")
    return lines


def describe_grid(experiment: Experiment, results_dir: Path, only: Only | None = None) -> str:
    cells, _ = select_cells(experiment, results_dir, force=True, only=only)
    lines = [f"grid {experiment.name}: {len(cells)} cell(s)"]
    total = 0.0
    shown: list[str] = []
    for i, cell in enumerate(cells, 1):
        hours = estimate_gpu_hours(cell)
        total += hours
        state = cell_state(results_dir, cell)[0]
        steps = training_steps(cell)
        shape = f"{steps} steps x {cell.train.batch_size} x {pairs_per_group(cell)} pairs"
        if cell.train.validate_every:
            shape += f", {validations(cell, steps)} validations on {len(cell.train.validation_datasets)} set(s)"
        dtype = cell_dtype(cell)
        shape += f", {lengths_label(cell)}, {dtype}" + (f" ({cell.backbone.dtype} on GPU)" if dtype == "auto" else "")
        lines.append(f"{i:4d}. [{state}] {cell.cell_id}  ~{hours:.2f} GPU-h ({shape})  needs: {', '.join(needs(cell))}")
        protocol = evaluation_protocol(cell)
        if protocol != shown:  # printed once per distinct evaluation protocol, not per cell
            lines.extend(f"        eval {line}" for line in protocol)
            shown = protocol
    lines.append(f"total ~{total:.1f} GPU-h (estimate: 6·N·T training + 2·N·T validation and evaluation FLOPs, "
                 f"T = {TYPICAL_PAIR_TOKENS} tokens a pair or the cell's limit, at {GPU_FLOPS/1e12:.0f} TFLOP/s "
                 f"sustained; first-stage retrieval not included)")
    return "\n".join(lines)
