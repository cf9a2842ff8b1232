"""Training throughput of the grid's loop ``benchmark.training.train_model`` against a plain hand-written loop.

Both train the same cell from the same start: backbone row minilm-l2 (the first 2 layers of all-MiniLM-L6-v2 + a head
seeded by ``build_cross_encoder(spec, seed=0)``, rebuilt fresh, untimed, before every round) on embedded-train, the
first N training queries (32 untimed, 48 when timing), groups of K=8 (one positive + 7 negatives from the first-stage
top-30), 16 queries (128 pairs) per step, one epoch, InfoNCE on label targets, AdamW lr 2e-4, max_length 96, fp32,
cpu. The plain loop draws exactly the grid's groups and batch order (``training_qids``, ``negative_pool``,
``samplers.sample`` and a permutation from ``numpy.random.default_rng(0)``), then per step calls the transformers
tokenizer directly, runs one forward of all B*K pairs padded to the longest, applies the same objective to the [B, K]
scores, backward, AdamW step. The grid's loop tokenizes with the Rust backend directly and runs the pairs in
length-sorted chunks (``sorted_forward``) on the unpadded forward of ``benchmark.fastpath``; it also clips gradients
and steps a linear warmup schedule (both cheap).

    pytest tests/benchmarks/test_training_speed.py --benchmark-enable -s  # 48 queries, 3 timed rounds each
    pytest tests/benchmarks/test_training_speed.py                        # (addopts: --benchmark-disable) 32 queries,
                                                                          # each loop run once

Times are printed, never asserted: CPU timings on a shared machine are noise-prone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

pytest.importorskip("pytest_benchmark")

BACKBONE = "minilm-l2"
DATASET = "embedded-train"
OBJECTIVE = "infonce"
SEED = 0
TRAIN = dict(group_size=8, negatives_depth=30, epochs=1, batch_size=16, lr=2e-4, max_length=96, dtype="fp32",
             device="cpu")
# No warmup round: every round starts from a freshly built model anyway; the summary prints the median and IQR.
PEDANTIC = dict(rounds=3, iterations=1, warmup_rounds=0)


@pytest.fixture(scope="module")
def cfg(timing):
    from benchmark.config import TrainConfig

    return TrainConfig(dataset=DATASET, max_queries=48 if timing else 32, **TRAIN)


@pytest.fixture(scope="module")
def setting(cfg) -> str:
    return (f"{BACKBONE} on {DATASET}: {cfg.max_queries} queries x K={cfg.group_size}, batch={cfg.batch_size} "
            f"queries, {OBJECTIVE}, max_length={cfg.max_length}, fp32, cpu, torch threads={torch.get_num_threads()}")


@pytest.fixture(scope="module")
def cell(rdb_cache):
    from benchmark.backbones import get_backbone
    from benchmark.dataset_rows import get_dataset
    from benchmark.datasets import load_collection
    from benchmark.losses import get_objective
    from benchmark.training import Targets

    coll = load_collection(get_dataset(DATASET))
    return get_backbone(BACKBONE), coll, Targets(coll.qrels, "labels"), get_objective(OBJECTIVE)


@pytest.fixture(scope="module")
def initial(cell) -> dict[str, torch.Tensor]:
    """The weights every round starts from (the builder is seeded, so each fresh model has exactly these)."""
    from benchmark.models import build_cross_encoder

    model, _ = build_cross_encoder(cell[0], seed=SEED)
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def grid_data(cell, cfg) -> tuple[list[str], dict[str, list[str]]]:
    """The grid's training queries and their first-stage negative pool for ``cfg``."""
    from benchmark.training import training_queries

    return training_queries(cell[1], cfg)


def first_groups(cell, cfg):
    """The groups the grid draws in its first epoch (seed ``SEED``)."""
    from benchmark.samplers import sample

    qids, pool = grid_data(cell, cfg)
    return sample(cell[1], qids, cfg, np.random.default_rng(SEED), pool)


def train_grid(model, tokenizer, cell, cfg) -> tuple[int, list[float]]:
    from benchmark.training import train_model

    spec, coll, targets, objective = cell
    stats = train_model(model, tokenizer, coll, targets, objective, cfg, seed=SEED,
                        use_token_type_ids=spec.token_type_ids, backbone_dtype=spec.dtype, log_every=1)
    return stats["pairs"], [loss for _, loss in stats["loss_curve"]]


def train_plain(model, tokenizer, cell, cfg) -> tuple[int, list[float]]:
    """The loop a user would write by hand, on the grid's groups: one padded forward of all B*K pairs per step."""
    from benchmark.samplers import sample
    from benchmark.training import as_objective_targets

    _, coll, targets, objective = cell
    torch.manual_seed(SEED)
    rng = np.random.default_rng(SEED)
    qids, pool = grid_data(cell, cfg)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    pairs, losses = 0, []
    for _ in range(cfg.epochs):
        groups = sample(coll, qids, cfg, rng, pool)
        order = rng.permutation(len(groups.qids))
        for b in range(0, len(order), cfg.batch_size):
            batch = [(groups.qids[i], groups.docids[i]) for i in order[b:b + cfg.batch_size]]
            k = max(len(ds) for _, ds in batch)
            queries = [coll.queries[q] for q, ds in batch for _ in ds]
            docs = [coll.docs[d] for _, ds in batch for d in ds]
            mask = torch.tensor([[j < len(ds) for j in range(k)] for _, ds in batch])
            values = torch.tensor([targets.values(q, ds) + [0.0] * (k - len(ds)) for q, ds in batch])
            enc = tokenizer(queries, docs, truncation="only_second", max_length=cfg.max_length, padding=True,
                            return_tensors="pt")
            logits = model(**enc).logits[:, 0]
            scores = torch.zeros(mask.shape, dtype=logits.dtype).masked_scatter(mask, logits)
            loss = objective.fn(scores, as_objective_targets(values, targets.kind, objective, mask), mask)
            opt.zero_grad()
            loss.backward()
            opt.step()
            pairs += len(docs)
            losses.append(loss.item())
    model.eval()
    return pairs, losses


def expected_pairs(cell, cfg) -> int:
    """Pairs in one epoch of the grid's groups, counted without training."""
    return cfg.epochs * sum(len(ds) for ds in first_groups(cell, cfg).docids)


def test_setup_is_comparable(cell, cfg):
    from benchmark.models import load_tokenizer

    spec, coll, _, _ = cell
    qids, _ = grid_data(cell, cfg)
    assert len(qids) == cfg.max_queries, f"{DATASET} has fewer than {cfg.max_queries} training queries"
    groups = first_groups(cell, cfg)
    assert all(len(ds) == cfg.group_size for ds in groups.docids), "full groups: the same B*K pairs every step"
    tokenizer = load_tokenizer(spec)
    queries = [coll.queries[q] for q, ds in zip(groups.qids, groups.docids) for _ in ds]
    docs = [coll.docs[d] for ds in groups.docids for d in ds]
    enc = tokenizer(queries, docs, truncation="only_second", max_length=cfg.max_length)
    lengths = [len(ids) for ids in enc["input_ids"]]
    assert max(lengths) >= 1.5 * min(lengths), "pairs should vary in length (dynamic padding matters)"


def _run(benchmark, timings, tool, train, cell, cfg, initial, setting):
    from benchmark.models import build_cross_encoder

    models = []

    def fresh():
        model, tokenizer = build_cross_encoder(cell[0], seed=SEED)
        models.append(model)
        return (model, tokenizer, cell, cfg), {}

    pairs, losses = benchmark.pedantic(train, setup=fresh, **PEDANTIC)
    assert pairs == expected_pairs(cell, cfg), f"{tool}: trained {pairs} pairs"
    assert len(losses) == math.ceil(cfg.max_queries / cfg.batch_size) * cfg.epochs, f"{tool}: {len(losses)} steps"
    assert all(math.isfinite(v) for v in losses), f"{tool}: losses {losses}"
    last = dict(models[-1].named_parameters())
    unchanged = [n for n, p in initial.items() if torch.equal(last[n].detach(), p)]
    assert not unchanged, f"{tool}: parameters left untouched by training: {unchanged[:5]}"
    timings.benchmark(tool, benchmark, pairs=pairs, setting=setting)


@pytest.mark.benchmark(group="train-step")
def test_speed_grid(benchmark, timings, cell, cfg, initial, setting):
    _run(benchmark, timings, "train (grid)", train_grid, cell, cfg, initial, setting)


@pytest.mark.benchmark(group="train-step")
def test_speed_plain(benchmark, timings, cell, cfg, initial, setting):
    _run(benchmark, timings, "train (plain)", train_plain, cell, cfg, initial, setting)
