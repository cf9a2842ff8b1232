"""Our objectives against sentence-transformers' cross-encoder losses and lightning-ir's losses on the same tensors.

sentence-transformers' losses take a ``CrossEncoder`` and strings; ``LogitModel`` below is a ``CrossEncoder`` whose
forward returns preset logits for (query, doc) pairs, so each loss runs its own code from logits to value (and its
gradient reaches the same leaf tensor ours does). Where the two definitions differ (reduction, log base, padding,
entropy term, pair set) each test says how and aligns them explicitly.

lightning-ir is not a test dependency (``pip install lightning-ir`` pulls torch 2.14.1+cu130 and Lightning, not the
project's torch 2.13.0); its definitions are compared through hand-derived values, each test citing the file it
reads (webis-de/lightning-ir: lightning_ir/loss/*.py). Run once in a separate venv on the same float64 tensors (4
lists of 8, seed 0; 2026-12-02, lightning-ir 0.0.6 from PyPI): InfoNCE, KLDivergence (our listnet), RankNet and
SupervisedMarginMSE on K = 2 equal ours to <= 1e-16, ApproxRankMSE(discount="log2") our adr-mse to 6e-8 (its
discount is computed in float32); SupervisedMarginMSE on K = 8 differs (5.161 vs our 5.124): it pairs every
t_i > t_j, ours d+ with each other entry.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from benchmark.losses import (
    adr_mse,
    bce,
    infonce,
    lambdaloss,
    listnet,
    margin_mse,
    mse,
    ranknet,
)

st_losses = pytest.importorskip("sentence_transformers.cross_encoder.losses")
from sentence_transformers.cross_encoder import CrossEncoder


def st_loss(name: str):
    """A sentence-transformers cross-encoder loss class (absent from older releases than the installed 6.x)."""
    cls = getattr(st_losses, name, None)
    if cls is None:
        pytest.skip(f"sentence-transformers has no cross-encoder {name}")
    return cls


class LogitModel(CrossEncoder):
    """A one-label CrossEncoder whose score for pair (f"q{b}", f"d{b}_{k}") is ``scores[b, k]``."""

    num_labels = 1
    device = torch.device("cpu")

    def __init__(self, scores: Tensor) -> None:
        nn.Module.__init__(self)  # no transformer: the losses only call preprocess() and forward()
        self.scores = scores

    def preprocess(self, pairs, prompt=None, task=None) -> dict:
        return {"pairs": [tuple(p) for p in pairs]}

    def forward(self, features: dict) -> dict:
        idx = [(int(q[1:]), int(d.split("_")[1])) for q, d in features["pairs"]]
        return {"scores": torch.stack([self.scores[b, k] for b, k in idx]).unsqueeze(1)}


def queries(b: int) -> list[str]:
    return [f"q{i}" for i in range(b)]


def column(b: int, k: int) -> list[str]:
    """Doc k of every query: one column of sentence-transformers' (anchor, positive, negative...) layout."""
    return [f"d{i}_{k}" for i in range(b)]


def doc_lists(mask: Tensor) -> list[list[str]]:
    """Each query's valid docs: sentence-transformers' listwise (query, [doc1, ..., docN]) layout, ragged."""
    return [[f"d{i}_{k}" for k in range(mask.shape[1]) if mask[i, k]] for i in range(mask.shape[0])]


def label_lists(targets: Tensor, mask: Tensor) -> list[Tensor]:
    return [targets[i][mask[i]] for i in range(mask.shape[0])]


def value_and_grad(fn, scores: Tensor) -> tuple[float, Tensor]:
    leaf = scores.detach().clone().requires_grad_(True)
    loss = fn(leaf)
    loss.backward()
    return float(loss.detach()), leaf.grad


def assert_same(ours, theirs, scores: Tensor) -> None:
    """Same value and same gradient with respect to the logits."""
    v1, g1 = value_and_grad(ours, scores)
    v2, g2 = value_and_grad(theirs, scores)
    assert v1 == pytest.approx(v2, rel=1e-5, abs=1e-6)
    torch.testing.assert_close(g1, g2, rtol=1e-4, atol=1e-6)


@pytest.fixture
def scores() -> Tensor:
    return torch.tensor([[2.0, -0.5, 0.3, 1.1], [0.7, 0.2, -1.4, 0.9], [-0.3, 1.6, 0.4, -2.0]])


FULL = torch.ones(3, 4, dtype=torch.bool)
# graded labels, every list with a grade-0 document and the highest grade first (the positive column)
GRADES = torch.tensor([[3.0, 0.0, 1.0, 2.0], [2.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
TEACHER = torch.tensor([[4.2, -1.0, 0.5, 2.2], [3.1, 0.4, -2.5, 1.7], [2.0, 1.9, -0.7, -3.3]])  # distinct
RAGGED = torch.tensor([[True, True, True, True], [True, True, True, False], [True, True, False, False]])


def per_row(theirs, mask: Tensor):
    """sentence-transformers' loss called on each query alone, averaged over queries: our normalisation (each row
    averages its own units, then the rows), where theirs averages all units of the batch together."""
    rows = range(mask.shape[0])
    return lambda s: torch.stack([theirs(s, i) for i in rows]).mean()


# --- pointwise -----------------------------------------------------------------------------------------------


def test_bce_matches_binary_cross_entropy_loss(scores):
    """BinaryCrossEntropyLoss: BCE-with-logits, mean over all pairs of the batch; ours averages each query's pairs
    and then the queries, which is the same on full lists and needs per-query calls on ragged ones."""
    cls = st_loss("BinaryCrossEntropyLoss")
    probs = torch.tensor([[1.0, 0.0, 0.25, 0.0], [0.0, 1.0, 0.0, 0.5], [1.0, 0.0, 0.0, 0.9]])

    def theirs(s: Tensor, rows: Tensor = FULL) -> Tensor:
        pairs = [(f"q{i}", f"d{i}_{k}") for i in range(3) for k in range(4) if rows[i, k]]
        return cls(LogitModel(s))([[q for q, _ in pairs], [d for _, d in pairs]], probs[rows])

    assert_same(lambda s: bce(s, probs, FULL), theirs, scores)

    def one_row(s: Tensor, i: int) -> Tensor:
        return theirs(s, torch.zeros_like(RAGGED).index_fill_(0, torch.tensor([i]), True) & RAGGED)

    assert_same(lambda s: bce(s, probs, RAGGED), per_row(one_row, RAGGED), scores)


def test_mse_matches_mse_loss(scores):
    """MSELoss: (s - t)^2, mean over all pairs; the same reduction as ours on full lists."""
    cls = st_loss("MSELoss")

    def theirs(s: Tensor) -> Tensor:
        pairs = [(f"q{i}", f"d{i}_{k}") for i in range(3) for k in range(4)]
        return cls(LogitModel(s))([[q for q, _ in pairs], [d for _, d in pairs]], TEACHER.flatten())

    assert_same(lambda s: mse(s, TEACHER, FULL), theirs, scores)


# --- pairwise ------------------------------------------------------------------------------------------------


def test_margin_mse_matches_margin_mse_loss(scores):
    """MarginMSELoss on (anchor, positive, negative_1..negative_{K-1}) with labels [t+, t-_1, ...]: mean over
    B x (K-1) of ((s+ - s-) - (t+ - t-))^2. Ours takes d+ as the highest-target entry, which is column 0 here."""
    cls = st_loss("MarginMSELoss")

    def theirs(s: Tensor) -> Tensor:
        return cls(LogitModel(s))([queries(3)] + [column(3, k) for k in range(4)], TEACHER)

    assert_same(lambda s: margin_mse(s, TEACHER, FULL), theirs, scores)


def test_ranknet_matches_rank_net_loss(scores):
    """RankNetLoss is LambdaLoss without weights: log(1 + e^-(s_i - s_j)) over pairs with t_i > t_j, averaged over
    the batch's pairs, by default in bits (``reduction_log="binary"``); ``"natural"`` is our nats. Ours averages
    each list's pairs, then the lists: per-query calls on lists with different pair counts."""
    cls = st_loss("RankNetLoss")

    def theirs(s: Tensor, i: int, mask: Tensor = RAGGED) -> Tensor:
        return cls(LogitModel(s), reduction_log="natural")([[f"q{i}"], doc_lists(mask)[i:i + 1]],
                                                           label_lists(GRADES, mask)[i:i + 1])

    assert_same(lambda s: ranknet(s, GRADES, RAGGED), per_row(theirs, RAGGED), scores)
    # the default: the same pairs, in bits
    default = cls(LogitModel(scores))([queries(1), doc_lists(FULL)[:1]], label_lists(GRADES, FULL)[:1])
    assert float(default) == pytest.approx(float(ranknet(scores[:1], GRADES[:1], FULL[:1])) / math.log(2), rel=1e-5)


# --- listwise ------------------------------------------------------------------------------------------------


def test_infonce_matches_multiple_negatives_ranking_loss(scores):
    """MultipleNegativesRankingLoss maps the logits of (positive, negative_1, ...) columns to cross-entropy with the
    positive as class 0 (``calculate_loss``). Its defaults differ from InfoNCE on purpose: sigmoid on the logits,
    scale 10 and in-batch negatives; without them (activation None, scale 1, only the hard-negative columns) it is
    our InfoNCE with d+ = the highest-target entry (column 0)."""
    cls = st_loss("MultipleNegativesRankingLoss")
    labels = torch.tensor([[1.0, 0, 0, 0]] * 3)

    def theirs(s: Tensor) -> Tensor:
        loss = cls(LogitModel(s), activation_fn=None, scale=1.0)
        return loss.calculate_loss([s[:, k] for k in range(4)], batch_size=3)

    assert_same(lambda s: infonce(s, labels, FULL), theirs, scores)


def test_listnet_matches_list_net_loss_minus_target_entropy(scores):
    """ListNetLoss is the cross-entropy H(p, q) = H(p) + KL(p || q) of p = softmax(labels) and q = softmax(logits),
    mean over queries, padding by -1e16 logits and -inf labels; ours is KL(p || q) over the valid entries, so theirs
    minus the labels' entropy H(p) (no gradient: it does not depend on the logits). Ragged lists reduce alike."""
    cls = st_loss("ListNetLoss")

    def entropy(mask: Tensor) -> float:
        h = [-(p * p.log()).sum() for p in (t.softmax(0) for t in label_lists(TEACHER, mask))]
        return float(torch.stack(h).mean())

    for mask in (FULL, RAGGED):
        def theirs(s: Tensor, mask: Tensor = mask) -> Tensor:
            return cls(LogitModel(s))([queries(3), doc_lists(mask)], label_lists(TEACHER, mask)) - entropy(mask)

        assert_same(lambda s, mask=mask: listnet(s, TEACHER, mask), theirs, scores)


def test_adr_mse_matches_adr_mse_loss(scores):
    """ADRMSELoss: approximate ranks 1 + Σ_{j≠i} σ(α(s_j - s_i)) (α = 1/τ = 1), true ranks from the labels with
    tied entries sharing their average rank (as ours), error (r - r̂)^2 / log2(r + 1), summed over every valid entry
    of the batch and divided by their count; ours averages each list, then the lists: equal on full lists,
    per-query calls on ragged ones. GRADES holds ties (the tied zeros of rows 1 and 2)."""
    cls = st_loss("ADRMSELoss")

    def theirs(s: Tensor, mask: Tensor = FULL) -> Tensor:
        return cls(LogitModel(s))([queries(3), doc_lists(mask)], label_lists(GRADES, mask))

    assert_same(lambda s: adr_mse(s, GRADES, FULL), theirs, scores)

    def one_row(s: Tensor, i: int) -> Tensor:
        return cls(LogitModel(s))([[f"q{i}"], doc_lists(RAGGED)[i:i + 1]], label_lists(GRADES, RAGGED)[i:i + 1])

    assert_same(lambda s: adr_mse(s, GRADES, RAGGED), per_row(one_row, RAGGED), scores)


def test_lambdaloss_matches_lambda_loss_ndcg_loss2(scores):
    """LambdaLoss(weighting_scheme=NDCGLoss2Scheme()) (its default is NDCGLoss2++, which adds μ x LambdaRank
    weights): weights δ_ij |G_i - G_j| with G = (2^y - 1) / maxDCG and y = labels clamped at 0, the pair term
    log2(1 + e^-(s_i - s_j)) over pairs with y_i > y_j, averaged over the batch's pairs. Ours sums each list's pair
    terms (the sum bounds the list's NDCG loss) and averages the lists, and shifts y by the list's minimum valid
    target: the same gains where every list holds a 0 grade (GRADES does). So ours = mean over lists of (theirs on
    the list alone) x (the list's pair count)."""
    cls = st_loss("LambdaLoss")
    scheme = pytest.importorskip("sentence_transformers.cross_encoder.losses.lambda_loss").NDCGLoss2Scheme

    def one_row(s: Tensor, i: int) -> Tensor:
        labels = label_lists(GRADES, RAGGED)[i]
        pairs = int((labels.unsqueeze(1) > labels.unsqueeze(0)).sum())
        loss = cls(LogitModel(s), weighting_scheme=scheme())([[f"q{i}"], doc_lists(RAGGED)[i:i + 1]], [labels])
        return loss * pairs

    assert_same(lambda s: lambdaloss(s, GRADES, RAGGED), per_row(one_row, RAGGED), scores)


# --- lightning-ir, hand-derived ------------------------------------------------------------------------------
# Definitions read in webis-de/lightning-ir (every loss takes scores [B, K] and targets [B, K], no padding):
#   lightning_ir/loss/listwise.py@1b07d1f82b581abf3ad14d0b8ef1c15dd796a4fd: InfoNCE = cross_entropy(scores,
#     targets.argmax(1)); KLDivergence = kl_div(log_softmax(scores), log_softmax(targets), batchmean)
#   lightning_ir/loss/pairwise.py@19f46e3b1bad56b15f53e1b5d0627a8c69ebbdde: RankNet = BCE-with-logits of s_i - s_j
#     against 1 over all pairs t_i > t_j of the batch (base.py get_pairwise_idcs); SupervisedMarginMSE = mean over
#     the same pairs of ((s_i - s_j) - (t_i - t_j))^2 (MarginMSE's default margin is the constant 1.0)
#   lightning_ir/loss/approximate.py@4cfd3a496d26f068c659562bced7bea81c11d4bf: ApproxRankMSE(discount="log2") =
#     mean over all entries of (r - r̂)^2 / log2(r + 1), r from argsort (ties broken by position, not averaged)

S2 = torch.tensor([[1.0, 0.0, -1.0]])  # one list of three, d+ first
T2 = torch.tensor([[3.0, 1.0, 0.0]])
M2 = torch.ones(1, 3, dtype=torch.bool)


def test_lightning_ir_infonce_and_kl_by_hand():
    """InfoNCE: -log(e^1 / (e^1 + e^0 + e^-1)); KLDivergence: Σ p (log p - log q), p = softmax(t), q = softmax(s)."""
    z = math.e + 1 + 1 / math.e
    assert float(infonce(S2, T2, M2)) == pytest.approx(-math.log(math.e / z), rel=1e-6)
    zt = math.e ** 3 + math.e + 1
    p = [math.e ** 3 / zt, math.e / zt, 1 / zt]
    q = [math.e / z, 1 / z, 1 / math.e / z]
    assert float(listnet(S2, T2, M2)) == pytest.approx(sum(a * math.log(a / b) for a, b in zip(p, q)), rel=1e-6)


def test_lightning_ir_ranknet_by_hand():
    """Pairs (0,1), (0,2), (1,2) with margins 1, 2, 1: mean of log(1 + e^-m) over the three pairs."""
    expected = (2 * math.log1p(math.exp(-1)) + math.log1p(math.exp(-2))) / 3
    assert float(ranknet(S2, T2, M2)) == pytest.approx(expected, rel=1e-6)


def test_lightning_ir_supervised_margin_mse_differs_beyond_triples():
    """On a triple (K = 2) both are ((s+ - s-) - (t+ - t-))^2. On K = 3 lightning-ir also takes the pair (1, 2) of
    two negatives; ours only pairs d+ with each negative: (1 - 2)^2 and (2 - 3)^2 -> 1, where lightning-ir adds
    (1 - 1)^2 -> 2/3."""
    assert float(margin_mse(S2[:, :2], T2[:, :2], M2[:, :2])) == pytest.approx((1 - 2) ** 2)
    assert float(margin_mse(S2, T2, M2)) == pytest.approx(((1 - 2) ** 2 + (2 - 3) ** 2) / 2)


def test_lightning_ir_approx_rank_mse_by_hand():
    """r = 1, 2, 3; r̂_i = 1 + Σ_{j≠i} σ(s_j - s_i): 1 + σ(-1) + σ(-2), 1 + σ(1) + σ(-1), 1 + σ(2) + σ(1); one list,
    so lightning-ir's mean over entries is our per-list mean."""
    sig = lambda x: 1 / (1 + math.exp(-x))
    approx = [1 + sig(-1) + sig(-2), 1 + sig(1) + sig(-1), 1 + sig(2) + sig(1)]
    expected = sum((r - a) ** 2 / math.log2(r + 1) for r, a in zip([1, 2, 3], approx)) / 3
    assert float(adr_mse(S2, T2, M2)) == pytest.approx(expected, rel=1e-6)
