"""``--dry-run``: every cell of a grid, what it needs (models, data) and an estimate of its GPU hours — offline."""

from __future__ import annotations

from pathlib import Path

from .config import CellConfig, Experiment
from .grid import cell_state, select_cells

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


def estimate_gpu_hours(cell: CellConfig) -> float:
    """6·N·T FLOPs per trained token and 2·N·T per scored token (Kaplan et al. 2020), N = backbone parameters."""
    params = (cell.backbone.params_m or 110) * 1e6
    tokens = cell.train.max_length
    train_q = min(_queries(cell, cell.train.dataset), cell.train.max_queries or 10**9)
    train_flops = 6 * params * tokens * train_q * cell.train.group_size * cell.train.epochs
    eval_flops = sum(2 * params * (cell.eval.max_length or tokens) * _queries(cell, n) * cell.eval.top_k
                     for n in cell.eval.datasets)
    return (train_flops + eval_flops) / GPU_FLOPS / 3600


def needs(cell: CellConfig) -> list[str]:
    models = [cell.backbone.checkpoint or f"{cell.backbone.family} (random init)",
              *cell.teacher.models, *([cell.teacher.path] if cell.teacher.path else [])]
    data = [f"{n}={getattr(s, 'id', None) or getattr(s, 'path', None) or s.source}" for n, s in cell.datasets.items()]
    return models + data


def describe_grid(experiment: Experiment, results_dir: Path, only: dict[str, str] | None = None) -> str:
    cells, _ = select_cells(experiment, results_dir, force=True, only=only)
    lines = [f"grid {experiment.name}: {len(cells)} cell(s)"]
    total = 0.0
    for i, cell in enumerate(cells, 1):
        hours = estimate_gpu_hours(cell)
        total += hours
        state = cell_state(results_dir, cell)[0]
        lines.append(f"{i:4d}. [{state}] {cell.cell_id}  ~{hours:.2f} GPU-h  needs: {', '.join(needs(cell))}")
    lines.append(f"total ~{total:.1f} GPU-h (estimate: 6·N·T training + 2·N·T scoring FLOPs at {GPU_FLOPS/1e12:.0f}"
                 " TFLOP/s sustained)")
    return "\n".join(lines)
