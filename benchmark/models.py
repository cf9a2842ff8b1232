"""Cross-encoders built from backbone rows (``benchmark.backbones``): a one-logit sequence-classification model and
its tokenizer, loaded from the row's checkpoint or randomly initialised from its config.

A checkpoint whose scoring head is not where the model looks (a hub backbone, or a reranker saved by another
library) loads with a freshly initialised head: for a row that is evaluated as it is that would time and score
noise, so it is an error; for a row that trains, one warning line. A row with ``head = "linear"`` scores with one
Linear on the first token, loaded from ``head_weights`` where the checkpoint keeps it elsewhere (lightning-ir).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from .backbones import BackboneSpec, resolve_model_path
from .errors import BenchError

LINEAR_HEAD = "linear"  # config attribute value that marks a saved model's one-Linear head (``rdb_head``)


def _offline_hint(spec: BackboneSpec, what: str, err: Exception) -> BenchError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    return BenchError(
        f"backbone {spec.name!r}: could not load {what} "
        f"({'HF_HUB_OFFLINE=1' if offline else 'no network or unknown id'}: {type(err).__name__}); "
        f"download it on a machine with network into HF_HOME, or point the row at a local path"
    )


def load_tokenizer(spec: BackboneSpec):
    source = resolve_model_path(spec.tokenizer)
    try:
        return AutoTokenizer.from_pretrained(source, use_fast=True)
    except (OSError, ValueError) as err:
        raise _offline_hint(spec, f"tokenizer {spec.tokenizer!r}", err) from None


class FirstTokenLinear(torch.nn.Linear):
    """One Linear(hidden, 1) on the first token of a ``[B, L, H]`` sequence (or on ``[B, H]`` first-token states):
    the head ELECTRA / RoBERTa classifiers are swapped for (they receive the whole sequence)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x[:, 0] if x.dim() == 3 else x)


class FirstToken(torch.nn.Module):
    """BERT's pooler swapped out: the first token's last hidden state as it is (no dense + tanh)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:, 0] if x.dim() == 3 else x


def use_linear_head(model) -> None:
    """Make ``model``'s score one Linear on its first token's last hidden state (a fresh, seeded Linear), and mark
    the config so a saved copy reloads with the same head. BERT: the pooler passes the first token through and the
    classifier (Linear(hidden, 1)) stays, dropout before it as in BERT's own head; ELECTRA / RoBERTa: the classifier
    becomes a first-token Linear."""
    hidden = model.config.hidden_size
    if model.config.model_type == "bert":
        model.bert.pooler = FirstToken()
        model.classifier = torch.nn.Linear(hidden, 1)
    else:
        model.classifier = FirstTokenLinear(hidden, 1)
    model.config.rdb_head = LINEAR_HEAD


def _tensor_files(source: str) -> list[Path]:
    """The safetensors files of a local checkpoint directory or of a hub id already in the local cache."""
    local = Path(source)
    if not local.is_dir():
        from huggingface_hub import snapshot_download

        try:
            local = Path(snapshot_download(source, allow_patterns=["*.safetensors", "*.json"]))
        except Exception:  # noqa: BLE001 -- offline and not cached: the head cannot be read, which the caller says
            return []
    return sorted(local.glob("*.safetensors"))


def load_head_weights(model, source: str, prefix: str) -> list[str]:
    """Copy ``<prefix>.weight`` / ``<prefix>.bias`` from the checkpoint's safetensors into the linear head; the
    names it lacks (all of them when none is there)."""
    from safetensors import safe_open

    head = model.classifier
    wanted = {f"{prefix}.weight": head.weight, **({f"{prefix}.bias": head.bias} if head.bias is not None else {})}
    found: set[str] = set()
    for path in _tensor_files(source):
        with safe_open(str(path), framework="pt") as f:
            for name in set(f.keys()) & set(wanted):
                tensor = f.get_tensor(name).to(torch.float32)
                if tensor.shape != wanted[name].shape:
                    raise BenchError(f"checkpoint {source!r}: {name} has shape {tuple(tensor.shape)}, the linear "
                                     f"head needs {tuple(wanted[name].shape)}")
                with torch.no_grad():
                    wanted[name].copy_(tensor.reshape(wanted[name].shape))
                found.add(name)
    return sorted(set(wanted) - found)


def _check_head(spec: BackboneSpec, missing: list[str], require_head: bool) -> None:
    if not missing:
        return
    where = f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} has no trained scoring head ({', '.join(missing)})"
    if require_head:
        raise BenchError(f"{where}: an eval-only row would score with random weights; name where the checkpoint "
                         "keeps its head (head = \"linear\", head_weights = \"<prefix>\") or train the row")
    print(f"warning: {where}: the head starts from random weights and is trained", file=sys.stderr)


def build_cross_encoder(spec: BackboneSpec, *, seed: int = 0, require_head: bool = False):
    """A one-logit sequence-classification model and its tokenizer for ``spec``.

    Random initialisation is seeded so a cell is reproducible; a checkpoint without a trained head gets a freshly
    seeded one (an error with ``require_head``, for rows evaluated as they are; else one warning line).
    """
    tokenizer = load_tokenizer(spec)
    overrides = {"num_labels": 1, **spec.config}
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the missing-head report is ours (_check_head), in one line
    hf_logging.disable_progress_bar()
    missing: list[str] = []
    try:
        if spec.checkpoint is None:
            try:
                config = AutoConfig.for_model(spec.family, **overrides)
            except ValueError as err:
                raise BenchError(f"backbone {spec.name!r}: unknown family {spec.family!r} ({err})") from None
            if spec.attn_implementation:
                config._attn_implementation = spec.attn_implementation
            model = AutoModelForSequenceClassification.from_config(config)
            if spec.head == LINEAR_HEAD:
                use_linear_head(model)
        else:
            model, missing = _from_checkpoint(spec, overrides)
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    _check_head(spec, missing, require_head)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _from_checkpoint(spec: BackboneSpec, overrides: dict):
    """(model, the head's parameter names the checkpoint did not hold)."""
    source = resolve_model_path(spec.checkpoint)
    # fp32 master weights whatever the checkpoint's dtype (transformers 5 would keep fp16 files in fp16, which breaks
    # mixed-precision training); autocast picks the compute dtype.
    kwargs = {"dtype": torch.float32, "output_loading_info": True}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    foreign = _foreign_config(spec, source)
    if foreign is not None:
        kwargs["config"] = foreign
    try:
        model, info = AutoModelForSequenceClassification.from_pretrained(
            source, **({} if foreign is not None else overrides), **kwargs)
    except (OSError, ValueError) as err:
        raise _offline_hint(spec, f"checkpoint {spec.checkpoint!r}", err) from None
    saved_linear = getattr(model.config, "rdb_head", None) == LINEAR_HEAD
    if spec.head == LINEAR_HEAD or saved_linear:
        use_linear_head(model)
        return model, load_head_weights(model, source, spec.head_weights or "classifier")
    base = f"{model.base_model_prefix}."
    return model, sorted(k for k in info.get("missing_keys", ()) if not k.startswith(base))


def _foreign_config(spec: BackboneSpec, source: str):
    """The row family's config from a checkpoint whose ``config.json`` names a model type of another library
    (lightning-ir's "mono-electra"), with the row's overrides; None when transformers reads the config itself."""
    import json

    path = Path(source) / "config.json"
    if not Path(source).is_dir():
        from huggingface_hub import hf_hub_download

        try:
            path = Path(hf_hub_download(source, "config.json"))
        except Exception:  # noqa: BLE001 -- not fetchable here: from_pretrained reports it in one line
            return None
    if not path.is_file():
        return None

    fields = json.loads(path.read_text(encoding="utf-8"))
    if fields.get("model_type") == spec.family:
        return None
    fields = {k: v for k, v in fields.items() if k not in ("model_type", "architectures", "transformers_version")}
    return AutoConfig.for_model(spec.family, **{**fields, "num_labels": 1, **spec.config})


def save_linear_head_checkpoint(base_model, tokenizer, directory: Path, prefix: str = "linear") -> Path:
    """Write ``base_model`` (a bare encoder) with a one-Linear head under ``prefix`` as lightning-ir saves its
    cross-encoders: the encoder's weights at the root, the head as ``<prefix>.weight`` / ``<prefix>.bias``
    (rehearsals and tests make such checkpoints)."""
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    base_model.config.save_pretrained(directory)
    head = torch.nn.Linear(base_model.config.hidden_size, 1)
    tensors = {k: v.contiguous() for k, v in base_model.state_dict().items()}
    tensors.update({f"{prefix}.weight": head.weight.detach(), f"{prefix}.bias": head.bias.detach()})
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    tokenizer.save_pretrained(directory)
    return directory


HEAD_PREFIXES = ("classifier.", "score.")  # the scoring heads of the families in benchmark.backbones


def head_problem(spec: BackboneSpec) -> str | None:
    """Why the row's local checkpoint would score with an untrained head, read from its safetensors' names alone
    (``--dry-run``); None when it has one, or when the checkpoint is not a local directory (then loading says)."""
    source = Path(resolve_model_path(spec.checkpoint or ""))
    files = sorted(source.glob("*.safetensors")) if spec.checkpoint and source.is_dir() else []
    if not files:
        return None
    from safetensors import safe_open

    names: set[str] = set()
    for path in files:
        with safe_open(str(path), framework="pt") as f:
            names |= set(f.keys())
    if spec.head == LINEAR_HEAD:
        wanted = f"{spec.head_weights or 'classifier'}.weight"
        found = wanted in names
    else:
        wanted, found = "a classifier.* or score.* head", any(n.startswith(HEAD_PREFIXES) for n in names)
    return None if found else (f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} holds no {wanted}: an "
                               "eval-only row would score with random weights")
