"""Cross-encoders built from backbone rows (``benchmark.backbones``): a one-logit sequence-classification model and
its tokenizer, loaded from the row's checkpoint or randomly initialised from its config."""

from __future__ import annotations

import os

import torch
from transformers import AutoConfig, AutoModelForSequenceClassification, AutoTokenizer
from transformers.utils import logging as hf_logging

from .backbones import BackboneSpec, resolve_model_path
from .errors import BenchError


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


def build_cross_encoder(spec: BackboneSpec, *, seed: int = 0):
    """A one-logit sequence-classification model and its tokenizer for ``spec``.

    Random initialisation is seeded so a cell is reproducible; pretrained rows get a freshly seeded head.
    """
    tokenizer = load_tokenizer(spec)
    overrides = {"num_labels": 1, **spec.config}
    torch.manual_seed(seed)
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # "newly initialized head" warnings are expected for every cross-encoder
    hf_logging.disable_progress_bar()
    try:
        if spec.checkpoint is None:
            try:
                config = AutoConfig.for_model(spec.family, **overrides)
            except ValueError as err:
                raise BenchError(f"backbone {spec.name!r}: unknown family {spec.family!r} ({err})") from None
            if spec.attn_implementation:
                config._attn_implementation = spec.attn_implementation
            model = AutoModelForSequenceClassification.from_config(config)
        else:
            source = resolve_model_path(spec.checkpoint)
            # fp32 master weights whatever the checkpoint's dtype (transformers 5 would keep fp16 files in fp16,
            # which breaks mixed-precision training); autocast picks the compute dtype.
            kwargs = {"dtype": torch.float32}
            if spec.attn_implementation:
                kwargs["attn_implementation"] = spec.attn_implementation
            try:
                model = AutoModelForSequenceClassification.from_pretrained(source, **overrides, **kwargs)
            except (OSError, ValueError) as err:
                raise _offline_hint(spec, f"checkpoint {spec.checkpoint!r}", err) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        hf_logging.enable_progress_bar()
    if spec.gradient_checkpointing:
        model.gradient_checkpointing_enable()
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer

