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


PRECISIONS: Registry[Precision] = Registry("precision")
PRECISIONS.add("fp32", Precision("torch", "fp32"))
PRECISIONS.add("bf16", Precision("torch", "bf16"))
PRECISIONS.add("int8", Precision("torch", "int8", cpu_only=True))
PRECISIONS.add("onnx-fp32", Precision("onnxruntime", "fp32", cpu_only=True))
PRECISIONS.add("onnx-int8", Precision("onnxruntime", "int8", cpu_only=True))


def get_precision(name: str) -> Precision:
    """The row, or a one-line error for an unknown name or an ONNX row without onnxruntime/onnx installed."""
    row = PRECISIONS.get(name)
    if row.runtime == "onnxruntime":
        missing = [m for m in ("onnxruntime", "onnx") if importlib.util.find_spec(m) is None]
        if missing:
            raise BenchError(f"precision {name!r} needs {' and '.join(missing)} "
                             f"(pip install {' '.join(missing)}, or pip install -e '.[onnx]')")
    return row
