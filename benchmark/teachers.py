"""Teacher rows: where a student's training targets come from.

Kinds (``TEACHER_KINDS``, one function each):

- ``labels`` — the qrels grades themselves (no distillation).
- ``cross-encoder`` — one or several cross-encoders (backbone rows) score every training candidate; several form an
  ensemble whose per-model z-normalised scores are averaged (Hofstätter et al. 2020 average their teachers' scores;
  normalising first keeps one model's scale from dominating). A row with ``finetune_epochs > 0`` first fine-tunes
  each model on the training labels — how the bi-encoder weights of all-MiniLM-L6-v2 become a cross-encoder teacher.
  Fine-tuned weights (safetensors) and scores are cached on disk, keyed by model + data hash.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import typed
from .collection import Collection
from .errors import BenchError
from .registry import Registry

KINDS = ("labels", "cross-encoder", "score-file", "llm-ranking")


@dataclass(frozen=True)
class TeacherSpec:
    name: str
    kind: str
    models: tuple[str, ...] = ()  # backbone rows (cross-encoder); several = ensemble
    finetune_epochs: int = 0  # fine-tune each model on the training labels first (0 = use as is)
    finetune_objective: str = "infonce"
    finetune_lr: float = 5e-5
    path: str | None = None  # score-file / llm-ranking input
    description: str = ""

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise BenchError(f"teacher {self.name!r}: kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.kind == "cross-encoder" and not self.models:
            raise BenchError(f"teacher {self.name!r}: a cross-encoder teacher needs models = [backbone rows]")

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> TeacherSpec:
        return typed.build(cls, data, f"teachers.{name}", name=name)


TEACHERS: Registry[TeacherSpec] = Registry("teacher")
for _spec in [
    TeacherSpec("labels", "labels", description="qrels grades only"),
    TeacherSpec("minilm-l6-ce", "cross-encoder", models=("minilm-l6",), finetune_epochs=2,
                description="all-MiniLM-L6-v2 (22.7M) fine-tuned as a cross-encoder on the training labels"),
    TeacherSpec("minilm-l3-ce", "cross-encoder", models=("minilm-l3",), finetune_epochs=2,
                description="the first 3 layers of all-MiniLM-L6-v2 (17.4M), fine-tuned likewise"),
    TeacherSpec("minilm-ensemble", "cross-encoder", models=("minilm-l6", "minilm-l3"), finetune_epochs=2,
                description="mean of the z-normalised scores of the L6 and L3 teachers"),
]:
    TEACHERS.add(_spec.name, _spec)


def get_teacher(name: str) -> TeacherSpec:
    return TEACHERS.get(name)


def cache_root() -> Path:
    return Path(os.environ.get("RDB_CACHE", Path.home() / ".cache" / "rerank-distill-bench"))


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TeacherContext:
    """What a teacher needs besides its row: the training data and the cell's training settings."""

    collection: Collection
    pool: dict[str, list[str]]  # qid -> candidate docids the student may see (teacher must score them)
    cell: Any  # CellConfig (typed loosely to avoid an import cycle)
    backbone_of: Callable[[str], Any]  # backbone row lookup (grid-local rows included)


def compute_targets(spec: TeacherSpec, ctx: TeacherContext):
    return TEACHER_KINDS.get(spec.kind)(spec, ctx)


TEACHER_KINDS: Registry[Callable[[TeacherSpec, TeacherContext], Any]] = Registry("teacher kind")


@TEACHER_KINDS.register("labels")
def _labels(spec: TeacherSpec, ctx: TeacherContext):
    from .training import Targets

    return Targets(ctx.collection.qrels, "labels")


@TEACHER_KINDS.register("cross-encoder")
def _cross_encoder(spec: TeacherSpec, ctx: TeacherContext):
    import numpy as np

    from .training import Targets

    per_model = [_scores(spec, ctx, ctx.backbone_of(m)) for m in spec.models]
    if len(per_model) == 1:
        return Targets(per_model[0], "scores")
    table: dict[str, dict[str, float]] = {}
    for scores in per_model:
        flat = np.array([v for row in scores.values() for v in row.values()])
        mu, sd = float(flat.mean()), float(flat.std()) or 1.0
        for q, row in scores.items():
            dst = table.setdefault(q, {})
            for d, v in row.items():
                dst[d] = dst.get(d, 0.0) + (v - mu) / sd / len(per_model)
    return Targets(table, "scores")


def _scores(spec: TeacherSpec, ctx: TeacherContext, backbone) -> dict[str, dict[str, float]]:
    """Scores of one teacher model on every (query, candidate) of the pool, cached on disk."""
    from .results import atomic_write_text

    data_key = _digest(ctx.collection.meta.get("hash", ctx.collection.name), ctx.pool)
    key = _digest(backbone.to_dict(), spec.finetune_epochs, spec.finetune_objective, spec.finetune_lr,
                  ctx.collection.meta.get("hash", ctx.collection.name), ctx.cell.train.max_length, data_key)
    path = cache_root() / "teacher-scores" / f"{backbone.name}-{key}.json"
    if path.exists():
        return json.loads(path.read_text())
    model, tokenizer = _teacher_model(spec, ctx, backbone)
    from .inference import Reranker
    from .training import resolve_device

    device = resolve_device(ctx.cell.train.device)
    reranker = Reranker(model, tokenizer, max_length=ctx.cell.train.max_length, batch_size=ctx.cell.eval.batch_size,
                        device=device, dtype=backbone.dtype if device.type == "cuda" else "fp32",
                        use_token_type_ids=backbone.token_type_ids)
    pairs = [(q, d) for q, cands in ctx.pool.items()
             for d in dict.fromkeys([*cands, *ctx.collection.qrels.get(q, {})])]
    values = reranker.score([ctx.collection.queries[q] for q, _ in pairs], [ctx.collection.docs[d] for _, d in pairs])
    scores: dict[str, dict[str, float]] = {}
    for (q, d), v in zip(pairs, values):
        scores.setdefault(q, {})[d] = round(float(v), 6)
    atomic_write_text(path, json.dumps(scores))
    return scores


def _teacher_model(spec: TeacherSpec, ctx: TeacherContext, backbone):
    """The teacher cross-encoder, fine-tuned on all training labels once and cached as safetensors."""
    from safetensors.torch import load_file, save_file

    from .backbones import build_cross_encoder
    from .config import TrainConfig
    from .objectives import get_objective
    from .training import Targets, train_model

    model, tokenizer = build_cross_encoder(backbone, seed=0)
    if spec.finetune_epochs <= 0:
        return model, tokenizer
    base = ctx.cell.train
    key = _digest(backbone.to_dict(), spec.finetune_epochs, spec.finetune_objective, spec.finetune_lr,
                  ctx.collection.meta.get("hash", ctx.collection.name), base.max_length)
    path = cache_root() / "teachers" / f"{backbone.name}-{key}.safetensors"
    if path.exists():
        model.load_state_dict(load_file(str(path)))
        return model.eval(), tokenizer
    # The teacher sees every training label (no label budget): it stands for a model trained on the full set.
    cfg = TrainConfig(dataset=base.dataset, max_queries=None, group_size=base.group_size, negatives="first-stage",
                      negatives_depth=base.negatives_depth, epochs=spec.finetune_epochs, batch_size=base.batch_size,
                      lr=spec.finetune_lr, max_length=base.max_length, dtype=backbone.dtype, device=base.device)
    train_model(model, tokenizer, ctx.collection, Targets(ctx.collection.qrels, "labels"),
                get_objective(spec.finetune_objective), cfg, seed=0,
                use_token_type_ids=backbone.token_type_ids, desc=f"teacher {backbone.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp))
    os.replace(tmp, path)
    return model.eval(), tokenizer
