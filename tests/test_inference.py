"""The fast scoring path against a naive per-pair loop, truncation, reranking, autocast, and the CUDA path."""

import numpy as np
import pytest
import torch

from benchmark import inference
from benchmark.backbones import build_cross_encoder, get_backbone
from benchmark.collection import Collection
from benchmark.inference import Reranker, autocast_context, encode_pairs

QUERIES = ["what is the price of a car", "physician training", "river"]
DOCS = ["An automobile costs money. " * k for k in (1, 9, 3)] + ["Doctors learn. " * 40, "x", "A stream flows."]
LONG_QUERY = "how long is a very long query " * 20


@pytest.fixture(scope="module")
def tiny():
    """A randomly initialised 2-layer BERT (BertConfig) with the all-MiniLM-L6-v2 WordPiece tokenizer."""
    model, tok = build_cross_encoder(get_backbone("bert-tiny"), seed=0)
    return model.eval(), tok


def _naive(model, tok, queries, docs, max_length, truncation="only_second"):
    """One unpadded pair at a time, in input order."""
    out = []
    with torch.no_grad():
        for q, d in zip(queries, docs):
            enc = tok(q, d, truncation=truncation, max_length=max_length, return_tensors="pt")
            out.append(model(**enc).logits[0, 0].item())
    return np.array(out)


def test_sorted_dynamic_batches_match_a_naive_loop_in_input_order(tiny):
    model, tok = tiny
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    fast = Reranker(model, tok, max_length=64, batch_size=2).score(queries, DOCS)
    naive = _naive(model, tok, queries, DOCS, 64)
    assert np.max(np.abs(fast - naive)) <= 1e-5
    assert len(set(np.round(naive, 4))) == len(DOCS)  # distinct scores, so a permutation could not pass


def test_chunks_give_the_same_scores(tiny, monkeypatch):
    model, tok = tiny
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    whole = Reranker(model, tok, max_length=64, batch_size=4).score(queries, DOCS)
    monkeypatch.setattr(inference, "CHUNK_PAIRS", 4)
    assert np.max(np.abs(Reranker(model, tok, max_length=64, batch_size=4).score(queries, DOCS) - whole)) <= 1e-5
    assert Reranker(model, tok).score([], []).shape == (0,)


@pytest.mark.parametrize("row", ["bert-tiny", "roberta-tiny", "modernbert-tiny"])
def test_the_rust_tokenizer_path_matches_the_transformers_call(row):
    """encode_pairs calls the Rust tokenizer directly for speed; ids, types and masks must be what the transformers
    wrapper gives (same template, only_second truncation, right padding)."""
    _, tok = build_cross_encoder(get_backbone(row), seed=0)
    queries, docs = [QUERIES[i % 3] for i in range(len(DOCS))], DOCS
    ours = encode_pairs(tok, queries, docs, 48)
    theirs = tok(queries, docs, truncation="only_second", max_length=48, padding=True, return_tensors="pt")
    assert set(ours) == set(theirs) and ours["input_ids"].shape[1] == 48
    for key, value in theirs.items():
        assert torch.equal(ours[key], value), key


def test_training_forward_in_length_sorted_chunks_matches_one_padded_batch(tiny, monkeypatch):
    from benchmark import training

    model, tok = tiny
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    enc = encode_pairs(tok, queries, DOCS, 64)
    with torch.no_grad():
        whole = model(**enc).logits[:, 0]
        monkeypatch.setitem(training.SORTED_CHUNK, "cpu", 2)
        chunked = training.sorted_forward(model, enc, torch.device("cpu"), "fp32")
    assert torch.allclose(chunked, whole, atol=1e-5)
    assert len(set(np.round(whole.numpy(), 4))) == len(DOCS)  # distinct: a permutation could not pass


def test_truncation_keeps_the_query(tiny):
    _, tok = tiny
    enc = encode_pairs(tok, ["price of a car"], ["word " * 500], max_length=32)
    assert enc["input_ids"].shape == (1, 32)
    assert tok.decode(enc["input_ids"][0]).startswith("[CLS] price of a car [SEP] word word")


def test_a_query_longer_than_max_length_truncates_both_sides_of_its_own_pair_only(tiny):
    model, tok = tiny
    queries, docs = [LONG_QUERY, QUERIES[0]], ["a stream flows", "word " * 100]
    enc = encode_pairs(tok, queries, docs, max_length=32)
    assert enc["input_ids"].shape == (2, 32)
    assert enc["input_ids"][0].tolist() == tok(LONG_QUERY, docs[0], truncation="longest_first",
                                               max_length=32)["input_ids"]
    assert enc["input_ids"][1].tolist() == tok(queries[1], docs[1], truncation="only_second",
                                               max_length=32)["input_ids"]
    fast = Reranker(model, tok, max_length=32).score(queries, docs)
    naive = [_naive(model, tok, queries[:1], docs[:1], 32, "longest_first")[0],
             _naive(model, tok, queries[1:], docs[1:], 32)[0]]
    assert np.max(np.abs(fast - naive)) <= 1e-5


def test_without_token_type_ids(tiny):
    _, tok = tiny
    assert "token_type_ids" not in encode_pairs(tok, QUERIES[:1], DOCS[:1], 32, use_token_type_ids=False)


def test_rerank_returns_the_first_stage_candidates(tiny):
    model, tok = tiny
    coll = Collection("c", {"q": QUERIES[0], "r": QUERIES[2]}, {f"d{i}": t for i, t in enumerate(DOCS)},
                      {"q": {"d0": 1}}, {"q": {f"d{i}": float(-i) for i in range(len(DOCS))},
                                         "r": {"d5": 1.0, "d4": 0.5}})
    reranker = Reranker(model, tok, max_length=64)
    run = reranker.rerank(coll, ["q", "r"], k=4)
    assert set(run["q"]) == {"d0", "d1", "d2", "d3"} and set(run["r"]) == {"d4", "d5"}
    expected = reranker.score([QUERIES[2]] * 2, [DOCS[5], DOCS[4]])
    assert run["r"]["d5"] == pytest.approx(float(expected[0]), abs=1e-6)


def test_bf16_autocast_path_on_cpu(tiny):
    model, tok = tiny
    enc = encode_pairs(tok, QUERIES, DOCS[:3], 64)
    with torch.inference_mode(), autocast_context("cpu", "bf16"):
        assert model(**enc).logits.dtype == torch.bfloat16
    with torch.inference_mode(), autocast_context("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert model(**enc).logits.dtype == torch.float32
    fp32 = Reranker(model, tok, max_length=64).score(QUERIES, DOCS[:3])
    bf16 = Reranker(model, tok, max_length=64, dtype="bf16").score(QUERIES, DOCS[:3])
    assert bf16.dtype == np.float32 and np.max(np.abs(bf16 - fp32)) < 0.1


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
@pytest.mark.parametrize("dtype", ["fp32", "bf16", "fp16"])
def test_cuda_scores_match_cpu(tiny, dtype):
    model, tok = tiny
    cpu = Reranker(model, tok, max_length=64).score([QUERIES[0]] * len(DOCS), DOCS)
    try:
        gpu = Reranker(model, tok, max_length=64, device="cuda", dtype=dtype).score([QUERIES[0]] * len(DOCS), DOCS)
        compiled = Reranker(model, tok, max_length=64, device="cuda", dtype=dtype, compile=True)
        again = compiled.score([QUERIES[0]] * len(DOCS), DOCS)
    finally:
        model.to("cpu")
    tolerance = 1e-3 if dtype == "fp32" else 5e-2
    assert np.max(np.abs(gpu - cpu)) < tolerance and np.max(np.abs(again - cpu)) < tolerance
