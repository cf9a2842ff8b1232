"""The hand-written statistics against the libraries: the sign-flip randomization test against
``scipy.stats.permutation_test`` and Holm-Bonferroni against ``statsmodels.stats.multitest.multipletests``."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from benchmark.report.stats import EXACT_MAX, PERMUTATIONS, holm, randomization_test


def _scipy_exact(d: np.ndarray) -> float:
    """Exact two-sided paired test of the sum of differences: every sign vector (scipy's "samples" permutations of
    one paired sample are sign flips; its two-sided p doubles the smaller one-sided p, which for this symmetric
    null equals P(|T| >= |t|))."""
    res = stats.permutation_test((d,), np.sum, permutation_type="samples", alternative="two-sided",
                                 n_resamples=np.inf)
    return float(res.pvalue)


@pytest.mark.parametrize("seed, n", [(0, 5), (1, 9), (2, EXACT_MAX)])
def test_exact_randomization_test_equals_scipy(seed, n):
    rng = np.random.default_rng(seed)
    a, b = rng.random(n), rng.random(n) * 0.8
    ours = randomization_test({str(i): x for i, x in enumerate(a)}, {str(i): x for i, x in enumerate(b)})
    assert ours == pytest.approx(_scipy_exact(a - b), abs=1e-12)


def test_sampled_randomization_test_within_monte_carlo_error_of_scipy_exact():
    rng = np.random.default_rng(3)
    n = EXACT_MAX + 4  # 2^16 sign vectors: ours samples PERMUTATIONS of them, scipy enumerates all
    a, b = rng.random(n), rng.random(n) * 0.9
    ours = randomization_test({str(i): x for i, x in enumerate(a)}, {str(i): x for i, x in enumerate(b)})
    exact = _scipy_exact(a - b)
    assert abs(ours - exact) < 4 * np.sqrt(exact * (1 - exact) / PERMUTATIONS) + 1 / PERMUTATIONS


@pytest.mark.parametrize("pvalues", [[0.01, 0.04, 0.03, 0.005], [0.5, 0.2, 0.9], [0.001], [0.02, 0.02, 0.5, 0.04]])
def test_holm_equals_statsmodels(pvalues):
    assert holm(pvalues) == pytest.approx(list(multipletests(pvalues, method="holm")[1]))
