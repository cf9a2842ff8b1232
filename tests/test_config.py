"""Grid expansion from TOML, config hashing and one-line errors for bad grids."""

import subprocess
import sys
from pathlib import Path

import pytest

from benchmark.config import load_experiment, parse_experiment
from benchmark.errors import BenchError
from tests_support import write_toml

ROOT = Path(__file__).resolve().parents[1]


def tiny_bert(layers: int = 1) -> dict:
    """A grid-local BERT backbone row with random weights, ``layers`` deep."""
    return {"family": "bert", "config": {"hidden_size": 64, "num_hidden_layers": layers, "num_attention_heads": 1,
                                         "intermediate_size": 64}}


def _grid(tmp_path: Path, doc: dict) -> Path:
    return write_toml(tmp_path / "grid.toml", doc)


def test_config_and_rows_load_without_torch():
    """Grids are parsed, validated and dry-run on a machine's login node: the rows and config never import torch."""
    modules = "benchmark.config, benchmark.backbones, benchmark.objectives, benchmark.teachers, benchmark.dataset_rows"
    check = f"import sys, {modules}; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_smoke_grid_expands_to_every_cell():
    exp = load_experiment(ROOT / "experiments" / "smoke.toml")
    assert exp.name == "smoke"
    assert len(exp.cells) == 5 * 3 * 2
    combos = {(c.backbone.name, c.objective, c.teacher.name) for c in exp.cells}
    assert len(combos) == 30
    assert {c.backbone.family for c in exp.cells} == {"bert", "roberta", "electra", "deberta-v2", "modernbert"}
    assert len({c.cell_id for c in exp.cells}) == 30
    cell = exp.cells[0]
    assert cell.train.group_size == 8 and cell.eval.datasets == ("embedded-test",)
    assert set(cell.datasets) == {"embedded-train", "embedded-test"}


def test_axes_cross_in_file_order_and_train_fields_are_axes():
    exp = parse_experiment({
        "experiment": {"name": "budget"},
        "grid": {"objective": ["bce", "infonce"], "train": {"max_queries": [20, 50, 100]}},
    })
    assert len(exp.cells) == 6
    assert [c.train.max_queries for c in exp.cells] == [20, 50, 100, 20, 50, 100]
    assert list(exp.cells[0].axes) == ["backbone", "objective", "teacher", "seed", "train.max_queries"]


def test_hash_is_stable_and_ignores_experiment_name():
    doc = {"experiment": {"name": "a"}, "grid": {"objective": ["bce"]}}
    a = parse_experiment(doc).cells[0]
    b = parse_experiment({**doc, "experiment": {"name": "b"}}).cells[0]
    c = parse_experiment({**doc, "train": {"lr": 1e-4}}).cells[0]
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash
    assert a.cell_id.startswith("bert-tiny__bce__labels__0__")


def test_precision_list_is_part_of_the_hash():
    """Measuring more runtimes makes a different record: another precision list is another cell."""
    doc = {"experiment": {"name": "a"}, "grid": {"objective": ["bce"]}}
    a = parse_experiment(doc).cells[0]
    b = parse_experiment({**doc, "eval": {"precision": ["fp32", "int8"]}}).cells[0]
    assert a.eval.precision == ("fp32",) and b.eval.precision == ("fp32", "int8") and b.config_hash != a.config_hash


def test_extra_backbone_row_from_toml_only(tmp_path):
    exp = load_experiment(_grid(tmp_path, {"experiment": {"name": "newrow"}, "grid": {"backbone": ["my-bert"]},
                                           "backbones": {"my-bert": tiny_bert()}}))
    spec = exp.cells[0].backbone
    assert spec.name == "my-bert" and spec.config["hidden_size"] == 64
    assert exp.cells[0].to_dict()["backbone"]["config"]["num_hidden_layers"] == 1


def test_missing_grid_file():
    with pytest.raises(BenchError, match="cannot read grid file"):
        load_experiment("/nonexistent/grid.toml")


def teacher_grid(layers: int) -> dict:
    """A grid whose only teacher is a cross-encoder over a grid-local backbone row ``layers`` deep."""
    return {"experiment": {"name": "teacher-rows"}, "grid": {"teacher": ["my-ce"]},
            "teachers": {"my-ce": {"kind": "cross-encoder", "models": ["my-teacher"]}},
            "backbones": {"my-teacher": tiny_bert(layers)}}


def test_teacher_model_rows_are_in_the_cell_and_its_hash(tmp_path):
    one = load_experiment(_grid(tmp_path, teacher_grid(1))).cells[0]
    two = load_experiment(_grid(tmp_path, teacher_grid(2))).cells[0]
    assert one.teacher_models["my-teacher"].config["num_hidden_layers"] == 1  # the grid-local row, resolved
    assert one.to_dict()["teacher_models"]["my-teacher"]["config"]["num_hidden_layers"] == 1
    assert one.backbone == two.backbone and one.teacher == two.teacher  # only the teacher's model row changed
    assert one.config_hash != two.config_hash


def test_teacher_model_defined_nowhere_fails_at_load_time():
    doc = {"experiment": {"name": "x"}, "grid": {"teacher": ["ghost-ce"]},
           "teachers": {"ghost-ce": {"kind": "cross-encoder", "models": ["no-such-backbone"]}}}
    with pytest.raises(BenchError, match=r"^teacher 'ghost-ce': unknown backbone 'no-such-backbone' \(known: ") as err:
        parse_experiment(doc)
    assert "\n" not in str(err.value)


def test_report_settings_reach_every_cell_but_not_the_hash():
    doc = {"experiment": {"name": "r"}, "grid": {"objective": ["bce", "infonce"]}}
    plain = parse_experiment(doc)
    reported = parse_experiment({**doc, "report": {"baseline": {"objective": "infonce", "teacher": "labels"}}})
    assert all(c.to_dict()["report"] == {"baseline": {"objective": "infonce", "teacher": "labels"}}
               for c in reported.cells)
    assert [c.config_hash for c in plain.cells] == [c.config_hash for c in reported.cells]


def test_recipes_fix_their_own_train_fields(tmp_path):
    """A recipe's train.<field> values (a ``train`` table inside the recipe) override [train] for its cells only."""
    exp = load_experiment(_grid(tmp_path, {
        "experiment": {"name": "recipes"},
        "grid": {"recipe": [
            {"objective": "margin-mse", "teacher": "labels", "train": {"group_size": 2, "batch_size": 32}},
            {"objective": "infonce", "teacher": "labels"},
        ], "seed": [0, 1]},
        "train": {"group_size": 8, "batch_size": 4},
    }))
    shapes = sorted((c.objective, c.seed, c.train.group_size, c.train.batch_size) for c in exp.cells)
    assert shapes == [("infonce", 0, 8, 4), ("infonce", 1, 8, 4), ("margin-mse", 0, 2, 32), ("margin-mse", 1, 2, 32)]
    assert len({c.cell_id for c in exp.cells}) == 4


@pytest.mark.parametrize("recipe, culprit", [
    ({"objective": "bce", "teacher": "labels", "train": {"no_such_field": 1}}, "train.no_such_field"),
    ({"objective": "bce", "teacher": "labels", "lr": 1e-5}, "'lr'"),
    ({"objective": "bce"}, "recipe[0]"),
])
def test_bad_recipe_keys_are_one_line_errors(tmp_path, recipe, culprit):
    with pytest.raises(BenchError) as err:
        load_experiment(_grid(tmp_path, {"experiment": {"name": "x"}, "grid": {"recipe": [recipe]}}))
    assert culprit in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("name, hub, family, token_type_ids, max_length", [
    ("ettin-17m", "jhu-clsp/ettin-encoder-17m", "modernbert", False, 7999),
    ("ettin-32m", "jhu-clsp/ettin-encoder-32m", "modernbert", False, 7999),
    ("ettin-68m", "jhu-clsp/ettin-encoder-68m", "modernbert", False, 7999),
    ("ettin-150m", "jhu-clsp/ettin-encoder-150m", "modernbert", False, 7999),
    ("minilm-l12", "microsoft/MiniLM-L12-H384-uncased", "bert", True, 512),
    ("bert-base", "bert-base-uncased", "bert", True, 512),
    ("roberta-base", "FacebookAI/roberta-base", "roberta", False, 512),
    ("electra-base", "google/electra-base-discriminator", "electra", True, 512),
    ("deberta-v3-base", "microsoft/deberta-v3-base", "deberta-v2", True, 1024),
    ("modernbert-base", "answerdotai/ModernBERT-base", "modernbert", False, 8192),
])
def test_paper_backbone_rows_resolve_in_a_grid(tmp_path, name, hub, family, token_type_ids, max_length):
    """The seed paper's backbones are registry rows a grid can name (hub ids as in the authors' grid files)."""
    exp = load_experiment(_grid(tmp_path, {"experiment": {"name": "x"}, "grid": {"backbone": [name]}}))
    row = exp.cells[0].backbone
    assert (row.checkpoint, row.tokenizer, row.family, row.token_type_ids, row.max_length) == (
        hub, hub, family, token_type_ids, max_length)


@pytest.mark.parametrize("train, culprit", [
    ({"max_length": "auto"}, 'train.max_length must be a positive integer or "model"'),
    ({"max_length": 0}, "train.max_length must be a positive integer"),
    ({"max_query_length": 0}, "train.max_query_length must be positive"),
    ({"lr_step_every": 0}, "train.lr_step_every must be positive"),
    ({"lr_schedule": "cosine", "lr_total_steps": -1}, "train.lr_total_steps must be positive"),
    ({"dtype_by_backbone": {"bert-tiny": "int4"}}, "train.dtype_by_backbone.bert-tiny must be one of auto, fp32"),
    ({"validate_every": 2, "validation_dataset": []}, "train.validation_dataset must name at least one"),
])
def test_length_schedule_dtype_fields_refuse_bad_values_in_one_line(train, culprit):
    with pytest.raises(BenchError, match=culprit.replace("(", r"\(")):
        parse_experiment({"experiment": {"name": "x"}, "train": train})


def test_paper_grid_resolves_precision_lengths_and_validation_per_backbone():
    """paper.toml: fp32 for BERT, RoBERTa, ELECTRA and Ettin (xpm_torch's 32-true), bf16 for DeBERTa; each
    backbone's own length; every cell reads the 13 NanoBEIR rows and keeps the best mean nDCG."""
    from benchmark.cell import cell_dtype, resolved_train

    cells = load_experiment(ROOT / "experiments" / "paper.toml").cells
    dtypes = {c.backbone.name: cell_dtype(c) for c in cells}
    assert dtypes == {"bert-base": "fp32", "roberta-base": "fp32", "electra-base": "fp32", "ettin-150m": "fp32",
                      "deberta-v3-base": "bf16"}
    lengths = {c.backbone.name: resolved_train(c).max_length for c in cells}
    assert lengths == {"bert-base": 512, "roberta-base": 512, "electra-base": 512, "ettin-150m": 7999,
                       "deberta-v3-base": 1024}
    sets = cells[0].train.validation_datasets
    assert len(sets) == 13 and cells[0].train.validation_measure == "nDCG"
    assert {cells[0].datasets[n].id for n in sets} == {f"nano-beir/{n}" for n in (
        "arguana", "climate-fever", "dbpedia-entity", "fever", "fiqa", "hotpotqa", "msmarco", "nfcorpus", "nq",
        "quora", "scidocs", "scifact", "webis-touche2020")}
    assert all(cells[0].datasets[n].first_stage == f"run:data/splade-v3-distilbert/{n}.run" for n in sets)


def test_an_eval_only_grid_needs_no_objective_or_teacher_axis(tmp_path):
    """Released checkpoints: a grid of backbones and datasets only. Its cells keep the default objective and
    teacher inside (the config hash a grid naming them as axes had), but neither is a coordinate or in the id."""
    from benchmark.config import EVAL_ONLY_AXES

    def grid(**axes):
        doc = {"experiment": {"name": "released"}, "grid": {"backbone": ["minilm-l2"], **axes},
               "train": {"skip": True}, "eval": {"datasets": ["embedded-test"]}}
        return parse_experiment(doc).cells[0]

    bare, named = grid(), grid(objective=["infonce"], teacher=["labels"])
    assert bare.axes == {"backbone": "minilm-l2", "seed": 0} and bare.cell_id == f"minilm-l2__0__{bare.config_hash[:10]}"
    assert bare.config_hash == named.config_hash and named.cell_id.startswith("minilm-l2__infonce__labels__0__")
    assert bare.record_axes == {"backbone": "minilm-l2", **EVAL_ONLY_AXES, "seed": 0}
    assert named.record_axes == named.axes  # a grid that names them keeps its own
