"""The fast scoring path against a naive per-pair loop, truncation, reranking, autocast, and the CUDA path."""

import numpy as np
import pytest
import torch

from benchmark import inference, precisions
from benchmark.backbones import get_backbone
from benchmark.collection import Collection
from benchmark.fastpath import first_logits
from benchmark.inference import Reranker, autocast_context, encode_pairs
from benchmark.models import build_cross_encoder

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


@pytest.mark.parametrize("n, batch_size, sizes", [(100, 32, [25] * 4), (64, 32, [32, 32]), (33, 32, [17, 16]),
                                                   (5, 32, [5]), (0, 32, [])])
def test_length_batches_are_sorted_balanced_and_as_wide_as_their_longest_pair(n, batch_size, sizes):
    lengths = np.random.default_rng(n).integers(5, 90, size=n)
    order, batches = inference.length_batches(lengths, batch_size)
    assert sorted(order) == list(range(n)) and list(lengths[order]) == sorted(lengths, reverse=True)
    assert [len(order[rows]) for rows, _ in batches] == sizes
    assert [width for _, width in batches] == [max(lengths[order[rows]]) for rows, _ in batches]


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


@pytest.mark.parametrize("row", ["bert-tiny", "modernbert-tiny"])
def test_the_rust_tokenizer_settings_do_not_leak_into_later_transformers_calls(row):
    """The fast path sets truncation and padding on the tokenizer's shared Rust object, relying on transformers'
    __call__ to set both again on every call (its private _tokenizer state): a later plain call, and a
    sentence-transformers style call, must give what a fresh tokenizer gives. This and the test above are the
    check to run on a transformers upgrade (pyproject caps transformers below the next major release)."""
    _, tok = build_cross_encoder(get_backbone(row), seed=0)
    _, fresh = build_cross_encoder(get_backbone(row), seed=0)
    encode_pairs(tok, [QUERIES[0]] * 2, ["word " * 200, "short"], 16)  # truncates and pads the shared object
    assert tok.backend_tokenizer.truncation["max_length"] == 16
    for kwargs in ({}, {"padding": True}, {"truncation": True, "max_length": 512}):
        texts = [DOCS[0] * 20, QUERIES[1]]
        assert tok(texts, **kwargs)["input_ids"] == fresh(texts, **kwargs)["input_ids"], kwargs


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


@pytest.mark.parametrize("row", ["bert-tiny", "roberta-tiny", "electra-tiny", "electra-projected"])
def test_the_unpadded_forward_matches_the_hugging_face_forward(row):
    """fastpath runs linear layers on real tokens only and the last layer for the first token only: the scores must
    be those of the model's own padded forward (distinct per pair, so a permutation could not pass)."""
    if row == "electra-projected":  # embedding_size != hidden_size: ELECTRA's embeddings_project layer
        spec = get_backbone("electra-tiny")
        spec = type(spec)(**{**spec.to_dict(), "name": row, "config": {**spec.config, "embedding_size": 64}})
    else:
        spec = get_backbone(row)
    model, tok = build_cross_encoder(spec, seed=0)
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    fast = Reranker(model, tok, max_length=64, batch_size=4, use_token_type_ids=spec.token_type_ids)
    plain = Reranker(model, tok, max_length=64, batch_size=4, use_token_type_ids=spec.token_type_ids, unpad=False)
    assert (fast.path, plain.path) == ("unpadded", "hf")
    ours, theirs = fast.score(queries, DOCS), plain.score(queries, DOCS)
    assert np.max(np.abs(ours - theirs)) <= 1e-5
    assert len(set(np.round(theirs, 4))) == len(DOCS)


@pytest.mark.parametrize("row", ["deberta-v3-tiny", "modernbert-tiny"])
def test_other_layouts_keep_their_own_forward(row):
    model, tok = build_cross_encoder(get_backbone(row), seed=0)
    assert Reranker(model, tok, max_length=64).path == "hf"


def test_the_unpadded_forward_needs_right_padding(tiny):
    from benchmark.fastpath import unpadded_forward

    model, tok = tiny
    enc = encode_pairs(tok, QUERIES[:2], DOCS[:2], 64)
    left = {k: v.flip(1) for k, v in enc.items()}  # padding first: position 0 is no longer [CLS]
    with pytest.raises(ValueError, match="right-padded"):
        unpadded_forward(model)(**left)


def test_the_unpadded_forward_trains_like_the_hugging_face_forward(tiny):
    """Same gradients for every parameter (dropout off, to compare), and dropout at work in train mode."""
    from benchmark.fastpath import unpadded_forward

    model, tok = tiny
    enc = encode_pairs(tok, [QUERIES[i % 3] for i in range(len(DOCS))], DOCS, 64)
    grads = []
    for forward in (unpadded_forward(model), lambda **batch: model(**batch).logits[:, 0]):
        model.zero_grad()
        forward(**enc).square().sum().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    model.zero_grad()
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) == len(list(model.parameters()))
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-6, rtol=1e-4), name
    try:
        model.train()
        with torch.no_grad():
            first, second = (unpadded_forward(model)(**enc) for _ in range(2))
    finally:
        model.eval()
    assert not torch.allclose(first, second)  # fresh dropout masks each call


def test_dropout_drops_at_its_rate_keeps_the_expectation_and_follows_the_seed():
    from benchmark.fastpath import dropout

    ones = torch.ones(1000, 1000)
    torch.manual_seed(0)
    out = dropout(ones, 0.1)
    rate = 6554 / 65536  # 0.1 rounded to 2^-16
    assert torch.unique(out).tolist() == pytest.approx([0.0, 1 / (1 - rate)])
    assert abs(float((out == 0).float().mean()) - rate) < 0.0015  # 5 standard errors of a 10^6-draw proportion
    assert abs(float(out.mean()) - 1.0) < 0.002
    torch.manual_seed(0)
    assert torch.equal(dropout(ones, 0.1), out)  # the mask is torch's generator's: seeds and saved states fix it
    assert not torch.equal(dropout(ones, 0.1), out)
    assert dropout(ones, 0.0) is ones and dropout(ones, 1e-6) is ones  # under 2^-17: rounds to no dropout
    assert torch.equal(dropout(ones, 1.0), torch.zeros_like(ones))  # as nn.Dropout(p=1)
    odd = torch.ones(3, 7)  # element counts that are not a multiple of 4 (the 16-bit variates per 64-bit draw)
    assert dropout(odd, 0.5).shape == odd.shape


@pytest.mark.parametrize("where", ["hidden_dropout_prob", "attention_probs_dropout_prob"])
def test_the_unpadded_forward_drops_out_where_and_as_much_as_hugging_face(where):
    """Train-mode scores are random; per pair, their mean and spread over 400 forwards must match the Hugging Face
    forward's with dropout at each site alone (a missing site, rate or 1/(1-p) scale would move one of them)."""
    from benchmark.fastpath import unpadded_forward

    spec = get_backbone("bert-tiny")
    off = "attention_probs_dropout_prob" if where == "hidden_dropout_prob" else "hidden_dropout_prob"
    spec = type(spec)(**{**spec.to_dict(), "config": {**spec.config, where: 0.3, off: 0.0}})
    model, tok = build_cross_encoder(spec, seed=0)
    enc = encode_pairs(tok, QUERIES, DOCS[:3], 64)
    model.train()
    torch.manual_seed(0)
    with torch.no_grad():
        ours = torch.stack([unpadded_forward(model)(**enc) for _ in range(400)])
        theirs = torch.stack([model(**enc).logits[:, 0] for _ in range(400)])
    se = (ours.var(0) / 400 + theirs.var(0) / 400).sqrt()
    assert bool(((ours.mean(0) - theirs.mean(0)).abs() < 4 * se).all())
    assert bool(((ours.std(0) / theirs.std(0) - 1).abs() < 0.2).all())
    assert bool((theirs.std(0) > 1e-5).all())  # dropout at this site moves the scores (float noise: ~1e-8)


def test_training_on_the_unpadded_forward_follows_the_hugging_face_forward(tmp_path, monkeypatch):
    """Without dropout (the only random part), a few steps of train_model take the same losses and end in the same
    model on either forward. BCE, not a shift-invariant loss such as InfoNCE: there the head's bias gets a ~0
    gradient that Adam's normalisation turns into steps of float noise (a 0.007 shift of every score)."""
    import dataclasses

    from benchmark import training
    from benchmark.config import load_experiment
    from benchmark.cell import load
    from benchmark.losses import get_objective
    from tests_support import TINY_GRID, write_toml

    path = write_toml(tmp_path / "tiny.toml", TINY_GRID)
    cell = next(c for c in load_experiment(path).cells if c.backbone.name == "bert-tiny")
    spec = cell.backbone
    spec = dataclasses.replace(spec, config={**spec.config, "hidden_dropout_prob": 0.0})
    coll = load(cell, cell.train.dataset)
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    curves, scores = [], []
    for unpad in (True, False):
        monkeypatch.setattr(training, "first_logits",
                            lambda model, device, _unpad=unpad: first_logits(model, device, _unpad))
        model, tok = build_cross_encoder(spec, seed=0)
        before = Reranker(model, tok, max_length=64, unpad=False).score(queries, DOCS)
        stats = training.train_model(model, tok, coll, training.Targets(coll.qrels, "labels"),
                                     get_objective("bce"), dataclasses.replace(cell.train, lr=5e-3), seed=0,
                                     use_token_type_ids=True, log_every=1)
        curves.append(np.array(stats["loss_curve"]))
        scores.append(Reranker(model, tok, max_length=64, unpad=False).score(queries, DOCS))
    assert len(curves[0]) == 3 and np.array_equal(curves[0][:, 0], curves[1][:, 0])
    assert np.max(np.abs(curves[0][:, 1] - curves[1][:, 1])) <= 1e-4
    assert np.max(np.abs(scores[0] - scores[1])) <= 1e-4
    assert np.max(np.abs(scores[0] - before)) > 0.01  # training did move the model


# Twelve unrelated topics: pairs whose fp32 scores spread well beyond int8 rounding noise on a pretrained encoder
# (a randomly initialised one scores every pair alike, so any rounding reorders it).
TOPICS = ["the price of a used car", "physician training in hospitals", "a river flows to the sea",
          "how to bake bread at home", "stock markets fell sharply today", "the cat sat on the mat",
          "quantum computers use qubits", "football world cup final", "symptoms of the common cold",
          "learning to play the violin", "volcanoes erupt molten rock", "tax rules for small firms"]
TOPIC_QUERIES = [TOPICS[i] for i in range(12) for _ in range(3)]
TOPIC_DOCS = [TOPICS[(5 * i + 7 * j + 1) % 12] + " and more text about it" for i in range(12) for j in range(3)]


@pytest.fixture(scope="module")
def minilm():
    model, tok = build_cross_encoder(get_backbone("minilm-l6"), seed=0)
    return model.eval(), tok


@pytest.mark.parametrize("name", ["int8", "onnx-int8", "int8-selective", "onnx-int8-perchannel"])
def test_int8_scores_stay_close_to_fp32(minilm, name):
    """Stated tolerance: Pearson r >= 0.95 and every score within 20% of the fp32 scores' range (measured on this
    set: r 0.98 / 0.99 / 0.99 / 0.99, largest change 12% / 12% / 14% / 5% of the range)."""
    model, tok = minilm
    fp32 = inference.precision_reranker(model, tok, "fp32", max_length=64, batch_size=8).score(TOPIC_QUERIES,
                                                                                               TOPIC_DOCS)
    reranker = inference.precision_reranker(model, tok, name, max_length=64, batch_size=8)
    int8 = reranker.score(TOPIC_QUERIES, TOPIC_DOCS)
    assert reranker.precision == name
    assert np.corrcoef(int8, fp32)[0, 1] >= 0.95
    assert np.max(np.abs(int8 - fp32)) <= 0.2 * np.ptp(fp32)
    assert 0 < np.max(np.abs(int8 - fp32))  # really quantised
    # The trained model itself is left in fp32: its own scores do not move.
    assert type(model.bert.encoder.layer[0].attention.self.query) is torch.nn.Linear
    again = inference.precision_reranker(model, tok, "fp32", max_length=64, batch_size=8).score(TOPIC_QUERIES,
                                                                                                TOPIC_DOCS)
    assert np.array_equal(again, fp32)


def test_sensitive_layers_are_named_by_pattern():
    row = precisions.PRECISIONS.get("int8-selective")
    names = ["bert.embeddings.word_embeddings", "bert.encoder.layer.1.output.dense",
             "bert.encoder.layer.5.output.dense", "bert.encoder.layer.15.attention.self.query", "bert.pooler.dense",
             "classifier", "/model/bert/encoder/layer.5/attention/self/query/MatMul",
             "/model/bert/encoder/layer.0/output/dense/MatMul"]
    kept = inference.kept_in_fp32(names, row, layers=6)
    assert kept == ["bert.embeddings.word_embeddings", "bert.encoder.layer.5.output.dense", "bert.pooler.dense",
                    "classifier", "/model/bert/encoder/layer.5/attention/self/query/MatMul"]
    assert inference.kept_in_fp32(names, precisions.PRECISIONS.get("int8"), layers=6) == []


def test_selective_int8_leaves_the_last_layer_and_head_in_fp32(tiny):
    model, _ = tiny
    quantized = inference.quantize_linears(model, precisions.PRECISIONS.get("int8-selective"))
    last = len(model.bert.encoder.layer) - 1
    fp32 = {n for n, m in quantized.named_modules() if type(m) is torch.nn.Linear}
    int8 = {n for n, m in quantized.named_modules() if isinstance(m, torch.ao.nn.quantized.dynamic.Linear)}
    assert fp32 and int8 and all(n.startswith(f"bert.encoder.layer.{last}.") or n in ("bert.pooler.dense", "classifier")
                                 for n in fp32)
    assert not any(n.startswith(f"bert.encoder.layer.{last}.") for n in int8)
    # the model itself stays fp32
    assert type(model.classifier) is torch.nn.Linear
    assert type(model.bert.encoder.layer[0].output.dense) is torch.nn.Linear


def test_calibrated_precision_needs_calibration_pairs(tiny):
    from benchmark.errors import BenchError

    model, tok = tiny
    with pytest.raises(BenchError, match="onnx-int8-static.*calibration pairs"):
        inference.precision_reranker(model, tok, "onnx-int8-static", max_length=64)


def test_int8_keeps_the_unpadded_forward_and_onnx_fp32_matches_torch(tiny):
    model, tok = tiny
    queries = [QUERIES[i % 3] for i in range(len(DOCS))]
    assert inference.precision_reranker(model, tok, "int8", max_length=64).path == "unpadded"
    onnx = inference.precision_reranker(model, tok, "onnx-fp32", max_length=64, batch_size=2)
    assert onnx.path == "onnxruntime"
    assert np.max(np.abs(onnx.score(queries, DOCS) - _naive(model, tok, queries, DOCS, 64))) <= 1e-5
    fused = inference.precision_reranker(model, tok, "onnx-fp32-opt", max_length=64, batch_size=2)
    assert fused.path == "onnxruntime-opt"  # fused attention and layer norms: the same function to float rounding
    assert np.max(np.abs(fused.score(queries, DOCS) - _naive(model, tok, queries, DOCS, 64))) <= 1e-4


def test_unknown_precision_and_missing_onnxruntime_are_one_line_errors(monkeypatch):
    from benchmark.config import EvalConfig
    from benchmark.errors import BenchError

    with pytest.raises(BenchError, match=r"^unknown precision 'int4' \(known: bf16, fp32, int8, int8-perchannel, "
                                         r"int8-selective, onnx-fp32, onnx-fp32-opt, onnx-int8, onnx-int8-opt, "
                                         r"onnx-int8-perchannel, onnx-int8-static\)$"):
        EvalConfig(precision=("fp32", "int4"))
    with pytest.raises(BenchError, match="distinct"):
        EvalConfig(precision=("int8", "int8"))
    with pytest.raises(BenchError, match=r"^eval.precision: 'onnx-int8-static' needs calibration pairs"):
        EvalConfig(precision=("fp32", "onnx-int8-static"))
    real = precisions.importlib.util.find_spec
    monkeypatch.setattr(precisions.importlib.util, "find_spec", lambda m: None if m == "onnxruntime" else real(m))
    with pytest.raises(BenchError, match=r"^precision 'onnx-int8' needs onnxruntime \(pip install onnxruntime"):
        EvalConfig(precision=("onnx-int8",))
    assert EvalConfig(precision=("fp32", "int8")).precision == ("fp32", "int8")  # torch rows need no onnxruntime


def test_bf16_needs_native_cpu_support(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 fma\n\nprocessor\t: 1\nflags\t\t: fpu avx2 amx_bf16\n")
    assert inference.cpu_flags(cpuinfo) == {"fpu", "sse2", "avx2", "fma", "amx_bf16"}
    assert inference.cpu_flags(tmp_path / "absent") == set()
    assert inference.unsupported("bf16", "cpu", flags={"avx2", "fma"}).startswith("not supported: this CPU has no")
    assert inference.unsupported("bf16", "cpu", flags={"avx2", "avx512_bf16"}) is None
    assert inference.unsupported("int8", "cuda") == "int8 runs on CPU only"
    assert inference.unsupported("fp32", "cpu", flags=set()) is None


def python_tokenizer():
    """MiniLM's WordPiece vocabulary in transformers' pure-Python BERT tokenizer (no Rust backend)."""
    from transformers.models.bert.tokenization_bert_legacy import BertTokenizerLegacy

    from benchmark.backbones import bundled_minilm_path

    tok = BertTokenizerLegacy.from_pretrained(str(bundled_minilm_path()))
    tok.model_input_names = ["input_ids", "token_type_ids", "attention_mask"]  # as the Rust-backed one loads it
    return tok


def test_kept_lengths_by_hand():
    """Each side to its own limit, then the passage to the room left; a query that fills the room keeps half."""
    assert inference.kept_lengths(10, 300, 288, 32, 256) == (10, 256)
    assert inference.kept_lengths(40, 300, 285, 32, 256) == (32, 253)
    assert inference.kept_lengths(10, 300, 100, None, None) == (10, 90)
    assert inference.kept_lengths(200, 50, 100, None, None) == (50, 50)
    assert inference.kept_lengths(5, 5, 100, None, None) == (5, 5)


def test_separate_limits_on_a_hand_written_pair(tiny):
    """Query cut to 3 tokens and passage to 4: the WordPiece ids of "[CLS] what is the [SEP] an automobile costs
    money [SEP]"."""
    _, tok = tiny
    enc = encode_pairs(tok, [QUERIES[0]], [DOCS[1]], 64, query_length=3, doc_length=4)
    assert tok.decode(enc["input_ids"][0]) == "[CLS] what is the [SEP] an automobile costs money [SEP]"
    assert enc["token_type_ids"][0].tolist() == [0] * 5 + [1] * 5


@pytest.mark.parametrize("limits", [(3, 6, 64), (4, 40, 20), (None, 5, 64), (2, None, 16)])
def test_separate_limits_equal_a_hand_truncation_on_both_paths(tiny, limits):
    """The Rust path and the per-pair path of a Python tokenizer both give the ids of each side cut by hand
    (``kept_lengths``) and joined as [CLS] q [SEP] d [SEP] (segment 0, then 1), right-padded."""
    query_length, doc_length, max_length = limits
    _, tok = tiny
    queries, docs = [QUERIES[i % 3] for i in range(len(DOCS))] + [LONG_QUERY], [*DOCS, "a stream"]
    room = max_length - 3
    hand, types = [], []
    for q, d in zip(queries, docs):
        q_ids, d_ids = (tok(t, add_special_tokens=False)["input_ids"] for t in (q, d))
        nq, nd = inference.kept_lengths(len(q_ids), len(d_ids), room, query_length, doc_length)
        hand.append([tok.cls_token_id, *q_ids[:nq], tok.sep_token_id, *d_ids[:nd], tok.sep_token_id])
        types.append([0] * (nq + 2) + [1] * (nd + 1))
    width = max(map(len, hand))
    for tokenizer in (tok, python_tokenizer()):
        assert (getattr(tokenizer, "backend_tokenizer", None) is None) == (tokenizer is not tok)
        enc = encode_pairs(tokenizer, queries, docs, max_length, query_length=query_length, doc_length=doc_length)
        assert enc["input_ids"].shape == (len(hand), width)
        for i, ids in enumerate(hand):
            pad = width - len(ids)
            assert enc["input_ids"][i].tolist() == ids + [tok.pad_token_id] * pad
            assert enc["attention_mask"][i].tolist() == [1] * len(ids) + [0] * pad
            assert enc["token_type_ids"][i].tolist() == types[i] + [0] * pad


def test_scoring_uses_the_limits_training_sees(tmp_path, monkeypatch):
    """A cell with query / passage limits: the pairs training tokenizes are the ones its reranker (evaluation,
    validation, latency) tokenizes, and the scores are the model's on those ids."""
    from benchmark import cell as cell_mod, training
    from benchmark.config import load_experiment
    from tests_support import TINY_GRID, merged, write_toml

    doc = merged(TINY_GRID, {"grid": {"backbone": ["bert-tiny"], "objective": ["infonce"], "teacher": ["labels"]},
                             "train": {"max_steps": 1, "max_query_length": 3, "max_doc_length": 7}})
    cell = load_experiment(write_toml(tmp_path / "limits.toml", doc)).cells[0]
    seen = []
    real = training.encode_pairs

    def record(tok, queries, docs, *args, **kwargs):
        enc = real(tok, queries, docs, *args, **kwargs)
        seen.append((list(queries), list(docs), enc))
        return enc

    monkeypatch.setattr(training, "encode_pairs", record)
    model, tok, _, _ = cell_mod.train_student(cell, None)
    (queries, docs, trained), = seen
    assert int(trained["attention_mask"].sum(1).max()) <= 3 + 7 + 3
    reranker = cell_mod.cell_reranker(model, tok, cell, "cpu")
    scored = inference._tokenize(tok, queries, docs, reranker.max_length, "pt", reranker.max_query_length,
                                 reranker.max_doc_length)
    assert torch.equal(scored["input_ids"], trained["input_ids"])
    with torch.no_grad():
        expected = model(**trained).logits[:, 0].numpy()
    assert np.max(np.abs(reranker.score(queries, docs) - expected)) <= 1e-5
