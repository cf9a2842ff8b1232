"""Typed experiment config: TOML -> validated dataclasses -> grid cells, each with a stable hash.

A grid TOML has ``[experiment]`` (name, description), ``[grid]`` (axes: each value a list, crossed in file order),
``[train]`` and ``[eval]`` defaults, optional ``[report]``, ``[tracking]`` and ``[executor]`` settings and optional
extra rows ``[backbones.NAME]``, ``[teachers.NAME]``, ``[datasets.NAME]`` that extend the registries for this grid
only.
Axes are ``backbone``, ``objective``, ``teacher``, ``seed`` and any ``train.<field>`` (e.g. ``train.max_queries`` for
the label-budget curve, ``train.negatives`` for the negatives source, ``train.group_size``).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import ir_measures

from . import typed
from .backbones import BACKBONES, BackboneSpec
from .dataset_rows import DATASETS, DatasetSpec
from .errors import BenchError
from .measures import parse_measures
from .inputs import read_toml
from .objectives import OBJECTIVES
from .paths import safe_name
from .precisions import get_precision
from .registry import Registry
from .samplers import SAMPLERS
from .teachers import TEACHER_KINDS, TEACHERS, TeacherSpec
from .trackers import TrackingConfig


@dataclass(frozen=True)
class TrainConfig:
    dataset: str = "embedded-train"
    max_queries: int | None = None  # label budget: the first N of a fixed shuffle, so budgets are nested
    group_size: int = 8  # K candidates per query: one positive + K-1 negatives
    # where hard negatives come from: the dataset's first-stage run, or random docs
    negatives: Literal["first-stage", "random"] = "first-stage"
    negatives_depth: int = 100  # sample negatives from the first-stage top-N (lists sampler: the list's depth)
    sampler: Annotated[str, SAMPLERS] = "groups"  # how groups are built (benchmark/samplers.py)
    negatives_replacement: bool = False  # groups sampler: draw the K-1 negatives with replacement
    epochs: int = 3  # 0: an eval-only row (as ``skip``)
    # A cross-encoder teacher row whose (fine-tuned) first model the student starts from: every weight whose name and
    # shape the student shares (embeddings, its first layers, the head), as layer-dropped students are initialised
    # (Sajjad et al. 2023, arXiv 2004.03844: dropping the top layers works best); None: the backbone row's own
    # checkpoint
    init_from: str | None = None
    # Eval-only: the backbone row's checkpoint (a released reranker, or a saved student's ``<cell>.model``
    # directory) is evaluated as it is, through the same first stage, measures, latency and report. The other
    # [train] fields of such a row are recorded (how the checkpoint was trained, for "ours vs paper"), not run.
    skip: bool = False
    # Save the trained student beside the record (``<cell>.model/``: safetensors, tokenizer, config, model card).
    # None: on for hub and local checkpoints, off for the randomly initialised rows and the bundled MiniLM rows of the
    # embedded grids (a MiniLM-L6 student is 91 MB). An output option: it does not enter the cell hash.
    save_model: bool | None = None
    batch_size: int = 16  # queries (groups) per optimiser step
    grad_accum: int = 1  # micro-batches per step (same effective batch, less memory)
    checkpoint_every: int = 0  # save a resumable checkpoint every N steps (0 = never)
    # Step-based training as the seed paper runs it (xpmir/cross-encoders:
    # src/cross_encoders_training/core_base_paper.yaml: steps_per_epoch 100 x max_epochs 2000 = 200k steps,
    # num_warmup_steps 5000, eps 1e-8, max_grad_norm 1.0). None: ``epochs`` decide.
    max_steps: int | None = None  # exactly this many optimiser steps, cycling epochs as needed
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_ratio: float = 0.1
    warmup_steps: int | None = None  # overrides warmup_ratio when set
    # After the warmup: "linear" decay to 0 at the last step (the seed paper's xpm_torch LinearWithWarmup),
    # "constant" (a Lightning run that configures no scheduler, as webis-de/rank-distillm: configs/finetune.yaml) or
    # "cosine" (half a cosine from the full rate to 0, transformers' get_cosine_schedule_with_warmup, as
    # sebastian-hofstaetter/matchmaker: matchmaker/train.py @ cb1d35d8 runs it).
    lr_schedule: Literal["linear", "constant", "cosine"] = "linear"
    # None: the schedule advances after every optimiser step. N: only after the optimiser step of 0-based index i
    # with i > 0 and i % N == 0 (matchmaker's condition, train.py:552), and warmup_steps / lr_total_steps then count
    # these schedule steps.
    lr_step_every: int | None = None
    lr_total_steps: int | None = None  # the schedule's length in its own steps; None = the run's length
    # False: no weight decay on biases and LayerNorm weights (parameters with ndim <= 1), as transformers' examples;
    # True: on every parameter, as torch.optim.AdamW(model.parameters()) does (webis-de/rank-distillm via LightningCLI).
    weight_decay_all: bool = False
    max_grad_norm: float = 1.0  # gradient clipping (0 = none, as xpmir/cross-encoders: src/configuration.py)
    adam_eps: float = 1e-8
    # Periodic validation (core_base_paper.yaml: validation_interval 50 epochs of 100 steps = every 5,000 steps,
    # validation_top_k 100, validation nanobeir): rerank the first-stage top-``validation_top_k`` of
    # ``validation_dataset`` every ``validate_every`` steps and keep the weights of the best step.
    validate_every: int = 0  # steps; 0 = no validation
    # A dataset row name, or a list of them: the validated value is then the mean of the measure over the sets
    # (the seed paper's AggregatorValidationListener over the 13 NanoBEIR sets, xpmir/cross-encoders:
    # src/validations.py @ 0fa561a5), and the record keeps each set's curve too.
    validation_dataset: str | tuple[str, ...] | None = None
    validation_top_k: int = 100
    # An ir_measures string. The seed paper keeps the best step by "nDCG" (full depth of the reranked top-100),
    # averaged over the NanoBEIR sets (xpmir/cross-encoders: src/validations.py, metrics={"nDCG": True}).
    validation_measure: str = "nDCG@10"
    # Tokens of a (query, passage) pair with its special tokens; "model": the backbone row's own max_length (the
    # seed paper's max_length None, xpmir/cross-encoders: src/configuration.py). Longer pairs lose passage tokens.
    max_length: int | Literal["model"] = 128
    # Query and passage truncated separately to these many tokens before they are paired (None = no limit of
    # its own), as lightning-ir's CrossEncoderTokenizer (query_length / doc_length) and matchmaker
    # (max_query_length / max_doc_length) do; max_length still caps the pair.
    max_query_length: int | None = None
    max_doc_length: int | None = None
    dtype: Literal["auto", "fp32", "bf16", "fp16"] = "auto"  # autocast; auto = the row's dtype on CUDA, fp32 on CPU
    # Backbone row name -> dtype for the cells of that backbone (a grid whose backbones the authors ran in
    # different precisions); the others take ``dtype``.
    dtype_by_backbone: dict[str, str] = field(default_factory=dict)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    def __post_init__(self) -> None:
        _positive(self, "group_size", "batch_size", "grad_accum", "negatives_depth")
        if self.max_length != "model" and (isinstance(self.max_length, bool) or not isinstance(self.max_length, int)
                                           or self.max_length <= 0):
            raise BenchError(f"train.max_length must be a positive integer or \"model\", got {self.max_length!r}")
        for name in ("max_query_length", "max_doc_length", "lr_step_every", "lr_total_steps"):
            if getattr(self, name) is not None and getattr(self, name) <= 0:
                raise BenchError(f"train.{name} must be positive (or unset), got {getattr(self, name)}")
        dtypes = typing.get_args(typing.get_type_hints(TrainConfig)["dtype"])
        for backbone, dtype in self.dtype_by_backbone.items():
            if dtype not in dtypes:
                raise BenchError(f"train.dtype_by_backbone.{backbone} must be one of {', '.join(dtypes)}, got {dtype!r}")
        if self.epochs < 0:
            raise BenchError(f"train.epochs must be >= 0 (0 = eval-only), got {self.epochs}")
        if self.max_queries is not None and self.max_queries <= 0:
            raise BenchError(f"train.max_queries must be positive, got {self.max_queries}")
        if self.group_size < 2:
            raise BenchError(f"train.group_size must be at least 2 (a positive and a negative), got {self.group_size}")
        if self.lr <= 0:
            raise BenchError(f"train.lr must be positive, got {self.lr}")
        if self.max_steps is not None and self.max_steps <= 0:
            raise BenchError(f"train.max_steps must be positive, got {self.max_steps}")
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise BenchError(f"train.warmup_steps must be >= 0, got {self.warmup_steps}")
        if self.max_grad_norm < 0 or self.adam_eps <= 0:
            raise BenchError(f"train.max_grad_norm must be >= 0 and train.adam_eps > 0, got {self.max_grad_norm} "
                             f"and {self.adam_eps}")
        if self.validate_every < 0:
            raise BenchError(f"train.validate_every must be >= 0, got {self.validate_every}")
        if isinstance(self.validation_dataset, list):  # built in code rather than from TOML
            object.__setattr__(self, "validation_dataset", tuple(self.validation_dataset))
        if self.validation_dataset == ():
            raise BenchError("train.validation_dataset must name at least one dataset row")
        if self.validate_every and not self.validation_dataset:
            raise BenchError("train.validate_every needs train.validation_dataset (a dataset row, e.g. embedded-dev)")
        _positive(self, "validation_top_k")
        try:
            ir_measures.parse_measure(self.validation_measure)
        except (ValueError, NameError, SyntaxError, TypeError):
            raise BenchError(f"train.validation_measure {self.validation_measure!r} is not an ir_measures measure "
                             "(e.g. nDCG@10)") from None
        typed.check_choices(self, "train.")

    @property
    def validation_datasets(self) -> tuple[str, ...]:
        """The validation rows as a tuple (one name or several; empty without validation)."""
        v = self.validation_dataset
        return () if v is None else (v,) if isinstance(v, str) else tuple(v)

    def dtype_for(self, backbone: str) -> str:
        """The requested dtype of a cell on ``backbone``: its ``dtype_by_backbone`` entry, else ``dtype``."""
        return self.dtype_by_backbone.get(backbone, self.dtype)

    @property
    def eval_only(self) -> bool:
        """No training: the checkpoint is evaluated as it is."""
        return self.skip or (self.epochs == 0 and self.max_steps is None)


DEFAULT_PRECISION = ("fp32",)


@dataclass(frozen=True)
class EvalConfig:
    datasets: tuple[str, ...] = ("embedded-test",)
    top_k: int = 100  # rerank the first-stage top-k
    # More rerank depths (each < top_k) measured from the same scores: the top-d of the first stage, reordered by the
    # model, without retraining; each depth is also an operating point timed once (benchmark.operating_points)
    depths: tuple[int, ...] = ()
    batch_size: int = 64
    max_length: int | None = None  # None: as in training
    latency_queries: int = 10  # queries timed for latency (100 candidates each)
    latency_repeats: int = 3
    latency_warmup: int = 2
    measures: tuple[str, ...] = ()  # ir_measures strings recorded on every dataset besides its row's measures
    # precision rows (benchmark/precisions.py) the trained model is also timed and evaluated in (the first eval
    # dataset)
    precision: tuple[str, ...] = DEFAULT_PRECISION

    def __post_init__(self) -> None:
        for name in self.precision:
            if get_precision(name).calibrated:  # a cell scores its precision rows without training pairs
                raise BenchError(f"eval.precision: {name!r} needs calibration pairs; measure it with "
                                 f"tests/benchmarks/test_precision_speed.py")
        if len(set(self.precision)) != len(self.precision) or not self.precision:
            raise BenchError(f"eval.precision must list distinct precisions, got {list(self.precision)}")

        _positive(self, "top_k", "batch_size", "latency_queries", "latency_repeats")
        if any(d <= 0 or d >= self.top_k for d in self.depths) or len(set(self.depths)) != len(self.depths):
            raise BenchError(f"eval.depths must list distinct depths between 1 and eval.top_k - 1 = {self.top_k - 1}, "
                             f"got {list(self.depths)}")
        object.__setattr__(self, "depths", tuple(sorted(self.depths)))
        object.__setattr__(self, "measures", parse_measures(self.measures, "eval.measures"))
        if not self.datasets:
            raise BenchError("eval.datasets must name at least one dataset")


def _positive(obj: Any, *names: str) -> None:
    section = "train" if isinstance(obj, TrainConfig) else "eval"
    for n in names:
        if getattr(obj, n) <= 0:
            raise BenchError(f"{section}.{n} must be positive, got {getattr(obj, n)}")


@dataclass(frozen=True)
class CellConfig:
    """One grid cell, fully resolved: every row it uses is embedded, so the record alone reproduces it."""

    experiment: str
    backbone: BackboneSpec
    objective: str
    teacher: TeacherSpec
    teacher_models: dict[str, BackboneSpec]  # the backbone rows the teacher's (and init teacher's) models name
    seed: int
    train: TrainConfig
    eval: EvalConfig
    datasets: dict[str, DatasetSpec]  # every dataset row the cell reads (train + eval), resolved
    axes: dict[str, Any] = field(default_factory=dict)  # the grid coordinates of this cell
    init_teacher: TeacherSpec | None = None  # train.init_from, resolved
    report: dict[str, Any] = field(default_factory=dict)  # the grid's [report] settings, so records re-render alike
    # A rehearsed cell (benchmark.rehearsal): the resolved config of the real cell it stands in for, so the report
    # compares that cell's protocol with published rows. Empty for a real cell.
    origin: dict[str, Any] = field(default_factory=dict)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)  # where curves also go (benchmark.tracking)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self), default=str))

    @property
    def depths(self) -> tuple[int, ...]:
        """Every rerank depth the cell measures, deepest (``eval.top_k``) last."""
        return (*self.eval.depths, self.eval.top_k)

    @property
    def config_hash(self) -> str:
        payload = self.to_dict()
        for volatile in ("experiment", "axes", "report", "origin", "tracking"):  # the same work: the same cell
            payload.pop(volatile)
        payload["train"].pop("save_model")  # what is kept beside the record, not what is computed
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    @property
    def record_axes(self) -> dict[str, Any]:
        """The axes its record carries: the grid's, and for an eval-only cell of a grid without objective and
        teacher axes, ``EVAL_ONLY_AXES`` in their place (reports group and label every record by both)."""
        if not self.train.eval_only:
            return dict(self.axes)
        return {**{k: self.axes[k] for k in self.axes if k == "backbone"}, **EVAL_ONLY_AXES, **self.axes}

    @property
    def cell_id(self) -> str:
        readable = "__".join(safe_name(v) for v in self.axes.values())
        return f"{readable}__{self.config_hash[:10]}"


@dataclass(frozen=True)
class ExecutorConfig:
    """``[executor]``: where a grid's cells run and what each asks its scheduler for (``rdb run`` flags override
    it). No part of a cell's config hash: a cell computed on another machine is the same cell. ``name`` is an
    ``EXECUTORS`` row (``benchmark.executors``, checked when the grid runs)."""

    name: str = "local"
    gpus_per_cell: float = 0  # Ray ``num_gpus`` / SLURM GPUs per job: the devices a cell sees (CUDA_VISIBLE_DEVICES)
    cpus_per_cell: float = 1  # Ray ``num_cpus`` / SLURM ``cpus_per_task``
    resources: dict[str, float] = field(default_factory=dict)  # Ray custom resources per cell, e.g. {a100 = 1}
    retries: int = 3  # starts again after a lost worker, node or job (Ray max_retries, submitit max_num_timeout)
    address: str | None = None  # Ray cluster address ("auto": the cluster this machine belongs to)
    partition: str | None = None  # SLURM partition
    time_min: int = 24 * 60  # SLURM time limit per cell (a cell past it is requeued and resumes its checkpoint)
    mem_gb: float | None = None  # SLURM memory per job
    slurm: dict[str, Any] = field(default_factory=dict)  # further sbatch settings (account, qos, constraint, ...)
    cluster: Literal["slurm", "local", "debug"] = "slurm"  # submitit's scheduler: local runs jobs as processes here

    def __post_init__(self) -> None:
        typed.check_choices(self, "executor.")
        for name in ("gpus_per_cell", "retries"):
            if getattr(self, name) < 0:
                raise BenchError(f"executor.{name} must be >= 0, got {getattr(self, name)}")
        for name in ("cpus_per_cell", "time_min", *(["mem_gb"] if self.mem_gb is not None else [])):
            if getattr(self, name) <= 0:
                raise BenchError(f"executor.{name} must be positive, got {getattr(self, name)}")
        for key, amount in self.resources.items():
            if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
                raise BenchError(f"executor.resources.{key} must be a positive number, got {amount!r}")


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    axes: dict[str, list[Any]]
    cells: list[CellConfig]
    report: dict[str, Any]
    source: str | None = None
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)


ROW_SECTIONS: dict[str, tuple[Registry[Any], Any]] = {
    "backbones": (BACKBONES, BackboneSpec),
    "teachers": (TEACHERS, TeacherSpec),
    "datasets": (DATASETS, DatasetSpec),
}
CELL_AXES = ("backbone", "objective", "teacher", "seed")
# How an eval-only cell (a checkpoint evaluated as it is) is labelled where a grid names no objective or teacher
EVAL_ONLY_AXES = {"objective": "eval-only", "teacher": "none"}
TOP_KEYS = {"experiment", "grid", "train", "eval", "report", "tracking", "executor", *ROW_SECTIONS}


class _Rows:
    """Registry lookups with this grid's extra ``[backbones.X]``-style rows layered on top."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.extra: dict[str, dict[str, Any]] = {}
        for section, (_, cls) in ROW_SECTIONS.items():
            table = doc.get(section, {})
            if not isinstance(table, dict):
                raise BenchError(f"[{section}] must be a table of rows")
            self.extra[section] = {name: cls.from_dict(name, row) for name, row in table.items()}

    def get(self, section: str, name: str) -> Any:
        registry, _ = ROW_SECTIONS[section]
        return self.extra[section][name] if name in self.extra[section] else registry.get(name)


Only = dict[str, "str | list[str]"]  # axis -> the value (or any of the values) a selected cell has


def check_only(experiment: Experiment, only: Only) -> None:
    """Refuse an ``--only`` axis the grid's cells lack or a value no cell has, naming the known ones: a filter that
    matches nothing would otherwise look like a finished grid."""
    for axis, wanted in only.items():
        known = sorted({k for c in experiment.cells for k in c.axes})
        if axis not in known:
            raise BenchError(f"--only: unknown axis {axis!r} (known: {', '.join(known)})")
        values = sorted({str(c.axes[axis]) for c in experiment.cells if axis in c.axes})
        for value in [wanted] if isinstance(wanted, str) else wanted:
            if value not in values:
                raise BenchError(f"--only {axis}={value}: no cell has {axis} {value!r} (known: {', '.join(values)})")


def load_experiment(path: str | Path, overrides: list[str] = ()) -> Experiment:
    """The grid file at ``path`` (``extends`` resolved) with ``overrides`` (``KEY=VALUE``, ``rdb --set``) applied."""
    return parse_experiment(apply_overrides(_extended(Path(path), ()), overrides), source=str(path))


def apply_overrides(doc: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """``section.key=value`` items set into the grid document (``value`` read as a TOML value, else a string).
    ``train.<field>`` and ``eval.<field>`` also replace that field in every recipe and drop an axis over it, so
    the value holds for every cell (and enters each cell's config hash)."""
    doc = {k: dict(v) if isinstance(v, dict) else v for k, v in doc.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        path = key.strip().split(".")
        if not sep or len(path) < 2 or not all(path):
            raise BenchError(f"--set expects SECTION.KEY=VALUE (e.g. train.lr=1e-5), got {item!r}")
        value = _toml_value(text.strip())
        table = doc
        for part in path[:-1]:
            table = table.setdefault(part, {})
            if not isinstance(table, dict):
                raise BenchError(f"--set {key}: {part!r} is not a table in the grid")
        table[path[-1]] = value
        if path[0] in ("train", "eval") and len(path) == 2:
            _force(doc, f"{path[0]}.{path[1]}", path[1], value)
    return doc


def _force(doc: dict[str, Any], axis: str, name: str, value: Any) -> None:
    """Drop a grid axis over ``axis`` and set the field in every recipe that sets it."""
    grid = doc.get("grid")
    if not isinstance(grid, dict):
        return
    section = axis.split(".")[0]
    nested = grid.get(section)
    if isinstance(nested, dict):  # dotted axes arrive nested: [grid] train.lr = [...]
        grid[section] = {k: v for k, v in nested.items() if k != name}
    grid.pop(axis, None)
    for recipe in grid.get("recipe") or []:
        if isinstance(recipe, dict):
            inner = recipe.get(section)
            if isinstance(inner, dict) and name in inner:
                recipe[section] = {**inner, name: value}
            if axis in recipe:
                recipe[axis] = value


def _toml_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def _extended(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    """The grid file at ``path`` with ``[experiment] extends = "<grid file>"`` resolved (a path relative to the
    file): the base grid's tables, this file's on top (:func:`merge_grids`), so a variant of a grid is its
    differences only."""
    doc = read_toml(path)
    meta = doc.get("experiment") if isinstance(doc.get("experiment"), dict) else {}
    base = meta.get("extends")
    if base is None:
        return doc
    if not isinstance(base, str) or not base:
        raise BenchError(f"{path}: experiment.extends must be the path of a grid file")
    target = (path.parent / base).resolve()
    if target in seen or target == path.resolve():
        raise BenchError(f"{path}: experiment.extends {base!r} extends itself")
    if not target.is_file():
        raise BenchError(f"{path}: experiment.extends {base!r}: no grid file {str(target)!r}")
    merged = merge_grids(_extended(target, (*seen, path.resolve())), doc)
    merged["experiment"] = {k: v for k, v in merged["experiment"].items() if k != "extends"}
    return merged


def merge_grids(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` on top of ``base``: ``[experiment]`` is ``over``'s alone (a variant names itself); in ``[grid]``,
    ``[train]``, ``[eval]``, ``[report]`` a key of ``over`` replaces the base's (an axis, recipes included, is
    replaced whole); row sections merge by row name, a row of ``over`` replacing the base's row of that name."""
    out = {k: v for k, v in base.items() if k != "experiment"}
    out["experiment"] = dict(over.get("experiment", {}))
    for section, table in over.items():
        if section == "experiment":
            continue
        if isinstance(table, dict) and isinstance(out.get(section), dict):
            out[section] = {**out[section], **table}
        else:
            out[section] = table
    return out


def parse_experiment(doc: dict[str, Any], source: str | None = None) -> Experiment:
    unknown = sorted(set(doc) - TOP_KEYS)
    if unknown:
        raise BenchError(f"unknown top-level table(s) {', '.join(unknown)} (known: {', '.join(sorted(TOP_KEYS))})")
    meta = doc.get("experiment", {})
    if not isinstance(meta, dict) or not isinstance(meta.get("name"), str) or not meta["name"].strip():
        raise BenchError("[experiment] needs a name, e.g. name = \"default\"")
    name = meta["name"]
    if safe_name(name, limit=100) != name:  # it names the results subdirectory: no '..', '/', leading dot
        raise BenchError(f"experiment.name {name!r} may only hold letters, digits, '.', '_', '=' and '-' "
                         f"and may not start with '.' (try {safe_name(name, limit=100) or 'default'!r})")
    rows = _Rows(doc)
    train_base = doc.get("train", {})
    if not isinstance(train_base, dict):
        raise BenchError("[train] must be a table")
    axes = _axes(doc.get("grid", {}), eval_only=_eval_only(train_base))
    report = doc.get("report", {})
    if not isinstance(report, dict):
        raise BenchError("[report] must be a table")
    eval_cfg = typed.build(EvalConfig, doc.get("eval", {}), "eval")
    tracking = typed.build(TrackingConfig, doc.get("tracking", {}), "tracking")

    cells = []
    for combo in itertools.product(*axes.values()):
        point = dict(zip(axes, combo))
        point.update(point.pop("recipe", {}))  # a recipe fixes objective and teacher together
        train_over = {k.split(".", 1)[1]: v for k, v in point.items() if k.startswith("train.")}
        train = typed.build(TrainConfig, {**train_base, **train_over}, "train")
        objective = point.get("objective", "infonce")
        OBJECTIVES.get(objective)  # validate the name now, not mid-grid
        # An eval-only cell reads no training data.
        names = [*([] if train.eval_only else [train.dataset, *train.validation_datasets]),
                 *eval_cfg.datasets]
        teacher = rows.get("teachers", point.get("teacher", "labels"))
        init = _init_teacher(rows, train)
        models = {m: _teacher_model(rows, t, m) for t in (teacher, *([init] if init else [])) for m in t.models}
        cells.append(CellConfig(
            experiment=name,
            backbone=rows.get("backbones", point.get("backbone", "bert-tiny")),
            objective=objective,
            teacher=teacher,
            teacher_models=models, init_teacher=init,
            seed=point.get("seed", 0),
            train=train,
            eval=eval_cfg,
            datasets={n: rows.get("datasets", n) for n in dict.fromkeys(names)},
            axes={k: point[k] for k in [*CELL_AXES, *axes] if k in point},
            report=report,
            tracking=tracking,
        ))
        if train.eval_only and cells[-1].backbone.checkpoint is None:
            raise BenchError(f"backbone {cells[-1].backbone.name!r}: an eval-only row (train.skip = true or "
                             f"train.epochs = 0) needs a trained checkpoint, and this row is randomly initialised")
        check_depths(cells[-1])
    ids = [c.cell_id for c in cells]
    if len(set(ids)) != len(ids):
        raise BenchError("the grid lists the same cell twice (duplicate values in an axis?)")
    return Experiment(name=name, description=str(meta.get("description", "")), axes=axes, cells=cells,
                      report=report, source=source, executor=typed.build(ExecutorConfig, doc.get("executor", {}),
                                                                         "executor"))


def reranked_depths(cell: CellConfig) -> list[tuple[str, int, str]]:
    """(field, depth, dataset row) for every depth the cell reads from a first stage: ``eval.top_k`` on each eval
    set, ``train.validation_top_k`` on the validation set, and ``train.negatives_depth`` on the training set where
    the sampler draws from its first stage (not from a file teacher's lists or triples)."""
    out = [("eval.top_k", cell.eval.top_k, name) for name in cell.eval.datasets]
    train = cell.train
    if train.eval_only:
        return out
    if train.validate_every:
        out += [("train.validation_top_k", train.validation_top_k, name) for name in train.validation_datasets]
    if not TEACHER_KINDS.get(cell.teacher.kind).file and not SAMPLERS.get(train.sampler).needs_triples:
        out.append(("train.negatives_depth", train.negatives_depth, train.dataset))
    return out


def check_depths(cell: CellConfig) -> None:
    """A cell reranks or samples at most the depth its first stage retrieves: a deeper setting is refused here,
    never capped to what the run holds."""
    for name, depth, dataset in reranked_depths(cell):
        top_k = cell.datasets[dataset].top_k
        if depth > top_k:
            raise BenchError(f"cell {cell.cell_id}: {name} = {depth} is deeper than the first stage of dataset "
                             f"{dataset!r} (top_k = {top_k}): set that row's top_k >= {depth} or lower {name}")


def _init_teacher(rows: _Rows, train: TrainConfig) -> TeacherSpec | None:
    """The teacher row ``train.init_from`` names; it must score with models (a cross-encoder row)."""
    if train.init_from is None or train.eval_only:
        return None
    spec = rows.get("teachers", train.init_from)
    if spec.kind != "cross-encoder":
        raise BenchError(f"train.init_from = {train.init_from!r}: a student starts from a cross-encoder teacher's "
                         f"model, not a {spec.kind} teacher")
    return spec


def _teacher_model(rows: _Rows, teacher: TeacherSpec, model: str) -> BackboneSpec:
    try:
        return rows.get("backbones", model)
    except BenchError as err:
        raise BenchError(f"teacher {teacher.name!r}: {err}") from None


def _eval_only(train: dict[str, Any]) -> bool:
    """``[train]`` makes every cell eval-only (``skip = true`` or ``epochs = 0``): no objective or teacher runs."""
    return train.get("skip") is True or (train.get("epochs") == 0 and not isinstance(train.get("epochs"), bool))


def _axes(grid: Any, eval_only: bool = False) -> dict[str, list[Any]]:
    """The grid's axes in crossing order. backbone and seed are always coordinates, and objective and teacher too
    unless the grid is ``eval_only`` (a released checkpoint has no objective of ours: its cells stay at the
    defaults, which enter neither the cell id nor the axes, and their config hash is the one they had as axes)."""
    if not isinstance(grid, dict):
        raise BenchError("[grid] must be a table of axes, e.g. backbone = [\"bert-tiny\"]")
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    axes: dict[str, list[Any]] = {}
    for key, values in grid.items():
        if isinstance(values, dict):  # TOML dotted keys (train.max_queries = [...]) arrive as nested tables
            for sub, v in values.items():
                axes[f"{key}.{sub}"] = v
        else:
            axes[key] = values
    for key, values in list(axes.items()):
        if key == "recipe":
            axes[key] = _recipes(values, axes)
            continue
        if key not in CELL_AXES and not (key.startswith("train.") and key.split(".", 1)[1] in train_fields):
            raise BenchError(f"[grid] unknown axis {key!r} (known: {', '.join(CELL_AXES)}, train.<field>)")
        if not isinstance(values, list):
            values = [values]
        if not values:
            raise BenchError(f"[grid] axis {key!r} is empty")
        if key == "seed" and not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
            raise BenchError(f"[grid] seed values must be integers, got {values!r}")
        if key in ("backbone", "objective", "teacher") and not all(isinstance(v, str) for v in values):
            raise BenchError(f"[grid] {key} values must be names (strings), got {values!r}")
        axes[key] = values
    # backbone/objective/teacher/seed appear as coordinates so reports can group by them.
    defaults = {"backbone": "bert-tiny", "objective": "infonce", "teacher": "labels", "seed": 0}
    for key, default in defaults.items():
        if not (("recipe" in axes or eval_only) and key in ("objective", "teacher")):
            axes.setdefault(key, [default])
    order = [k for k in CELL_AXES if k in axes] + [k for k in axes if k not in CELL_AXES]
    return {k: axes[k] for k in order}


def _recipes(values: Any, axes: dict[str, Any]) -> list[dict[str, Any]]:
    """``recipe = [{objective = "margin-mse", teacher = "hofstaetter-ensemble"}, ...]``: objective and teacher
    paired as the papers pair them, instead of crossing every objective with every teacher. A recipe may also fix
    ``train.<field>`` values (``train.batch_size = 1``), because papers pair each loss with its own training
    examples and batch shape; they override ``[train]`` for that recipe's cells and are covered by the cell hash."""
    if "objective" in axes or "teacher" in axes:
        raise BenchError("[grid] recipe fixes objective and teacher: drop the separate objective/teacher axes")
    if not isinstance(values, list) or not values:
        raise BenchError("[grid] recipe must be a non-empty list of {objective = ..., teacher = ...} tables")
    train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
    recipes = []
    for i, r in enumerate(values):
        usage = f"[grid] recipe[{i}] must be {{objective = \"name\", teacher = \"name\"[, train.<field> = ...]}}"
        if not isinstance(r, dict) or not {"objective", "teacher"} <= set(r) or not all(
                isinstance(r[k], str) for k in ("objective", "teacher")):
            raise BenchError(f"{usage}, got {r!r}")
        recipe: dict[str, Any] = {"objective": r["objective"], "teacher": r["teacher"]}
        for key, value in r.items():
            if key in recipe:
                continue
            # TOML dotted keys inside an inline table arrive nested: {train = {batch_size = 1}}
            pairs = value.items() if key == "train" and isinstance(value, dict) else [(key, value)]
            for sub, v in pairs:
                name = sub if key == "train" else sub.split(".", 1)[-1]
                if not (key == "train" or sub.startswith("train.")) or name not in train_fields:
                    raise BenchError(f"{usage}: unknown key {sub if key != 'train' else 'train.' + sub!r}")
                recipe[f"train.{name}"] = v
        recipes.append(recipe)
    return recipes
