"""Training objectives: pure functions of (student scores, targets, mask) -> scalar loss.

Every function takes ``scores`` [B, K] (student logits for B queries x K candidates), ``targets`` [B, K]
(what the objective's ``target`` field says: probabilities in [0, 1], or scores where higher = more relevant) and a
boolean ``mask`` [B, K] that is False for padding; padded entries never reach the value or the gradient.
Losses are means over the valid units (entries, pairs or lists) of the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import CellFailure
from .registry import Registry

Loss = Callable[[Tensor, Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class Objective:
    name: str
    fn: Loss
    family: str  # "pointwise" | "pairwise" | "listwise"
    target: str  # "probability" (targets in [0, 1]) | "score" (higher = more relevant)
    paper: str


OBJECTIVES: Registry[Objective] = Registry("objective")


def get_objective(name: str) -> Objective:
    return OBJECTIVES.get(name)


def check_finite(loss: Tensor, where: str) -> None:
    if not torch.isfinite(loss).all():
        raise CellFailure(f"non-finite loss ({float(loss)}) at {where}")


def _fill(x: Tensor, mask: Tensor, value: float = 0.0) -> Tensor:
    """Replace padded entries (whatever they hold, inf or NaN included) so they cannot reach value or gradient."""
    return torch.where(mask, x, torch.full_like(x, value))


def _neg(x: Tensor) -> float:
    """A finite stand-in for -inf: exp() of it is 0, yet (-big) - (-big) stays finite, so no NaN in gradients."""
    return torch.finfo(x.dtype).min / 4


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return (values * mask).sum() / mask.sum().clamp(min=1)


def _best(targets: Tensor, mask: Tensor) -> Tensor:
    """Index of the highest-target valid entry per row (first one on ties)."""
    return _fill(targets, mask, -math.inf).argmax(dim=1)


def _pair_mask(targets: Tensor, mask: Tensor) -> Tensor:
    """[B, K, K]: True where i and j are valid and target_i > target_j (tied pairs carry no preference)."""
    valid = mask.unsqueeze(2) & mask.unsqueeze(1)
    return valid & (targets.unsqueeze(2) > targets.unsqueeze(1))


def bce(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Pointwise binary cross-entropy (monoBERT, Nogueira & Cho 2019, "Passage Re-ranking with BERT").

    L = mean over valid entries of -[y log σ(s) + (1 - y) log(1 - σ(s))], y = target probability.
    """
    per = F.binary_cross_entropy_with_logits(_fill(scores, mask), _fill(targets, mask).clamp(0, 1), reduction="none")
    return _masked_mean(per, mask)


def mse(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Pointwise score regression onto the teacher: L = mean over valid entries of (s - t)^2."""
    return _masked_mean((_fill(scores, mask) - _fill(targets, mask)) ** 2, mask)


def margin_mse(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Margin-MSE (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation").

    L = mean over (q, d+, d-) of ((s+ - s-) - (t+ - t-))^2. For a list of K > 2, d+ is the highest-target entry and
    every other valid entry is a d-; for K = 2 (triples) this is exactly the paper's loss.
    """
    best = _best(targets, mask).unsqueeze(1)
    scores, targets = _fill(scores, mask), _fill(targets, mask)
    s_margin = scores.gather(1, best) - scores
    t_margin = targets.gather(1, best) - targets
    others = mask.clone().scatter_(1, best, False)
    return _masked_mean((s_margin - t_margin) ** 2, others)


def ranknet(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """RankNet (Burges et al. 2005, "Learning to Rank using Gradient Descent").

    L = mean over pairs with t_i > t_j of log(1 + exp(-(s_i - s_j))).
    """
    pairs = _pair_mask(targets, mask)
    scores = _fill(scores, mask)
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)
    return _masked_mean(F.softplus(-diff), pairs)


def infonce(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """InfoNCE / Localized Contrastive Estimation (Gao et al. 2021, "Rethink Training of BERT Rerankers in
    Multi-Stage Retrieval Pipeline"; van den Oord et al. 2018).

    L = mean over lists of -log( exp(s+) / Σ_valid exp(s_j) ), d+ = highest-target entry. Lists with fewer than two
    valid entries carry no contrast and are skipped.
    """
    logits = _fill(scores, mask, _neg(scores))
    per = F.cross_entropy(logits, _best(targets, mask), reduction="none")
    lists = mask.sum(dim=1) >= 2
    return _masked_mean(per.masked_fill(~lists, 0), lists)


def listnet(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """ListNet (Cao et al. 2007, "Learning to Rank: From Pairwise Approach to Listwise Approach") as a KL divergence.

    L = mean over lists of KL(softmax(t) || softmax(s)) = Σ_i p_i (log p_i - log q_i), softmax over valid entries.
    """
    log_q = _fill(scores, mask, _neg(scores)).log_softmax(dim=1)
    log_p = _fill(targets, mask, _neg(targets)).log_softmax(dim=1)
    per = _fill(log_p.exp() * (log_p - log_q), mask).sum(dim=1)
    lists = mask.sum(dim=1) >= 2
    return _masked_mean(per.masked_fill(~lists, 0), lists)


def _ranks(targets: Tensor, mask: Tensor) -> Tensor:
    """Teacher ranks (1 = highest target) among the valid entries; ties broken by position."""
    k = targets.shape[1]
    keyed = _fill(targets, mask, -math.inf)
    order = torch.sort(keyed, dim=1, descending=True, stable=True).indices
    return torch.empty_like(order).scatter_(1, order, torch.arange(1, k + 1, device=targets.device).expand_as(order))


def adr_mse(scores: Tensor, targets: Tensor, mask: Tensor, temperature: float = 1.0) -> Tensor:
    """ADR-MSE, approximate discounted rank MSE (Schlatt et al., ECIR 2025, "Rank-DistiLLM: Closing the
    Effectiveness Gap Between Cross-Encoders and LLMs for Passage Re-Ranking").

    The student's differentiable rank is the approximate rank of Qin et al. 2010,
    r̂_i = 1 + Σ_{j≠i} σ((s_j - s_i) / τ); with teacher rank r_i (1 = best), the loss discounts errors at low ranks
    like nDCG does: L = mean over valid entries of (1/log2(r_i + 1)) · (r_i - r̂_i)^2 / normaliser, where the
    normaliser is Σ_i 1/log2(r_i + 1) per list (so lists of any length weigh equally).
    """
    scores = _fill(scores, mask)
    valid = mask.unsqueeze(1) & mask.unsqueeze(2)
    eye = torch.eye(scores.shape[1], dtype=torch.bool, device=scores.device).unsqueeze(0)
    sig = torch.sigmoid((scores.unsqueeze(1) - scores.unsqueeze(2)) / temperature)  # [b, i, j] = σ((s_j - s_i)/τ)
    approx = 1 + (sig * (valid & ~eye)).sum(dim=2)
    teacher = _ranks(targets, mask).to(scores.dtype)
    weight = (1.0 / torch.log2(teacher + 1)) * mask
    per_list = (weight * (teacher - approx) ** 2).sum(dim=1) / weight.sum(dim=1).clamp(min=1e-12)
    lists = mask.sum(dim=1) >= 2
    return _masked_mean(per_list.masked_fill(~lists, 0), lists)


for _obj in [
    Objective("bce", bce, "pointwise", "probability", "Nogueira & Cho 2019, arXiv:1901.04085"),
    Objective("mse", mse, "pointwise", "score", "score regression onto teacher logits"),
    Objective("margin-mse", margin_mse, "pairwise", "score", "Hofstätter et al. 2020, arXiv:2010.02666"),
    Objective("ranknet", ranknet, "pairwise", "score", "Burges et al. 2005, ICML"),
    Objective("infonce", infonce, "listwise", "score", "Gao et al. 2021, ECIR (LCE); van den Oord et al. 2018"),
    Objective("listnet", listnet, "listwise", "score", "Cao et al. 2007, ICML"),
    Objective("adr-mse", adr_mse, "listwise", "score", "Schlatt et al. 2025, ECIR (Rank-DistiLLM), arXiv:2405.07920"),
]:
    OBJECTIVES.add(_obj.name, _obj)
