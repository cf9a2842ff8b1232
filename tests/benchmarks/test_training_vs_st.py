"""The suite's training loop ``benchmark.training.train_model`` against sentence-transformers' ``CrossEncoderTrainer``.

For every loss both tools have, the same cell is trained twice, side by side in one run, and both results print:
pairs/s and nDCG@10 on embedded-test (the BM25 top-30 of the first ``EVAL_QUERIES`` test queries reranked, both
models scored by the same ``Reranker``), and their ratios.

What is the same: the initial weights (backbone row minilm-l2, or ``RDB_BENCH_BACKBONE``, built by
``build_cross_encoder(spec, seed=seed)``, saved for sentence-transformers and loaded by ``CrossEncoder``); the
examples and their order (the groups of every step
drawn by the suite's ``training_steps``, handed to the trainer as a dataset read in order by a sequential batch
sampler, one optimiser step per batch); label targets through ``as_objective_targets``; AdamW (lr 2e-4, eps 1e-8,
no weight decay), linear warmup then linear decay over the run, gradient clipping at norm 1, fp32 on the CPU,
max_length 96, forward chunks of 32 pairs (the trainer's ``mini_batch_size`` where the loss has one). What is not:
dropout draws (each tool its own stream) and truncation of over-long pairs (ours cuts the document only,
sentence-transformers the longer side; at max_length 96 few embedded pairs reach it).

The loss pairs and how they are aligned (``tests/test_loss_parity.py`` checks each on the same tensors):

| ours | sentence-transformers | rows per step |
|---|---|---|
| bce | BinaryCrossEntropyLoss (mean over the step's B*K pairs) | B*K (query, doc, label) pairs |
| margin-mse | MarginMSELoss (labels [t+, t-...], d+ = highest target first) | B (query, d+, d-_1..d-_{K-1}) |
| infonce | MultipleNegativesRankingLoss with the hard negatives only (no in-batch negatives), no sigmoid, scale 1 | B |
| ranknet | RankNetLoss (natural log: ours is in nats) | B (query, [docs], [labels]) |
| listnet | ListNetLoss (cross-entropy = our KL + a constant) | B (query, [docs], [labels]) |
| adr-mse | ADRMSELoss | B lists |
| lambdaloss | LambdaLoss(NDCGLoss2Scheme) (theirs averages pairs, ours sums each list's: a constant factor here) | B lists |

    pytest tests/benchmarks/test_training_vs_st.py -s                        # 2 steps x 4 groups of 8, 10 queries
    pytest tests/benchmarks/test_training_vs_st.py -s --benchmark-enable     # 12 steps x 16 groups of 8, all 60
    RDB_BENCH_STEPS=6 pytest tests/benchmarks/test_training_vs_st.py -s --benchmark-enable -k listnet
    # a model that learns: MiniLM-L6 (bundled weights), 40 steps x 4 groups of 8, seeds 0-2, all 60 test queries
    RDB_BENCH_BACKBONE=minilm-l6 RDB_BENCH_STEPS=40 RDB_BENCH_GROUPS=4 RDB_BENCH_SEEDS=0,1,2 \\
        pytest tests/benchmarks/test_training_vs_st.py -s --benchmark-enable

Each (loss, seed) prints its row; the module's end prints one table per loss over its seeds (pairs/s of each side,
their ratio, nDCG@10 mean and range of each side) and ``RDB_BENCH_OUT=file.jsonl`` appends every row to a file.

Every step takes new queries (steps x groups <= the 200 embedded-train queries), so no step is a short epoch end.

Needs ``sentence-transformers[train]`` (``datasets``, ``accelerate``); skipped without them. Times are printed,
never asserted; the assertions check that both tools trained the same pairs and moved the weights.
"""

from __future__ import annotations

import json
import math
import os
import time

import numpy as np
import pytest
import torch

pytest.importorskip("datasets")
pytest.importorskip("accelerate")
st_losses = pytest.importorskip("sentence_transformers.cross_encoder.losses")

BACKBONE = os.environ.get("RDB_BENCH_BACKBONE", "minilm-l2")
DATASET, EVAL_DATASET = "embedded-train", "embedded-test"
SEEDS = [int(s) for s in os.environ.get("RDB_BENCH_SEEDS", "0").split(",")]
LR, WARMUP, MAX_LENGTH, CHUNK, EVAL_DEPTH = 2e-4, 2, 96, 32, 30
LOSSES = ["bce", "margin-mse", "infonce", "ranknet", "listnet", "adr-mse", "lambdaloss"]


@pytest.fixture(scope="module")
def cfg(timing):
    from benchmark.config import TrainConfig

    steps = int(os.environ.get("RDB_BENCH_STEPS") or (12 if timing else 2))
    batch = int(os.environ.get("RDB_BENCH_GROUPS") or (16 if timing else 4))
    return TrainConfig(dataset=DATASET, max_queries=steps * batch, group_size=8, negatives_depth=30,
                       max_steps=steps, batch_size=batch, lr=LR, weight_decay=0.0, warmup_steps=WARMUP,
                       lr_schedule="linear", max_grad_norm=1.0, adam_eps=1e-8, max_length=MAX_LENGTH,
                       dtype="fp32", device="cpu")


@pytest.fixture(scope="module")
def data(rdb_cache):
    from benchmark.dataset_rows import get_dataset
    from benchmark.datasets import load_collection

    return load_collection(get_dataset(DATASET)), load_collection(get_dataset(EVAL_DATASET))


def save_start(seed: int, out):
    """The seeded initial model, saved with its tokenizer, for ``CrossEncoder`` to load."""
    from benchmark.backbones import get_backbone
    from benchmark.models import build_cross_encoder

    model, tokenizer = build_cross_encoder(get_backbone(BACKBONE), seed=seed)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def rows():
    """Every (loss, seed) result of the module; one table per loss over its seeds at the end."""
    found: list[dict] = []
    yield found
    by_loss: dict[str, list[dict]] = {}
    for r in found:
        by_loss.setdefault(r["loss"], []).append(r)
    if not found:
        return
    print(f"\n{BACKBONE}: per loss over seeds, pairs/s mean, ratio median (min-max), nDCG@10 mean (min-max)")
    print(f"{'loss':<12}{'seeds':>6}{'ours p/s':>10}{'ST p/s':>9}{'ratio':>20}{'nDCG ours':>22}{'nDCG ST':>22}")
    for loss, rs in by_loss.items():
        ratio = [r["ours_pairs_per_s"] / r["theirs_pairs_per_s"] for r in rs]
        ours, theirs = [r["ours_ndcg10"] for r in rs], [r["theirs_ndcg10"] for r in rs]
        print(f"{loss:<12}{len(rs):>6}{np.mean([r['ours_pairs_per_s'] for r in rs]):>10.1f}"
              f"{np.mean([r['theirs_pairs_per_s'] for r in rs]):>9.1f}"
              f"{np.median(ratio):>8.2f}x ({min(ratio):.2f}-{max(ratio):.2f})"
              f"{np.mean(ours):>10.3f} ({min(ours):.3f}-{max(ours):.3f})"
              f"{np.mean(theirs):>10.3f} ({min(theirs):.3f}-{max(theirs):.3f})")


def step_groups(train, cfg, objective, seed: int) -> list[list[tuple[str, list[str], list[float]]]]:
    """Each step's groups as (query text, doc texts, objective targets), in the order ``train_model`` takes them."""
    from benchmark.training import (
        Targets,
        as_objective_targets,
        training_queries,
        training_steps,
    )

    targets = Targets(train.qrels, "labels")
    qids, pool = training_queries(train, cfg, targets)
    steps = []
    for step in training_steps(train, qids, cfg, np.random.default_rng(seed), pool):
        groups = []
        for i in step.idx:
            q, docids = step.groups.qids[i], step.groups.docids[i]
            raw = torch.tensor([targets.values(q, docids)])
            t = as_objective_targets(raw, "labels", objective, torch.ones_like(raw, dtype=torch.bool))[0]
            groups.append((train.queries[q], [train.docs[d] for d in docids], t.tolist()))
        steps.append(groups)
    return steps


def st_rows(loss: str, steps) -> tuple[dict[str, list], int]:
    """The trainer's dataset (columns in its input layout) and its batch size: one batch per step, in order."""
    if loss == "bce":
        rows = [(q, d, t) for groups in steps for q, docs, ts in groups for d, t in zip(docs, ts)]
        return {"query": [r[0] for r in rows], "doc": [r[1] for r in rows], "label": [r[2] for r in rows]}, \
            sum(len(docs) for _, docs, _ in steps[0])
    flat = [g for groups in steps for g in groups]
    if loss in ("margin-mse", "infonce"):
        columns: dict[str, list] = {"query": []}
        for q, docs, ts in flat:
            best = int(np.argmax(ts))  # d+ first: the highest target (the first one on ties), as ours picks it
            order = [best] + [j for j in range(len(docs)) if j != best]
            columns["query"].append(q)
            for c, j in enumerate(order):
                columns.setdefault("positive" if c == 0 else f"negative_{c}", []).append(docs[j])
            columns.setdefault("label", []).append([ts[j] for j in order] if loss == "margin-mse" else 1.0)
        return columns, len(steps[0])
    return {"query": [q for q, _, _ in flat], "docs": [d for _, d, _ in flat],
            "labels": [t for _, _, t in flat]}, len(steps[0])


def st_loss(loss: str, model):
    from sentence_transformers.cross_encoder.losses.lambda_loss import NDCGLoss2Scheme

    names = {"bce": "BinaryCrossEntropyLoss", "margin-mse": "MarginMSELoss", "infonce": "MultipleNegativesRankingLoss",
             "ranknet": "RankNetLoss", "listnet": "ListNetLoss", "adr-mse": "ADRMSELoss", "lambdaloss": "LambdaLoss"}
    cls = getattr(st_losses, names[loss], None)
    if cls is None:
        pytest.skip(f"this sentence-transformers has no cross-encoder {names[loss]}")
    if loss == "infonce":
        class HardNegativesOnly(cls):
            """InfoNCE over each query's own list: no in-batch negatives (ours has none)."""

            def get_in_batch_negatives(self, anchors, candidates):
                return iter(())

        return HardNegativesOnly(model, activation_fn=None, scale=1.0)
    if loss == "ranknet":
        return cls(model, reduction_log="natural", mini_batch_size=CHUNK)
    if loss == "lambdaloss":
        return cls(model, weighting_scheme=NDCGLoss2Scheme(), mini_batch_size=CHUNK)
    if loss in ("listnet", "adr-mse"):
        return cls(model, mini_batch_size=CHUNK)
    return cls(model)


def train_st(loss: str, start_dir, steps, cfg, out_dir, seed: int) -> tuple[torch.nn.Module, float]:
    """sentence-transformers' trainer on the suite's steps; returns the trained HF model and its train() seconds."""
    from datasets import Dataset
    from datasets.table import InMemoryTable
    from sentence_transformers.base.sampler import DefaultBatchSampler
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from torch.utils.data import SequentialSampler

    columns, batch = st_rows(loss, steps)
    # a given fingerprint: Dataset.from_dict hashes the table with dill, which fails on pyarrow 26's MonthDayNano type
    dataset = Dataset(InMemoryTable.from_pydict(columns), fingerprint=f"rdb-{loss}-{len(steps)}x{batch}")
    torch.manual_seed(seed)
    model = CrossEncoder(str(start_dir), max_length=MAX_LENGTH, device="cpu", activation_fn=torch.nn.Identity())
    args = CrossEncoderTrainingArguments(
        output_dir=str(out_dir), max_steps=len(steps), per_device_train_batch_size=batch, learning_rate=cfg.lr,
        weight_decay=0.0, adam_epsilon=cfg.adam_eps, warmup_steps=cfg.warmup_steps, lr_scheduler_type="linear",
        max_grad_norm=cfg.max_grad_norm, seed=seed, use_cpu=True, report_to="none", save_strategy="no",
        logging_strategy="no", disable_tqdm=True, dataloader_drop_last=False,
        batch_sampler=lambda dataset, **kw: DefaultBatchSampler(SequentialSampler(dataset), **kw))
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset,
                                  loss=st_loss(loss, model))
    start = time.perf_counter()
    trainer.train()
    return model[0].model.eval(), time.perf_counter() - start


def train_ours(loss: str, train, cfg, seed: int) -> tuple[torch.nn.Module, float, int]:
    from benchmark.backbones import get_backbone
    from benchmark.losses import get_objective
    from benchmark.models import build_cross_encoder
    from benchmark.training import Targets, train_model

    spec = get_backbone(BACKBONE)
    model, tokenizer = build_cross_encoder(spec, seed=seed)
    start = time.perf_counter()
    stats = train_model(model, tokenizer, train, Targets(train.qrels, "labels"), get_objective(loss), cfg,
                        seed=seed, use_token_type_ids=spec.token_type_ids, backbone_dtype=spec.dtype)
    return model.eval(), time.perf_counter() - start, stats["pairs"]


def ndcg10(model, test, n_queries: int) -> float:
    from benchmark.backbones import get_backbone
    from benchmark.evaluation import evaluate
    from benchmark.firststage import cut
    from benchmark.inference import Reranker
    from benchmark.models import load_tokenizer

    spec = get_backbone(BACKBONE)
    qids = [q for q in test.queries if test.qrels.get(q) and test.run.get(q)][:n_queries]
    candidates = cut({q: test.run[q] for q in qids}, EVAL_DEPTH, EVAL_DATASET)
    reranker = Reranker(model, load_tokenizer(spec), max_length=128, batch_size=32,
                        use_token_type_ids=spec.token_type_ids)
    pairs = [(q, d) for q in qids for d in candidates[q]]
    scores = reranker.score([test.queries[q] for q, _ in pairs], [test.docs[d] for _, d in pairs])
    run: dict[str, dict[str, float]] = {}
    for (q, d), s in zip(pairs, scores):
        run.setdefault(q, {})[d] = float(s)
    return evaluate(run, test.qrels, ["nDCG@10"], name="rerank")[0]["nDCG@10"]


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("loss", LOSSES)
def test_train_model_vs_crossencoder_trainer(loss, seed, cfg, data, rows, tmp_path, timing, timings):
    from transformers import AutoModelForSequenceClassification

    from benchmark.losses import get_objective

    train, test = data
    steps = step_groups(train, cfg, get_objective(loss), seed)
    pairs = sum(len(docs) for groups in steps for _, docs, _ in groups)
    assert len(steps) == cfg.max_steps and all(len(g) == cfg.batch_size for g in steps), "full steps"
    start_dir = save_start(seed, tmp_path / "start")
    ours, ours_s, ours_pairs = train_ours(loss, train, cfg, seed)
    theirs, theirs_s = train_st(loss, start_dir, steps, cfg, tmp_path / "st", seed)
    assert ours_pairs == pairs, f"train_model trained {ours_pairs} pairs, the steps hold {pairs}"
    start = AutoModelForSequenceClassification.from_pretrained(start_dir).state_dict()
    for name, model in (("train_model", ours), ("CrossEncoderTrainer", theirs)):
        moved = [n for n, p in model.state_dict().items() if not torch.equal(p, start[n])]
        assert moved, f"{name} left every weight as it started"
    n_eval = 60 if timing else 10
    quality = {"ours": ndcg10(ours, test, n_eval), "theirs": ndcg10(theirs, test, n_eval)}
    assert all(math.isfinite(v) for v in quality.values())
    label = f"{loss} seed {seed}"
    timings.paired(f"{label} train_model", [theirs_s / ours_s], reference="CrossEncoderTrainer",
                   total=theirs_s / ours_s)
    row = {"loss": loss, "seed": seed, "backbone": BACKBONE, "steps": len(steps), "groups": cfg.batch_size,
           "pairs": pairs, "eval_queries": n_eval, "ours_pairs_per_s": pairs / ours_s,
           "theirs_pairs_per_s": pairs / theirs_s, "ours_ndcg10": quality["ours"], "theirs_ndcg10": quality["theirs"],
           "load_before": timings.machine["before"].load1}
    rows.append(row)
    if os.environ.get("RDB_BENCH_OUT"):
        with open(os.environ["RDB_BENCH_OUT"], "a") as f:
            f.write(json.dumps(row) + "\n")
    print(f"\n{label}: {len(steps)} steps x {cfg.batch_size} groups of {cfg.group_size} ({pairs} pairs), "
          f"{BACKBONE}, max_length {MAX_LENGTH}, fp32, torch threads {torch.get_num_threads()}; nDCG@10 on "
          f"{EVAL_DATASET} BM25 top-{EVAL_DEPTH} of {n_eval} queries")
    print(f"  {'tool':<22}{'pairs/s':>9}{'nDCG@10':>9}")
    print(f"  {'train_model':<22}{pairs / ours_s:>9.1f}{quality['ours']:>9.3f}")
    print(f"  {'CrossEncoderTrainer':<22}{pairs / theirs_s:>9.1f}{quality['theirs']:>9.3f}")
    print(f"  speed ratio {theirs_s / ours_s:.2f}x, nDCG@10 change {quality['ours'] - quality['theirs']:+.3f}")
