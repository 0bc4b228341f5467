"""Publication-bias analyses: regtest, ranktest, fail-safe N, trim-and-fill, funnel data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from tests.metaanalysis.conftest import CASES_DIR, close, load_case
from workers.metaanalysis.bias import _kendall_cdf, egger, fsn, funnel, rank_test, trimfill
from workers.metaanalysis.errors import EngineError, InsufficientDataError, SingularModelError
from workers.metaanalysis.rma import rma


def _asymmetric(k: int = 30, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    # small studies with large effects: a classic asymmetric funnel
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.005, 0.3, k)
    y = 0.1 + 1.5 * np.sqrt(v) + rng.normal(0, np.sqrt(v))
    return y, v


def test_egger_is_the_sei_coefficient_of_the_meta_regression() -> None:
    y, v = _asymmetric()
    for test in ("z", "knha"):
        fit = rma(y, v, test=test)
        res = egger(fit)
        ref = rma(y, v, test=test, X=np.sqrt(v))
        assert res.stat == pytest.approx(ref.stat[1], rel=1e-10)
        assert res.pval == pytest.approx(ref.pval[1], rel=1e-10)
        assert res.limit_estimate == pytest.approx(ref.beta[0], rel=1e-10)
        assert res.limit_ci_lb == pytest.approx(ref.ci_lb[0], rel=1e-10)
    assert egger(rma(y, v)).pval < 0.05


def test_egger_with_moderators_has_no_limit_estimate() -> None:
    y, v = _asymmetric()
    x = np.arange(30.0)
    res = egger(rma(y, v, X=x))
    ref = rma(y, v, X=np.column_stack([x, np.sqrt(v)]))
    assert res.stat == pytest.approx(ref.stat[2], rel=1e-10)
    assert math.isnan(res.limit_estimate)
    assert "limit_estimate" in res.na_reasons


def test_egger_needs_varying_standard_errors() -> None:
    with pytest.raises(SingularModelError):
        egger(rma(np.array([0.1, 0.4, 0.2, 0.3]), np.full(4, 0.1)))


def test_kendall_null_distribution() -> None:
    cdf = _kendall_cdf(4)  # Mahonian numbers 1 3 5 6 5 3 1 over 4! = 24
    np.testing.assert_allclose(np.diff(np.concatenate([[0.0], cdf])) * 24, [1, 3, 5, 6, 5, 3, 1])
    for n in (5, 12, 60):
        pmf = np.diff(np.concatenate([[0.0], _kendall_cdf(n)]))
        assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(pmf, pmf[::-1], atol=1e-15)


def test_rank_test_exact_pvalue_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    for k in (6, 11, 25, 70):
        v = rng.uniform(0.01, 0.5, k)
        y = rng.normal(0, np.sqrt(v)) + 0.8 * v
        fit = rma(y, v)
        res = rank_test(fit)
        w = 1 / v
        ystar = (y - np.sum(w * y) / np.sum(w)) / np.sqrt(v - 1 / np.sum(w))
        ref = stats.kendalltau(ystar, v, method="exact")
        assert res.exact
        assert res.tau == pytest.approx(ref.statistic, rel=1e-12)
        assert res.pval == pytest.approx(ref.pvalue, rel=1e-9)


def test_rank_test_with_ties_uses_the_normal_approximation() -> None:
    case = load_case(CASES_DIR / "molloy2014-ZCOR-REML.json")
    es = case["expected"]["effect_sizes"]
    res = rank_test(rma(np.array(es["yi"]), np.array(es["vi"])))
    assert not res.exact
    assert close(res.tau, case["expected"]["rank"]["tau"])
    assert close(res.pval, case["expected"]["rank"]["pval"])


def test_rank_test_all_equal_variances_gives_nan_with_reason() -> None:
    res = rank_test(rma(np.array([0.1, 0.5, 0.3]), np.full(3, 0.2)))
    assert math.isnan(res.tau) and "tau" in res.na_reasons


def test_fsn_rosenthal() -> None:
    y, v = _asymmetric()
    res = fsn(y, v)
    z = abs(np.sum(y / np.sqrt(v))) / math.sqrt(30)
    expected = 30 * (z / stats.norm.isf(0.05)) ** 2 - 30
    assert res.fsnum == math.ceil(expected)
    assert res.type == "Rosenthal" and res.alpha == 0.05
    assert res.pval == pytest.approx(stats.norm.sf(z))
    assert fsn(np.array([0.01, -0.02]), np.array([1.0, 1.0])).fsnum == 0


def test_trimfill_fills_the_missing_side_and_mirrors_studies() -> None:
    y, v = _asymmetric(40, 5)
    fit = rma(y, v)
    res = trimfill(fit)
    assert res.side == "left"
    assert res.k0 > 0
    assert res.filled_yi.size == res.k0
    # the filled-in studies lie on the side opposite the small-study excess
    assert np.all(res.filled_yi < fit.beta[0])
    refit = rma(np.concatenate([y, res.filled_yi]), np.concatenate([v, res.filled_vi]))
    assert res.beta == pytest.approx(refit.beta[0], rel=1e-4)  # metafor's default convergence
    assert res.beta < fit.beta[0]


def test_trimfill_right_side_is_the_mirror_image() -> None:
    y, v = _asymmetric(40, 5)
    left = trimfill(rma(y, v))
    right = trimfill(rma(-y, v))
    assert right.side == "right"
    assert right.k0 == left.k0
    np.testing.assert_allclose(right.filled_yi, -left.filled_yi, rtol=1e-9)
    assert right.beta == pytest.approx(-left.beta, rel=1e-9)


def test_trimfill_with_nothing_missing_returns_the_model() -> None:
    y = np.array([-0.2, -0.1, 0.0, 0.1, 0.2, -0.15, 0.15])
    v = np.array([0.01, 0.02, 0.03, 0.02, 0.01, 0.025, 0.025])
    fit = rma(y, v, test="knha")
    res = trimfill(fit)
    assert res.k0 == 0
    assert res.se == fit.se[0] and res.test == "knha"


def test_trimfill_refuses_meta_regression_and_k1() -> None:
    y, v = _asymmetric(10)
    with pytest.raises(EngineError) as err:
        trimfill(rma(y, v, X=np.arange(10.0)))
    assert err.value.code == "not_applicable"
    with pytest.raises(InsufficientDataError):
        trimfill(rma(y[:1], v[:1]))


def test_funnel_lines() -> None:
    y, v = _asymmetric(10)
    fit = rma(y, v)
    data = funnel(fit, trimfill(fit))
    z = stats.norm.isf(0.025)
    se_max = float(np.sqrt(v).max())
    assert data["lines"]["lower"][1] == pytest.approx(fit.beta[0] - z * se_max)
    assert data["lines"]["upper"][0] == pytest.approx(fit.beta[0])
    assert len(data["yi"]) == 10
