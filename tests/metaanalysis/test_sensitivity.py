"""Batched leave-one-out, cumulative and influence diagnostics against explicit refits.

metafor refits the model once per subset; the engine computes all subsets at once. These tests
refit with ``rma()`` on each subset and require the same numbers.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.metaanalysis.errors import EngineError, InsufficientDataError
from workers.metaanalysis.estimators import METHODS
from workers.metaanalysis.rma import rma
from workers.metaanalysis.sensitivity import cumulative, influence, leave1out


def _data(k: int = 14, seed: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.02, 0.3, k)
    y = rng.normal(0.3, np.sqrt(v + 0.1))
    return y, v


def _same(a: float, b: float) -> bool:
    if math.isnan(b):
        return math.isnan(a)
    return abs(a - b) <= 1e-9 + 1e-7 * abs(b)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("test", ["z", "knha"])
def test_leave1out_equals_refits(method: str, test: str) -> None:
    y, v = _data()
    fit = rma(y, v, method=method, test=test)
    res = leave1out(fit)
    for i in range(y.size):
        ref = rma(np.delete(y, i), np.delete(v, i), method=method, test=test)
        got = {
            "estimate": res.estimate[i],
            "se": res.se[i],
            "zval": res.zval[i],
            "pval": res.pval[i],
            "ci_lb": res.ci_lb[i],
            "ci_ub": res.ci_ub[i],
            "Q": res.Q[i],
            "tau2": res.tau2[i],
            "I2": res.I2[i],
            "H2": res.H2[i],
        }
        exp = {
            "estimate": ref.beta[0],
            "se": ref.se[0],
            "zval": ref.stat[0],
            "pval": ref.pval[0],
            "ci_lb": ref.ci_lb[0],
            "ci_ub": ref.ci_ub[0],
            "Q": ref.QE,
            "tau2": ref.tau2,
            "I2": ref.I2,
            "H2": ref.H2,
        }
        for key in got:
            assert _same(got[key], exp[key]), (i, key, got[key], exp[key])


@pytest.mark.parametrize("method", METHODS)
def test_cumulative_equals_refits(method: str) -> None:
    y, v = _data(10, 5)
    fit = rma(y, v, method=method, test="knha")
    order = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3]
    res = cumulative(fit, order)
    perm = np.argsort(order, kind="stable")
    assert list(res.order) == list(perm)
    for i in range(y.size):
        sub = perm[: i + 1]
        ref = rma(y[sub], v[sub], method=method, test="knha")
        assert _same(res.estimate[i], ref.beta[0]), (i, "estimate")
        assert _same(res.se[i], ref.se[0]), (i, "se")
        assert _same(res.ci_lb[i], ref.ci_lb[0]), (i, "ci_lb")
        assert _same(res.tau2[i], ref.tau2), (i, "tau2")
        assert _same(res.Q[i], ref.QE), (i, "Q")
        assert _same(res.I2[i], ref.I2), (i, "I2")


def test_cumulative_first_model_uses_k1_rules() -> None:
    y, v = _data(6, 8)
    res = cumulative(rma(y, v, test="knha"))
    assert res.estimate[0] == pytest.approx(y[0])
    assert res.se[0] == pytest.approx(math.sqrt(v[0]))  # z test, tau² = 0
    assert res.tau2[0] == 0.0 and res.Q[0] == 0.0 and res.I2[0] == 0.0


def test_cumulative_order_puts_missing_keys_last() -> None:
    y, v = _data(5, 2)
    res = cumulative(rma(y, v), [2020, None, 2018, float("nan"), 2019])
    assert list(res.order) == [2, 4, 0, 1, 3]


def test_leave1out_with_two_studies() -> None:
    y, v = np.array([0.1, 0.5]), np.array([0.04, 0.09])
    res = leave1out(rma(y, v))
    np.testing.assert_allclose(res.estimate, [0.5, 0.1])
    np.testing.assert_allclose(res.se, np.sqrt([0.09, 0.04]))
    np.testing.assert_allclose(res.tau2, [0.0, 0.0])


def test_leave1out_refuses_meta_regression_and_k1() -> None:
    y, v = _data(8, 1)
    with pytest.raises(EngineError) as err:
        leave1out(rma(y, v, X=np.arange(8.0)))
    assert err.value.code == "not_applicable"
    with pytest.raises(InsufficientDataError):
        leave1out(rma(y[:1], v[:1]))


def _influence_by_refits(fit, X: np.ndarray) -> dict[str, np.ndarray]:
    """metafor's influence.rma.uni formulas with explicit refits."""
    k = fit.k
    w = 1 / (fit.vi + fit.tau2)
    A = np.linalg.inv((X * w[:, None]).T @ X)
    hat = w * np.einsum("ij,jk,ik->i", X, A, X)
    out = {key: np.full(k, np.nan) for key in ("rstudent", "dffits", "cook_d", "cov_r", "tau2_del", "QE_del")}
    for i in range(k):
        r = rma(
            np.delete(fit.yi, i),
            np.delete(fit.vi, i),
            method=fit.method,
            test=fit.test,
            X=np.delete(X[:, 1:], i, axis=0),
        )
        xi = X[i]
        delpred = xi @ r.beta
        vdel = xi @ r.vb @ xi
        out["rstudent"][i] = (fit.yi[i] - delpred) / math.sqrt(fit.vi[i] * r.s2w + vdel + r.tau2 * r.s2w)
        out["dffits"][i] = (xi @ fit.beta - delpred) / math.sqrt(r.s2w * hat[i] * (r.tau2 + fit.vi[i]))
        d = fit.beta - r.beta
        out["cook_d"][i] = d @ np.linalg.inv(fit.vb) @ d
        out["cov_r"][i] = np.linalg.det(r.vb) / np.linalg.det(fit.vb)
        out["tau2_del"][i] = r.tau2
        out["QE_del"][i] = r.QE
    out["hat"] = hat
    out["weight"] = 100 * w / w.sum()
    return out


@pytest.mark.parametrize("method", ["REML", "DL", "ML", "PM", "EE"])
@pytest.mark.parametrize("test", ["z", "knha"])
def test_influence_with_moderators_equals_refits(method: str, test: str) -> None:
    rng = np.random.default_rng(21)
    k = 15
    v = rng.uniform(0.02, 0.2, k)
    x = rng.normal(10, 3, k)
    y = 0.1 + 0.05 * x + rng.normal(0, np.sqrt(v + 0.05))
    fit = rma(y, v, method=method, test=test, X=x)
    res = influence(fit)
    exp = _influence_by_refits(fit, np.column_stack([np.ones(k), x]))
    for key, val in exp.items():
        np.testing.assert_allclose(getattr(res, key), val, rtol=1e-7, atol=1e-10, err_msg=key)


def test_influence_marks_inestimable_refits() -> None:
    # the only study of level "b": without it the dummy column is all zero
    y = np.array([0.1, 0.3, 0.2, 0.5, 0.4, 0.25])
    v = np.full(6, 0.05)
    x = np.array([0, 0, 0, 0, 0, 1.0])
    res = influence(rma(y, v, X=x, method="DL"))
    assert 5 in res.failed
    assert math.isnan(res.rstudent[5]) and math.isnan(res.cook_d[5])
    assert not math.isnan(res.rstudent[0])


def test_leave1out_huge_k_is_batched_and_consistent() -> None:
    rng = np.random.default_rng(4)
    k = 3000
    v = rng.uniform(0.01, 0.5, k)
    y = rng.normal(0.2, np.sqrt(v + 0.05))
    fit = rma(y, v)
    res = leave1out(fit)
    for i in (0, 1234, k - 1):
        ref = rma(np.delete(y, i), np.delete(v, i))
        assert res.tau2[i] == pytest.approx(ref.tau2, rel=1e-9)
        assert res.estimate[i] == pytest.approx(ref.beta[0], rel=1e-9)


def test_leave_one_out_series_equals_masked_sums() -> None:
    from workers.metaanalysis.estimators import Family, Problem

    rng = np.random.default_rng(9)
    k = 600
    v = rng.uniform(0.01, 0.5, k)
    v[7] = 1e-9  # a study with almost all the weight: its row must fall back to the exact sums
    y = rng.normal(0.3, 0.5, k)
    fam = Family(Problem(y, v), "loo")
    idx = np.arange(k)
    for centre in (0.0, 0.05, 5.0):
        t = np.abs(centre + rng.normal(0, 1e-3, k))
        t[11] = centre + 50.0  # far from the others: slow series, exact fallback
        series = fam.var(idx, t, (1, 2, 3))
        exact = fam._exact(idx, t, (1, 2, 3))
        for n, (a, b) in enumerate(zip(series, exact, strict=True), start=1):
            W = (1.0 / (v[None, :] + t[:, None])) ** n
            W[idx, idx] = 0.0
            scale = W @ np.abs(fam.problem.G)
            assert np.max(np.abs(a - b) / scale) < 1e-13, (centre, n)
