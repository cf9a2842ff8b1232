"""Precision rows (the ``eval.precision`` axis): the number formats and runtimes a trained model is also scored in.
``benchmark.inference`` builds the reranker of each row."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from .errors import BenchError
from .registry import Registry


@dataclass(frozen=True)
class Precision:
    """A number format and runtime a trained model is scored in (one ``eval.precision`` row)."""

    runtime: str  # "torch" | "onnxruntime"
    weights: str  # "fp32" | "bf16" | "int8": the format of the weights the matrix products read
    cpu_only: bool = False  # dynamic int8 kernels (fbgemm, ONNX Runtime's CPU provider) exist on CPU only
    per_channel: bool = False  # int8: one weight scale per output channel instead of one per matrix
    # int8: glob patterns over module names (ONNX node names with "/" read as ".") whose matrix products stay fp32;
    # "{last}" stands for the index of the encoder's last layer
    keep_fp32: tuple[str, ...] = ()
    optimize: bool = False  # onnxruntime: fuse attention, GELU and layer norms (its transformer optimizer) first
    calibrated: bool = False  # onnxruntime int8: static activation ranges from calibration pairs, not per batch


PRECISIONS: Registry[Precision] = Registry("precision")
PRECISIONS.add("fp32", Precision("torch", "fp32"))
PRECISIONS.add("bf16", Precision("torch", "bf16"))
PRECISIONS.add("int8", Precision("torch", "int8", cpu_only=True))
PRECISIONS.add("onnx-fp32", Precision("onnxruntime", "fp32", cpu_only=True))
PRECISIONS.add("onnx-int8", Precision("onnxruntime", "int8", cpu_only=True))
# The layers whose int8 error reaches the score most directly: the last encoder layer (only its [CLS] row feeds the
# head), the pooler and the classifier; and the embeddings (torch never quantises their lookups, onnxruntime's
# default quantises the Gather nodes too).
SENSITIVE = ("*embeddings*", "*layer.{last}.*", "*pooler*", "*classifier*")
PRECISIONS.add("int8-perchannel", Precision("torch", "int8", cpu_only=True, per_channel=True))
PRECISIONS.add("int8-selective", Precision("torch", "int8", cpu_only=True, per_channel=True, keep_fp32=SENSITIVE))
PRECISIONS.add("onnx-fp32-opt", Precision("onnxruntime", "fp32", cpu_only=True, optimize=True))
PRECISIONS.add("onnx-int8-perchannel", Precision("onnxruntime", "int8", cpu_only=True, per_channel=True,
                                                 keep_fp32=SENSITIVE))
PRECISIONS.add("onnx-int8-opt", Precision("onnxruntime", "int8", cpu_only=True, per_channel=True,
                                          keep_fp32=SENSITIVE, optimize=True))
PRECISIONS.add("onnx-int8-static", Precision("onnxruntime", "int8", cpu_only=True, per_channel=True,
                                             keep_fp32=SENSITIVE, calibrated=True))


def get_precision(name: str) -> Precision:
    """The row, or a one-line error for an unknown name or an ONNX row without onnxruntime/onnx installed."""
    row = PRECISIONS.get(name)
    if row.runtime == "onnxruntime":
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            raise BenchError(f"precision {name!r} needs {' and '.join(missing)} "
                             f"(pip install {' '.join(missing)}, or pip install -e '.[onnx]')")
    return row
