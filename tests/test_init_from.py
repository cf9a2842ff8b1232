"""train.init_from: a student starts from a cross-encoder teacher's model (layer dropping): every tensor of the
teacher whose name and shape it shares; refused in one line for a teacher that is no model or shares no layer."""

from types import SimpleNamespace

import pytest
import torch

from benchmark.backbones import BACKBONES
from benchmark.cell import start_from
from benchmark.config import load_experiment
from benchmark.errors import BenchError
from benchmark.models import build_cross_encoder
from tests_support import TINY_GRID, merged, write_toml


def test_a_two_layer_student_takes_the_bottom_layers_embeddings_and_head_of_a_three_layer_teacher():
    student, _ = build_cross_encoder(BACKBONES.get("minilm-l2"), seed=1)
    teacher, _ = build_cross_encoder(BACKBONES.get("minilm-l3"), seed=2)
    with torch.no_grad():
        for p in teacher.parameters():
            p.add_(torch.randn_like(p))  # a teacher unlike the pretrained checkpoint both rows share
    cell = SimpleNamespace(init_teacher=SimpleNamespace(name="t"), backbone=SimpleNamespace(name="minilm-l2"))
    copied = start_from(student, "minilm-l3", teacher.state_dict(), cell)
    mine, theirs = student.state_dict(), teacher.state_dict()
    assert copied == len(mine)  # every student tensor has its teacher counterpart
    for key in ("bert.encoder.layer.1.output.dense.weight", "bert.embeddings.word_embeddings.weight",
                "classifier.weight", "classifier.bias"):
        assert torch.equal(mine[key], theirs[key])
    assert "bert.encoder.layer.2.output.dense.weight" not in mine


def test_a_teacher_sharing_no_layer_is_refused_in_one_line():
    student, _ = build_cross_encoder(BACKBONES.get("bert-tiny"), seed=0)
    other, _ = build_cross_encoder(BACKBONES.get("minilm-l2"), seed=0)
    cell = SimpleNamespace(init_teacher=SimpleNamespace(name="minilm-l6-ce"), backbone=SimpleNamespace(name="bert-tiny"))
    with pytest.raises(BenchError, match="shares no encoder layer with backbone 'bert-tiny'"):
        start_from(student, "minilm-l2", other.state_dict(), cell)


def test_init_from_must_name_a_cross_encoder_teacher(tmp_path):
    grid = write_toml(tmp_path / "g.toml", merged(TINY_GRID, {"train": {"init_from": "labels"}}))
    with pytest.raises(BenchError, match="train.init_from = 'labels': a student starts from a cross-encoder"):
        load_experiment(grid)
    ok = load_experiment(write_toml(tmp_path / "ok.toml", merged(TINY_GRID, {"train": {"init_from": "tiny-ce"}})))
    assert all(c.init_teacher.name == "tiny-ce" and "minilm-l3" in c.teacher_models for c in ok.cells)
