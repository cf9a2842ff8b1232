"""``--dry-run``: every cell of a grid, what it needs (models, data) and an estimate of its GPU hours — offline."""

from __future__ import annotations

import math
from pathlib import Path

from .cell import measures_of, scoring_max_length
from .config import CellConfig, Experiment, Only
from .grid import cell_state, select_cells
from .samplers import get_sampler

# Rough query counts of training/eval sets (for estimates only; the embedded sets are exact).
# Sources: ir_datasets documentation pages of each id.
APPROX_QUERIES = {"msmarco-passage/train/judged": 502_939, "msmarco-passage/dev/small": 6_980,
                  "msmarco-passage/trec-dl-2019/judged": 43, "msmarco-passage/trec-dl-2020/judged": 54}
DEFAULT_QUERIES = 1_000
# Sustained dense bf16 throughput assumed for an estimate: 40% of an A100's 312 TFLOP/s.
GPU_FLOPS = 0.4 * 312e12


def _queries(cell: CellConfig, name: str) -> int:
    spec = cell.datasets[name]
    known = APPROX_QUERIES.get(getattr(spec, "id", None) or "", DEFAULT_QUERIES)
    cap = getattr(spec, "max_queries", None)
    return min(known, cap) if cap else known


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
    """6·N·T FLOPs per trained token and 2·N·T per scored token (Kaplan et al. 2020), N = backbone parameters, T
    the maximum length: the steps the cell really takes x batch x pairs per example, each validation's reranked
    top-``validation_top_k`` and each eval set's top-``top_k``."""
    params = (cell.backbone.params_m or 110) * 1e6
    tokens = cell.train.max_length
    score_tokens = scoring_max_length(cell)
    steps = training_steps(cell)
    train_flops = 6 * params * tokens * steps * cell.train.batch_size * pairs_per_group(cell)
    val_flops = (2 * params * score_tokens * _queries(cell, cell.train.validation_dataset)
                 * cell.train.validation_top_k * validations(cell, steps)) if cell.train.validate_every else 0.0
    eval_flops = sum(2 * params * score_tokens * _queries(cell, n) * cell.eval.top_k for n in cell.eval.datasets)
    return (train_flops + val_flops + eval_flops) / GPU_FLOPS / 3600


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
            shape += f", {validations(cell, steps)} validations"
        lines.append(f"{i:4d}. [{state}] {cell.cell_id}  ~{hours:.2f} GPU-h ({shape})  needs: {', '.join(needs(cell))}")
        protocol = evaluation_protocol(cell)
        if protocol != shown:  # printed once per distinct evaluation protocol, not per cell
            lines.extend(f"        eval {line}" for line in protocol)
            shown = protocol
    lines.append(f"total ~{total:.1f} GPU-h (estimate: 6·N·T training + 2·N·T validation and evaluation FLOPs at "
                 f"{GPU_FLOPS/1e12:.0f} TFLOP/s sustained)")
    return "\n".join(lines)
