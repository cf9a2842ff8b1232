"""Cross-encoders built from backbone rows (``benchmark.backbones``): a one-logit model and its tokenizer, loaded
from the row's checkpoint or randomly initialised from its config.

The row's ``head`` picks the scoring head: ``"auto"`` is the family's ``AutoModelForSequenceClassification`` head;
``"linear"`` is :class:`LinearHeadModel`, the encoder (``AutoModel``) plus one ``Linear(hidden, 1)`` on the first
token's last hidden state, optionally loaded from the checkpoint under ``head_weights`` (lightning-ir's ``linear``).
A checkpoint whose head is missing (newly initialised) is an error on eval-only rows and one warning line on
training rows, where a backbone without a reranker head is normal.

Checkpoint layout of lightning-ir's cross-encoders (webis-de/lightning-ir @98cb3fd): ``models/cross_encoders/mono.py``
``MonoModel`` scores ``self.linear(pooler(last_hidden_state))`` with ``Linear(hidden_size, 1, bias=linear_bias)``
(``linear_bias`` default False, pooling ``"first"``); ``base/class_factory.py`` derives the model class from the
backbone's ``AutoModel`` class (``(MonoModel, ElectraModel)``), so the encoder's keys sit at the state-dict root
(``embeddings.*``, ``encoder.layer.N.*``) beside ``linear.weight``; config.json has ``model_type`` ``"mono"`` and
``backbone_model_type`` (``base/config.py`` ``to_dict``). Releases before the class factory (@6861e7c) kept the
encoder under ``electra.``, the config's ``model_type`` ``"mono-electra"`` and a biased ``linear``; both load here.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification, AutoTokenizer, PretrainedConfig
from transformers.modeling_outputs import SequenceClassifierOutput
from transformers.utils import cached_file
from transformers.utils import logging as hf_logging

from .backbones import BackboneSpec, resolve_model_path
from .errors import BenchError
from .progress import hub_downloads


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


class LinearHeadModel(torch.nn.Module):
    """An encoder (``AutoModel``) scored by one ``Linear(hidden, 1)`` on its first token's last hidden state, no
    dropout: matchmaker's BERT_Cat for DistilBERT/ELECTRA (``matchmaker/models/bert_cat.py`` @cb1d35d8) and
    lightning-ir's MonoModel (pooling "first"). Its forward returns ``.logits[B, 1]`` like a one-label
    ``*ForSequenceClassification`` model; :meth:`save_pretrained` writes lightning-ir's mono layout."""

    def __init__(self, encoder: torch.nn.Module, bias: bool = True) -> None:
        super().__init__()
        self.encoder = encoder
        self.config = encoder.config
        self.linear = torch.nn.Linear(encoder.config.hidden_size, 1, bias=bias)
        torch.nn.init.normal_(self.linear.weight, std=getattr(encoder.config, "initializer_range", 0.02))
        if bias:
            torch.nn.init.zeros_(self.linear.bias)

    @property
    def base_model(self) -> torch.nn.Module:
        return self.encoder

    @property
    def head_key(self) -> str:
        """The ``fastpath.HEADS`` entry of this model: the head and the encoder's class."""
        return f"linear:{type(self.encoder).__name__}"

    def forward(self, **inputs: torch.Tensor) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.linear(self.encoder(**inputs).last_hidden_state[:, 0]))

    def gradient_checkpointing_enable(self, **kwargs) -> None:
        self.encoder.gradient_checkpointing_enable(**kwargs)

    def save_pretrained(self, directory: str | Path, **_: object) -> None:
        """lightning-ir's mono layout: encoder keys at the root, the head as ``linear.*``, ``self.config``."""
        write_checkpoint(self.encoder.state_dict(), self.config, directory,
                         head={f"{LIGHTNING_IR_HEAD}.{k}": v for k, v in self.linear.state_dict().items()})


LIGHTNING_IR_HEAD = "linear"  # the state-dict prefix of lightning-ir's MonoModel head


def write_checkpoint(encoder_state: dict[str, torch.Tensor], config: PretrainedConfig, directory: str | Path,
                     head: dict[str, torch.Tensor] | None = None) -> None:
    """A checkpoint directory: ``model.safetensors`` (encoder keys at the root, plus ``head``) and config.json; with
    a head, config.json carries lightning-ir's mono fields (``model_type`` "mono", ``backbone_model_type``,
    pooling "first", ``linear_bias``), so lightning-ir's loader reads it as its own."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in {**encoder_state, **(head or {})}.items()}
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})
    data = config.to_dict()
    data.pop("architectures", None)
    if head:
        data.update(model_type="mono", backbone_model_type=config.model_type, pooling_strategy="first",
                    linear_bias=any(k.endswith(".bias") for k in head), scoring_strategy="rank")
    (directory / "config.json").write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_checkpoint(model: torch.nn.Module, tokenizer, path: str | Path, head_prefix: str | None = None) -> Path:
    """``model`` (from :func:`build_cross_encoder`) and ``tokenizer`` saved to ``path``, to be loaded back through
    ``from_pretrained`` as a row's checkpoint: without ``head_prefix`` the encoder alone in plain transformers
    layout (a backbone with no trained head, like a hub encoder); with it, lightning-ir's layout: encoder keys at
    the root, the scoring head (a "linear" head's ``Linear(hidden, 1)``) under ``head_prefix``. A full "auto"-head
    model keeps its head with ``model.save_pretrained(path)``."""
    path = Path(path)
    if head_prefix is None:
        model.base_model.save_pretrained(str(path), safe_serialization=True)
    elif isinstance(model, LinearHeadModel):
        write_checkpoint(model.encoder.state_dict(), model.config, path,
                         head={f"{head_prefix}.{k}": v for k, v in model.linear.state_dict().items()})
    else:
        raise BenchError(f"save_checkpoint: head_prefix needs a \"linear\"-head model, got {type(model).__name__}")
    tokenizer.save_pretrained(str(path))
    return path


def build_cross_encoder(spec: BackboneSpec, *, seed: int = 0, require_head: bool = False, quiet: bool = False):
    """A one-logit model and its tokenizer for ``spec``.

    Random initialisation is seeded so a cell is reproducible; a pretrained checkpoint without a trained scoring
    head gets a freshly seeded one: with ``require_head`` (eval-only rows) that is a one-line ``BenchError`` naming
    the row, the checkpoint and the missing keys, otherwise one warning line on stderr (none with ``quiet``: the
    caller fills or does not use the head).
    """
    overrides = {"num_labels": 1, **spec.config}
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    # transformers' load report (and its model_type note on lightning-ir configs) gives way to one line here
    hf_logging.set_verbosity_error()
    try:
        with hub_downloads(spec.checkpoint, spec.tokenizer):
            tokenizer = load_tokenizer(spec)
            model, missing, unexpected = _build(spec, overrides)
    finally:
        hf_logging.set_verbosity(verbosity)
    if missing and not (quiet and not require_head):
        _report_missing(spec, type(model).__name__, missing, unexpected, require_head)
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def _build(spec: BackboneSpec, overrides: dict) -> tuple[torch.nn.Module, list[str], list[str]]:
    """(model, newly initialised keys, unused checkpoint keys)."""
    auto = AutoModelForSequenceClassification if spec.head == "auto" else AutoModel
    if spec.checkpoint is None:
        try:
            config = AutoConfig.for_model(spec.family, **overrides)
        except ValueError as err:
            raise BenchError(f"backbone {spec.name!r}: unknown family {spec.family!r} ({err})") from None
        if spec.attn_implementation:
            config._attn_implementation = spec.attn_implementation
        model = auto.from_config(config)
        return (model if spec.head == "auto" else LinearHeadModel(model)), [], []
    source = resolve_model_path(spec.checkpoint)
    # fp32 master weights whatever the checkpoint's dtype (transformers 5 would keep fp16 files in fp16, which
    # breaks mixed-precision training); autocast picks the compute dtype.
    kwargs = {"dtype": torch.float32, "output_loading_info": True}
    if spec.attn_implementation:
        kwargs["attn_implementation"] = spec.attn_implementation
    try:
        config = _checkpoint_config(spec, source, overrides)
        model, info = auto.from_pretrained(source, config=config, **kwargs)
    except (OSError, ValueError) as err:
        raise _offline_hint(spec, f"checkpoint {spec.checkpoint!r}", err) from None
    mismatched = (k if isinstance(k, str) else k[0] for k in info["mismatched_keys"])
    missing = sorted({*info["missing_keys"], *mismatched})
    unexpected = sorted(info["unexpected_keys"])
    if spec.head == "auto":
        return model, missing, unexpected
    # The pooler is no part of a "linear" head (lightning-ir saves BERT without it).
    missing = [k for k in missing if not k.startswith("pooler.")]
    if spec.head_weights is None:
        return LinearHeadModel(model), missing + ["linear.weight", "linear.bias"], unexpected
    head = _head_tensors(spec, source, config.hidden_size)
    linear = LinearHeadModel(model, bias="bias" in head)
    linear.linear.load_state_dict(head)
    return linear, missing, [k for k in unexpected if not k.startswith(f"{spec.head_weights}.")]


def _checkpoint_config(spec: BackboneSpec, source: str, overrides: dict) -> PretrainedConfig:
    """The family's config read from the checkpoint's config.json. A lightning-ir config (``model_type`` "mono" with
    ``backbone_model_type``, or "mono-<family>") is read as its backbone's; its pooling must be the first token's."""
    data, _ = PretrainedConfig.get_config_dict(source)
    if data.get("model_type") == spec.family:
        return AutoConfig.from_pretrained(source, **overrides)
    model_type = str(data.get("model_type"))
    # lightning-ir names its backbone in backbone_model_type; releases before its class factory in model_type
    backbone = data.get("backbone_model_type") or model_type.removeprefix("mono-")
    if backbone != spec.family:
        raise BenchError(f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} is model_type {model_type!r} "
                         f"(backbone {backbone!r}), the row says family {spec.family!r}")
    if data.get("pooling_strategy", "first") != "first":
        raise BenchError(f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} pools "
                         f"{data['pooling_strategy']!r}; head \"linear\" reads the first token")
    fields = {k: v for k, v in data.items() if k not in ("model_type", "architectures", "auto_map")}
    return AutoConfig.for_model(spec.family, **{**fields, **overrides})


def _head_tensors(spec: BackboneSpec, source: str, hidden: int) -> dict[str, torch.Tensor]:
    """``weight`` (and ``bias`` where saved) of the row's ``head_weights`` prefix, read from the checkpoint file."""
    names = {f"{spec.head_weights}.{k}": k for k in ("weight", "bias")}
    found = _read_tensors(source, list(names))
    head = {names[k]: v.float() for k, v in found.items()}
    if "weight" not in head:
        raise BenchError(f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} has no "
                         f"{spec.head_weights}.weight (head_weights = {spec.head_weights!r})")
    shape = tuple(head["weight"].shape)
    if shape != (1, hidden) or ("bias" in head and tuple(head["bias"].shape) != (1,)):
        raise BenchError(f"backbone {spec.name!r}: {spec.head_weights}.weight in {spec.checkpoint!r} has shape "
                         f"{list(shape)}, a one-logit linear head needs [1, {hidden}]")
    return head


def _read_tensors(source: str, names: list[str]) -> dict[str, torch.Tensor]:
    """The tensors of ``names`` present in the checkpoint (safetensors, sharded safetensors or pytorch_model.bin)."""
    from safetensors import safe_open

    def fetch(filename: str) -> str | None:
        return cached_file(source, filename, _raise_exceptions_for_missing_entries=False)

    index = fetch("model.safetensors.index.json")
    if index:
        weight_map = json.loads(Path(index).read_text(encoding="utf-8"))["weight_map"]
        paths = [fetch(f) for f in sorted({weight_map[n] for n in names if n in weight_map})]
    else:
        paths = [fetch("model.safetensors")]
    found: dict[str, torch.Tensor] = {}
    for path in filter(None, paths):
        with safe_open(path, framework="pt") as fh:
            found.update({n: fh.get_tensor(n) for n in names if n in fh.keys()})
    if not index and paths[0] is None and (path := fetch("pytorch_model.bin")):
        state = torch.load(path, map_location="cpu", weights_only=True)
        found.update({n: state[n] for n in names if n in state})
    return found


def _report_missing(spec: BackboneSpec, cls: str, missing: list[str], unexpected: list[str],
                    require_head: bool) -> None:
    """One line: an error on eval-only rows, a warning on stderr on training rows."""
    shown = ", ".join(missing[:6]) + (f" and {len(missing) - 6} more" if len(missing) > 6 else "")
    prefixes = sorted({k.rsplit(".", 2)[0] for k in unexpected if k.count(".") <= 2})
    unused = f"; unused checkpoint weights: {', '.join(f'{p}.*' for p in prefixes[:4])}" if prefixes else ""
    where = f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} loaded as {cls} has no weights for {shown}"
    if require_head:
        raise BenchError(f"{where}{unused}; an eval-only row would score with a random head (name the trained "
                         f"head: head = \"linear\", head_weights = PREFIX)")
    print(f"warning: {where}; they are newly initialised and trained by this row{unused}", file=sys.stderr)


def head_problem(spec: BackboneSpec) -> str | None:
    """Why an eval-only row's checkpoint would score with an untrained head, read from its files alone (config and
    tensor names, no model built: ``--dry-run``); None when its head is there, or when the checkpoint is not a
    local directory (loading it says)."""
    source = resolve_model_path(spec.checkpoint or "")
    if not spec.checkpoint or not Path(source).is_dir():
        return None
    if spec.head == "linear":
        names = [f"{spec.head_weights}.weight"] if spec.head_weights else []
    else:
        names = [f"{prefix}.{part}" for prefix in ("classifier", "classifier.out_proj", "score")
                 for part in ("weight",)]
    if names and _read_tensors(source, names):
        return None
    wanted = names[0] if spec.head == "linear" and names else "a trained head (classifier.* / score.*)"
    return (f"backbone {spec.name!r}: checkpoint {spec.checkpoint!r} holds no {wanted}: this eval-only row would "
            "score with a random head")
