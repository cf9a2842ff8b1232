"""Dropout in a CPU training step: torch's ``F.dropout`` (one Bernoulli draw per element) against
``benchmark.fastpath.dropout`` (16-bit variates, four per 64-bit draw), forward and backward, on the tensors one
default-grid step of MiniLM-L6 drops out: the attention probabilities of 32 pairs of up to 72 tokens
([32, 12, 72, 72]) and a residual branch of their ~1,800 packed tokens ([1800, 384]), each six times (six layers).

    pytest tests/benchmarks/test_dropout_speed.py --benchmark-enable -s

Times are printed, never asserted; the comparison of their outputs' statistics is ``tests/test_inference.py``.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from benchmark.fastpath import dropout

pytest.importorskip("pytest_benchmark")

SHAPES = [(32, 12, 72, 72), (1800, 384), (1800, 384)]  # per layer: attention probabilities, two residual branches
LAYERS, P, PAIRS = 6, 0.1, 32
TOOLS = {"F.dropout (Bernoulli)": lambda x: F.dropout(x, P, training=True), "fastpath.dropout": lambda x: dropout(x, P)}


@pytest.mark.parametrize("tool", list(TOOLS))
def test_dropout_of_one_training_step(benchmark, timings, tool):
    torch.manual_seed(0)
    inputs = [torch.randn(*shape, requires_grad=True) for shape in SHAPES]
    drop = TOOLS[tool]

    def step():
        total = sum(drop(x).sum() for _ in range(LAYERS) for x in inputs)
        total.backward()

    benchmark.group = "dropout"
    benchmark.pedantic(step, rounds=5, iterations=1, warmup_rounds=1)
    timings.benchmark(tool, benchmark, pairs=PAIRS, setting="one MiniLM-L6 step's dropout, 32 pairs")
    kept = float((drop(inputs[0]) != 0).float().mean())
    assert abs(kept - (1 - P)) < 0.005  # both drop at the rate asked
