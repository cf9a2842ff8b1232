"""Fast cross-encoder scoring: batched fast tokenization, length-sorted batches with dynamic padding,
``torch.inference_mode`` and autocast (bf16/fp16) on CUDA."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence

import numpy as np
import torch

from .collection import Collection, Run

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}


def encode_pairs(tokenizer, queries: Sequence[str], docs: Sequence[str], max_length: int,
                 use_token_type_ids: bool = True) -> dict[str, torch.Tensor]:
    """Tokenize (query, doc) pairs in one call; truncate the document first so the query survives."""
    try:
        enc = tokenizer(list(queries), list(docs), truncation="only_second", max_length=max_length,
                        padding=True, return_tensors="pt")
    except Exception:  # noqa: BLE001 -- a query longer than max_length alone: fall back to truncating both
        enc = tokenizer(list(queries), list(docs), truncation="longest_first", max_length=max_length,
                        padding=True, return_tensors="pt")
    if not use_token_type_ids:
        enc.pop("token_type_ids", None)
    return dict(enc)


def autocast_context(device: torch.device | str, dtype: str):
    """fp32 -> no autocast; bf16/fp16 -> ``torch.autocast`` on the device type (CPU autocast supports bf16)."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST[dtype])


class Reranker:
    """Scores (query, doc) pairs with a one-logit sequence-classification model."""

    def __init__(self, model, tokenizer, *, max_length: int = 512, batch_size: int = 64,
                 device: str | torch.device = "cpu", dtype: str = "fp32", use_token_type_ids: bool = True) -> None:
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.batch_size = batch_size
        self.dtype = dtype
        self.use_token_type_ids = use_token_type_ids

    def score(self, queries: Sequence[str], docs: Sequence[str]) -> np.ndarray:
        """One float per pair, in input order."""
        n = len(queries)
        if n == 0:
            return np.zeros(0, dtype=np.float32)
        # One tokenizer call pads every pair to the longest (right padding); each length-sorted batch then takes
        # only the columns up to its own longest pair: dynamic padding without per-row Python work.
        enc = self.tokenizer(list(queries), list(docs), truncation="only_second", max_length=self.max_length,
                             padding=True, return_tensors="np")
        lengths = enc["attention_mask"].sum(axis=1)
        order = np.argsort(-lengths, kind="stable")
        keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if self.use_token_type_ids
                                                   and "token_type_ids" in enc else [])
        arrays = {k: torch.from_numpy(np.ascontiguousarray(enc[k][order])) for k in keys}
        out = np.empty(n, dtype=np.float32)
        with torch.inference_mode(), autocast_context(self.device, self.dtype):
            for start in range(0, n, self.batch_size):
                width = int(lengths[order[start]])
                batch = {k: v[start:start + self.batch_size, :width].to(self.device, non_blocking=True)
                         for k, v in arrays.items()}
                out[order[start:start + self.batch_size]] = self.model(**batch).logits[:, 0].float().cpu().numpy()
        return out

    def rerank(self, collection: Collection, qids: Iterable[str], k: int = 100) -> Run:
        """Rerank each query's first-stage top-k; returns an ir_measures-style run of the model's scores."""
        pairs = [(q, d) for q in qids for d in collection.ranked(q, k)]
        scores = self.score([collection.queries[q] for q, _ in pairs], [collection.docs[d] for _, d in pairs])
        run: Run = {}
        for (q, d), s in zip(pairs, scores):
            run.setdefault(q, {})[d] = float(s)
        return run
