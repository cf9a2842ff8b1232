"""Rehearsal: every cell of a grid, end to end, at toy scale, offline on a CPU, before a GPU runs it.

:func:`rehearse` rewrites a grid's cells so that each one takes the same path as the real cell with small inputs:

- each backbone row (student or teacher model) becomes a tiny randomly initialised checkpoint of the row's own
  architecture and tokenizer kind (:mod:`.tiny`), loaded through ``from_pretrained`` as the real row is; a row the
  grid evaluates as it is (eval-only) gets a checkpoint with its head, a training row one without (its cell
  initialises the head, as for a hub backbone); randomly initialised rows are already small and stay as they are;
- every external input (ir_datasets ids, first-stage run files, teacher score files, LLM rankings, training
  triples) becomes a miniature in its released layout, read by the same parser (:mod:`.miniatures`); files the
  package ships stay;
- steps, queries, depths and timing repeats shrink (:func:`toy_train`, :func:`toy_eval`), seeds fold to the
  grid's first; sampler, teacher kind, loss, schedule shape, validation, checkpoint selection, measures and report
  views are the real cell's.

Each rehearsed cell carries the real cell's resolved config as ``origin``, so "ours vs paper" is matched on the
protocol the grid will run, and the report marks the experiment as a rehearsal.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

from ..backbones import BackboneSpec
from ..config import CellConfig, EvalConfig, Experiment, TrainConfig
from ..dataset_rows import DatasetSpec
from ..errors import BenchError
from ..teachers import TEACHER_KINDS, TeacherSpec
from . import miniatures as mini
from .tiny import row_overrides, write_tiny_checkpoint

STEPS = 4  # optimiser steps of every trained cell: two validations and a checkpoint where the cell asks for them
BATCH = 4  # queries (groups) per step at most
MAX_LENGTH = 128  # tokens per pair at most
PACKAGED = Path(__file__).resolve().parent.parent / "data"


def toy_train(train: TrainConfig) -> TrainConfig:
    """``train`` at toy scale: :data:`STEPS` steps (warmup scaled with them), at most :data:`BATCH` queries per
    step, depths within the miniature runs, validation and checkpoints twice."""
    # "model" (the backbone's own limit) stays: the tiny rows' limit is already MAX_LENGTH
    short = {"max_length": train.max_length if train.max_length == "model" else min(train.max_length, MAX_LENGTH)}
    if train.eval_only:
        return dataclasses.replace(train, **short)
    warmup = train.warmup_steps
    if warmup:
        total = train.max_steps or STEPS
        warmup = max(1, min(STEPS - 1, round(warmup * STEPS / total)))
    return dataclasses.replace(
        train, **short, max_steps=STEPS, warmup_steps=warmup, batch_size=min(train.batch_size, BATCH),
        negatives_depth=min(train.negatives_depth, mini.DEPTH),
        validate_every=STEPS // 2 if train.validate_every else 0,
        checkpoint_every=STEPS // 2 if train.checkpoint_every else 0,
        validation_top_k=min(train.validation_top_k, mini.DEPTH),
        # a schedule clock advancing every N steps ticks every step, over the toy run
        lr_step_every=1 if train.lr_step_every else None, lr_total_steps=STEPS if train.lr_total_steps else None)


def toy_eval(ev: EvalConfig) -> EvalConfig:
    """``ev`` at toy scale: the miniature runs' depth, two latency queries timed once."""
    top_k = min(ev.top_k, mini.DEPTH)
    depths = tuple(sorted({min(d, top_k - 1) for d in ev.depths}))
    return dataclasses.replace(ev, top_k=top_k, depths=depths, latency_queries=2, latency_repeats=1,
                               latency_warmup=1, max_length=ev.max_length and min(ev.max_length, MAX_LENGTH))


def roles(cells: list[CellConfig]) -> dict[str, str]:
    """Dataset row name -> the role its miniature plays (train > validation > eval)."""
    out: dict[str, str] = {}
    for cell in cells:
        if not cell.train.eval_only:
            out[cell.train.dataset] = "train"
            for name in cell.train.validation_datasets:
                out.setdefault(name, "validation")
        for name in cell.eval.datasets:
            out.setdefault(name, "eval")
    return out


class Rehearsal:
    """The miniature world of one grid under ``workdir``: tiny checkpoints, miniature files and ir_datasets ids."""

    def __init__(self, experiment: Experiment, workdir: Path) -> None:
        self.experiment, self.workdir = experiment, Path(workdir)
        first_seed = experiment.axes.get("seed", [None])[0]
        self.cells = [c for c in experiment.cells if "seed" not in c.axes or c.axes["seed"] == first_seed]
        self.roles = roles(self.cells)
        self.world = mini.World()
        self.irds: dict[str, str] = {}  # ir_datasets id -> role
        self.docpairs: set[str] = set()  # ids whose docpairs a teacher reads
        self._backbones: dict[str, BackboneSpec] = {}
        self._texts: list[str] | None = None

    # -- rows ---------------------------------------------------------------------------------------------------

    def backbone(self, spec: BackboneSpec, *, eval_only: bool) -> BackboneSpec:
        """The row with a tiny checkpoint of its architecture (randomly initialised rows stay as they are)."""
        if spec.checkpoint is None:
            return spec
        key = f"{spec.name}{'@head' if eval_only else ''}"
        if key not in self._backbones:
            if self._texts is None:
                self._texts = self.world.texts()
            directory = write_tiny_checkpoint(spec, self.workdir / "models" / key.replace("@", "-"), self._texts,
                                              with_head=eval_only)
            self._backbones[key] = dataclasses.replace(
                spec, checkpoint=str(directory), tokenizer=str(directory), config=row_overrides(spec),
                max_length=min(spec.max_length, MAX_LENGTH))
        return self._backbones[key]

    def teacher(self, spec: TeacherSpec) -> TeacherSpec:
        """The row reading a miniature of its file in the same layout (files the package ships stay)."""
        changes: dict = {"finetune_epochs": min(spec.finetune_epochs, 1)}
        kind = TEACHER_KINDS.get(spec.kind)
        path = spec.path or ""
        if kind.file and path.startswith("irds:"):
            self.irds.setdefault(path[5:], "train")
            self.docpairs.add(path[5:])
        elif kind.file and not (PACKAGED / path).is_file():
            target = self.workdir / "inputs" / Path(path).name
            self._write_teacher_file(spec, target)
            changes.update(path=str(target), md5=mini.md5(target) if spec.md5 else None)
        return dataclasses.replace(spec, **changes)

    def _write_teacher_file(self, spec: TeacherSpec, target: Path) -> None:
        name = target.name.removesuffix(".gz")
        if spec.kind == "docpairs":
            mini.write_docpairs(target, self.world)
        elif spec.kind == "score-file" and name.endswith(".tsv"):
            mini.write_score_tsv(target, self.world)
        elif spec.kind == "llm-ranking" and name.endswith(".jsonl"):
            mini.write_rankings_jsonl(target, self.world)
        else:  # a TREC run: scores (score-file) or a ranked list (llm-ranking)
            mini.write_run(target, self.world.run("train"), ranking=spec.kind == "llm-ranking")

    def dataset(self, spec: DatasetSpec) -> DatasetSpec:
        """The row over its miniature: an ir_datasets id registered as one, a run file written in its layout."""
        role = self.roles.get(spec.name, "eval")
        changes: dict = {"top_k": min(spec.top_k, mini.DEPTH)}
        if spec.source == "ir_datasets":
            self.irds[spec.id or ""] = role if self.irds.get(spec.id or "") != "train" else "train"
        elif spec.source == "embedded":  # shipped: kept, with fewer test queries (training reads what its steps do)
            if role != "train":
                changes["max_queries"] = min(spec.max_queries or mini.QUERIES[role], mini.QUERIES[role])
        else:
            raise BenchError(f"dataset {spec.name!r}: a {spec.source} row cannot be rehearsed yet (its directory "
                             "is read as it is; use an ir_datasets or embedded row)")
        if spec.first_stage.startswith("run:"):
            target = self.workdir / "inputs" / Path(spec.first_stage[4:]).name
            mini.write_run(target, self.world.run(role, spec.id or spec.name))
            changes["first_stage"] = f"run:{target}"
        return dataclasses.replace(spec, **changes)

    def cell(self, cell: CellConfig) -> CellConfig:
        eval_only = cell.train.eval_only
        return dataclasses.replace(
            cell, backbone=self.backbone(cell.backbone, eval_only=eval_only), teacher=self.teacher(cell.teacher),
            init_teacher=cell.init_teacher and self.teacher(cell.init_teacher),
            teacher_models={n: self.backbone(b, eval_only=False) for n, b in cell.teacher_models.items()},
            train=toy_train(cell.train), eval=toy_eval(cell.eval),
            datasets={n: self.dataset(s) for n, s in cell.datasets.items()}, origin=cell.to_dict())


@contextlib.contextmanager
def rehearse(experiment: Experiment, workdir: Path) -> Iterator[Experiment]:
    """The grid's cells at toy scale (seeds folded to the first) for the ``with`` block, with their miniature
    inputs under ``workdir`` and its ir_datasets ids registered; ``$RDB_CACHE`` points under ``workdir`` so no
    cache of the real inputs is read or written."""
    from .. import cell as cell_module

    rehearsal = Rehearsal(experiment, workdir)
    cells = [rehearsal.cell(c) for c in rehearsal.cells]
    toy = dataclasses.replace(experiment, cells=cells)
    saved = os.environ.get("RDB_CACHE")
    os.environ["RDB_CACHE"] = str(Path(workdir) / "cache")
    cell_module.clear_collections()
    try:
        with mini.irds_registered(rehearsal.irds, rehearsal.docpairs, Path(workdir) / "irds", rehearsal.world):
            yield toy
    finally:
        cell_module.clear_collections()
        if saved is None:
            os.environ.pop("RDB_CACHE", None)
        else:
            os.environ["RDB_CACHE"] = saved
