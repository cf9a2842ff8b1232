"""Loss functions of the objective rows (``benchmark.objectives``): pure functions of (student scores, targets,
mask) -> scalar loss, one per row, registered under the row's name.

Every function takes ``scores`` [B, K] (student logits for B queries x K candidates), ``targets`` [B, K]
(what the row's ``target`` field says: probabilities in [0, 1], or scores where higher = more relevant) and a
boolean ``mask`` [B, K] that is False for padding; padded entries never reach the value or the gradient.

Normalisation: each row (query) averages its own units (entries, pairs, or the list itself), and the batch loss is
the mean over the rows that have at least one unit, so a query with many candidates weighs no more than one with few.
Rows without a unit (no valid pair, fewer than two valid entries) add nothing; a batch of such rows gives 0, not NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import CellFailure
from .objectives import OBJECTIVES, ObjectiveSpec
from .registry import Registry

Loss = Callable[[Tensor, Tensor, Tensor], Tensor]
LOSSES: Registry[Loss] = Registry("loss", rows=OBJECTIVES)


@dataclass(frozen=True)
class Objective(ObjectiveSpec):
    """An objective row with its loss function."""

    fn: Loss


def get_objective(name: str) -> Objective:
    return Objective(**dataclasses.asdict(OBJECTIVES.get(name)), fn=LOSSES.get(name))


def check_finite(loss: Tensor, where: str) -> None:
    if not torch.isfinite(loss).all():
        raise CellFailure(f"non-finite loss ({float(loss)}) at {where}")


def _fill(x: Tensor, mask: Tensor, value: float = 0.0) -> Tensor:
    """Replace padded entries (whatever they hold, inf or NaN included) so they cannot reach value or gradient."""
    return torch.where(mask, x, torch.full_like(x, value))


def _neg(x: Tensor) -> float:
    """A finite stand-in for -inf: exp() of it is 0, yet (-big) - (-big) stays finite, so no NaN in gradients."""
    return torch.finfo(x.dtype).min / 4


def _row_mean(values: Tensor, units: Tensor) -> Tensor:
    """Mean over each row's units ([B, ...] bool), then over the rows that have any (see the module docstring)."""
    values, units = values.flatten(1), units.flatten(1)
    count = units.sum(dim=1)
    per_row = torch.where(units, values, torch.zeros_like(values)).sum(dim=1) / count.clamp(min=1)
    return per_row.sum() / (count > 0).sum().clamp(min=1)


def _lists(mask: Tensor) -> Tensor:
    """[B, 1]: rows whose list has at least two valid entries (a listwise loss needs something to contrast)."""
    return (mask.sum(dim=1) >= 2).unsqueeze(1)


def _best(targets: Tensor, mask: Tensor) -> Tensor:
    """Index of the highest-target valid entry per row (first one on ties)."""
    return _fill(targets, mask, -math.inf).argmax(dim=1)


def _pair_mask(targets: Tensor, mask: Tensor) -> Tensor:
    """[B, K, K]: True where i and j are valid and target_i > target_j (tied pairs carry no preference)."""
    valid = mask.unsqueeze(2) & mask.unsqueeze(1)
    return valid & (targets.unsqueeze(2) > targets.unsqueeze(1))


@LOSSES.register("bce")
def bce(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Pointwise binary cross-entropy (monoBERT, Nogueira & Cho 2019, "Passage Re-ranking with BERT").

    L = mean over valid entries of -[y log σ(s) + (1 - y) log(1 - σ(s))], y = target probability.
    """
    per = F.binary_cross_entropy_with_logits(_fill(scores, mask), _fill(targets, mask).clamp(0, 1), reduction="none")
    return _row_mean(per, mask)


@LOSSES.register("mse")
def mse(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Pointwise score regression onto the teacher (the pointwise baseline of Hofstätter et al. 2020).

    L = mean over valid entries of (s - t)^2.
    """
    return _row_mean((_fill(scores, mask) - _fill(targets, mask)) ** 2, mask)


@LOSSES.register("margin-mse")
def margin_mse(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """Margin-MSE (Hofstätter et al. 2020, "Improving Efficient Neural Ranking Models with Cross-Architecture
    Knowledge Distillation").

    L = mean over (q, d+, d-) of ((s+ - s-) - (t+ - t-))^2. For a list of K > 2, d+ is the highest-target entry (the
    first one on ties) and every other valid entry is a d-; for K = 2 (triples) this is exactly the paper's loss.
    """
    best = _best(targets, mask).unsqueeze(1)
    scores, targets = _fill(scores, mask), _fill(targets, mask)
    s_margin = scores.gather(1, best) - scores
    t_margin = targets.gather(1, best) - targets
    negatives = mask.clone().scatter_(1, best, False)
    return _row_mean((s_margin - t_margin) ** 2, negatives)


@LOSSES.register("hinge")
def hinge(scores: Tensor, targets: Tensor, mask: Tensor, margin: float = 1.0) -> Tensor:
    """Pairwise hinge (max-margin) loss, the seed paper's "Hinge" recipe (arXiv:2603.03010; its implementation is
    ``HingeLoss`` in ``experimaestro/xpm-torch: src/xpm_torch/losses/pairwise.py@6f9b226``, margin m = 1, used by
    ``xpmir/cross-encoders: src/training_utils.py`` on the MS MARCO train triples).

    L = mean over (q, d+, d-) of max(0, m - (s+ - s-)), m = 1. d+ is the highest-target entry (the first one on ties,
    which is the listed d+ of a (q, d+, d-) triple group) and every other valid entry is a d-; for K = 2 this is
    exactly the authors' loss.
    """
    best = _best(targets, mask).unsqueeze(1)
    scores = _fill(scores, mask)
    per = F.relu(margin - (scores.gather(1, best) - scores))
    negatives = mask.clone().scatter_(1, best, False)
    return _row_mean(per, negatives)


@LOSSES.register("ranknet")
def ranknet(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """RankNet (Burges et al. 2005, "Learning to Rank using Gradient Descent"); on an LLM teacher's ranks it is the
    DistillRankNET of Rank-DistiLLM (Schlatt et al. 2025).

    L = mean over valid pairs with t_i > t_j of log(1 + exp(-(s_i - s_j))); tied pairs carry no preference. Per pair
    this is the authors' BCE-with-logits of s_i - s_j against 1 over the pairs the teacher orders
    (``webis-de/lightning-ir: lightning_ir/loss/pairwise.py`` ``RankNet``, temperature 1; ``experimaestro/
    experimaestro-ir: src/xpmir/letor/distillation/listwise.py`` ``DistillRankNetLoss``); they average over all pairs
    of the batch, we over each list's pairs and then the lists — the same for lists of equal length, as the
    seed paper's one-list batches are.
    """
    scores = _fill(scores, mask)
    diff = scores.unsqueeze(2) - scores.unsqueeze(1)
    return _row_mean(F.softplus(-diff), _pair_mask(targets, mask))


@LOSSES.register("infonce")
def infonce(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """InfoNCE / Localized Contrastive Estimation (Gao et al. 2021, "Rethink Training of BERT Rerankers in
    Multi-Stage Retrieval Pipeline"; van den Oord et al. 2018).

    L = mean over lists of -log( exp(s+) / Σ_valid exp(s_j) ), d+ = highest-target entry (the first one on ties).
    """
    logits = _fill(scores, mask, _neg(scores))
    per = F.cross_entropy(logits, _best(targets, mask), reduction="none")
    return _row_mean(per.unsqueeze(1), _lists(mask))


@LOSSES.register("listnet")
def listnet(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """ListNet (Cao et al. 2007, "Learning to Rank: From Pairwise Approach to Listwise Approach") as a KL divergence.

    L = mean over lists of KL(softmax(t / T) || softmax(s)) = Σ_i p_i (log p_i - log q_i), T = 1, softmax over the
    valid entries.
    """
    log_q = _fill(scores, mask, _neg(scores)).log_softmax(dim=1)
    log_p = _fill(targets, mask, _neg(targets)).log_softmax(dim=1)
    per = _fill(log_p.exp() * (log_p - log_q), mask).sum(dim=1)
    return _row_mean(per.unsqueeze(1), _lists(mask))


def _teacher_ranks(targets: Tensor, mask: Tensor) -> Tensor:
    """Teacher ranks among the valid entries, 1 = highest target; tied entries share their average rank, so the
    target stays permutation invariant and is attained when the student scores them equally."""
    targets = _fill(targets, mask)
    others = mask.unsqueeze(1)  # [b, i, j]: j is a valid entry
    higher = ((targets.unsqueeze(1) > targets.unsqueeze(2)) & others).sum(dim=2)
    tied = ((targets.unsqueeze(1) == targets.unsqueeze(2)) & others).sum(dim=2)  # counts i itself
    return 1 + higher + (tied - 1) / 2


@LOSSES.register("adr-mse")
def adr_mse(scores: Tensor, targets: Tensor, mask: Tensor, temperature: float = 1.0) -> Tensor:
    """ADR-MSE, approximate discounted rank MSE (Schlatt et al., ECIR 2025, "Rank-DistiLLM: Closing the
    Effectiveness Gap Between Cross-Encoders and LLMs for Passage Re-Ranking").

    The student's differentiable rank is the approximate rank of Qin et al. 2010,
    r̂_i = 1 + Σ_{j≠i} σ((s_j - s_i) / τ), τ = 1. As in the paper, the squared rank error is discounted like nDCG
    (errors near the top weigh more): L = mean over lists of (1/k) Σ_i (r_i - r̂_i)^2 / log2(r_i + 1), with r_i the
    teacher rank (1 = highest target) and k the number of valid entries. Ties in the targets share their average
    rank (the paper leaves ties open; its LLM rankings have none).
    """
    scores = _fill(scores, mask)
    eye = torch.eye(scores.shape[1], dtype=torch.bool, device=scores.device)
    others = mask.unsqueeze(1) & ~eye  # [b, i, j]: j is a valid entry other than i
    sig = torch.sigmoid((scores.unsqueeze(1) - scores.unsqueeze(2)) / temperature)  # [b, i, j] = σ((s_j - s_i)/τ)
    approx = 1 + torch.where(others, sig, torch.zeros_like(sig)).sum(dim=2)
    ranks = _teacher_ranks(targets, mask).to(scores.dtype)
    per = ((ranks - approx) ** 2 / torch.log2(ranks + 1)).masked_fill(~mask, 0)
    per_list = per.sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return _row_mean(per_list.unsqueeze(1), _lists(mask))


@LOSSES.register("lambdaloss")
def lambdaloss(scores: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    """LambdaLoss, NDCG-Loss2 (Wang et al., CIKM 2018, "The LambdaLoss Framework for Ranking Metric Optimization").

    L = mean over lists of Σ_{t_i > t_j} δ_ij |G_i - G_j| log2(1 + exp(-(s_i - s_j))), with the gain
    G_i = (2^{y_i} - 1) / maxDCG, y = t - min(t) over the list's valid entries (graded labels keep their grades when
    the list holds a grade-0 document; teacher scores become non-negative), maxDCG the ideal DCG of those gains, and
    δ_ij = |1/D(|π_i - π_j|) - 1/D(|π_i - π_j| + 1)|, D(x) = log2(1 + x), where π are the ranks under the current
    student scores (no gradient through them). Unlike RankNet the list's pair terms are summed, not averaged: the sum
    bounds the list's NDCG loss.
    """
    scores = _fill(scores, mask)
    low = _fill(targets, mask, math.inf).amin(dim=1, keepdim=True)
    # 2^y overflows float32 past y = 128; teacher logit ranges are far below that
    gains = _fill(torch.exp2((_fill(targets, mask) - low).clamp(max=100)) - 1, mask)
    positions = torch.arange(1, scores.shape[1] + 1, device=scores.device, dtype=scores.dtype)
    max_dcg = (gains.sort(dim=1, descending=True).values / torch.log2(1 + positions)).sum(dim=1, keepdim=True)
    g = gains / max_dcg.clamp(min=torch.finfo(scores.dtype).tiny)
    order = _fill(scores.detach(), mask, _neg(scores)).argsort(dim=1, descending=True, stable=True)
    ranks = torch.empty_like(positions.expand_as(scores)).scatter_(1, order, positions.expand_as(scores))
    dist = (ranks.unsqueeze(2) - ranks.unsqueeze(1)).abs().clamp(min=1)  # i == j never forms a pair
    delta = (1 / torch.log2(1 + dist) - 1 / torch.log2(2 + dist)).abs()
    weight = delta * (g.unsqueeze(2) - g.unsqueeze(1)).abs()
    per_pair = weight * F.softplus(-(scores.unsqueeze(2) - scores.unsqueeze(1))) / math.log(2)
    pairs = _pair_mask(targets, mask)
    per_list = torch.where(pairs, per_pair, torch.zeros_like(per_pair)).sum(dim=(1, 2))
    return _row_mean(per_list.unsqueeze(1), pairs.flatten(1).any(dim=1, keepdim=True))
