"""Mid-training checkpoints: model weights as safetensors, optimiser/scheduler/RNG state beside them, and the best
validated weights so far (safetensors) when the run validates, written to a temporary directory and renamed into
place, so a killed cell resumes from its last complete checkpoint knowing its best step and that step's weights."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

MODEL, STATE, BEST = "model.safetensors", "state.pt", "best.safetensors"


def save(directory: Path, model: torch.nn.Module, opt, sched, scaler, state: dict[str, Any],
         best: dict[str, torch.Tensor] | None = None) -> None:
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=directory.parent, prefix=f".{directory.name}."))
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(tmp / MODEL))
    if best is not None:
        save_file({k: v.contiguous() for k, v in best.items()}, str(tmp / BEST))
    torch.save({"opt": opt.state_dict(), "sched": sched.state_dict(), "scaler": scaler.state_dict(),
                "torch_rng": torch.get_rng_state(), "loop": state}, tmp / STATE)
    old = directory.with_name(f".{directory.name}.old")
    if directory.exists():
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)


def load(directory: Path, model: torch.nn.Module, opt, sched, scaler) -> dict[str, Any] | None:
    """Restore everything from ``directory`` and return the loop state, or None when there is no checkpoint."""
    directory = Path(directory)
    if not (directory / MODEL).is_file() or not (directory / STATE).is_file():
        return None
    device = next(model.parameters()).device
    model.load_state_dict({k: v.to(device) for k, v in load_file(str(directory / MODEL)).items()})
    saved = torch.load(directory / STATE, weights_only=False)
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    scaler.load_state_dict(saved["scaler"])
    torch.set_rng_state(saved["torch_rng"])
    return saved["loop"]


def load_best(directory: Path) -> dict[str, torch.Tensor] | None:
    """The best validated weights saved in ``directory`` (on the CPU), or None."""
    path = Path(directory) / BEST
    return load_file(str(path)) if path.is_file() else None


def remove(directory: Path) -> None:
    shutil.rmtree(directory, ignore_errors=True)
