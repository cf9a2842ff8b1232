"""Quality per millisecond across ``eval.precision`` rows on one trained cross-encoder.

Every precision (``benchmark.inference.PRECISIONS``) reranks the same candidates (embedded-test first-stage top-50,
what the default grid reranks; max_length 128, batch <= 32): nDCG@10 over the scored queries, then interleaved rounds
timing one query's list per precision in turn, so each round's speed-up over fp32 is measured under the same machine
load. Calibrated rows take their activation ranges from ``CALIBRATION_PAIRS`` embedded-train pairs (each training
query's BM25 top-4), never from the evaluated ones.

    RDB_BENCH_WEIGHTS=minilm-l3:/path/teacher.safetensors pytest tests/benchmarks/test_precision_speed.py -s \\
        --benchmark-enable
    RDB_BENCH_WEIGHTS=minilm-l6:results/default/<cell>.model pytest tests/benchmarks/test_precision_speed.py -s \\
        --benchmark-enable

    RDB_BENCH_TRAIN_STEPS=40 RDB_BENCH_BACKBONE=minilm-l2 pytest tests/benchmarks/test_precision_speed.py -s \\
        --benchmark-enable

``RDB_BENCH_WEIGHTS`` = ``<backbone row>:<safetensors state dict>`` of a trained model (a fine-tuned teacher in
``$RDB_CACHE/teachers``), or ``<backbone row>:<directory>`` of a student a grid cell saved beside its record
(``--set train.save_model=true``). ``RDB_BENCH_TRAIN_STEPS`` = N instead trains the ``RDB_BENCH_BACKBONE`` row
(default minilm-l2) with ``train_model`` for N steps of the default grid's BCE recipe on labels
(experiments/default.toml: 16 queries x 2 candidates per step, lr 2e-4, max_length 96) before measuring. With
neither, the bundled all-MiniLM-L6-v2 with a seeded head is timed, whose nDCG@10 means nothing.
``RDB_BENCH_QUERIES`` limits the queries evaluated (default: all), ``RDB_BENCH_PRECISIONS`` (comma-separated) the
rows (default: all; fp32 always). Times and nDCG@10 changes are printed, never asserted.
"""

from __future__ import annotations

import os
import time

import numpy as np

from benchmark.backbones import get_backbone
from benchmark.dataset_rows import get_dataset
from benchmark.datasets import load_collection
from benchmark.evaluation import evaluate
from benchmark.firststage import cut
from benchmark.inference import precision_reranker, unsupported
from benchmark.models import build_cross_encoder
from benchmark.precisions import PRECISIONS

DEPTH, MAX_LENGTH, BATCH_SIZE, LATENCY_LISTS, CALIBRATION_PAIRS = 50, 128, 32, 5, 800


def _trained(name: str, steps: int):
    """The backbone row ``name`` after ``steps`` steps of the default grid's BCE recipe (experiments/default.toml)."""
    from benchmark.config import TrainConfig
    from benchmark.losses import get_objective
    from benchmark.training import Targets, train_model

    spec = get_backbone(name)
    model, tok = build_cross_encoder(spec, seed=0)
    cfg = TrainConfig(dataset="embedded-train", group_size=2, negatives_depth=30, max_steps=steps, batch_size=16,
                      lr=2e-4, warmup_ratio=0.1, max_length=96, dtype="fp32", device="cpu")
    train = load_collection(get_dataset(cfg.dataset))
    train_model(model, tok, train, Targets(train.qrels, "labels"), get_objective("bce"), cfg, seed=0,
                use_token_type_ids=spec.token_type_ids, backbone_dtype=spec.dtype)
    return model, tok


def _model():
    spec = os.environ.get("RDB_BENCH_WEIGHTS")
    steps = os.environ.get("RDB_BENCH_TRAIN_STEPS")
    if steps:
        name = os.environ.get("RDB_BENCH_BACKBONE", "minilm-l2")
        model, tok = _trained(name, int(steps))
        return f"{name} trained {steps} steps", name, model.eval(), tok
    name, path = spec.split(":", 1) if spec else ("minilm-l6", None)
    model, tok = build_cross_encoder(get_backbone(name), seed=0)
    if path:
        from pathlib import Path

        from safetensors.torch import load_file

        model.load_state_dict(load_file(Path(path) / "model.safetensors" if Path(path).is_dir() else path))
    return name, name, model.eval(), tok


def _calibration_pairs() -> tuple[list[str], list[str]]:
    train = load_collection(get_dataset("embedded-train"))
    pairs = [(q, d) for q in train.queries for d in train.ranked(q, 4)][:CALIBRATION_PAIRS]
    return [train.queries[q] for q, _ in pairs], [train.docs[d] for _, d in pairs]


def test_precision_quality_and_paired_speed(timing, timings):
    label, name, model, tok = _model()
    data = load_collection(get_dataset("embedded-test"))
    qids = [q for q in data.queries if data.qrels.get(q) and data.run.get(q)]
    # a plain test run (no --benchmark-enable) checks every precision on 10 queries; a timed run takes all 60
    qids = qids[:int(os.environ.get("RDB_BENCH_QUERIES", len(qids) if timing else 10))]
    candidates = cut({q: data.run[q] for q in qids}, DEPTH, "embedded-test")
    view = {q: sorted(c, key=c.get, reverse=True) for q, c in candidates.items()}
    calibration = _calibration_pairs()
    chosen = ["fp32", *(p for p in os.environ.get("RDB_BENCH_PRECISIONS", ",".join(PRECISIONS)).split(",")
                        if p != "fp32")]
    rerankers = {p: precision_reranker(model, tok, p, max_length=MAX_LENGTH, batch_size=BATCH_SIZE,
                                       use_token_type_ids=get_backbone(name).token_type_ids,
                                       calibration=calibration if PRECISIONS.get(p).calibrated else None)
                 for p in chosen if unsupported(p, "cpu") is None}
    quality = {}
    for p, r in rerankers.items():
        pairs = [(q, d) for q in qids for d in view[q]]
        scores = r.score([data.queries[q] for q, _ in pairs], [data.docs[d] for _, d in pairs])
        run: dict[str, dict[str, float]] = {}
        for (q, d), s in zip(pairs, scores):
            run.setdefault(q, {})[d] = float(s)
        quality[p] = evaluate(run, data.qrels, ["nDCG@10"], name=p)[0]["nDCG@10"]
        print(f"{p}: nDCG@10 {quality[p]:.4f}", flush=True)  # a long run shows its progress
    lists = [([data.queries[q]] * len(view[q]), [data.docs[d] for d in view[q]]) for q in qids[:LATENCY_LISTS]]
    rounds = 5 if timing else 1
    times: dict[str, list[float]] = {p: [] for p in rerankers}
    for _ in range(rounds):
        for lst in lists:
            for p, r in rerankers.items():
                t0 = time.perf_counter()
                r.score(*lst)
                times[p].append((time.perf_counter() - t0) * 1000)
    fp32 = np.array(times["fp32"])
    print(f"\n{label}, {len(qids)} queries x top-{DEPTH}, {rounds} rounds x {len(lists)} lists, max_length "
          f"{MAX_LENGTH}, batch<={BATCH_SIZE}")
    print(f"{'precision':<21}{'nDCG@10':>9}{'delta':>8}{'p50 ms':>9}{'speed-up median (q1-q3)':>26}")
    for p in rerankers:
        s = timings.paired(p, fp32 / np.array(times[p]), reference="fp32", total=fp32.sum() / sum(times[p]))
        print(f"{p:<21}{quality[p]:>9.3f}{quality[p] - quality['fp32']:>+8.3f}{np.median(times[p]):>9.1f}"
              f"{s.median:>12.2f}x ({s.q1:.2f}-{s.q3:.2f})")
    for p in chosen:
        if p not in rerankers:
            print(f"{p:<21}{unsupported(p, 'cpu')}")
    assert set(quality) >= {"fp32", "int8"}
