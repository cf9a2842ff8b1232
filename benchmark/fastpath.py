"""An exact, cheaper forward for BERT-style cross-encoders (BERT, MiniLM, RoBERTa, ELECTRA), for scoring and training.

The Hugging Face forward spends FLOPs a reranker never reads:

- **padding**: every linear layer (Q/K/V, attention output, feed-forward: ~95% of the FLOPs at these lengths) runs
  on the padded ``[B, L]`` grid. Here they run on the packed real tokens only (``[T, d]``, T = the batch's token
  count); only the attention itself is computed on the padded grid, with the key-padding mask.
- **the last layer**: the head reads the first token ([CLS] / <s>) alone, so the last layer needs keys and values
  of every token but queries, attention output and feed-forward of that one token: 10 of its 12 d^2 per token go.

Same weights, same operations, same order within each row: scores equal the Hugging Face forward up to float
summation order (max |delta| ~3e-8 on all-MiniLM-L6-v2), and so do gradients. It reuses the model's own modules
(embeddings, projections, LayerNorms, activation, head), so a fine-tuned checkpoint of these families needs nothing
extra. In training, dropout sits where the Hugging Face forward puts it (embeddings, attention probabilities, both
residual branches, head) at the config's rates; on the attention probabilities and residual branches its mask is
drawn by :func:`dropout`, 16 bits per variate instead of a Bernoulli draw each (cheaper on a CPU, where the draws
dominate the cost of dropout).

The packing (boolean indexing) synchronises with the host, so the path is used on CPU only; CUDA keeps the Hugging
Face forward. Its speed against that forward is in ``docs/performance.md``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

from .registry import Registry

Head = Callable[[torch.nn.Module, torch.Tensor], torch.Tensor]  # (model, first-token states [B, d]) -> logits

# Sequence-classification classes whose encoder layers have the BERT layout, and how each one's head turns the
# first token's last hidden state into logits. A family with this layout is one entry here.
HEADS: Registry[Head] = Registry("fast-path head")
HEADS.add("BertForSequenceClassification",
          lambda model, first: model.classifier(model.dropout(model.bert.pooler(first[:, None]))))
for _name in ("RobertaForSequenceClassification", "XLMRobertaForSequenceClassification",
              "ElectraForSequenceClassification"):
    HEADS.add(_name, lambda model, first: model.classifier(first[:, None]))  # the head takes features[:, 0]
# A "linear" head (models.LinearHeadModel) on an encoder of this layout: keyed by its ``head_key``.
for _name in ("BertModel", "RobertaModel", "XLMRobertaModel", "ElectraModel"):
    HEADS.add(f"linear:{_name}", lambda model, first: model.linear(first))


def unpadded_forward(model: torch.nn.Module) -> Callable[..., torch.Tensor] | None:
    """``f(input_ids, attention_mask, token_type_ids=None) -> logits[:, 0]`` for a model this path supports
    (a ``HEADS`` class or ``head_key``, absolute positions, encoder only), else None."""
    name = getattr(model, "head_key", type(model).__name__)
    config = model.config
    if (name not in HEADS or config.is_decoder
            or getattr(config, "position_embedding_type", "absolute") != "absolute"):
        return None
    return functools.partial(_forward, model, HEADS.get(name))


def first_logits(model: torch.nn.Module, device: torch.device | str,
                 unpad: bool = True) -> tuple[Callable[..., torch.Tensor], str]:
    """The function computing a batch's ``logits[:, 0]`` and its name: the unpadded forward on CPU where the model
    has one (and ``unpad``), else the model's own forward."""
    fast = unpadded_forward(model) if unpad and torch.device(device).type == "cpu" else None
    if fast is not None:
        return fast, "unpadded"
    return (lambda **batch: model(**batch).logits[:, 0]), "hf"


def _split_heads(x: torch.Tensor, keep: torch.Tensor, heads: int) -> torch.Tensor:
    """Packed ``[T, d]`` -> padded ``[B, heads, L, d / heads]`` (zeros at padding, masked out of attention)."""
    padded = x.new_zeros(*keep.shape, x.shape[-1])
    padded[keep] = x
    return padded.view(*keep.shape, heads, -1).transpose(1, 2)


def _forward(model: torch.nn.Module, head: Head, input_ids: torch.Tensor, attention_mask: torch.Tensor,
             token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
    keep = attention_mask.bool()
    if not bool(keep[:, 0].all()):  # the head reads position 0: it must be a real token (right padding)
        raise ValueError("unpadded_forward needs right-padded inputs (position 0 is a padding token)")
    base = model.base_model
    hidden = base.embeddings(input_ids=input_ids, token_type_ids=token_type_ids)
    if getattr(base, "embeddings_project", None) is not None:  # ELECTRA with embedding_size != hidden_size
        hidden = base.embeddings_project(hidden)
    lengths = keep.sum(dim=1)
    first = lengths.cumsum(0) - lengths  # row of each sequence's first token in the packed layout
    h = hidden[keep]
    key_mask = keep[:, None, None, :]
    layers = base.encoder.layer
    for i, layer in enumerate(layers):
        attn = layer.attention.self
        heads = attn.num_attention_heads
        k, v = (_split_heads(proj(h), keep, heads) for proj in (attn.key, attn.value))
        last = i == len(layers) - 1
        if last:  # from here on only the first token is needed
            h = h[first]
            q = attn.query(h).view(len(h), 1, heads, -1).transpose(1, 2)
        else:
            q = _split_heads(attn.query(h), keep, heads)
        p = attn.dropout.p if model.training else 0.0
        ctx = _attention(q, k, v, key_mask, attn.attention_head_size ** -0.5, p).transpose(1, 2).flatten(2)
        ctx = ctx[:, 0] if last else ctx[keep]
        a = _residual(layer.attention.output, ctx, h, model.training)
        h = _residual(layer.output, layer.intermediate(a), a, model.training)
    return head(model, h)[:, 0]


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor, scale: float,
               p: float) -> torch.Tensor:
    """softmax(q k^T * scale, keys masked) v, with dropout ``p`` on the attention probabilities. Without dropout it
    is SDPA's kernel; with it, the same formula spelled out so the probabilities go through :func:`dropout` (SDPA's
    CPU dropout draws one Bernoulli variate per probability)."""
    if p == 0.0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, scale=scale)
    probs = (q @ k.transpose(-1, -2) * scale).masked_fill(~key_mask, float("-inf")).softmax(dim=-1)
    return dropout(probs, p) @ v


def _residual(block: torch.nn.Module, x: torch.Tensor, residual: torch.Tensor, training: bool) -> torch.Tensor:
    """What BERT's ``SelfOutput`` / ``Output`` block computes, LayerNorm(dropout(dense(x)) + residual), with its
    dropout by :func:`dropout` (the block's own modules and rate)."""
    return block.LayerNorm(dropout(block.dense(x), block.dropout.p if training else 0.0) + residual)


# Dropout keeps an element where a random 16-bit integer is at least this fraction of its range: 4 variates per
# 64-bit draw of torch's generator instead of one Bernoulli draw each. The drop rate is p rounded to 2^-16.
_LEVELS = 2 ** 16


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """Inverted dropout (Srivastava et al. 2014): each element zeroed with probability p' = round(p * 2^16) / 2^16
    (0.1 -> 0.1000061), the others scaled by 1 / (1 - p'), so the expectation is kept exactly. The mask comes from
    torch's default generator, so ``torch.manual_seed`` and a checkpoint's saved RNG state fix it as they fix
    ``nn.Dropout``'s; the stream differs from ``nn.Dropout``'s, the distribution is the same up to that rounding."""
    dropped = round(p * _LEVELS)
    if dropped == 0:
        return x
    if dropped >= _LEVELS:  # p = 1 drops everything, as nn.Dropout does (no 1 / (1 - p) to take)
        return x * 0.0
    n = x.numel()
    words = torch.randint(-2 ** 63, 2 ** 63 - 1, (-(-n // 4),), dtype=torch.int64, device=x.device)
    keep = words.view(torch.int16)[:n].view(x.shape) >= dropped - _LEVELS // 2
    return torch.where(keep, x * (_LEVELS / (_LEVELS - dropped)), 0.0)  # a Python scale: exact in bf16 too
