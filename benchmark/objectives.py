"""Objective rows (the ``objective`` axis): what each training objective is, without torch.

A row says which family the objective belongs to, what it reads its targets as and where it comes from; its loss
function is registered under the same name in ``benchmark.losses`` (whose docstrings give the formulas), so a grid
is validated, dry-run and reported without importing torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from . import typed
from .registry import Registry


@dataclass(frozen=True)
class ObjectiveSpec:
    name: str
    family: Literal["pointwise", "pairwise", "listwise"]  # what one loss unit compares
    target: Literal["probability", "score"]  # targets in [0, 1], or scores where higher = more relevant
    paper: str

    def __post_init__(self) -> None:
        typed.check_choices(self, f"objective {self.name!r}: ")


OBJECTIVES: Registry[ObjectiveSpec] = Registry("objective")
for _row in [
    ObjectiveSpec("bce", "pointwise", "probability", "Nogueira & Cho 2019, arXiv:1901.04085"),
    ObjectiveSpec("mse", "pointwise", "score", "score regression onto teacher logits"),
    ObjectiveSpec("margin-mse", "pairwise", "score", "Hofstätter et al. 2020, arXiv:2010.02666"),
    ObjectiveSpec("ranknet", "pairwise", "score", "Burges et al. 2005, ICML"),
    ObjectiveSpec("hinge", "pairwise", "score", "seed paper arXiv:2603.03010 (xpm_torch HingeLoss, margin 1)"),
    ObjectiveSpec("infonce", "listwise", "score", "Gao et al. 2021, ECIR (LCE); van den Oord et al. 2018"),
    ObjectiveSpec("listnet", "listwise", "score", "Cao et al. 2007, ICML"),
    ObjectiveSpec("adr-mse", "listwise", "score", "Schlatt et al. 2025, ECIR (Rank-DistiLLM), arXiv:2405.07920"),
    ObjectiveSpec("lambdaloss", "listwise", "score", "Wang et al. 2018, CIKM (LambdaLoss, NDCG-Loss2)"),
]:
    OBJECTIVES.add(_row.name, _row)
