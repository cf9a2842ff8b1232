"""Scoring heads: a checkpoint without its head is refused on eval-only rows and warned about on training rows; a
row names lightning-ir's ``linear`` head and scores with it; the "linear" head shape trains, saves, reloads and
takes the fast path and the precision rows."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from benchmark.artifacts import save_student
from benchmark.backbones import BackboneSpec, get_backbone
from benchmark.errors import BenchError
from benchmark.fastpath import first_logits
from benchmark.inference import Reranker, encode_pairs, precision_reranker
from benchmark.models import LinearHeadModel, build_cross_encoder, save_checkpoint

QUERIES = ["what is the price of a car", "physician training", "river", "bread"]
DOCS = ["An automobile costs money. " * 3, "Doctors learn in hospitals.", "A stream flows to the sea.",
        "Bake it at home with flour and water " * 4]


def linear_row(name: str = "electra-tiny", **fields) -> BackboneSpec:
    return dataclasses.replace(get_backbone(name), head="linear", **fields)


@pytest.fixture(scope="module")
def lightning_ir(tmp_path_factory):
    """A tiny ELECTRA with a trained-looking "linear" head, saved in lightning-ir's layout (head under ``linear``),
    and the model it was saved from."""
    model, tok = build_cross_encoder(linear_row(), seed=3)
    with torch.no_grad():
        model.linear.bias.fill_(0.75)  # a head no fresh initialisation gives (bias 0)
    path = save_checkpoint(model, tok, tmp_path_factory.mktemp("monoelectra"), head_prefix="linear")
    return path, model.eval(), tok


def checkpoint_row(path, **fields) -> BackboneSpec:
    return dataclasses.replace(get_backbone("electra-tiny"), name="mono", checkpoint=str(path), tokenizer=str(path),
                               config={}, **fields)


def test_the_saved_checkpoint_has_lightning_irs_layout(lightning_ir):
    path = lightning_ir[0]
    keys = set(load_file(str(path / "model.safetensors")))
    assert {"linear.weight", "linear.bias", "embeddings.word_embeddings.weight"} <= keys
    assert not any(k.startswith(("electra.", "classifier.")) for k in keys)
    config = json.loads((path / "config.json").read_text())
    assert (config["model_type"], config["backbone_model_type"], config["pooling_strategy"]) == ("mono", "electra",
                                                                                                 "first")


def test_an_eval_only_row_without_its_head_is_one_line_naming_the_row_checkpoint_and_keys(lightning_ir):
    path = lightning_ir[0]
    with pytest.raises(BenchError) as err:
        build_cross_encoder(checkpoint_row(path), require_head=True)
    message = str(err.value)
    assert "\n" not in message and "'mono'" in message and str(path) in message
    assert "classifier.out_proj.weight" in message and "linear.*" in message  # what is missing, what is unused
    with pytest.raises(BenchError, match="linear.weight"):  # "linear" without naming the head: a fresh head too
        build_cross_encoder(checkpoint_row(path, head="linear"), require_head=True)


def test_an_eval_only_cell_refuses_the_headless_checkpoint(lightning_ir, tmp_path):
    """The eval-only branch of run_cell passes require_head: the cell fails before scoring anything."""
    from benchmark.cell import run_cell
    from benchmark.config import load_experiment
    from tests_support import TINY_GRID, merged, write_toml

    path = lightning_ir[0]
    doc = merged(TINY_GRID, {"grid": {"backbone": ["mono"], "objective": ["bce"], "teacher": ["labels"]},
                             "train": {"skip": True},
                             "backbones": {"mono": {"family": "electra", "checkpoint": str(path),
                                                    "tokenizer": str(path)}}})
    cell = load_experiment(write_toml(tmp_path / "eval.toml", doc)).cells[0]
    with pytest.raises(BenchError, match=r"backbone 'mono': checkpoint .* has no weights for classifier\."):
        run_cell(cell)


def test_a_training_row_without_its_head_warns_in_exactly_one_line(lightning_ir, capsys):
    build_cross_encoder(checkpoint_row(lightning_ir[0]), seed=0)
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("warning: backbone 'mono'")
    assert "classifier.dense.weight" in err
    build_cross_encoder(get_backbone("electra-tiny"))  # a random-init row: nothing is "missing"
    assert capsys.readouterr().err == ""


def _hand_scores(model: LinearHeadModel, tok, weights: dict) -> np.ndarray:
    """linear(first-token state of the saved encoder), from the file's own head tensors."""
    enc = encode_pairs(tok, QUERIES, DOCS, 64)
    with torch.no_grad():
        first = model.encoder(**enc).last_hidden_state[:, 0]
        return (first @ weights["linear.weight"].T + weights["linear.bias"])[:, 0].numpy()


def test_a_row_naming_the_head_scores_with_it_not_with_a_random_one(lightning_ir):
    path, saved, tok = lightning_ir
    hand = _hand_scores(saved, tok, load_file(str(path / "model.safetensors")))
    named, _ = build_cross_encoder(checkpoint_row(path, head="linear", head_weights="linear"), require_head=True)
    ours = Reranker(named, tok, max_length=64).score(QUERIES, DOCS)
    assert np.max(np.abs(ours - hand)) <= 1e-5
    assert len(set(np.round(hand, 4))) == len(DOCS)
    for fresh in (checkpoint_row(path), checkpoint_row(path, head="linear")):
        random_head, _ = build_cross_encoder(fresh, seed=0)
        assert np.max(np.abs(Reranker(random_head, tok, max_length=64).score(QUERIES, DOCS) - hand)) > 0.1


def test_the_pre_class_factory_layout_loads_the_same_head(lightning_ir, tmp_path):
    """lightning-ir @6861e7c: encoder under ``electra.``, config model_type "mono-electra" (no
    backbone_model_type)."""
    path, saved, tok = lightning_ir
    tensors = load_file(str(path / "model.safetensors"))
    save_file({(k if k.startswith("linear.") else f"electra.{k}"): v for k, v in tensors.items()},
              str(tmp_path / "model.safetensors"))
    config = json.loads((path / "config.json").read_text())
    config.pop("backbone_model_type")
    (tmp_path / "config.json").write_text(json.dumps({**config, "model_type": "mono-electra"}))
    tok.save_pretrained(str(tmp_path))
    old, _ = build_cross_encoder(checkpoint_row(tmp_path, head="linear", head_weights="linear"), require_head=True)
    scores = Reranker(old, tok, max_length=64).score(QUERIES, DOCS)
    assert np.max(np.abs(scores - _hand_scores(saved, tok, tensors))) <= 1e-5


def test_a_head_of_the_wrong_shape_or_name_is_one_line(lightning_ir, tmp_path):
    path = lightning_ir[0]
    with pytest.raises(BenchError, match="has no head.weight"):
        build_cross_encoder(checkpoint_row(path, head="linear", head_weights="head"))
    tensors = load_file(str(path / "model.safetensors"))
    tensors["linear.weight"] = torch.cat([tensors["linear.weight"]] * 2)  # scoring_strategy "mono": two logits
    save_file(tensors, str(tmp_path / "model.safetensors"))
    (tmp_path / "config.json").write_text((path / "config.json").read_text())
    with pytest.raises(BenchError, match=r"shape \[2, 128\], a one-logit linear head needs \[1, 128\]"):
        build_cross_encoder(dataclasses.replace(checkpoint_row(tmp_path, head="linear", head_weights="linear"),
                                                tokenizer=str(path)))
    with pytest.raises(BenchError, match="head_weights needs head"):
        checkpoint_row(path, head_weights="linear")


@pytest.mark.parametrize("row", ["bert-tiny", "roberta-tiny", "electra-tiny"])
def test_the_fast_path_of_a_linear_head_equals_its_hugging_face_forward(row):
    model, tok = build_cross_encoder(linear_row(row), seed=1)
    spec = get_backbone(row)
    fast = Reranker(model, tok, max_length=64, use_token_type_ids=spec.token_type_ids)
    plain = Reranker(model, tok, max_length=64, use_token_type_ids=spec.token_type_ids, unpad=False)
    assert (fast.path, plain.path) == ("unpadded", "hf")
    a, b = fast.score(QUERIES, DOCS), plain.score(QUERIES, DOCS)
    assert np.max(np.abs(a - b)) <= 1e-6 and len(set(np.round(b, 6))) == len(DOCS)


def test_the_linear_head_has_the_bert_cat_shape_and_other_layouts_keep_the_hf_forward():
    """DistilBERT (hofstaetter.toml's row): no pre_classifier, one Linear(hidden, 1); no fast path for its layout."""
    spec = BackboneSpec(name="distilbert-tiny", family="distilbert", head="linear", token_type_ids=False,
                        config={"dim": 64, "n_layers": 1, "n_heads": 2, "hidden_dim": 128, "vocab_size": 30522})
    model, tok = build_cross_encoder(spec, seed=0)
    model.eval()
    assert isinstance(model.linear, torch.nn.Linear) and tuple(model.linear.weight.shape) == (1, 64)
    assert not any("pre_classifier" in name for name, _ in model.named_parameters())
    assert first_logits(model, "cpu")[1] == "hf"
    enc = encode_pairs(tok, QUERIES, DOCS, 64, use_token_type_ids=False)
    with torch.no_grad():
        hand = model.linear(model.encoder(**enc).last_hidden_state[:, 0])[:, 0]
        assert torch.allclose(model(**enc).logits[:, 0], hand)


def test_the_linear_head_trains(tmp_path):
    """train_model on the tiny grid with a "linear" head on the pretrained 2-layer MiniLM (the tiny random rows
    do not learn the embedded task): the loss falls and the scores move."""
    from benchmark import training
    from benchmark.cell import load
    from benchmark.config import load_experiment
    from benchmark.losses import get_objective
    from tests_support import TINY_GRID, merged, write_toml

    doc = merged(TINY_GRID, {"grid": {"backbone": ["bert-tiny"], "objective": ["bce"], "teacher": ["labels"]},
                             "train": {"epochs": 4}})
    cell = load_experiment(write_toml(tmp_path / "tiny.toml", doc)).cells[0]
    coll = load(cell, cell.train.dataset)
    model, tok = build_cross_encoder(linear_row("minilm-l2"), seed=0)
    before = Reranker(model, tok, max_length=64).score(QUERIES, DOCS)
    stats = training.train_model(model, tok, coll, training.Targets(coll.qrels, "labels"), get_objective("bce"),
                                 dataclasses.replace(cell.train, lr=2e-4), seed=0, use_token_type_ids=True,
                                 log_every=1)
    losses = np.array(stats["loss_curve"])[:, 1]
    # BCE from ln 2 (a fresh head scores every pair ~0): the seeded run falls 0.689 -> 0.658 over 12 steps
    assert len(losses) == 12 and losses[-4:].mean() < losses[:4].mean() - 0.015
    assert np.max(np.abs(Reranker(model, tok, max_length=64).score(QUERIES, DOCS) - before)) > 0.01


def test_a_saved_linear_student_reloads_as_an_eval_only_row_with_equal_scores(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model, tok = build_cross_encoder(linear_row("bert-tiny"), seed=5)
    expected = Reranker(model, tok, max_length=64).score(QUERIES, DOCS)
    save_student(model, tok, tmp_path, max_length=64, token_type_ids=True)
    assert json.loads((tmp_path / "config.json").read_text())["sentence_transformers"]["activation_fn"].endswith(
        "Identity")
    row = dataclasses.replace(get_backbone("bert-tiny"), name="saved", checkpoint=str(tmp_path),
                              tokenizer=str(tmp_path), config={}, head="linear", head_weights="linear")
    again, tok2 = build_cross_encoder(row, require_head=True)
    assert np.max(np.abs(Reranker(again, tok2, max_length=64).score(QUERIES, DOCS) - expected)) <= 1e-6
    with pytest.raises(ValueError):  # transformers refuses the mono config instead of guessing a head
        AutoModelForSequenceClassification.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("precision, tol", [("int8", 0.05), ("onnx-fp32", 1e-4)])
def test_precision_rows_score_a_linear_head(precision, tol):
    pytest.importorskip("onnxruntime")
    model, tok = build_cross_encoder(linear_row("bert-tiny"), seed=2)
    expected = Reranker(model, tok, max_length=64).score(QUERIES, DOCS)
    scores = precision_reranker(model, tok, precision, max_length=64).score(QUERIES, DOCS)
    assert np.max(np.abs(scores - expected)) <= tol * max(1.0, float(np.abs(expected).max()))


def test_modernbert_hub_rows_classify_from_cls():
    """xpmir/cross-encoders src/configuration.py @08225743: CE_FineTuning.pooling_method = "cls"."""
    for name in ("ettin-17m", "ettin-150m", "modernbert-base"):
        assert get_backbone(name).config["classifier_pooling"] == "cls"


@pytest.mark.parametrize("row", ["bert-tiny", "roberta-tiny", "electra-tiny", "deberta-v3-tiny", "modernbert-tiny"])
def test_plain_checkpoints_of_each_family_load_with_and_without_their_head(row, tmp_path, capsys):
    """save_checkpoint without a prefix writes a headless backbone (a training row warns once, an eval-only row is
    refused); the full model's save_pretrained keeps its head, so an eval-only row scores as the saved model."""
    spec = get_backbone(row)
    model, tok = build_cross_encoder(spec, seed=4)
    model.eval()
    expected = Reranker(model, tok, max_length=64, use_token_type_ids=spec.token_type_ids).score(QUERIES, DOCS)
    headless = dataclasses.replace(spec, checkpoint=str(save_checkpoint(model, tok, tmp_path / "plain")),
                                   tokenizer=str(tmp_path / "plain"), config={})
    with pytest.raises(BenchError, match=f"backbone '{row}': checkpoint .* has no weights for"):
        build_cross_encoder(headless, require_head=True)
    capsys.readouterr()
    build_cross_encoder(headless)
    assert len(capsys.readouterr().err.splitlines()) == 1
    model.save_pretrained(str(tmp_path / "full"))
    full = dataclasses.replace(headless, checkpoint=str(tmp_path / "full"))
    again, _ = build_cross_encoder(full, require_head=True)
    scores = Reranker(again, tok, max_length=64, use_token_type_ids=spec.token_type_ids).score(QUERIES, DOCS)
    assert np.max(np.abs(scores - expected)) <= 1e-5


def test_dry_run_reads_a_local_checkpoints_head_from_its_files(lightning_ir):
    """``--dry-run`` refuses an eval-only row whose local checkpoint lacks the head, from tensor names alone."""
    from benchmark.models import head_problem

    path = lightning_ir[0]
    assert "holds no a trained head" in head_problem(checkpoint_row(path))
    assert "random head" in head_problem(checkpoint_row(path, head="linear"))  # no head_weights: a fresh head
    assert head_problem(checkpoint_row(path, head="linear", head_weights="linear")) is None
    assert "holds no other.weight" in head_problem(checkpoint_row(path, head="linear", head_weights="other"))
    assert head_problem(dataclasses.replace(get_backbone("bert-base"))) is None  # a hub id: loading says
