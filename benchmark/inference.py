"""Fast cross-encoder scoring: batched fast tokenization, length-sorted batches with dynamic padding,
``torch.inference_mode`` and autocast (bf16/fp16) on CUDA; on CPU, BERT-style models run the exact unpadded forward of
``fastpath`` (linear layers on real tokens only, last layer for the first token only).

Batches are sorted by exact token length (not a character-length proxy), which pads least; attention is SDPA, chosen
when the model is built (``BackboneSpec.attn_implementation``); ``torch.compile`` is off by default and meant for
CUDA, where its compile time pays back (``docs/performance.md`` has the CPU measurements behind these choices).

Precisions (``PRECISIONS``, the ``eval.precision`` axis) score the same trained model in another number format or
runtime, all existing library code: fp32; bf16 autocast (on CPU only where the processor computes bf16 natively,
AVX512-BF16 or AMX); int8 dynamic quantisation of every ``nn.Linear`` (``torch.ao.quantization.quantize_dynamic``,
weights int8, activations quantised per batch), which keeps the unpadded forward; ONNX Runtime on the exported Hugging
Face graph in fp32, or with int8 weights (``onnxruntime.quantization.quantize_dynamic``).
"""

from __future__ import annotations

import contextlib
import fnmatch
import math
import tempfile
import warnings
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .collection import Collection, Run
from .errors import BenchError
from .fastpath import first_logits
from .precisions import Precision, get_precision
from .progress import Progress

AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}
# Pairs tokenized and padded at once: bounds the padded id arrays (3 x 8192 x 512 int64 = 100 MB at most) when a
# whole evaluation set is scored in one call, while keeping enough pairs per chunk for length sorting to pay off.
CHUNK_PAIRS = 8192


def _tokenize(tokenizer, queries: Sequence[str], docs: Sequence[str], max_length: int, tensors: str,
              query_length: int | None = None, doc_length: int | None = None):
    """Right-padded pairs truncating the document only; a pair whose query alone leaves no room for its document
    truncates both sides (``longest_first``), without changing how the other pairs are truncated. With
    ``query_length`` / ``doc_length``, each side is first cut to its own limit (``_separate_limits``)."""
    queries, docs = list(queries), list(docs)
    if query_length is not None or doc_length is not None:
        return _separate_limits(tokenizer, queries, docs, max_length, tensors, query_length, doc_length)
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None and queries:
        try:
            return _backend_tokenize(tokenizer, backend, queries, docs, max_length, tensors)
        except Exception:  # noqa: BLE001 -- a query too long for "only_second": the per-pair path below
            pass
    try:
        return tokenizer(queries, docs, truncation="only_second", max_length=max_length, padding=True,
                         padding_side="right", return_tensors=tensors)
    except Exception:  # noqa: BLE001 -- `tokenizers` raises a bare Exception ("Truncation error: ...")
        pass
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    too_long = [len(ids) >= room for ids in tokenizer(queries, add_special_tokens=False)["input_ids"]]
    features: list[dict] = [{}] * len(queries)
    for strategy, flag in (("only_second", False), ("longest_first", True)):
        idx = [i for i, long in enumerate(too_long) if long == flag]
        if idx:
            part = tokenizer([queries[i] for i in idx], [docs[i] for i in idx], truncation=strategy,
                             max_length=max_length)
            for j, i in enumerate(idx):
                features[i] = {k: v[j] for k, v in part.items()}
    return tokenizer.pad(features, padding_side="right", return_tensors=tensors)


def _backend_tokenize(tokenizer, backend, queries: list[str], docs: list[str], max_length: int, tensors: str):
    """The Rust ``tokenizers`` call that ``tokenizer(...)`` wraps, minus the wrapper's per-token Python conversion to
    arrays (which costs more than the Rust call itself): same template, truncation and right padding."""
    # transformers' own __call__ re-sets truncation and padding on this object every time, so setting them is safe.
    backend.enable_truncation(max_length, strategy="only_second")
    backend.enable_padding(direction="right", pad_id=tokenizer.pad_token_id, pad_token=tokenizer.pad_token,
                           pad_type_id=tokenizer.pad_token_type_id)
    encodings = backend.encode_batch(list(zip(queries, docs)))
    out = {"input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
           "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
           "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64)}
    if "token_type_ids" not in tokenizer.model_input_names:
        out.pop("token_type_ids")
    return {k: torch.from_numpy(v) for k, v in out.items()} if tensors == "pt" else out


def kept_lengths(n_query: int, n_doc: int, room: int, query_length: int | None,
                 doc_length: int | None) -> tuple[int, int]:
    """Query and passage tokens a pair keeps: each cut to its own limit, then the passage cut to the ``room`` the
    pair's length leaves (``only_second``); a query that alone fills the room keeps ``room`` minus at most half of
    it for the passage (as ``longest_first`` does)."""
    n_query, n_doc = min(n_query, query_length or n_query), min(n_doc, doc_length or n_doc)
    if n_query + n_doc <= room:
        return n_query, n_doc
    if n_query < room:
        return n_query, room - n_query
    n_doc = min(n_doc, room // 2)
    return room - n_doc, n_doc


def _separate_limits(tokenizer, queries: list[str], docs: list[str], max_length: int, tensors: str,
                     query_length: int | None, doc_length: int | None):
    """Pairs whose query and passage are cut to their own limits on token ids (``kept_lengths``), then joined
    with the model's special tokens: lightning-ir's CrossEncoderTokenizer (webis-de/lightning-ir:
    lightning_ir/cross_encoder/cross_encoder_tokenizer.py, ``_preprocess``) cuts the same ids, though it decodes them
    to text and tokenizes again. The Rust tokenizer where there is one (queries tokenized once each), else the
    Python tokenizer pair by pair; both give the same ids."""
    room = max_length - tokenizer.num_special_tokens_to_add(pair=True)
    unique = list(dict.fromkeys(queries))
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        q_ids = dict(zip(unique, tokenizer(unique, add_special_tokens=False)["input_ids"]))
        d_ids = tokenizer(docs, add_special_tokens=False)["input_ids"]
        features = []
        for q, d in zip(queries, d_ids):
            nq, nd = kept_lengths(len(q_ids[q]), len(d), room, query_length, doc_length)
            features.append(tokenizer.prepare_for_model(
                q_ids[q][:nq], d[:nd], add_special_tokens=True,
                return_token_type_ids="token_type_ids" in tokenizer.model_input_names))
        return tokenizer.pad(features, padding_side="right", return_tensors=tensors)
    backend.no_truncation()  # transformers' own __call__ re-sets both on this object every time
    backend.no_padding()
    q_enc = dict(zip(unique, backend.encode_batch(unique, add_special_tokens=False)))
    pairs = []
    for q, d in zip(queries, backend.encode_batch(docs, add_special_tokens=False)):
        nq, nd = kept_lengths(len(q_enc[q]), len(d), room, query_length, doc_length)
        query = q_enc[q] if nq == len(q_enc[q]) else tokenizers_copy(q_enc[q])
        query.truncate(nq)
        d.truncate(nd)
        pairs.append(backend.post_process(query, d, add_special_tokens=True))
    width = max(len(e.ids) for e in pairs)
    out = {name: np.full((len(pairs), width), fill, dtype=np.int64) for name, fill in
           (("input_ids", tokenizer.pad_token_id), ("token_type_ids", tokenizer.pad_token_type_id),
            ("attention_mask", 0))}
    for row, e in enumerate(pairs):
        out["input_ids"][row, :len(e.ids)] = e.ids
        out["token_type_ids"][row, :len(e.ids)] = e.type_ids
        out["attention_mask"][row, :len(e.ids)] = 1
    if "token_type_ids" not in tokenizer.model_input_names:
        out.pop("token_type_ids")
    return {k: torch.from_numpy(v) for k, v in out.items()} if tensors == "pt" else out


def tokenizers_copy(encoding):
    """A copy of a Rust ``Encoding`` (``truncate`` works in place; a query's encoding is shared by its pairs)."""
    return type(encoding).merge([encoding], growing_offsets=False)


def encode_pairs(tokenizer, queries: Sequence[str], docs: Sequence[str], max_length: int,
                 use_token_type_ids: bool = True, *, query_length: int | None = None,
                 doc_length: int | None = None) -> dict[str, torch.Tensor]:
    """Tokenize (query, doc) pairs in one call, padded to the longest pair; the query survives truncation."""
    enc = dict(_tokenize(tokenizer, queries, docs, max_length, "pt", query_length, doc_length))
    if not use_token_type_ids:
        enc.pop("token_type_ids", None)
    return enc


def length_batches(lengths: np.ndarray, batch_size: int) -> tuple[np.ndarray, list[tuple[slice, int]]]:
    """Longest-first order of the pairs and its batches, each a (slice of that order, width = its longest pair).
    Batches hold at most ``batch_size`` pairs and are of balanced size (100 pairs at 32: 4 x 25, not 3 x 32 + 4):
    smaller sorted batches span fewer lengths, so they pad less, and no batch is a small remnant."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    size = math.ceil(len(order) / (math.ceil(len(order) / batch_size) or 1)) or 1
    return order, [(slice(start, start + size), int(lengths[order[start]])) for start in range(0, len(order), size)]


def autocast_context(device: torch.device | str, dtype: str):
    """fp32 -> no autocast; bf16/fp16 -> ``torch.autocast`` on the device type (CPU autocast supports bf16)."""
    if dtype == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=torch.device(device).type, dtype=AUTOCAST[dtype])


class Reranker:
    """Scores (query, doc) pairs with a one-logit sequence-classification model (score = ``logits[:, 0]``)."""

    def __init__(self, model, tokenizer, *, max_length: int = 512, batch_size: int = 64,
                 device: str | torch.device = "cpu", dtype: str = "fp32", use_token_type_ids: bool = True,
                 compile: bool = False, unpad: bool = True,
                 forward: tuple[Callable[..., torch.Tensor], str] | None = None, precision: str | None = None,
                 max_query_length: int | None = None, max_doc_length: int | None = None) -> None:
        """``forward``: a ``logits[:, 0]`` function and its name, replacing the model's own (an ONNX Runtime session);
        ``precision``: the ``PRECISIONS`` row this reranker scores in (recorded with latency; default ``dtype``);
        ``max_query_length`` / ``max_doc_length``: each side's own token limit, as in training."""
        if dtype != "fp32" and dtype not in AUTOCAST:
            raise ValueError(f"dtype must be fp32, bf16 or fp16, got {dtype!r}")
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.precision = precision or dtype
        # The path name is recorded with latency: which forward was timed.
        if forward is not None:
            self.logits, self.path = forward
        elif compile:  # dynamic=True: every batch has its own width; one graph instead of a recompile per width.
            compiled = torch.compile(self.model, dynamic=True)
            self.logits, self.path = (lambda **batch: compiled(**batch).logits[:, 0]), "hf-compiled"
        else:
            self.logits, self.path = first_logits(self.model, self.device, unpad)
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.max_query_length, self.max_doc_length = max_query_length, max_doc_length
        self.batch_size = batch_size
        self.dtype = dtype
        self.use_token_type_ids = use_token_type_ids

    def score(self, queries: Sequence[str], docs: Sequence[str], desc: str | None = None) -> np.ndarray:
        """One float32 score per pair, in input order; ``desc`` names the stage's progress (None: silent)."""
        if len(queries) != len(docs):
            raise ValueError(f"{len(queries)} queries but {len(docs)} documents")
        with Progress(len(queries), desc, "pairs") as bar:
            chunks = [self._score_chunk(queries[i:i + CHUNK_PAIRS], docs[i:i + CHUNK_PAIRS], bar)
                      for i in range(0, len(queries), CHUNK_PAIRS)]
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)

    def _score_chunk(self, queries: Sequence[str], docs: Sequence[str], bar: Progress) -> np.ndarray:
        # One tokenizer call pads every pair to the chunk's longest (right padding); each length-sorted batch then
        # takes only the columns up to its own longest pair: dynamic padding without per-row Python work.
        enc = _tokenize(self.tokenizer, queries, docs, self.max_length, "np", self.max_query_length,
                        self.max_doc_length)
        order, batches = length_batches(enc["attention_mask"].sum(axis=1), self.batch_size)
        keys = ["input_ids", "attention_mask"] + (["token_type_ids"] if self.use_token_type_ids
                                                   and "token_type_ids" in enc else [])
        arrays = {k: torch.from_numpy(np.ascontiguousarray(enc[k][order])) for k in keys}
        if self.device.type == "cuda":  # page-locked host memory: the copies below overlap with compute
            arrays = {k: v.pin_memory() for k, v in arrays.items()}
        # Scores stay on the device until the end: no per-batch synchronisation on CUDA.
        scores = torch.empty(len(order), dtype=torch.float32, device=self.device)
        with torch.inference_mode(), autocast_context(self.device, self.dtype):
            for rows, width in batches:
                batch = {k: v[rows, :width].to(self.device, non_blocking=True) for k, v in arrays.items()}
                scores[rows] = self.logits(**batch).float()
                bar.update(len(order[rows]))
        out = np.empty(len(order), dtype=np.float32)
        out[order] = scores.cpu().numpy()
        return out

    def rerank(self, collection: Collection, qids: Iterable[str], k: int = 100, desc: str | None = None) -> Run:
        """Rerank each query's first-stage top-k; returns an ir_measures-style run of the model's scores (``desc``:
        as for :meth:`score`)."""
        pairs = [(q, d) for q in qids for d in collection.ranked(q, k)]
        scores = self.score([collection.queries[q] for q, _ in pairs], [collection.docs[d] for _, d in pairs], desc)
        run: Run = {}
        for (q, d), s in zip(pairs, scores):
            run.setdefault(q, {})[d] = float(s)
        return run


# /proc/cpuinfo flags of native bf16 arithmetic; without them oneDNN emulates bf16 through fp32 (no speed to measure).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags(path: Path = Path("/proc/cpuinfo")) -> set[str]:
    """The processor's feature flags (Linux), empty where the file does not exist."""
    try:
        text = path.read_text()
    except OSError:
        return set()
    return {flag for line in text.splitlines() if line.startswith("flags") for flag in line.split(":", 1)[1].split()}


def unsupported(name: str, device: torch.device | str, flags: set[str] | None = None) -> str | None:
    """Why ``name`` cannot be measured on ``device`` (one line for the record), or None when it can."""
    row, device = get_precision(name), torch.device(device)
    if row.cpu_only and device.type != "cpu":
        return f"{name} runs on CPU only"
    if row.weights == "bf16" and device.type == "cpu":
        flags = cpu_flags() if flags is None else flags
        if not flags & set(BF16_CPU_FLAGS):
            return f"not supported: this CPU has no native bf16 ({' / '.join(BF16_CPU_FLAGS)} absent)"
    return None


def precision_reranker(model, tokenizer, name: str, *, device: str | torch.device = "cpu",
                       calibration: tuple[Sequence[str], Sequence[str]] | None = None, **kwargs) -> Reranker:
    """A ``Reranker`` scoring ``model`` (left unchanged) in precision ``name``; ``calibration``: (queries, docs)
    pairs for a calibrated row's activation ranges (training pairs, not the evaluated ones); ``kwargs`` as for
    ``Reranker``."""
    row = get_precision(name)
    if row.calibrated and not calibration:
        raise BenchError(f"precision {name!r} is calibrated: it needs calibration pairs (training pairs)")
    model = model.to(device).eval()
    if row.runtime == "onnxruntime":
        use_types = kwargs.get("use_token_type_ids", True) and "token_type_ids" in tokenizer.model_input_names
        calib = None
        if calibration:
            calib = _tokenize(tokenizer, *calibration, kwargs.get("max_length", 512), "np",
                              kwargs.get("max_query_length"), kwargs.get("max_doc_length"))
        forward = onnx_forward(model, row, token_type_ids=use_types, calibration=calib)
        return Reranker(model, tokenizer, device=device, forward=forward, precision=name, **kwargs)
    if row.weights == "int8":
        model = quantize_linears(model, row)
    dtype = "bf16" if row.weights == "bf16" else "fp32"
    return Reranker(model, tokenizer, device=device, dtype=dtype, precision=name, **kwargs)


def kept_in_fp32(names: Iterable[str], row: Precision, layers: int) -> list[str]:
    """The names (modules, or ONNX nodes with "/" read as ".") that ``row.keep_fp32`` leaves in fp32."""
    globs = [p.replace("{last}", str(layers - 1)) for p in row.keep_fp32]
    return [n for n in names if any(fnmatch.fnmatchcase(n.replace("/", "."), g) for g in globs)]


def quantize_linears(model, row: Precision):
    """A copy of ``model`` with its ``nn.Linear``s dynamically quantised to int8 (per channel if the row says so),
    except those ``row.keep_fp32`` names."""
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig

    linears = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    kept = set(kept_in_fp32(linears, row, model.config.num_hidden_layers))
    qconfig = per_channel_dynamic_qconfig if row.per_channel else default_dynamic_qconfig
    spec = {n: qconfig for n in linears if n not in kept}
    return torch.ao.quantization.quantize_dynamic(model, spec, dtype=torch.qint8, inplace=False)


# Static (calibrated) rows quantise the matrix products only: quantising layer norms, softmax and GELU inputs to
# fixed ranges is where static int8 loses a transformer's accuracy.
STATIC_OPS = ["MatMul", "Gemm"]


def export_onnx(model, path: Path, *, token_type_ids: bool, int8_path: Path | None = None) -> Path:
    """Export the model's own (padded) forward to ``path`` and, with ``int8_path``, a copy with its weights quantised
    to int8 there; returns the file to score with (the int8 one where asked). Inputs ``input_ids``,
    ``attention_mask`` (and ``token_type_ids``), output ``logits`` [batch, 1], batch and length dynamic: the graph
    optimum's ``ORTModelForSequenceClassification`` (sentence-transformers' ``CrossEncoder(path, backend="onnx")``)
    feeds and reads."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_type_ids else [])
    example = {k: torch.ones(2, 8, dtype=torch.long) for k in names}
    if token_type_ids:
        example["token_type_ids"] = torch.zeros(2, 8, dtype=torch.long)

    class Logits(torch.nn.Module):  # keyword inputs in a fixed order, one output
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(names, inputs))).logits

    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # The tracer warns about Python conditions it freezes (causal flags, mask padding): constant for an encoder.
        warnings.simplefilter("ignore")
        # The TorchScript exporter (dynamo=False): it needs no onnxscript, and batch and length stay dynamic.
        torch.onnx.export(Logits().eval(), tuple(example[k] for k in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes={**{k: {0: "batch", 1: "length"} for k in names},
                                                                 "logits": {0: "batch"}},
                          opset_version=17, dynamo=False)
    if int8_path is None:
        return path
    quantize_dynamic(str(path), str(int8_path), weight_type=QuantType.QInt8)
    return int8_path


def onnx_forward(model, row: Precision, *, token_type_ids: bool,
                 calibration: dict[str, np.ndarray] | None = None) -> tuple[Callable[..., torch.Tensor], str]:
    """``export_onnx`` into a temporary directory; optionally fuse it (``row.optimize``) and quantise it to int8
    (dynamic, or static on ``calibration``'s tokenized pairs); return a ``logits[:, 0]`` function over an ONNX
    Runtime CPU session with torch's thread count and the path's name."""
    import onnxruntime as ort

    names = ["input_ids", "attention_mask"] + (["token_type_ids"] if token_type_ids else [])
    with tempfile.TemporaryDirectory() as tmp:
        path = export_onnx(model, Path(tmp) / "model.onnx", token_type_ids=token_type_ids)
        if row.optimize:
            path = _optimize_onnx(path, model.config)
        if row.weights == "int8":
            path = _quantize_onnx(path, row, model.config.num_hidden_layers,
                                  {k: calibration[k] for k in names} if calibration else None)
        options = ort.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def logits(**batch: torch.Tensor) -> torch.Tensor:
        feeds = {k: batch[k].numpy() for k in names}
        return torch.from_numpy(np.ascontiguousarray(session.run(None, feeds)[0][:, 0]))

    return logits, "onnxruntime" + ("-opt" if row.optimize else "") + ("-int8" if row.weights == "int8" else "")


def _optimize_onnx(path: Path, config) -> Path:
    """onnxruntime's transformer optimizer for BERT-layout graphs: fused attention, GELU, skip layer norms."""
    from onnxruntime.transformers.optimizer import optimize_model

    out = path.with_suffix(".opt.onnx")
    optimize_model(str(path), model_type="bert", num_heads=config.num_attention_heads,
                   hidden_size=config.hidden_size).save_model_to_file(str(out))
    return out


def _quantize_onnx(path: Path, row: Precision, layers: int, calibration: dict[str, np.ndarray] | None) -> Path:
    """int8 weights (signed, per channel if the row says so), activations quantised per batch, or with static ranges
    from ``calibration`` (QDQ format); the nodes ``row.keep_fp32`` names stay fp32."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    out = path.with_suffix(".int8.onnx")
    excluded = kept_in_fp32([n.name for n in onnx.load(str(path)).graph.node], row, layers)
    # fused (com.microsoft) nodes of an optimised graph escape shape inference: their outputs are fp32
    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT}
    if calibration is None:
        quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8, per_channel=row.per_channel,
                         nodes_to_exclude=excluded, extra_options=extra)
        return out

    class Batches(CalibrationDataReader):  # the calibration pairs in batches of 32, in order
        def __init__(self) -> None:
            rows = len(next(iter(calibration.values())))
            self.batches = iter([{k: v[i:i + 32] for k, v in calibration.items()} for i in range(0, rows, 32)])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.batches, None)

    quantize_static(str(path), str(out), Batches(), quant_format=QuantFormat.QDQ, per_channel=row.per_channel,
                    weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8, op_types_to_quantize=STATIC_OPS,
                    nodes_to_exclude=excluded, extra_options=extra)
    return out
