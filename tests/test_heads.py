"""No silent heads: a checkpoint without a trained scoring head is an error on an eval-only row and one warning on
a training row; a row that names where its checkpoint keeps the head (lightning-ir's ``linear``) scores with it;
the one-Linear first-token head (BERT_Cat, lightning-ir) trains, reloads and runs the fast path."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from transformers import AutoModel, ElectraConfig

from benchmark.backbones import BackboneSpec, bundled_minilm_path
from benchmark.errors import BenchError
from benchmark.fastpath import first_logits
from benchmark.inference import encode_pairs
from benchmark.models import build_cross_encoder, head_problem, load_tokenizer, save_linear_head_checkpoint

PAIRS = (["what does a car cost", "dog food"], ["the price of an automobile", "canine nutrition facts"])
TINY = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, embedding_size=32,
            vocab_size=30522, max_position_embeddings=128)


@pytest.fixture(scope="module")
def lightning_ir_checkpoint(tmp_path_factory):
    """A tiny ELECTRA saved as lightning-ir saves a cross-encoder: lightning-ir's config model_type, the encoder's
    weights, the head as linear.weight / linear.bias."""
    torch.manual_seed(3)
    encoder = AutoModel.from_config(ElectraConfig(**TINY))
    tokenizer = load_tokenizer(BackboneSpec("tok", "bert"))
    directory = save_linear_head_checkpoint(encoder, tokenizer, tmp_path_factory.mktemp("ckpt") / "mono", "linear")
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "mono-electra"}))
    return directory, encoder


def _row(directory, **kw) -> BackboneSpec:
    return BackboneSpec("mono", "electra", checkpoint=str(directory), tokenizer=str(directory), **kw)


def test_an_eval_only_row_without_its_head_is_an_error(lightning_ir_checkpoint):
    directory, _ = lightning_ir_checkpoint
    with pytest.raises(BenchError, match=r"has no trained scoring head \(classifier\.dense\.bias, .*classifier"):
        build_cross_encoder(_row(directory), require_head=True)
    assert "holds no a classifier.* or score.* head" in head_problem(_row(directory))


def test_a_training_row_warns_once(lightning_ir_checkpoint, capsys):
    directory, _ = lightning_ir_checkpoint
    build_cross_encoder(_row(directory))
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("warning: backbone 'mono'") and "is trained" in err


def test_the_named_head_scores_as_lightning_ir_does(lightning_ir_checkpoint):
    directory, encoder = lightning_ir_checkpoint
    row = _row(directory, head="linear", head_weights="linear")
    assert head_problem(row) is None
    model, tokenizer = build_cross_encoder(row, require_head=True)
    enc = encode_pairs(tokenizer, *PAIRS, max_length=32)
    from safetensors.torch import load_file

    saved = load_file(str(directory / "model.safetensors"))
    with torch.no_grad():
        first = encoder.eval()(**enc).last_hidden_state[:, 0]
        expected = first @ saved["linear.weight"].T + saved["linear.bias"]
        ours = model.eval()(**enc).logits
        fast, name = first_logits(model, "cpu")
        assert name == "unpadded"
        assert torch.allclose(fast(**enc), expected[:, 0], atol=1e-5)
    assert torch.allclose(ours, expected, atol=1e-5)


def test_a_linear_head_row_trains_saves_and_reloads(tmp_path):
    row = BackboneSpec("minilm-linear", "bert", checkpoint="bundled:all-MiniLM-L6-v2",
                       config={"num_hidden_layers": 1}, head="linear")
    model, tokenizer = build_cross_encoder(row, seed=1)
    assert isinstance(model.classifier, torch.nn.Linear) and model.config.rdb_head == "linear"
    enc = encode_pairs(tokenizer, *PAIRS, max_length=32)
    target = torch.tensor([1.0, 0.0])
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(**enc).logits[:, 0], target)
        opt.zero_grad(), loss.backward(), opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0]
    model.save_pretrained(tmp_path / "student")
    tokenizer.save_pretrained(tmp_path / "student")
    again, _ = build_cross_encoder(dataclasses.replace(row, checkpoint=str(tmp_path / "student"), head="auto",
                                                       config={}), require_head=True)
    with torch.no_grad():
        assert torch.allclose(again.eval()(**enc).logits, model.eval()(**enc).logits, atol=1e-6)


def test_rows_refuse_a_head_they_cannot_have():
    with pytest.raises(BenchError, match="head_weights names a linear head"):
        BackboneSpec("x", "electra", checkpoint="c", head_weights="linear")
    with pytest.raises(BenchError, match='head = "linear" is available for bert, electra'):
        BackboneSpec("x", "distilbert", checkpoint="c", head="linear")
    assert bundled_minilm_path().is_dir()
