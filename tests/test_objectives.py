"""Each objective on hand-computed values, permutation invariance, gradient direction and masking."""

import math

import pytest
import torch

from benchmark.errors import BenchError, CellFailure
from benchmark.losses import LOSSES, check_finite, get_objective
from benchmark.objectives import OBJECTIVES

S = torch.tensor([[2.0, 0.0, 1.0]])
T = torch.tensor([[3.0, 0.0, 1.0]])  # scores-type targets (teacher logits / grades)
P = torch.tensor([[1.0, 0.0, 0.0]])  # probability targets
M = torch.ones(1, 3, dtype=torch.bool)


def _targets(name: str) -> torch.Tensor:
    return P if get_objective(name).target == "probability" else T


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# Hand computations for S = [2, 0, 1], T = [3, 0, 1], P = [1, 0, 0].
_lse = math.log(math.exp(2) + math.exp(0) + math.exp(1))
_p = [math.exp(t) / (math.exp(3) + 1 + math.exp(1)) for t in (3, 0, 1)]
_q = [math.exp(s - _lse) for s in (2, 0, 1)]
# ADR-MSE: approximate ranks r̂_i = 1 + Σ_j σ(s_j - s_i); teacher ranks [1, 3, 2]; weights 1/log2(r+1); mean over k=3.
_r_hat = [1 + sig(0 - 2) + sig(1 - 2), 1 + sig(2 - 0) + sig(1 - 0), 1 + sig(2 - 1) + sig(0 - 1)]
_w = [1 / math.log2(2), 1 / math.log2(4), 1 / math.log2(3)]
# LambdaLoss: gains 2^t - 1 = [7, 0, 1], maxDCG = 7 + 1/log2(3); student ranks [1, 3, 2]; pairs (0,1) at rank
# distance 2, (0,2) and (2,1) at distance 1: δ(2) = 1/log2(3) - 1/log2(4), δ(1) = 1/log2(2) - 1/log2(3).
_max_dcg = 7 + 1 / math.log2(3)
_d1, _d2 = 1 - 1 / math.log2(3), 1 / math.log2(3) - 1 / math.log2(4)
EXPECTED = {
    "bce": (-math.log(sig(2)) - math.log(1 - sig(0)) - math.log(1 - sig(1))) / 3,
    "mse": ((2 - 3) ** 2 + 0 + 0) / 3,
    # positive = index 0; margins s: [2, 1], t: [3, 2] -> errors 1, 1
    "margin-mse": ((2 - 3) ** 2 + (1 - 2) ** 2) / 2,
    # pairs with t_i > t_j: (0,1), (0,2), (2,1); s diffs 2, 1, 1
    "ranknet": (math.log1p(math.exp(-2)) + 2 * math.log1p(math.exp(-1))) / 3,
    "infonce": _lse - 2,
    "listnet": sum(p * (math.log(p) - math.log(q)) for p, q in zip(_p, _q)),
    "adr-mse": sum(w * (r - rh) ** 2 for w, r, rh in zip(_w, (1, 3, 2), _r_hat)) / 3,
    "lambdaloss": (_d2 * 7 * math.log2(1 + math.exp(-2)) + _d1 * 6 * math.log2(1 + math.exp(-1))
                   + _d1 * 1 * math.log2(1 + math.exp(-1))) / _max_dcg,
}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_hand_computed_value(name):
    value = get_objective(name).fn(S, _targets(name), M)
    assert value.item() == pytest.approx(EXPECTED[name], rel=1e-5)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_permutation_invariance(name):
    torch.manual_seed(0)
    s, t = torch.randn(3, 6), torch.randn(3, 6)
    if get_objective(name).target == "probability":
        t = (t > 0).float()
    m = torch.ones(3, 6, dtype=torch.bool)
    m[1, 4:] = False
    perm = torch.randperm(6)
    fn = get_objective(name).fn
    assert fn(s, t, m).item() == pytest.approx(fn(s[:, perm], t[:, perm], m[:, perm]).item(), rel=1e-5)


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_gradient_fixes_a_misordered_pair(name):
    scores = torch.tensor([[0.0, 1.0]], requires_grad=True)  # the relevant doc (index 0) is scored lower
    targets = torch.tensor([[1.0, 0.0]])
    get_objective(name).fn(scores, targets, torch.ones(1, 2, dtype=torch.bool)).backward()
    step = -scores.grad[0]  # gradient descent direction
    assert step[0] - step[1] > 0, f"{name} does not push the positive above the negative"


@pytest.mark.parametrize("name", OBJECTIVES.names())
def test_padding_changes_nothing(name):
    fn = get_objective(name).fn
    base_s = S.clone().requires_grad_(True)
    base = fn(base_s, _targets(name), M)
    base.backward()
    padded_s = torch.cat([S, torch.tensor([[float("inf"), -7.0]])], dim=1).requires_grad_(True)
    padded_t = torch.cat([_targets(name), torch.tensor([[float("nan"), 99.0]])], dim=1)
    padded_m = torch.cat([M, torch.zeros(1, 2, dtype=torch.bool)], dim=1)
    value = fn(padded_s, padded_t, padded_m)
    value.backward()
    assert value.item() == pytest.approx(base.item(), rel=1e-6)
    assert torch.allclose(padded_s.grad[:, :3], base_s.grad)
    assert torch.all(padded_s.grad[:, 3:] == 0)


def test_batch_loss_is_the_mean_over_rows():
    # row 0 has one valid entry (error 2^2 = 4), row 1 two (errors 1 and 3^2 = 9, row mean 5): (4 + 5) / 2
    s = torch.tensor([[2.0, 5.0], [1.0, 3.0]])
    t = torch.tensor([[0.0, -1.0], [0.0, 0.0]])
    m = torch.tensor([[True, False], [True, True]])
    assert get_objective("mse").fn(s, t, m).item() == pytest.approx((4 + 5) / 2)
    # ranknet: row 0 one pair (s diff 1), row 1 three pairs (s diffs 2, 1, 1): the rows weigh equally
    s = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    t = torch.tensor([[1.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    m = torch.tensor([[True, True, False], [True, True, True]])
    row1 = (math.log1p(math.exp(-2)) + math.log1p(math.exp(-1)) + math.log1p(math.exp(-1))) / 3
    assert get_objective("ranknet").fn(s, t, m).item() == pytest.approx((math.log1p(math.exp(-1)) + row1) / 2)


@pytest.mark.parametrize("name", [n for n, o in OBJECTIVES.items() if o.family != "pointwise"])
def test_rows_without_contrast_add_nothing(name):
    fn = get_objective(name).fn
    s = torch.tensor([[1.0, 2.0, 0.0], [0.5, 0.1, -0.3]])
    t = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, 1.0]])
    m = torch.tensor([[True, False, False], [True, True, True]])  # row 0: a single valid entry
    assert fn(s, t, m).item() == pytest.approx(fn(s[1:], t[1:], m[1:]).item(), rel=1e-6)
    assert fn(s[:1], t[:1], m[:1]).item() == 0.0
    # ranknet, lambdaloss: a list whose targets all tie has no pair either
    if name in ("ranknet", "lambdaloss"):
        assert fn(s[:1], t[:1], torch.ones(1, 3, dtype=torch.bool)).item() == 0.0


def test_ties():
    s = torch.tensor([[0.0, 1.0, 2.0]])
    t = torch.tensor([[1.0, 1.0, 0.0]])
    # ranknet: the tied pair (0, 1) is ignored; pairs (0, 2) and (1, 2) have s diffs -2 and -1
    expected = (math.log1p(math.exp(2)) + math.log1p(math.exp(1))) / 2
    assert get_objective("ranknet").fn(s, t, M).item() == pytest.approx(expected)
    # infonce: the first of the tied maxima (index 0) is the positive
    lse = math.log(1 + math.exp(1) + math.exp(2))
    assert get_objective("infonce").fn(s, t, M).item() == pytest.approx(lse - 0)
    # margin-mse: positive index 0; margins s: [-1, -2], t: [0, 1]
    assert get_objective("margin-mse").fn(s, t, M).item() == pytest.approx((1 + 9) / 2)
    # adr-mse: tied entries share rank 1.5, the last has rank 3
    r_hat = [1 + sig(1) + sig(2), 1 + sig(-1) + sig(1), 1 + sig(-2) + sig(-1)]
    ranks = [1.5, 1.5, 3]
    expected = sum((r - rh) ** 2 / math.log2(r + 1) for r, rh in zip(ranks, r_hat)) / 3
    assert get_objective("adr-mse").fn(s, t, M).item() == pytest.approx(expected)


def test_registry_and_docstrings():
    assert set(OBJECTIVES.names()) >= {"bce", "mse", "margin-mse", "ranknet", "hinge", "infonce", "listnet",
                                       "adr-mse", "lambdaloss"}
    assert (get_objective("hinge").family, get_objective("hinge").target) == ("pairwise", "score")
    for obj in map(get_objective, OBJECTIVES):
        assert obj.fn.__doc__ and obj.paper and obj.family in ("pointwise", "pairwise", "listwise")
    with pytest.raises(BenchError, match="unknown objective 'hinge-squared'"):
        get_objective("hinge-squared")


def test_every_objective_row_has_one_loss_and_a_loss_needs_a_row():
    assert sorted(LOSSES.names()) == sorted(OBJECTIVES.names())
    with pytest.raises(BenchError, match="^loss 'hinge-squared': no such objective row$"):
        LOSSES.add("hinge-squared", lambda scores, targets, mask: scores.sum())
    assert "hinge-squared" not in LOSSES


def test_check_finite_names_the_place():
    check_finite(torch.tensor(1.0), "step 1")
    with pytest.raises(CellFailure, match="non-finite loss .* at step 7"):
        check_finite(torch.tensor(float("nan")), "step 7")


def test_lambdaloss_weighs_pairs_by_their_ndcg_change():
    # Graded labels [2, 1, 0] scored in reverse: the pair (0, 2) at the ends of the ranking (rank distance 2) and
    # the adjacent pairs get δ(2) and δ(1); the gains are the grades' 2^y - 1 = [3, 1, 0] over maxDCG.
    s, t = torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([[2.0, 1.0, 0.0]])
    max_dcg = 3 + 1 / math.log2(3)
    d1, d2 = 1 - 1 / math.log2(3), 1 / math.log2(3) - 1 / math.log2(4)
    expected = (d1 * 2 * math.log2(1 + math.exp(1)) + d2 * 3 * math.log2(1 + math.exp(2))
                + d1 * 1 * math.log2(1 + math.exp(1))) / max_dcg
    assert get_objective("lambdaloss").fn(s, t, M).item() == pytest.approx(expected, rel=1e-6)
    # shifting the teacher scores changes nothing (gains start from the list's lowest target)
    assert get_objective("lambdaloss").fn(s, t + 5, M).item() == pytest.approx(expected, rel=1e-6)


def test_hinge_on_triples_by_hand():
    """max(0, 1 - (s+ - s-)) per (q, d+, d-), averaged over the triples (xpm_torch HingeLoss, margin 1)."""
    s = torch.tensor([[0.3, 0.5], [2.0, -0.5], [1.0, 0.4]])
    t = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])  # the third triple lists its d+ second
    m = torch.ones(3, 2, dtype=torch.bool)
    # 1 - (0.3 - 0.5) = 1.2; 1 - (2.0 + 0.5) < 0 -> 0; 1 - (0.4 - 1.0) = 1.6
    assert get_objective("hinge").fn(s, t, m).item() == pytest.approx((1.2 + 0 + 1.6) / 3)
    # tied labels (both judged): the first entry, the triple's listed d+, is the anchor: 1 - (0.3 - 0.5)
    assert get_objective("hinge").fn(s[:1], torch.ones(1, 2), m[:1]).item() == pytest.approx(1.2)
    # K = 3 (a group): d+ against each d-; S = [2, 0, 1] with d+ = index 0: margins 2 and 1 -> 0 and 0
    assert get_objective("hinge").fn(S, T, M).item() == 0.0
    s3 = torch.tensor([[0.5, 0.0, 1.0]])  # margins 0.5 and -0.5 -> 0.5 and 1.5
    assert get_objective("hinge").fn(s3, T, M).item() == pytest.approx((0.5 + 1.5) / 2)
