"""Tiny checkpoints of a backbone row's own architecture, for rehearsals: a randomly initialised model of the row's
``family`` and a tokenizer of the kind that family's checkpoints ship (WordPiece for BERT / ELECTRA / DistilBERT,
byte-level BPE for RoBERTa and ModernBERT / Ettin, SentencePiece Unigram for DeBERTa-v3), trained on the embedded
collection's texts with the ``tokenizers`` library and saved with ``save_pretrained``. A rehearsal row then loads
them through the same ``from_pretrained`` path, segment ids, special tokens, pair truncation and head loading as the
real row.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModel, AutoModelForSequenceClassification
from transformers.utils import logging as hf_logging

from ..backbones import BackboneSpec
from ..errors import BenchError
from ..models import LinearHeadModel, save_checkpoint

VOCAB = 1000
# Small enough that a training step of a tiny model takes milliseconds on a CPU, large enough for every attention
# and feed-forward code path (2 layers, 2 heads).
SIZE = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64)
POSITIONS = 512


@dataclass(frozen=True)
class TokenizerKind:
    """How a family's hub checkpoints tokenize: the ``tokenizers`` model, its special tokens (cls, sep, pad, unk,
    mask) and the transformers class they are saved as."""

    name: str
    specials: tuple[str, str, str, str, str]
    wrapper: str  # transformers tokenizer class
    build: Callable[[tuple[str, ...]], tuple[Tokenizer, Any]]  # (tokenizer, trainer)
    segment_ids: bool  # the pair template gives the second segment type id 1


def _wordpiece(specials):
    tok = Tokenizer(models.WordPiece(unk_token=specials[3]))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    return tok, trainers.WordPieceTrainer(vocab_size=VOCAB, special_tokens=list(specials))


def _byte_bpe(specials):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return tok, trainers.BpeTrainer(vocab_size=VOCAB, special_tokens=list(specials),
                                    initial_alphabet=pre_tokenizers.ByteLevel.alphabet())


def _unigram(specials):
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    return tok, trainers.UnigramTrainer(vocab_size=VOCAB, special_tokens=list(specials), unk_token=specials[3])


KINDS = {k.name: k for k in [
    TokenizerKind("wordpiece", ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"), "BertTokenizerFast", _wordpiece, True),
    # RoBERTa: <s> A </s></s> B </s>, no segment ids
    TokenizerKind("byte-bpe-roberta", ("<s>", "</s>", "<pad>", "<unk>", "<mask>"), "RobertaTokenizerFast",
                  _byte_bpe, False),
    # ModernBERT / Ettin: a byte-level BPE with BERT-style [CLS] A [SEP] B [SEP] and no segment ids
    TokenizerKind("byte-bpe-modernbert", ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"), "PreTrainedTokenizerFast",
                  _byte_bpe, False),
    TokenizerKind("unigram", ("[CLS]", "[SEP]", "[PAD]", "[UNK]", "[MASK]"), "DebertaV2TokenizerFast", _unigram,
                  True),
]}


@dataclass(frozen=True)
class TinyFamily:
    tokenizer: str  # a KINDS key
    config: Callable[[dict[str, int]], dict[str, Any]]  # special token ids -> config overrides for the tiny size


def _bert_like(ids):
    return {**SIZE, "max_position_embeddings": POSITIONS, "pad_token_id": ids["pad"]}


# One entry per transformers model_type a backbone row may name; a family missing here cannot be rehearsed yet.
FAMILIES: dict[str, TinyFamily] = {
    "bert": TinyFamily("wordpiece", _bert_like),
    "electra": TinyFamily("wordpiece", lambda ids: {**_bert_like(ids), "embedding_size": SIZE["hidden_size"]}),
    "distilbert": TinyFamily("wordpiece", lambda ids: {
        "dim": SIZE["hidden_size"], "n_layers": 2, "n_heads": 2, "hidden_dim": SIZE["intermediate_size"],
        "max_position_embeddings": POSITIONS, "pad_token_id": ids["pad"]}),
    "roberta": TinyFamily("byte-bpe-roberta", lambda ids: {
        **SIZE, "max_position_embeddings": POSITIONS + ids["pad"] + 1, "type_vocab_size": 1, "pad_token_id": ids["pad"],
        "bos_token_id": ids["cls"], "eos_token_id": ids["sep"]}),
    "deberta-v2": TinyFamily("unigram", lambda ids: {
        **SIZE, "max_position_embeddings": POSITIONS, "relative_attention": True, "position_buckets": 64,
        "max_relative_positions": -1, "pos_att_type": ["p2c", "c2p"], "position_biased_input": False,
        "norm_rel_ebd": "layer_norm", "share_att_key": True, "type_vocab_size": 0, "pad_token_id": ids["pad"]}),
    "modernbert": TinyFamily("byte-bpe-modernbert", lambda ids: {
        **SIZE, "max_position_embeddings": POSITIONS, "global_attn_every_n_layers": 1, "local_attention": 64,
        "pad_token_id": ids["pad"], "cls_token_id": ids["cls"], "sep_token_id": ids["sep"],
        "bos_token_id": ids["cls"], "eos_token_id": ids["sep"]}),
}


def train_tokenizer(kind_name: str, texts: Iterable[str]):
    """A transformers fast tokenizer of ``kind_name`` trained on ``texts`` (vocabulary :data:`VOCAB`)."""
    kind = KINDS[kind_name]
    tok, trainer = kind.build(kind.specials)
    tok.train_from_iterator(texts, trainer)
    cls, sep, pad, unk, mask = kind.specials
    ids = {t: tok.token_to_id(t) for t in kind.specials}
    if kind.name == "byte-bpe-roberta":
        tok.post_processor = processors.RobertaProcessing((sep, ids[sep]), (cls, ids[cls]))
    else:
        second = ":1" if kind.segment_ids else ""
        tok.post_processor = processors.TemplateProcessing(
            single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} $B{second} {sep}{second}",
            special_tokens=[(cls, ids[cls]), (sep, ids[sep])])
    wrapper = getattr(transformers, kind.wrapper)
    extra = {} if kind.segment_ids else {"model_input_names": ["input_ids", "attention_mask"]}
    if kind.name == "byte-bpe-roberta":
        extra.update(bos_token=cls, eos_token=sep)
    return wrapper(tokenizer_object=tok, cls_token=cls, sep_token=sep, pad_token=pad, unk_token=unk,
                   mask_token=mask, **extra)


def _family(spec: BackboneSpec) -> TinyFamily:
    family = FAMILIES.get(spec.family)
    if family is None:
        raise BenchError(f"backbone {spec.name!r}: family {spec.family!r} has no tiny rehearsal model (known: "
                         f"{', '.join(sorted(FAMILIES))})")
    return family


# Config keys that size a model: a tiny checkpoint sets its own.
SIZE_KEYS = {*SIZE, "vocab_size", "max_position_embeddings", "embedding_size", "dim", "n_layers", "n_heads",
             "hidden_dim", "type_vocab_size"}


def row_overrides(spec: BackboneSpec) -> dict[str, Any]:
    """The row's config overrides that are behaviour, not size (a layer count, ModernBERT's ``classifier_pooling``):
    they apply to the tiny checkpoint as to the real one."""
    return {k: v for k, v in spec.config.items() if k not in SIZE_KEYS or k == "num_hidden_layers"}


def tiny_config(spec: BackboneSpec, tokenizer) -> transformers.PretrainedConfig:
    """The config of a tiny model of ``spec``'s family, sized for ``tokenizer``, with the row's behaviour overrides
    (:func:`row_overrides`); a layer-count override (MiniLM-L3's first 3 layers) gets a checkpoint one layer deeper,
    so the row's own truncation path runs."""
    ids = {"cls": tokenizer.cls_token_id, "sep": tokenizer.sep_token_id, "pad": tokenizer.pad_token_id}
    overrides = _family(spec).config(ids)
    own = row_overrides(spec)
    if "num_hidden_layers" in own:
        overrides["num_hidden_layers"] = max(overrides.get("num_hidden_layers", 2), int(own.pop("num_hidden_layers")) + 1)
    return AutoConfig.for_model(spec.family, vocab_size=len(tokenizer), num_labels=1, **{**overrides, **own})


def write_tiny_checkpoint(spec: BackboneSpec, directory: Path, texts: list[str], *, with_head: bool,
                          seed: int = 0) -> Path:
    """Save a tiny random model of ``spec``'s architecture and a trained tokenizer of its kind in ``directory``.
    ``with_head``: a released reranker, its one-logit head where the row says the checkpoint keeps it (a linear
    head under ``head_weights``, as lightning-ir saves one, else the family's own head); without: the bare encoder
    (a hub backbone: the row's cell initialises the head)."""
    tokenizer = train_tokenizer(_family(spec).tokenizer, texts)
    config = tiny_config(spec, tokenizer)
    torch.manual_seed(seed)
    if with_head and spec.head == "linear":  # a linear head under the row's head_weights, as lightning-ir saves it
        return save_checkpoint(LinearHeadModel(AutoModel.from_config(config)), tokenizer, directory,
                               head_prefix=spec.head_weights or "linear")
    model = (AutoModelForSequenceClassification if with_head else AutoModel).from_config(config)
    directory.mkdir(parents=True, exist_ok=True)
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(directory)
    finally:
        hf_logging.enable_progress_bar()
    tokenizer.save_pretrained(directory)
    return directory
