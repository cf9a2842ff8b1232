"""Speed of ``benchmark.inference.Reranker`` against sentence-transformers ``CrossEncoder.predict``.

Each reranks the same lists (first-stage top-100 of embedded-test queries, passages of 29-87 tokens) one query at a
time, with the same weights (all-MiniLM-L6-v2 + a head seeded by ``torch.manual_seed(0)``, saved once to a temporary
directory), max_length 128, batch size 32, fp32, raw logits (CrossEncoder's default Sigmoid replaced by Identity).
CrossEncoder splits a list of 100 into 32 + 32 + 32 + 4 pairs, Reranker into 4 x 25 (``length_batches``: at most
batch_size, balanced).

    pytest tests/benchmarks --benchmark-enable   # 3 lists: 5 timed rounds each, then 27 paired rounds
    pytest tests/benchmarks                      # (addopts: --benchmark-disable) 1 list, each tool called once

Times are printed, never asserted: CPU timings on a shared machine are noise-prone. The summary (``conftest.py``)
prints each tool's median and IQR with the load before and after, a warning when the machine was busy or the rounds
spread, and whether the paired speed-up agrees with the ratio of the separately timed medians (or which to trust).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

pytest.importorskip("pytest_benchmark")
pytest.importorskip("sentence_transformers")

MAX_LENGTH = 128
BATCH_SIZE = 32
DEPTH = 100
TOLERANCE = 1e-4
PEDANTIC = dict(rounds=5, iterations=1, warmup_rounds=1)
PAIRED_ROUNDS = 27  # 9 per list
SETTING = f"max_length={MAX_LENGTH}, batch<={BATCH_SIZE}, fp32, cpu, torch threads={torch.get_num_threads()}"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """all-MiniLM-L6-v2 with a freshly seeded one-logit head, saved with its tokenizer for both tools."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from benchmark.backbones import bundled_minilm_path

    src = bundled_minilm_path()
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(src, num_labels=1)
    out = tmp_path_factory.mktemp("minilm-ce")
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(src).save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def lists(rdb_cache, timing) -> list[tuple[str, list[str]]]:
    """(query, its first-stage top-DEPTH passages): 3 lists when timing, 1 for the quick untimed run."""
    from benchmark.dataset_rows import get_dataset
    from benchmark.datasets import load_collection

    coll = load_collection(get_dataset("embedded-test"))
    qids = [q for q in coll.queries if len(coll.ranked(q, DEPTH)) == DEPTH][:3 if timing else 1]
    return [(coll.queries[q], [coll.docs[d] for d in coll.ranked(q, DEPTH)]) for q in qids]


def _reranker(model_dir, unpad: bool):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from benchmark.inference import Reranker

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    return Reranker(model, AutoTokenizer.from_pretrained(model_dir), max_length=MAX_LENGTH, batch_size=BATCH_SIZE,
                    unpad=unpad)


@pytest.fixture(scope="module")
def ours(model_dir):
    return _reranker(model_dir, unpad=True)


@pytest.fixture(scope="module")
def ours_padded(model_dir):
    """Reranker with the model's own (padded) forward: shows what the unpadded forward adds."""
    return _reranker(model_dir, unpad=False)


@pytest.fixture(scope="module")
def theirs(model_dir):
    from sentence_transformers import CrossEncoder

    # activation_fn=Identity: raw logits like Reranker (the v6 default for num_labels=1 is Sigmoid).
    return CrossEncoder(str(model_dir), max_length=MAX_LENGTH, device="cpu", activation_fn=torch.nn.Identity())


def rerank_ours(reranker, lists) -> np.ndarray:
    return np.concatenate([reranker.score([q] * len(docs), docs) for q, docs in lists])


def rerank_theirs(cross_encoder, lists) -> np.ndarray:
    return np.concatenate([cross_encoder.predict([(q, d) for d in docs], batch_size=BATCH_SIZE,
                                                 show_progress_bar=False) for q, docs in lists])


@pytest.fixture(scope="module")
def reference(theirs, lists) -> np.ndarray:
    return rerank_theirs(theirs, lists)


def test_setup_is_comparable(ours, theirs, lists):
    assert all(len(docs) == DEPTH for _, docs in lists)
    assert theirs.max_seq_length == MAX_LENGTH and isinstance(theirs.activation_fn, torch.nn.Identity)
    lengths = [len(ids) for q, docs in lists for ids in ours.tokenizer([q] * len(docs), docs)["input_ids"]]
    assert max(lengths) <= MAX_LENGTH, "no truncation: both tools see every token"
    assert max(lengths) >= 1.5 * min(lengths), "candidates should vary in length (dynamic padding matters)"


def _run(benchmark, timings, tool, fn, lists, reference):
    scores = benchmark.pedantic(fn, args=(lists,), **PEDANTIC)
    delta = float(np.max(np.abs(scores - reference)))
    assert scores.shape == reference.shape and delta <= TOLERANCE, f"{tool}: max |delta| {delta:.2e}"
    # the summary checks the ratio of these medians against the paired rounds' median ratio
    timings.benchmark(tool, benchmark, pairs=sum(len(d) for _, d in lists), setting=SETTING)


@pytest.mark.benchmark(group="rerank-100")
def test_speed_ours(benchmark, timings, ours, lists, reference):
    assert ours.path == "unpadded"
    _run(benchmark, timings, "Reranker", lambda ls: rerank_ours(ours, ls), lists, reference)


@pytest.mark.benchmark(group="rerank-100")
def test_speed_ours_padded(benchmark, timings, ours_padded, lists, reference):
    assert ours_padded.path == "hf"
    _run(benchmark, timings, "Reranker (HF forward)", lambda ls: rerank_ours(ours_padded, ls), lists, reference)


@pytest.mark.benchmark(group="rerank-100")
def test_speed_crossencoder(benchmark, timings, theirs, lists, reference):
    _run(benchmark, timings, "CrossEncoder", lambda ls: rerank_theirs(theirs, ls), lists, reference)


def test_paired_rounds(timing, timings, ours, ours_padded, theirs, lists, reference):
    """All tools back to back on one list per round, in rotating order, cycling through the lists; the speed-up is
    the median over rounds of CrossEncoder's time / the tool's time in the same round, with its quartiles and the ratio
    of total times. This VM's speed drifts by up to 25% within minutes, so separate rounds taken a minute apart (the
    tests above) can flatter or wrong either tool; short paired rounds cancel the drift. Untimed runs do one round: the scores
    are checked, nothing is printed."""
    tools = {"Reranker": lambda ls: rerank_ours(ours, ls),
             "Reranker (HF forward)": lambda ls: rerank_ours(ours_padded, ls),
             "CrossEncoder": lambda ls: rerank_theirs(theirs, ls)}
    names, seconds = list(tools), {name: [] for name in tools}
    for r in range(PAIRED_ROUNDS if timing else 1):
        i = r % len(lists)
        for name in names[r % len(names):] + names[:r % len(names)]:
            start = time.perf_counter()
            scores = tools[name](lists[i:i + 1])
            seconds[name].append(time.perf_counter() - start)
            assert np.max(np.abs(scores - reference[i * DEPTH:(i + 1) * DEPTH])) <= TOLERANCE, name
    if timing:
        theirs_s = np.array(seconds["CrossEncoder"])
        for name in names[:-1]:
            timings.paired(name, theirs_s / np.array(seconds[name]), reference="CrossEncoder",
                           total=theirs_s.sum() / sum(seconds[name]))
