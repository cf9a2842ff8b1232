"""docs/protocol.md's "ours" column states what the resolved grids run: each checked row is derived here from the
cells ``load_experiment`` resolves, so a grid change that the document does not follow fails."""

import re
from pathlib import Path

import pytest

from benchmark import dryrun
from benchmark.cell import cell_dtype, resolved_train
from benchmark.config import load_experiment

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = {"paper": "## `experiments/paper.toml`", "rank-distillm": "## `experiments/rank-distillm.toml`",
            "hofstaetter": "## `experiments/hofstaetter.toml`"}


def doc_rows(grid: str) -> dict[str, str]:
    """value -> "ours" cell of the table under the grid's heading in docs/protocol.md."""
    text = (ROOT / "docs" / "protocol.md").read_text()
    section = text.split(SECTIONS[grid], 1)[1].split("\n## ", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3 and not set(cells[0]) <= {"-"}:
            rows[cells[0]] = cells[1]
    return rows


def by_backbone(cells, value) -> str:
    """``value`` per backbone, backbones sharing a value listed together, in grid order: "fp32 (a, b); bf16 (c)"."""
    groups: dict[str, list[str]] = {}
    for cell in cells:
        names = groups.setdefault(value(cell), [])
        if cell.backbone.name not in names:
            names.append(cell.backbone.name)
    if len(groups) == 1:
        return next(iter(groups))
    return "; ".join(f"{v} ({', '.join(names)})" for v, names in groups.items())


def schedule(train) -> str:
    warmup = train.warmup_steps if train.warmup_steps is not None else (
        f"{train.warmup_ratio:g} of the run" if train.warmup_ratio else 0)
    text = f"{train.lr_schedule}, warmup {warmup}"
    if train.lr_schedule != "constant":
        text += f", {train.lr_total_steps or train.max_steps or 'all'} schedule steps"
    return text + (f", advanced every {train.lr_step_every} batches" if train.lr_step_every else "")


def weight_decay(train) -> str:
    if not train.weight_decay:
        return "0"
    return f"{train.weight_decay:g} on " + ("every parameter" if train.weight_decay_all
                                            else "weights with ndim > 1 (not biases, LayerNorm)")


def precision(cell) -> str:
    dtype = cell_dtype(cell)
    return f"{cell.backbone.dtype} (auto)" if dtype == "auto" else dtype


def validation(train) -> str:
    if not train.validate_every:
        return "none"
    sets = train.validation_datasets
    where = sets[0] if len(sets) == 1 else f"mean over {len(sets)} sets ({', '.join(sets)})"
    return (f"{train.validation_measure}, {where}, first-stage top-{train.validation_top_k}, every "
            f"{train.validate_every} steps, best step kept")


def lengths(cell) -> str:
    train = cell.train
    sides = [f"{n} {v}" for n, v in (("query", train.max_query_length), ("passage", train.max_doc_length)) if v]
    return ", ".join([*sides, f"pair {resolved_train(cell).max_length}"])


def derived(grid: str) -> dict[str, str]:
    cells = load_experiment(ROOT / "experiments" / f"{grid}.toml").cells
    train = cells[0].train
    hours = sum(dryrun.estimate_gpu_hours(c) for c in cells)
    return {
        "lr schedule": schedule(train),
        "weight decay": weight_decay(train),
        "precision": by_backbone(cells, precision),
        "validation": validation(train),
        "lengths": ("each backbone's own limit: " if train.max_length == "model" else "")
        + by_backbone(cells, lengths),
        "GPU-hour estimate": f"~{hours:,.1f} GPU-h (dry-run; first-stage retrieval not included)",
    }


@pytest.mark.parametrize("grid", list(SECTIONS))
def test_ours_column_states_what_the_grid_runs(grid):
    if not dryrun.irds_query_counts():
        pytest.skip("ir_datasets' etc/metadata.json is not installed: the GPU-hour row needs its query counts")
    rows = doc_rows(grid)
    for value, expected in derived(grid).items():
        assert value in rows, f"docs/protocol.md, {grid}: no row {value!r}"
        assert rows[value] == expected, f"docs/protocol.md, {grid}, row {value!r}"


def test_a_row_the_grid_contradicts_fails():
    """The check is not vacuous: the paper table's precision row is the per-backbone split, not one value."""
    assert re.fullmatch(r"fp32 \(.*\); bf16 \(deberta-v3-base\)", derived("paper")["precision"])
