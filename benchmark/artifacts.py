"""What a cell leaves beside its record: the reranked runs and, optionally, the trained student.

Layout, next to ``<results>/<experiment>/<cell_id>.json``:

- ``<cell_id>.runs/<dataset>.trec.gz``: the run the cell evaluated on each eval dataset (after MaxP folding), gzip
  TREC run lines ``qid Q0 docid rank score tag`` with every score printed exactly, so ir_measures on the file gives
  the record's numbers. ir_measures reads ``.gz`` paths as they are (``ir_measures.read_trec_run``).
- ``<cell_id>.model/``: the student as ``transformers.PreTrainedModel.save_pretrained`` writes it (safetensors
  weights, ``config.json`` with ``num_labels`` 1) with its tokenizer and a model card (``README.md``). Both
  ``sentence_transformers.CrossEncoder(path)`` and ``AutoModelForSequenceClassification.from_pretrained(path)`` load
  it; ``config.sentence_transformers.activation_fn`` is Identity, so CrossEncoder returns the raw logit the suite
  ranks by (its default for one label is a sigmoid, sentence-transformers 6:
  ``cross_encoder/model.py``, ``CrossEncoder.get_default_activation_fn``). A student of a ``head = "linear"`` row
  (``models.LinearHeadModel``) is written in lightning-ir's mono layout instead (encoder keys at the root,
  ``linear.weight`` / ``linear.bias``, config.json ``model_type`` "mono" with ``backbone_model_type``): the suite
  reloads it with ``head = "linear"``, ``head_weights = "linear"``; transformers' Auto classes and
  sentence-transformers refuse its config rather than guess a head.

Everything is written into hidden staging directories first and renamed into place by :meth:`CellOutputs.commit`
only once the cell succeeded, so a failed cell leaves no half model and a failed rerun keeps the previous files.
"""

from __future__ import annotations

import gzip
import json
import os
import secrets
import shutil
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .backbones import BUNDLED_PREFIX
from .collection import Run
from .errors import BenchError
from .paths import safe_name, within
from .results import record_path

RUNS, MODEL = ".runs", ".model"
# A saved student's ONNX files in sentence-transformers' layout: an ``onnx/`` folder, ``model.onnx``, quantised copies
# as ``model_qint8_<how>.onnx`` (sentence_transformers/backend/quantize.py, export_dynamic_quantized_onnx_model).
ONNX_DIR, ONNX_FP32, ONNX_INT8 = "onnx", "model.onnx", "model_qint8_dynamic.onnx"
# sentence-transformers reads the activation from the model config (CrossEncoder.get_default_activation_fn).
RAW_LOGITS = {"activation_fn": "torch.nn.modules.linear.Identity"}


def should_save_model(cell) -> bool:
    """``train.save_model``, or by default: a student of a hub or local checkpoint is kept; randomly initialised
    rows (they learn nothing worth keeping) and the bundled MiniLM rows of the embedded grids (91 MB a cell,
    retrained in minutes) are not; an eval-only cell has no new weights."""
    if cell.train.eval_only:
        return False
    if cell.train.save_model is not None:
        return cell.train.save_model
    checkpoint = cell.backbone.checkpoint
    return checkpoint is not None and not checkpoint.startswith(BUNDLED_PREFIX)


class CellOutputs:
    """The runs and model of one cell, staged under the results directory until :meth:`commit`."""

    def __init__(self, results_dir: Path, experiment: str, cell_id: str) -> None:
        self.root = Path(results_dir)
        self.targets = {kind: record_path(self.root, experiment, cell_id, kind) for kind in (RUNS, MODEL)}
        self.staged: dict[str, Path] = {}

    def _stage(self, kind: str) -> Path:
        if kind not in self.staged:
            target = self.targets[kind]
            target.parent.mkdir(parents=True, exist_ok=True)
            self.staged[kind] = within(self.root, target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp"))
            self.staged[kind].mkdir()
        return self.staged[kind]

    @contextmanager
    def _writing(self, kind: str) -> Iterator[None]:
        """An I/O failure while staging (a full disk) drops what was staged and is one line naming the target;
        the files a previous run committed stay in place."""
        try:
            yield
        except OSError as err:
            self.discard()
            raise BenchError(f"cannot write {str(self.targets[kind])!r}: {err.strerror or err}") from None

    @property
    def experiment_dir(self) -> Path:
        """The directory of the cell's record (and of what its experiment's cells share)."""
        return self.targets[RUNS].parent

    def relative(self, path: Path) -> str:
        """``path`` relative to the experiment directory (where the record lies), as records name files."""
        return path.relative_to(self.experiment_dir).as_posix()

    def stage_run(self, dataset: str, run: Run, tag: str) -> str:
        """Stage ``run`` (the one evaluated on ``dataset``); returns the name it will have beside the record."""
        from .firststage import trec_run_text

        name = f"{safe_name(dataset, limit=100)}.trec.gz"
        with self._writing(RUNS):  # mtime=0: the same run gives the same bytes
            with gzip.GzipFile(self._stage(RUNS) / name, "wb", mtime=0) as fh:
                fh.write(trec_run_text(run, tag).encode("utf-8"))
        return self.relative(self.targets[RUNS] / name)

    def stage_model(self, model, tokenizer, *, max_length: int, token_type_ids: bool, card: str,
                    precisions: Sequence[str] = ()) -> str:
        """Stage the student for transformers and sentence-transformers (and, for the cell's ONNX ``precisions``
        rows, its ONNX files: :func:`save_onnx`); returns its directory's name."""
        with self._writing(MODEL):
            directory = self._stage(MODEL)
            save_student(model, tokenizer, directory, max_length=max_length, token_type_ids=token_type_ids)
            save_onnx(model, tokenizer, directory, precisions, token_type_ids=token_type_ids)
            (directory / "README.md").write_text(card, encoding="utf-8")
        return self.relative(self.targets[MODEL])

    def commit(self) -> None:
        """Move every staged directory into place (replacing the previous cell's), then drop stale ones: a cell
        that no longer saves a model leaves none from an earlier run."""
        for kind, target in self.targets.items():
            staged = self.staged.get(kind)
            old = target.with_name(f".{target.name}.{secrets.token_hex(6)}.old")
            try:
                if target.exists():
                    os.replace(target, old)
                if staged is not None:
                    os.replace(staged, target)
                    del self.staged[kind]
            except OSError as err:
                raise BenchError(f"cannot write {str(target)!r}: {err.strerror or err}") from None
            shutil.rmtree(old, ignore_errors=True)

    def discard(self) -> None:
        for staged in self.staged.values():
            shutil.rmtree(staged, ignore_errors=True)
        self.staged.clear()


def save_student(model, tokenizer, directory: Path, *, max_length: int, token_type_ids: bool) -> None:
    """``model`` and ``tokenizer`` as loadable files: fp32 safetensors on the CPU, one-logit config marked for raw
    logits, the tokenizer truncating at the cell's ``max_length`` and, for rows without segment embeddings
    (RoBERTa, ModernBERT), producing no ``token_type_ids``, as the suite scores them."""
    import copy

    model = model.to("cpu")
    original = model.config
    model.config = copy.deepcopy(original)  # the cell's model keeps its own config
    model.config.num_labels = 1
    model.config.sentence_transformers = RAW_LOGITS
    try:
        model.save_pretrained(str(directory), safe_serialization=True)
    finally:
        model.config = original
    tokenizer = copy.deepcopy(tokenizer)
    tokenizer.model_max_length = max_length
    if not token_type_ids:
        names = [n for n in tokenizer.model_input_names if n != "token_type_ids"]
        # init_kwargs are what save_pretrained writes to tokenizer_config.json (transformers 5)
        tokenizer.model_input_names = tokenizer.init_kwargs["model_input_names"] = names
    tokenizer.save_pretrained(str(directory))


def onnx_files(precisions: Sequence[str]) -> list[str]:
    """The files :func:`save_onnx` writes for these ``eval.precision`` rows, relative to the model directory."""
    from .precisions import get_precision

    rows = [get_precision(p) for p in precisions]
    rows = [r for r in rows if r.runtime == "onnxruntime"]
    if not rows:
        return []
    return [f"{ONNX_DIR}/{ONNX_FP32}"] + ([f"{ONNX_DIR}/{ONNX_INT8}"] if any(r.weights == "int8" for r in rows) else [])


def save_onnx(model, tokenizer, directory: Path, precisions: Sequence[str], *, token_type_ids: bool) -> None:
    """The graphs the cell's ONNX precision rows scored (``onnx-fp32``: ``onnx/model.onnx``; ``onnx-int8``: also
    ``onnx/model_qint8_dynamic.onnx``), exported as ``benchmark.inference.export_onnx`` does for them, beside the
    safetensors weights: sentence-transformers' layout for ``CrossEncoder(path, backend="onnx")``."""
    files = onnx_files(precisions)
    if files:
        from .inference import export_onnx

        export_onnx(model.to("cpu").eval(), directory / files[0],
                    token_type_ids=token_type_ids and "token_type_ids" in tokenizer.model_input_names,
                    int8_path=directory / files[1] if len(files) > 1 else None)


LICENSE = "mit"  # the suite's; a student also inherits its base model's and its training data's terms


def card_metadata(record: dict[str, Any], cell):
    """The card's front matter as the hub reads it (``huggingface_hub.ModelCardData``): library, task, base model,
    training data, license, and a ``model-index`` entry per eval dataset and measure (its first stage and depth in
    the dataset config), so the hub shows the numbers and ``ModelCard.load`` reads them back."""
    from huggingface_hub import EvalResult, ModelCardData

    results = []
    for dataset, m in record["metrics"].items():
        spec = (record.get("config") or {}).get("datasets", {}).get(dataset, {})
        info = m.get("first_stage_info", {})
        for measure in info.get("measures") or ["nDCG@10"]:
            if isinstance(m.get(measure), float):
                results.append(EvalResult(
                    task_type="text-ranking", dataset_type=spec.get("id") or spec.get("path") or dataset,
                    dataset_name=dataset, dataset_split=spec.get("split") or "test",
                    dataset_config=f"{info.get('name', '')} top-{info.get('rerank_depth', '')}",
                    metric_type=measure, metric_name=measure, metric_value=round(m[measure], 4)))
    train_data = cell.datasets.get(cell.train.dataset)
    base = cell.backbone.checkpoint
    return ModelCardData(
        model_name=record["cell_id"], library_name="sentence-transformers", pipeline_tag="text-ranking",
        license=LICENSE, tags=["cross-encoder", "reranker", "rerank-distill-bench", cell.objective],
        base_model=base if base and not base.startswith(BUNDLED_PREFIX) else None,
        datasets=[train_data.id or train_data.name] if train_data is not None else None,
        eval_results=results or None)


def model_card(record: dict[str, Any], cell, run_files: dict[str, str], max_length: int) -> str:
    """README.md of a saved student: what it is, how to load it (ONNX files included), the cell's metrics per
    dataset and latency, its full config and where the numbers come from. ``max_length``: the token cap it scores
    with (``train.max_length = "model"`` resolved)."""
    from . import __version__
    from .objectives import OBJECTIVES

    objective = OBJECTIVES.get(cell.objective)
    base = cell.backbone.checkpoint or f"{cell.backbone.family} (randomly initialised: {cell.backbone.name})"
    prov = record.get("provenance", {})
    rows = []
    for dataset, m in record["metrics"].items():
        info = m.get("first_stage_info", {})
        values = ", ".join(f"{k} {v:.4f}" for k, v in m.items()
                           if isinstance(v, float) and not k.startswith("reranked"))
        rows.append(f"| {dataset} | {info.get('name', '')} top-{info.get('rerank_depth', '')} | {values} | "
                    f"{m['first_stage'].get('nDCG@10', float('nan')):.4f} | {m['n_queries']} | "
                    f"`{run_files.get(dataset, '')}` |")
    latency = []
    for device in ("cpu", "cuda"):  # the student's own figures at its rerank depth
        lat = (record.get("latency") or {}).get(device)
        if lat:
            latency.append(f"| {device} | {lat.get('p50_ms', float('nan')):.1f} | {lat.get('p95_ms', float('nan')):.1f} "
                           f"| {lat.get('pairs_per_s', float('nan')):.0f} | {lat.get('dtype', '')} |")
    teacher = cell.teacher
    front = card_metadata(record, cell)
    train = record.get("train", {})
    validation = train.get("validation") or {}
    lines = [
        "---", front.to_yaml(), "---", "",
        f"# {record['cell_id']}", "",
        f"A cross-encoder reranker trained by rerank-distill-bench {__version__} (git {prov.get('git_sha', '?')}), "
        f"grid `{record['experiment']}`, cell `{record['cell_id']}` (config hash `{record['config_hash']}`).", "",
        f"- **Base model:** {base}",
        f"- **Objective:** `{cell.objective}` ({objective.family}; {objective.paper})",
        f"- **Teacher:** `{teacher.name}` ({teacher.kind}{': ' + ', '.join(teacher.models) if teacher.models else ''})"
        f"{' — ' + teacher.description if teacher.description else ''}",
        f"- **Training data:** `{cell.train.dataset}` ({cell.train.sampler} sampler, {cell.train.group_size} "
        f"candidates per query, {train.get('steps', '?')} steps of {cell.train.batch_size} queries, lr {cell.train.lr}, "
        f"seed {cell.seed})",
        *([f"- **Kept step:** {validation.get('best_step')} (best {validation.get('measure')} on "
           f"{validation.get('dataset')}: {validation.get('best_value')})"] if validation else []),
        f"- **Max length:** {max_length} tokens (the passage is truncated)", "",
        "## Usage", "",
        *(_linear_usage(cell) if cell.backbone.head == "linear" else _auto_usage(cell)), "",
        *_onnx_usage(onnx_files(cell.eval.precision)),
        "## Results", "",
        "Measured by the suite when this model was trained (per-query values in the record "
        f"`{record['cell_id']}.json`; the reranked runs beside it).", "",
        "| dataset | candidates | measures | first stage nDCG@10 | queries | run |", "|---|---|---|---|---|---|",
        *rows, "",
        "| device | p50 ms/query | p95 ms/query | pairs/s | dtype |", "|---|---|---|---|---|", *latency, "",
        "## Citations", "",
        "- rerank-distill-bench: the suite's README and `docs/protocol.md`.",
        f"- Objective `{cell.objective}`: {objective.paper}.",
        "", "## Full config", "", "```json", json.dumps(record["config"], indent=1, sort_keys=True), "```", "",
    ]
    return "\n".join(lines)


def _auto_usage(cell) -> list[str]:
    return [
        "```python",
        "from sentence_transformers import CrossEncoder",
        "model = CrossEncoder(\"PATH\")  # this directory or its hub id; scores are raw logits (higher = more relevant)",
        "scores = model.predict([(\"a query\", \"a passage\"), (\"a query\", \"another passage\")])",
        "```", "",
        "With transformers: `AutoModelForSequenceClassification.from_pretrained(PATH)`, score = `logits[:, 0]`. "
        "Re-evaluate it without training as a grid row: `[backbones.NAME]` with `family = "
        f"\"{cell.backbone.family}\"`, `checkpoint = tokenizer = \"PATH\"`, "
        f"`token_type_ids = {str(cell.backbone.token_type_ids).lower()}`, and `train.skip = true`.",
    ]


def _onnx_usage(files: list[str]) -> list[str]:
    if not files:
        return []
    return [
        f"ONNX: `{files[0]}` is the graph the `onnx-fp32` row measured"
        + (f", `{files[1]}` the `onnx-int8` one (int8 weights, onnxruntime's dynamic quantisation)"
           if len(files) > 1 else "")
        + ". sentence-transformers loads them with its ONNX backend (`pip install optimum-onnx[onnxruntime]`): "
        "`CrossEncoder(\"PATH\", backend=\"onnx\")`"
        + (f", or `model_kwargs={{\"file_name\": \"{files[1]}\"}}` for int8" if len(files) > 1 else "")
        + "; onnxruntime alone: `InferenceSession(PATH/" + files[0] + ")` with the tokenizer's `input_ids`, "
        "`attention_mask` (and `token_type_ids`), score = `logits[:, 0]`.", ""]


def _linear_usage(cell) -> list[str]:
    return [
        "The score is one linear layer on the first token's last hidden state, "
        "`linear(AutoModel(PATH)(**pair).last_hidden_state[:, 0])` (no pooler, no dropout). The files are in "
        "lightning-ir's mono layout: the encoder's weights at the root of `model.safetensors`, the head as "
        "`linear.weight` / `linear.bias`, config.json `model_type` \"mono\" with `backbone_model_type` "
        f"\"{cell.backbone.family}\"; `AutoModelForSequenceClassification` and sentence-transformers' "
        "`CrossEncoder` do not read this head.", "",
        "Re-evaluate it without training as a grid row: `[backbones.NAME]` with `family = "
        f"\"{cell.backbone.family}\"`, `checkpoint = tokenizer = \"PATH\"`, `head = \"linear\"`, "
        f"`head_weights = \"linear\"`, `token_type_ids = {str(cell.backbone.token_type_ids).lower()}`, "
        "and `train.skip = true`.",
    ]


def saved_model(results_dir: Path, cell_id: str) -> Path:
    """The saved student (``<cell_id>.model/``) of the ok record ``cell_id`` (or the one cell id it begins) under
    ``results_dir``; a one-line error when none or several match or the cell kept no model."""
    from .results import load_records

    records = [r for r in load_records(Path(results_dir)) if r.get("status") == "ok"]
    found = [r for r in records if r["cell_id"] == cell_id] or [r for r in records if r["cell_id"].startswith(cell_id)]
    if len(found) != 1:
        raise BenchError(f"cell {cell_id!r}: {'no' if not found else len(found)} ok record(s) under "
                         f"{str(results_dir)!r} match (a cell id or the start of one)")
    rec = found[0]
    path = within(Path(results_dir), Path(results_dir) / rec["experiment"] / str(rec.get("model") or ""))
    if not rec.get("model") or not path.is_dir():
        raise BenchError(f"cell {rec['cell_id']!r} kept no saved model (train.save_model = true keeps one)")
    return path


def publish(model_dir: Path, repo: str, *, dry_run: bool = False, api: Any = None) -> list[str]:
    """Upload a saved student's folder to the hub model repo ``repo`` (created if absent) with huggingface_hub's
    ``create_repo`` and ``upload_folder``; returns the files (relative paths) it uploads, or with ``dry_run`` would
    upload. Any hub failure (offline mode, no token, HTTP errors) is one line naming the repo."""
    from huggingface_hub import HfApi
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo)
    except HFValidationError as err:
        raise BenchError(f"--repo {repo!r} is not a hub repo id (org/name): {str(err).splitlines()[0]}") from None
    files = sorted(p.relative_to(model_dir).as_posix() for p in model_dir.rglob("*") if p.is_file())
    if dry_run:
        return files
    api = api if api is not None else HfApi()
    try:
        url = api.create_repo(repo, repo_type="model", exist_ok=True)
        api.upload_folder(folder_path=str(model_dir), repo_id=repo, repo_type="model",
                          commit_message=f"rerank-distill-bench: {model_dir.name}")
    except Exception as err:  # noqa: BLE001 -- the hub client raises many types (offline mode, HTTP, auth)
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise BenchError(f"cannot publish {model_dir.name} to {repo!r}: {lines[0]}") from None
    print(f"published {model_dir} -> {url}")
    return files
