"""The training loop shared by students and fine-tuned teachers.

Each step takes ``batch_size`` groups of K candidates each (built by the cell's sampler, ``benchmark/samplers.py``:
a judged positive plus K-1 negatives, a listed (q, d+, d-) triple, or a teacher's whole ranked list), scores the
B*K pairs with the cross-encoder and applies one objective to the [B, K] score matrix against the teacher's targets.
Groups are re-sampled every epoch from a seeded generator, so a cell is deterministic on CPU.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .collection import Collection
from .config import TrainConfig
from .errors import BenchError
from .fastpath import first_logits
from .inference import autocast_context, encode_pairs, length_batches
from .losses import Objective, check_finite
from .progress import Progress
from .samplers import Candidates, Groups, Triple, get_sampler, sample

TargetTable = Mapping[str, Mapping[str, float]]  # qid -> docid -> target value (unlisted docs: 0)


@dataclass(frozen=True)
class Targets:
    """What a teacher gives the student: a value per (query, doc) and what kind of value it is."""

    table: TargetTable
    kind: str  # "labels" (graded qrels), "scores" (teacher logits), "ranks" (LLM ranking, 1 = best)
    pool: Mapping[str, list[str]] | None = None  # file teachers: the only candidates they judged, per query, best first
    triples: Sequence[Triple] | None = None  # file teachers listing (q, d+, d-) triples: them, in file order

    def values(self, qid: str, docids: Sequence[str]) -> list[float]:
        row = self.table.get(qid, {})
        if self.kind == "ranks":  # unranked docs sit below every ranked one
            worst = max(row.values(), default=0.0) + 1.0
            return [float(row.get(d, worst)) for d in docids]
        return [float(row.get(d, 0.0)) for d in docids]


def as_objective_targets(values: torch.Tensor, kind: str, objective: Objective, mask: torch.Tensor) -> torch.Tensor:
    """Map raw teacher values onto what the objective expects.

    ``score`` objectives want "higher = more relevant": labels and logits as they are, ranks negated.
    ``probability`` objectives (BCE) want [0, 1]: labels -> relevant (grade > 0), logits -> sigmoid,
    ranks -> 1 for the teacher's top-ranked candidate of the group.
    """
    if objective.target == "score":
        return -values if kind == "ranks" else values
    if kind == "labels":
        return (values > 0).float()
    if kind == "scores":
        return torch.sigmoid(values)
    best = values.masked_fill(~mask, math.inf).min(dim=1, keepdim=True).values
    return (values == best).float()


def training_qids(collection: Collection, max_queries: int | None, among: Iterable[str] | None = None,
                  positive: bool = True) -> list[str]:
    """The training queries: those of ``among`` (the queries a file teacher covers; default all) that the dataset
    holds, with at least one judged-relevant document where ``positive`` (the sampler forces one into each group).
    They come in a fixed shuffle (seed 0, independent of the cell seed) cut at ``max_queries``, so label budgets are
    nested (the first 50 queries are inside the first 100) and drawn from what the teacher covers."""
    pool = collection.queries if among is None else [q for q in among if q in collection.queries]
    qids = sorted(q for q in pool if not positive or any(g > 0 for g in collection.qrels.get(q, {}).values()))
    if not qids:
        what = "the teacher's file covers none of its queries" if among is not None else "no query to train on"
        raise BenchError(f"dataset {collection.name!r}: {what}" + (" with a relevant document" if positive else ""))
    np.random.default_rng(0).shuffle(qids)
    return qids[:max_queries] if max_queries else qids


def negative_pool(collection: Collection, qids: Sequence[str], depth: int) -> dict[str, list[str]]:
    """First-stage top-``depth`` candidates of each training query (where hard negatives come from)."""
    return {q: collection.ranked(q, depth) for q in qids}


def training_queries(collection: Collection, cfg: TrainConfig,
                     targets: Targets | None = None) -> tuple[list[str], Candidates]:
    """The queries a run trains on and what its sampler draws from: a file teacher's lists and triples (its label
    budget drawn from the queries the file covers), else the first-stage top-``negatives_depth``."""
    spec = get_sampler(cfg.sampler)
    file_pool = targets.pool if targets is not None else None
    if file_pool is None:
        qids = training_qids(collection, cfg.max_queries, positive=spec.positive)
        return qids, Candidates(negative_pool(collection, qids, cfg.negatives_depth))
    qids = training_qids(collection, cfg.max_queries, among=file_pool, positive=spec.positive)
    return qids, Candidates(file_pool, targets.triples)


def epoch_groups(collection: Collection, qids: Sequence[str], cfg: TrainConfig, rng: np.random.Generator,
                 pool: Candidates, first_epoch: int = 0) -> Iterator[tuple[int, dict, Groups, np.ndarray]]:
    """(epoch, ``rng`` state at its start, its groups, their batch order) for each epoch: the one place the order of
    draws from the cell's generator is fixed, shared by training and by ``student_pairs``. Samplers that keep their
    source's order (``triples``) take batches in that order and draw nothing for it."""
    shuffle = get_sampler(cfg.sampler).shuffle
    for epoch in range(first_epoch, cfg.epochs):
        state = rng.bit_generator.state
        groups = sample(collection, qids, cfg, rng, pool)
        n = len(groups.qids)
        yield epoch, state, groups, rng.permutation(n) if shuffle else np.arange(n)


def epoch_size(qids: Sequence[str], cfg: TrainConfig, pool: Candidates) -> int:
    """Groups per epoch: one per listed triple of a training query under ``triples``, else (at most) one per query."""
    if get_sampler(cfg.sampler).needs_triples and pool.triples is not None:
        keep = set(qids)
        return sum(t[0] in keep for t in pool.triples)
    return len(qids)


def student_pairs(collection: Collection, cfg: TrainConfig, seed: int) -> dict[str, list[str]]:
    """Every (query, doc) that ``train_model`` with ``cfg`` and ``seed`` will put in a group, per query: what a
    teacher must score for it (one epoch of the embedded default: ~1,600 of the top-30's 6,520 pairs). Triples come
    from the teacher's own file, so that sampler leaves nothing for a model teacher to score (``compute_targets``
    refuses model teachers with it)."""
    if get_sampler(cfg.sampler).needs_triples:
        return {}
    qids, pool = training_queries(collection, cfg)
    seen: dict[str, dict[str, None]] = {}
    for step in training_steps(collection, qids, cfg, np.random.default_rng(seed), pool):
        for i in step.idx:
            seen.setdefault(step.groups.qids[i], {}).update(dict.fromkeys(step.groups.docids[i]))
    return {q: list(docids) for q, docids in seen.items()}


@dataclass(frozen=True)
class Step:
    """One optimiser step: which groups of which epoch it trains on, and where it sits in the run."""

    epoch: int
    epoch_rng: dict  # the generator state at the start of ``epoch`` (what a checkpoint saves to redraw it)
    batch: int  # index of this step's batch within its epoch
    groups: Groups
    idx: np.ndarray  # rows of ``groups`` in this step


def training_steps(collection: Collection, qids: Sequence[str], cfg: TrainConfig, rng: np.random.Generator,
                   pool: Candidates, *, first_epoch: int = 0, skip: int = 0,
                   done: int = 0) -> Iterator[Step]:
    """Every step a run takes, in order: ``cfg.epochs`` epochs of ``batch_size`` groups, or, with ``max_steps``,
    exactly that many steps, cycling through as many epochs as they need (the seed paper counts steps, not
    epochs: xpmir/cross-encoders: src/cross_encoders_training/core_base_paper.yaml). A resumed run passes the
    epoch it stopped in (``rng`` holding that epoch's start state), the batches of it already taken (``skip``)
    and the steps taken in all (``done``)."""
    cycled = cfg if cfg.max_steps is None else dataclasses.replace(cfg, epochs=sys.maxsize)
    for epoch, epoch_rng, groups, order in epoch_groups(collection, qids, cycled, rng, pool, first_epoch):
        for batch, b in enumerate(range(0, len(order), cfg.batch_size)):
            if epoch == first_epoch and batch < skip:
                continue
            if cfg.max_steps is not None and done >= cfg.max_steps:
                return
            yield Step(epoch, epoch_rng, batch, groups, order[b:b + cfg.batch_size])
            done += 1


def planned_steps(collection: Collection, qids: Sequence[str], cfg: TrainConfig, seed: int,
                  pool: Candidates) -> int:
    """How many optimiser steps ``training_steps`` takes for ``seed``: ``max_steps``, or the batches of every epoch
    counted on the epochs' own draws (a sampler may yield more or fewer groups than queries)."""
    if cfg.max_steps is not None:
        return cfg.max_steps
    return sum(1 for _ in training_steps(collection, qids, cfg, np.random.default_rng(seed), pool))


def warmup_steps(cfg: TrainConfig, total: int) -> int:
    """``warmup_steps`` where set, else ``warmup_ratio`` of the run."""
    return cfg.warmup_steps if cfg.warmup_steps is not None else int(cfg.warmup_ratio * total)


def schedule_clock(step: int, every: int | None) -> int:
    """Schedule steps taken before optimiser step ``step`` (0-based): ``step`` itself where the schedule advances
    after every optimiser step, else the count of indices i < ``step`` with i > 0 and i % ``every`` == 0
    (matchmaker steps its scheduler after batch i under that condition: sebastian-hofstaetter/matchmaker:
    matchmaker/train.py:552-553 @ cb1d35d8)."""
    return step if every is None else max(step - 1, 0) // every


def schedule_factor(clock: int, warmup: int, total: int, schedule: str) -> float:
    """The lr multiplier after ``clock`` schedule steps: linear warmup from 0 over ``warmup`` steps, then
    ``constant`` (1), ``linear`` (down to 0 at ``total``) or ``cosine`` (0.5 * (1 + cos(pi * progress)), 0 at
    ``total``): transformers' get_constant/linear/cosine_schedule_with_warmup (num_cycles 0.5) lambdas; past
    ``total`` linear stays at 0 and cosine rises again, as transformers' does."""
    if clock < warmup:
        return clock / max(1, warmup)
    if schedule == "constant":
        return 1.0
    if schedule == "linear":
        return max(0.0, (total - clock) / max(1, total - warmup))
    progress = (clock - warmup) / max(1, total - warmup)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def make_scheduler(opt: torch.optim.Optimizer, warmup: int, total: int, schedule: str = "linear",
                   every: int | None = None) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped after every optimiser step, whose rate follows ``schedule_factor`` on the schedule's own
    clock (``schedule_clock``; ``warmup`` and ``total`` count schedule steps). ``linear`` is xpm_torch's
    ``LinearWithWarmup`` with its default min_factor 0, the seed paper's scheduler (experimaestro/xpm-torch:
    src/xpm_torch/schedulers.py, chosen by src/xpm_torch/experiments/configuration.py); ``cosine`` with ``every``
    100, warmup 1 and total 8500 is matchmaker's ``get_cosine_schedule_with_warmup(optimizer, 1, 8500)`` stepped
    every 100 batches (sebastian-hofstaetter/matchmaker: matchmaker/train.py:168,552-553 @ cb1d35d8)."""
    return torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: schedule_factor(schedule_clock(step, every), warmup, total, schedule))


def schedule_length(cfg: TrainConfig, steps: int) -> int:
    """The schedule's length in its own steps: ``lr_total_steps``, else the run's ``steps`` on its clock."""
    return cfg.lr_total_steps or schedule_clock(steps, cfg.lr_step_every) or 1


def optimizer_groups(model: torch.nn.Module, weight_decay: float, decay_all: bool) -> list[dict]:
    """AdamW parameter groups: decay on every parameter (``decay_all``), else not on biases and LayerNorm
    weights (the parameters with ndim <= 1)."""
    params = list(model.parameters())
    if decay_all:
        return [{"params": params, "weight_decay": weight_decay}]
    return [{"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
            {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}]


def compute_dtype(device: torch.device, requested: str, backbone_dtype: str) -> str:
    """The autocast dtype: ``auto`` is the backbone row's dtype on CUDA and fp32 on CPU; anything else as asked."""
    if requested == "auto":
        return backbone_dtype if device.type == "cuda" else "fp32"
    return requested


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise BenchError("train.device = 'cuda' but no CUDA device is available")
    return torch.device(name)


# The model (in eval mode) -> its validation measure, or that measure per validation set (their mean is the value)
Validate = Callable[[torch.nn.Module], float | Mapping[str, float]]
Track = Callable[[int, Mapping[str, float]], None]  # (optimiser step, name -> value): a tracker's log


def train_model(model: torch.nn.Module, tokenizer, collection: Collection, targets: Targets, objective: Objective,
                cfg: TrainConfig, *, seed: int, use_token_type_ids: bool, backbone_dtype: str = "fp32",
                desc: str = "train", log_every: int = 5, checkpoint_dir: Path | None = None,
                validate: Validate | None = None, track: Track | None = None) -> dict:
    """Train ``model`` in place; returns the record's ``train`` section (time, steps, loss curve, pairs/s).

    With ``validate`` and ``cfg.validate_every`` > 0, the model is validated every that many steps and after the
    last one; the weights of the best value (the earliest on ties: a later step must beat it, as xpm_torch's
    validation listener does, experimaestro/xpm-torch: src/xpm_torch/trainers/validation.py) are loaded back at
    the end, and the section gains ``validation`` (curve of [step, value], best step and value).

    ``track(steps done, values)`` (a ``benchmark.tracking`` writer) gets ``train/loss`` and ``train/lr`` (the rate
    the step used) after every step and ``validation/<measure>`` (and each set's value) after every validation.

    With ``checkpoint_dir`` and ``cfg.checkpoint_every`` > 0, state is saved every that many steps (with the best
    weights so far) and a rerun resumes from it: the epoch's groups and order are re-drawn from the saved generator
    state, so the resumed run takes exactly the steps the uninterrupted one would have, and its record's section is
    the uninterrupted one's (``seconds`` and ``pairs_per_s`` count the time of every attempt's steps up to its last
    checkpoint) plus ``resumed_from_step``."""
    from . import checkpoint

    device = resolve_device(cfg.device)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    qids, pool = training_queries(collection, cfg, targets)
    total = planned_steps(collection, qids, cfg, seed, pool)
    length = schedule_length(cfg, total)
    warmup = warmup_steps(cfg, length)
    model.to(device).train()
    opt = torch.optim.AdamW(optimizer_groups(model, cfg.weight_decay, cfg.weight_decay_all), lr=cfg.lr,
                            eps=cfg.adam_eps,
                            fused=True)  # one kernel over all parameters: the per-tensor loop was ~1/8 of a CPU step
    sched = make_scheduler(opt, warmup, length, cfg.lr_schedule, cfg.lr_step_every)
    dtype = compute_dtype(device, cfg.dtype, backbone_dtype)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == "fp16")
    best = Best(validate if cfg.validate_every > 0 else None, cfg.validation_measure)
    curve: list[list[float]] = []
    pairs = step = first_epoch = skip = 0
    saving = checkpoint_dir is not None and cfg.checkpoint_every > 0
    resumed = checkpoint.load(checkpoint_dir, model, opt, sched, scaler) if saving else None
    clock = 0.0  # seconds of training and validation before this process: a resumed run's clock goes on from there
    if resumed:
        rng.bit_generator.state = resumed["epoch_rng"]
        first_epoch, skip, step, pairs, curve = (resumed[k] for k in ("epoch", "batch", "step", "pairs", "curve"))
        best.restore(resumed.get("best"), checkpoint.load_best(checkpoint_dir))
        clock, best.seconds = resumed.get("seconds", 0.0), resumed.get("validation_seconds", 0.0)
    last_epoch = first_epoch if step else -1
    start = time.perf_counter() - clock
    bar = Progress(total, desc, "steps", initial=step)
    for s in training_steps(collection, qids, cfg, rng, pool, first_epoch=first_epoch, skip=skip, done=step):
        last_epoch = s.epoch
        opt.zero_grad(set_to_none=True)
        value = 0.0
        # Gradient accumulation keeps the effective batch when memory forces smaller micro-batches.
        for micro in np.array_split(s.idx, min(cfg.grad_accum, len(s.idx))):
            loss = _step(model, tokenizer, collection, s.groups, micro, targets, objective, cfg, device, dtype,
                         use_token_type_ids) * (len(micro) / len(s.idx))
            check_finite(loss.detach(), f"{desc} step {step} (epoch {s.epoch})")
            scaler.scale(loss).backward()
            value += float(loss.detach())
        if cfg.max_grad_norm > 0:
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
        lr = opt.param_groups[0]["lr"]  # the rate this step used
        scaler.step(opt)
        scaler.update()
        sched.step()
        pairs += sum(len(s.groups.docids[i]) for i in s.idx)
        if step % log_every == 0 or step == total - 1:
            curve.append([step, round(value, 6)])
        step += 1
        bar.set_postfix(loss=f"{value:.4f}")
        bar.update()
        if track is not None:
            track(step, {"train/loss": value, "train/lr": lr})
        if best.validate and step % cfg.validate_every == 0:
            best.check(model, step, track)
        if saving and step % cfg.checkpoint_every == 0:
            checkpoint.save(checkpoint_dir, model, opt, sched, scaler,
                            {"epoch": s.epoch, "batch": s.batch + 1, "epoch_rng": s.epoch_rng, "step": step,
                             "pairs": pairs, "curve": curve, "best": best.state(),
                             "seconds": time.perf_counter() - start, "validation_seconds": best.seconds},
                            best=best.weights)
    bar.close()
    if best.validate and best.last_step != step:  # the final weights are a candidate too
        best.check(model, step, track)
    model.eval()
    seconds = time.perf_counter() - start - best.seconds
    stats = {"seconds": round(seconds, 3), "steps": step, "epochs": last_epoch + 1,
             "queries": len(qids), "pairs": pairs, "pairs_per_s": round(pairs / seconds, 1) if seconds else None,
             "device": device.type, "dtype": dtype, "warmup_steps": warmup, "schedule_steps": length,
             "last_lr": opt.param_groups[0]["lr"], "loss_curve": curve}
    if best.validate:
        best.load_into(model)
        stats["validation"] = {"dataset": cfg.validation_dataset, "measure": cfg.validation_measure,
                               "aggregate": "mean" if len(cfg.validation_datasets) > 1 else None,
                               "top_k": cfg.validation_top_k, "every": cfg.validate_every, **best.state(),
                               "seconds": round(best.seconds, 3)}
    if resumed:
        stats["resumed_from_step"] = resumed["step"]
    return stats


class Best:
    """The validation curve and the weights of its best step (held on the CPU; checkpoints persist them)."""

    def __init__(self, validate: Validate | None, measure: str = "value") -> None:
        self.validate, self.measure = validate, measure  # the measure names tracked values
        self.curve: list[list[float]] = []
        self.per_set: dict[str, list[list[float]]] = {}  # a mapping validator's values per set, step by step
        self.best_step: int | None = None
        self.best_value: float | None = None
        self.weights: dict[str, torch.Tensor] | None = None
        self.seconds = 0.0

    @property
    def last_step(self) -> int | None:
        return self.curve[-1][0] if self.curve else None

    def check(self, model: torch.nn.Module, step: int, track: Track | None = None) -> None:
        start = time.perf_counter()
        model.eval()
        result = self.validate(model)
        model.train()
        sets = {k: float(v) for k, v in result.items()} if isinstance(result, Mapping) else {}
        value = sum(sets.values()) / len(sets) if sets else float(result)
        if not math.isfinite(value):
            raise BenchError(f"validation at step {step} gave {value} ({sets or 'one value'})")
        self.curve.append([step, round(value, 6)])
        for name, v in sets.items():
            self.per_set.setdefault(name, []).append([step, round(v, 6)])
        if track is not None:
            track(step, {f"validation/{self.measure}": value,
                         **{f"validation/{name}/{self.measure}": v for name, v in sets.items()}})
        if self.best_value is None or value > self.best_value:
            self.best_step, self.best_value = step, value
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        self.seconds += time.perf_counter() - start

    def state(self) -> dict:
        return {"curve": self.curve, "best_step": self.best_step, "best_value": self.best_value,
                **({"per_set": self.per_set} if self.per_set else {})}

    def restore(self, state: dict | None, weights: dict[str, torch.Tensor] | None) -> None:
        if state:
            self.curve, self.best_step, self.best_value = state["curve"], state["best_step"], state["best_value"]
            self.per_set = state.get("per_set", {})
            self.weights = weights

    def load_into(self, model: torch.nn.Module) -> None:
        device = next(model.parameters()).device
        model.load_state_dict({k: v.to(device) for k, v in self.weights.items()})


# Pairs per forward chunk in training: a step's B*K pairs are sorted by length and run in chunks padded to their own
# longest pair, so short pairs stop paying for the longest one; a GPU wants bigger chunks to stay busy.
SORTED_CHUNK = {"cpu": 32, "cuda": 128}


def sorted_forward(model, enc: Mapping[str, torch.Tensor], device: torch.device, dtype: str) -> torch.Tensor:
    """``logits[:, 0]`` of every pair in input order, computed in length-sorted chunks (dynamic padding), with the
    unpadded forward of ``fastpath`` on CPU where the model has one."""
    order, batches = length_batches(enc["attention_mask"].sum(dim=1).numpy(), SORTED_CHUNK.get(device.type, 128))
    order = torch.from_numpy(order)
    logits, _ = first_logits(model, device)
    parts = []
    with autocast_context(device, dtype):
        for rows, width in batches:
            batch = {n: t[order[rows], :width].to(device) for n, t in enc.items()}
            parts.append(logits(**batch).float())
    inverse = torch.empty_like(order)
    inverse[order] = torch.arange(len(order))
    return torch.cat(parts)[inverse.to(device)]


def _step(model, tokenizer, collection: Collection, groups: Groups, idx: np.ndarray, targets: Targets,
          objective: Objective, cfg: TrainConfig, device: torch.device, dtype: str,
          use_token_type_ids: bool) -> torch.Tensor:
    k = max(len(groups.docids[i]) for i in idx)
    queries, docs, raw, mask = [], [], [], []
    for i in idx:
        q, ds = groups.qids[i], groups.docids[i]
        pad = k - len(ds)
        queries += [collection.queries[q]] * len(ds)
        docs += [collection.docs[d] for d in ds]
        raw.append(targets.values(q, ds) + [0.0] * pad)
        mask.append([True] * len(ds) + [False] * pad)
    mask_t = torch.tensor(mask, device=device)
    raw_t = torch.tensor(raw, dtype=torch.float32, device=device)
    enc = encode_pairs(tokenizer, queries, docs, cfg.max_length, use_token_type_ids,
                       query_length=cfg.max_query_length, doc_length=cfg.max_doc_length)
    logits = sorted_forward(model, enc, device, dtype)
    scores = torch.zeros(mask_t.shape, device=device, dtype=logits.dtype).masked_scatter(mask_t, logits)
    return objective.fn(scores, as_objective_targets(raw_t, targets.kind, objective, mask_t), mask_t)
