"""What a cell leaves beside its record: a saved student that sentence-transformers and transformers load as it is
and that scores like the suite's Reranker, the reranked runs ir_measures re-scores to the record's numbers, eval-only
rows that reproduce a saved student's numbers and evaluate it on a new dataset, and nothing half-written when a cell
fails."""

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import ir_measures
import numpy as np
import pytest
import torch

from benchmark import cell as cell_module
from benchmark import grid
from benchmark.artifacts import publish, save_student, saved_model, should_save_model
from benchmark.backbones import get_backbone
from benchmark.cell import load
from benchmark.config import parse_experiment
from benchmark.errors import BenchError
from benchmark.inference import Reranker
from benchmark.inputs import read_toml
from benchmark.models import build_cross_encoder
from benchmark.report import render_report
from tests_support import TINY_GRID, embedded_row, merged, write_toml

ROOT = Path(__file__).resolve().parent.parent


def experiment(tmp_path, name="trained", backbone="bert-tiny", datasets=("tiny-test",), backbones=None,
               precision=None, objective="infonce", **train):
    """A one-cell InfoNCE grid on the tiny embedded rows (plus ``tiny-dev``); ``train`` fields change ``[train]``,
    ``precision`` the ``eval.precision`` rows; ``objective=None``: no objective axis."""
    doc = merged(TINY_GRID, {
        "experiment": {"name": name, "description": None},
        "grid": {"backbone": [backbone], "objective": [objective] if objective else None, "teacher": None},
        "train": train,
        "eval": {"datasets": list(datasets), "batch_size": 16, **({"precision": precision} if precision else {})},
        "datasets": {"tiny-train": {"max_queries": 16}, "tiny-test": {"max_queries": 6},
                     "tiny-dev": embedded_row("dev", 4, top_k=20)},
        "teachers": None,
        "backbones": backbones,
    })
    return parse_experiment(read_toml(write_toml(tmp_path / f"{name}.toml", doc)))


def pairs(tmp_path, n=24):
    """Embedded test pairs: queries with their first-stage top-4 (all within the 64-token limit)."""
    data = load(experiment(tmp_path).cells[0], "tiny-test")
    return [(data.queries[q], data.docs[d]) for q in sorted(data.queries) for d in data.ranked(q, 4)][:n]


@pytest.mark.parametrize("row", ["minilm-l2", "roberta-tiny"])
def test_saved_student_loads_in_sentence_transformers_and_transformers_with_the_suites_scores(row, tmp_path):
    """The bundled MiniLM (unpadded fast path on CPU) and a RoBERTa-layout random row without segment embeddings:
    CrossEncoder(path) and AutoModelForSequenceClassification(path) give the Reranker's scores."""
    from sentence_transformers import CrossEncoder
    from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer

    spec = get_backbone(row)
    model, tokenizer = build_cross_encoder(spec, seed=3)
    # A fresh head scores every pair within 3e-4 of the others; scaled up, a 1e-4 agreement means something.
    with torch.no_grad():
        [*model.classifier.modules()][-1].weight.mul_(300.0)
    batch = pairs(tmp_path)
    ours = Reranker(model, tokenizer, max_length=64, batch_size=8,
                    use_token_type_ids=spec.token_type_ids).score([q for q, _ in batch], [d for _, d in batch])
    assert np.ptp(ours) > 0.05  # the pairs get different scores: a constant model would pass trivially
    save_student(model, tokenizer, tmp_path / "student", max_length=64, token_type_ids=spec.token_type_ids)
    assert (tmp_path / "student" / "model.safetensors").is_file()
    assert AutoConfig.from_pretrained(str(tmp_path / "student")).num_labels == 1

    theirs = CrossEncoder(str(tmp_path / "student"), device="cpu", local_files_only=True).predict(
        batch, batch_size=8, show_progress_bar=False)
    assert np.abs(np.asarray(theirs) - ours).max() <= 1e-4

    hf = AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "student")).eval()
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "student"))
    enc = tok([q for q, _ in batch], [d for _, d in batch], padding=True, truncation="only_second", max_length=64,
              return_tensors="pt")
    assert ("token_type_ids" in enc) == spec.token_type_ids
    with torch.no_grad():
        logits = hf(**enc).logits[:, 0].numpy()
    assert np.abs(logits - ours).max() <= 1e-4


def run(experiment_, results):
    cell = experiment_.cells[0]
    rec = grid.execute_cell(cell, str(results))
    assert rec["status"] == "ok", rec.get("error")
    return cell, rec


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One bert-tiny cell trained for an epoch with ``save_model = true`` and the ONNX precision rows, written under
    a results directory."""
    tmp = tmp_path_factory.mktemp("trained")
    cell_module._collection.cache_clear()
    results = tmp / "results"
    cell, rec = run(experiment(tmp, save_model=True, precision=["fp32", "onnx-fp32", "onnx-int8"]), results)
    return tmp, results, cell, rec


def test_a_cells_reranked_run_rescored_with_ir_measures_gives_its_record(trained):
    _, results, cell, rec = trained
    name = rec["runs"]["tiny-test"]["reranked"]
    assert name == f"{cell.cell_id}.runs/tiny-test.trec.gz"
    assert rec["runs"]["tiny-test"]["first_stage"] == "file" and rec["runs"]["tiny-test"]["rerank_depth"] == 20
    path = results / cell.experiment / name
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert all(len(line.split()) == 6 and line.split()[5] == cell.cell_id for line in lines)
    data = load(cell, "tiny-test")
    qrels = [ir_measures.Qrel(q, d, r) for q, docs in data.qrels.items() for d, r in docs.items()]
    measures = [ir_measures.parse_measure(m) for m in rec["metrics"]["tiny-test"]["first_stage_info"]["measures"]]
    assert len(measures) >= 2
    runs = list(ir_measures.read_trec_run(str(path)))
    assert {sd.query_id for sd in runs} == set(rec["per_query"]["tiny-test"]["nDCG@10"])
    for measure, value in ir_measures.calc_aggregate(measures, qrels, runs).items():
        assert value == pytest.approx(rec["metrics"]["tiny-test"][str(measure)], abs=1e-12)
    for m in ir_measures.iter_calc([ir_measures.nDCG @ 10], qrels, runs):
        assert m.value == pytest.approx(rec["per_query"]["tiny-test"]["nDCG@10"][m.query_id], abs=1e-12)


def test_a_trained_cell_saves_its_student_with_a_model_card(trained):
    _, results, cell, rec = trained
    model_dir = results / cell.experiment / rec["model"]
    assert rec["model"] == f"{cell.cell_id}.model"
    assert {"model.safetensors", "config.json", "tokenizer.json", "README.md"} <= {p.name for p in model_dir.iterdir()}
    card = (model_dir / "README.md").read_text()
    assert card.startswith("---\n")
    from huggingface_hub import ModelCard

    data = ModelCard.load(model_dir / "README.md").data  # the hub's own card parser
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "text-ranking"
    assert data.license == "mit" and data.model_name == cell.cell_id
    read = {(r.dataset_name, r.metric_type): r.metric_value for r in data.eval_results}
    assert read[("tiny-test", "nDCG@10")] == round(rec["metrics"]["tiny-test"]["nDCG@10"], 4)
    assert {m for _, m in read} == set(rec["metrics"]["tiny-test"]["first_stage_info"]["measures"])
    assert cell.cell_id in card and cell.config_hash in card
    assert f"{rec['metrics']['tiny-test']['nDCG@10']:.4f}" in card  # the metrics table
    assert json.dumps(rec["config"], indent=1, sort_keys=True) in card  # the full config
    assert "InfoNCE" in card or "Gao" in card  # the objective's citation
    leftovers = [p.name for p in (results / cell.experiment).iterdir() if p.name.startswith(".")]
    assert not leftovers


def test_the_cell_page_links_its_runs_and_model(trained, tmp_path):
    _, results, cell, rec = trained
    out = tmp_path / "site"
    render_report(results, out)
    page = next(out.rglob(f"{cell.cell_id}.html")).read_text()
    for name in (rec["runs"]["tiny-test"]["reranked"], rec["model"]):
        href = next(p for p in page.split('href="')[1:] if p.split('"')[0].endswith(name)).split('"')[0]
        assert (next(out.rglob(f"{cell.cell_id}.html")).parent / href).resolve() == \
            (results / cell.experiment / name).resolve()


def test_an_eval_only_row_on_a_saved_student_reproduces_it_and_evaluates_a_new_dataset(trained):
    """``train.skip`` on a backbone row whose checkpoint is the saved student: the same numbers, no training, and
    a dataset the student was never evaluated on (tiny-dev) without retraining."""
    tmp, results, cell, rec = trained
    model_dir = results / cell.experiment / rec["model"]
    row = {"family": "bert", "checkpoint": str(model_dir), "tokenizer": str(model_dir)}
    again = experiment(tmp, name="again", backbone="saved", skip=True, datasets=("tiny-test", "tiny-dev"),
                       backbones={"saved": row}, objective=None)
    assert list(again.cells[0].datasets) == ["tiny-test", "tiny-dev"]  # no training data read
    # no objective or teacher axis: neither in the cell id nor in the record's axes beyond the eval-only label
    assert again.cells[0].cell_id.startswith("saved__0__")
    eval_cell, eval_rec = run(again, results)
    assert eval_rec["axes"] == {"backbone": "saved", "objective": "eval-only", "teacher": "none", "seed": 0}
    assert eval_rec["train"]["steps"] == 0 and eval_rec["train"]["eval_only"] is True
    assert "model" not in eval_rec  # nothing new to save
    for key, value in rec["metrics"]["tiny-test"].items():
        if isinstance(value, float):
            assert eval_rec["metrics"]["tiny-test"][key] == pytest.approx(value, abs=1e-9), key
    assert eval_rec["per_query"]["tiny-test"]["nDCG@10"] == pytest.approx(rec["per_query"]["tiny-test"]["nDCG@10"],
                                                                          abs=1e-9)
    assert 0.0 <= eval_rec["metrics"]["tiny-dev"]["nDCG@10"] <= 1.0
    assert (results / "again" / eval_rec["runs"]["tiny-dev"]["reranked"]).is_file()


def test_a_failed_cell_leaves_no_half_model_and_keeps_the_previous_files(trained, monkeypatch):
    _, results, cell, rec = trained
    model_dir = results / cell.experiment / rec["model"]
    before = (model_dir / "model.safetensors").read_bytes()

    def broken(*args, **kwargs):  # fails after the runs and the model were staged
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(grid, "data_hashes", broken)
    failed = grid.execute_cell(cell, str(results))
    assert failed["status"] == "failed"
    assert (model_dir / "model.safetensors").read_bytes() == before
    assert not [p.name for p in (results / cell.experiment).iterdir() if p.name.startswith(".")]


def test_a_new_cell_that_fails_leaves_neither_runs_nor_model(tmp_path, monkeypatch):
    cell_module._collection.cache_clear()
    cell = experiment(tmp_path, save_model=True).cells[0]
    monkeypatch.setattr(cell_module, "measure_all_latency", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("boom")))
    rec = grid.execute_cell(cell, str(tmp_path / "results"))
    assert rec["status"] == "failed" and "boom" in rec["error"]["message"]
    names = sorted(p.name for p in (tmp_path / "results" / cell.experiment).iterdir())
    assert names == [f"{cell.cell_id}.json", f"{cell.cell_id}.traceback.txt"]


def test_eval_only_rows_and_the_save_model_default(tmp_path):
    with pytest.raises(BenchError, match="'bert-tiny': an eval-only row .* needs a trained checkpoint"):
        experiment(tmp_path, skip=True)
    with pytest.raises(BenchError, match="needs a trained checkpoint"):
        experiment(tmp_path, epochs=0)
    with pytest.raises(BenchError, match="train.epochs must be >= 0"):
        experiment(tmp_path, epochs=-1)
    # skip wins over the recipe fields, which an eval-only row records as the checkpoint's training
    assert experiment(tmp_path, backbone="minilm-l2", skip=True, max_steps=3).cells[0].train.eval_only
    assert experiment(tmp_path, backbone="minilm-l2", epochs=0).cells[0].train.eval_only
    # save_model is an output option: the cell (and so its finished record) is the same either way
    on, off = (experiment(tmp_path, save_model=v).cells[0] for v in (True, False))
    assert on.cell_id == off.cell_id and (should_save_model(on), should_save_model(off)) == (True, False)
    default = {b: should_save_model(experiment(tmp_path, backbone=b).cells[0])
               for b in ("bert-tiny", "minilm-l2", "bert-base")}
    assert default == {"bert-tiny": False, "minilm-l2": False, "bert-base": True}


def test_the_cards_results_read_back_through_the_hubs_parsers(trained):
    """metadata_load and model_index_to_eval_results, the functions the hub's card page is built on, give every
    measure of every eval set with its first stage, plus base model, training data and license."""
    from huggingface_hub import metadata_load
    from huggingface_hub.repocard_data import model_index_to_eval_results

    _, results, cell, rec = trained
    meta = metadata_load(results / cell.experiment / rec["model"] / "README.md")
    name, evals = model_index_to_eval_results(meta["model-index"])
    assert name == cell.cell_id
    got = {(e.dataset_name, e.metric_type): (e.metric_value, e.dataset_config, e.task_type) for e in evals}
    m = rec["metrics"]["tiny-test"]
    assert got == {("tiny-test", measure): (round(m[measure], 4), f"{m['first_stage_info']['name']} top-20",
                                             "text-ranking") for measure in m["first_stage_info"]["measures"]}
    assert meta["license"] == "mit" and meta["datasets"] == ["tiny-train"]
    assert "base_model" not in meta  # a randomly initialised row has none


def test_the_onnx_files_load_where_sentence_transformers_looks_and_score_like_the_rows_measured(trained):
    """onnx/model.onnx and onnx/model_qint8_dynamic.onnx: sentence-transformers' ONNX backend finds them without
    exporting (its own lookup, backend_should_export), and ONNX Runtime on them gives the record's onnx-fp32 and
    onnx-int8 nDCG@10 on the candidates they were measured on. (CrossEncoder(backend="onnx") itself needs
    optimum-onnx, whose releases require transformers < 4.58.)"""
    import onnxruntime as ort
    from sentence_transformers.backend.utils import backend_should_export
    from transformers import AutoTokenizer

    _, results, cell, rec = trained
    model_dir = results / cell.experiment / rec["model"]
    assert sorted(p.name for p in (model_dir / "onnx").iterdir()) == ["model.onnx", "model_qint8_dynamic.onnx"]
    for name in ("model.onnx", "model_qint8_dynamic.onnx"):
        export, _ = backend_should_export(model_dir, True, {"file_name": f"onnx/{name}"}, "model.onnx", "*.onnx",
                                          "ONNX")
        assert export is False, name
    assert "onnx/model_qint8_dynamic.onnx" in (model_dir / "README.md").read_text()

    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    first = cell_module.Evaluated("tiny-test", rec["metrics"]["tiny-test"], {}, rec["depths"]["tiny-test"], None, {})
    check = cell_module.precision_quality(cell, first)
    for precision, name in (("onnx-fp32", "model.onnx"), ("onnx-int8", "model_qint8_dynamic.onnx")):
        session = ort.InferenceSession(str(model_dir / "onnx" / name), providers=["CPUExecutionProvider"])
        assert [o.name for o in session.get_outputs()] == ["logits"]  # what ORTModelForSequenceClassification reads
        inputs = [i.name for i in session.get_inputs()]

        def logits(**batch):
            return torch.from_numpy(session.run(None, {k: batch[k].numpy() for k in inputs})[0][:, 0].copy())

        # int8 activations are quantised per batch: scored in the batches the row was measured in
        reranker = Reranker(torch.nn.Identity(), tokenizer, forward=(logits, name), precision=precision,
                            **cell_module.scoring_settings(cell))
        assert check.score(reranker)[cell.eval.top_k] == pytest.approx(
            rec["latency"]["precision"][precision]["nDCG@10"], abs=1e-9), precision  # the row's: the deepest depth


def test_the_card_prints_the_resolved_max_length(trained, tmp_path):
    """train.max_length = "model" is the backbone row's length in the card, not the word "model"."""
    from benchmark.artifacts import CellOutputs

    _, _, cell, rec = trained
    model_cell = experiment(tmp_path, name="long", save_model=True, max_length="model").cells[0]
    model, tokenizer = build_cross_encoder(model_cell.backbone, seed=0)
    outputs = CellOutputs(tmp_path / "results", model_cell.experiment, model_cell.cell_id)
    record = {**rec, "cell_id": model_cell.cell_id, "config": model_cell.to_dict()}
    cell_module.stage_student(record, model_cell, outputs, model, tokenizer)
    outputs.commit()
    card = (tmp_path / "results" / "long" / record["model"] / "README.md").read_text()
    assert f"- **Max length:** {model_cell.backbone.max_length} tokens" in card and model_cell.backbone.max_length == 512


def test_publish_dry_run_lists_the_files_and_an_upload_goes_through_the_hub_client(trained, capsys):
    from benchmark import cli

    _, results, cell, rec = trained
    model_dir = results / cell.experiment / rec["model"]
    assert saved_model(results, cell.cell_id[:12]) == model_dir
    assert cli.rdb_main(["publish", cell.cell_id, "--repo", "org/student", "--results", str(results),
                         "--dry-run"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"would upload {len(out) - 1} file(s) from {model_dir} to org/student:"
    assert {"README.md", "model.safetensors", "config.json", "onnx/model.onnx"} <= {line.strip() for line in out[1:]}

    class Hub:  # records what huggingface_hub.HfApi would have been asked
        calls: list = []

        def create_repo(self, repo_id, **kw):
            self.calls.append(("create_repo", repo_id, kw))
            return f"https://hub.invalid/{repo_id}"

        def upload_folder(self, **kw):
            self.calls.append(("upload_folder", kw["repo_id"], kw["folder_path"]))

    files = publish(model_dir, "org/student", api=Hub())
    assert Hub.calls == [("create_repo", "org/student", {"repo_type": "model", "exist_ok": True}),
                         ("upload_folder", "org/student", str(model_dir))]
    assert files == sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())


def test_publish_offline_and_bad_arguments_fail_in_one_line(trained):
    """Offline (HF_HUB_OFFLINE=1), a malformed repo id, a missing results directory: exit 2 and one line."""
    _, results, cell, _ = trained
    code = "import sys; from benchmark.cli import rdb_main; sys.exit(rdb_main(sys.argv[1:]))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    for cell_id, where, repo, culprit in ((cell.cell_id, results, "org/student", "cannot publish"),
                                          (cell.cell_id, results, "no good/id", "--repo 'no good/id'"),
                                          ("x", results / "nowhere", "org/student", "nowhere")):
        proc = subprocess.run([sys.executable, "-c", code, "publish", cell_id, "--repo", repo, "--results",
                               str(where)], capture_output=True, text=True, env=env, cwd=ROOT)
        assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and culprit in proc.stderr, proc.stderr
    with pytest.raises(BenchError, match="no ok record"):
        saved_model(results, "nothing-like-it")
