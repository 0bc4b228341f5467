"""The one Fisher-scoring loop and the one se_tau2: the same iteration and formulas for one model
and for families of subsets."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.metaanalysis.estimators import (
    DEFAULT_CONTROL,
    METAFOR_DEFAULTS,
    Control,
    Family,
    InterceptOnlySums,
    Problem,
    RegressionSums,
    estimate_tau2,
    tau2_intercept_only,
)
from workers.metaanalysis.estimators.fisher_scoring import fisher_scoring
from workers.metaanalysis.estimators.single_fit import se_tau2


def _data(k: int, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.3, k)
    return rng.normal(0.2, np.sqrt(0.05 + v)), v


def _linear(root: float, slope: float):
    """A score with one root whose Fisher step is a fixed fraction of the distance to it."""

    def score(idx: np.ndarray, t: np.ndarray):
        return root - t, np.full(t.size, slope), None

    return score


def test_rows_iterate_independently_to_their_roots() -> None:
    roots = np.array([0.5, 2.0, 0.0, 1e-3])

    def score(idx: np.ndarray, t: np.ndarray):
        return roots[idx] - t, np.ones(t.size), None

    t, ok, reason, _ = fisher_scoring(score, np.ones(4), np.arange(4), DEFAULT_CONTROL, False)
    assert ok.all() and reason == [None] * 4
    np.testing.assert_allclose(t, roots, rtol=0, atol=1e-13)


def test_steps_below_zero_are_halved_until_tau2_stays_non_negative() -> None:
    # the step from 1 towards -3 is -4: halved twice to -1, then from 0 no negative step is taken
    seen = []

    def score(idx: np.ndarray, t: np.ndarray):
        seen.append(float(t[0]))
        return -3.0 - t, np.ones(1), None

    t, ok, _, it = fisher_scoring(score, np.array([1.0]), np.zeros(1, dtype=int), DEFAULT_CONTROL, False)
    assert seen[:2] == [1.0, 0.0] and t[0] == 0.0 and ok[0] and it == 2


def test_divergence_and_iteration_limit_give_reasons() -> None:
    def no_information(idx: np.ndarray, t: np.ndarray):
        return np.ones(t.size), np.zeros(t.size), None

    t, ok, reason, _ = fisher_scoring(
        no_information, np.ones(1), np.zeros(1, dtype=int), DEFAULT_CONTROL, False
    )
    assert math.isnan(t[0]) and not ok[0] and reason[0] == "Fisher scoring diverged (infinite step)"
    ctl = Control(maxiter=5)
    t, ok, reason, it = fisher_scoring(_linear(1.0, 1e6), np.zeros(1), np.zeros(1, dtype=int), ctl, False)
    assert it == 5 and math.isnan(t[0]) and not ok[0]
    assert reason[0] == "Fisher scoring did not converge in 5 iterations"


def test_likelihood_check_sets_zero_where_it_wins() -> None:
    def gain(idx: np.ndarray, t: np.ndarray) -> np.ndarray:
        return np.where(idx == 0, 1.0, -1.0)

    t, ok, _, _ = fisher_scoring(
        _linear(0.5, 1.0), np.ones(2), np.arange(2), DEFAULT_CONTROL, False, loglik_gain=gain
    )
    assert ok.all() and t[0] == 0.0 and t[1] == pytest.approx(0.5, abs=1e-13)


@pytest.mark.parametrize("ctl", [DEFAULT_CONTROL, METAFOR_DEFAULTS])
@pytest.mark.parametrize("method", ["ML", "REML", "EB"])
def test_one_model_and_a_family_of_one_take_the_same_iteration(method: str, ctl: Control) -> None:
    y, v = _data(40)
    single, _, ok, _ = tau2_intercept_only(InterceptOnlySums(y, v), method, ctl)
    family = estimate_tau2(Family(Problem(y, v), "full"), method, ctl)
    assert ok and family.ok[0]
    # the same loop on differently summed weights: the same root up to the threshold
    assert single == pytest.approx(family.tau2[0], rel=0, abs=max(10 * ctl.threshold, 1e-12))


@pytest.mark.parametrize("method", ["DL", "HS", "HE", "SJ", "ML", "REML", "EB", "PM"])
def test_se_tau2_is_one_formula_for_scalar_and_matrix_sums(method: str) -> None:
    y, v = _data(30)
    S = InterceptOnlySums(y, v)
    tau2, tau2_0, ok, _ = tau2_intercept_only(S, method, DEFAULT_CONTROL)
    assert ok
    scalar = se_tau2(S, method, tau2, tau2_0)
    matrix = se_tau2(RegressionSums(Problem(y, v)), method, tau2, tau2_0)
    assert math.isfinite(scalar) and scalar == pytest.approx(matrix, rel=1e-12)
    assert math.isnan(se_tau2(S, "EE", 0.0, math.nan))
