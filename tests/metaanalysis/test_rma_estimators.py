"""The estimators against a literal dense transcription of metafor's matrix formulas.

``dense_rma`` below follows metafor 3.8-1 ``rma.uni()`` step by step with the k x k matrices it
uses (P = W - W X (X'WX)^-1 X'W, PV, ...), so it checks the engine's O(k p^2) sums-based algebra
for every estimator, with and without moderators, on data where no reference file exists.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.metaanalysis.estimators import METHODS
from workers.metaanalysis.rma import rma


def _P(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    W = np.diag(w)
    A = np.linalg.inv(X.T @ W @ X)
    return W - W @ X @ A @ X.T @ W


def dense_rma(y: np.ndarray, v: np.ndarray, X: np.ndarray, method: str) -> dict[str, float]:
    """tau², se(tau²), QE, I², H² and beta exactly as rma.uni computes them (dense algebra)."""
    k, p = X.shape
    Y = y - y.mean()
    V = np.diag(v)
    I = np.eye(k)
    tau2_0 = math.nan
    if method == "EE":
        tau2 = 0.0
    elif method in ("HS", "DL"):
        w = 1 / v
        P = _P(X, w)
        rss = Y @ P @ Y
        tau2 = max(0.0, (rss - k) / w.sum() if method == "HS" else (rss - (k - p)) / np.trace(P))
    elif method in ("HE", "ML", "REML", "EB"):
        P = I - X @ np.linalg.inv(X.T @ X) @ X.T
        tau2 = (Y @ P @ Y - np.trace(P @ V)) / (k - p)
        if method != "HE":
            tau2 = max(0.0, tau2)
            for _ in range(10000):
                w = 1 / (v + tau2)
                P = _P(X, w)
                if method == "ML":
                    adj = (Y @ P @ P @ Y - w.sum()) / (w**2).sum()
                elif method == "REML":
                    adj = (Y @ P @ P @ Y - np.trace(P)) / np.trace(P @ P)
                else:
                    adj = (Y @ P @ Y * k / (k - p) - k) / w.sum()
                while tau2 + adj < 0:
                    adj /= 2
                tau2 += adj
                if abs(adj) <= 1e-13:
                    break
        tau2 = max(0.0, tau2)
    elif method == "SJ":
        tau2_0 = float(np.var(Y))
        P = _P(X, 1 / (v + tau2_0))
        tau2 = tau2_0 * (Y @ P @ Y) / (k - p)
    else:  # PM: bisection on the generalised Q on metafor's [0, max(100, 10 mad(y)^2)]
        mad = 1.4826 * np.median(np.abs(y - np.median(y)))
        lo, hi = 0.0, max(100.0, 10 * mad**2)
        if Y @ _P(X, 1 / v) @ Y < k - p:
            tau2 = 0.0
        else:
            for _ in range(200):
                mid = 0.5 * (lo + hi)
                if Y @ _P(X, 1 / (v + mid)) @ Y > k - p:
                    lo = mid
                else:
                    hi = mid
            tau2 = 0.5 * (lo + hi)
    t = tau2
    if method == "EE":
        se_t = math.nan
    elif method in ("HS", "DL"):
        w = 1 / v
        P = _P(X, w)
        d = w.sum() ** 2 if method == "HS" else np.trace(P) ** 2
        se_t = math.sqrt((2 * (k - p) + 4 * t * np.trace(P) + 2 * t * t * np.sum(P * P)) / d)
    elif method == "HE":
        P = I - X @ np.linalg.inv(X.T @ X) @ X.T
        PV = P @ V
        se_t = math.sqrt((2 * np.sum(PV * PV.T) + 4 * t * np.trace(PV) + 2 * t * t * (k - p)) / (k - p) ** 2)
    elif method == "SJ":
        P = _P(X, 1 / (v + tau2_0))
        PV = P @ V
        se_t = math.sqrt(
            tau2_0**2
            / (k - p) ** 2
            * (2 * np.sum(PV * PV.T) + 4 * t * np.sum(PV * P) + 2 * t * t * np.sum(P * P))
        )
    elif method == "ML":
        se_t = math.sqrt(2 / np.sum((1 / (v + t)) ** 2))
    elif method == "REML":
        P = _P(X, 1 / (v + t))
        se_t = math.sqrt(2 / np.sum(P * P))
    else:
        se_t = math.sqrt(2 * k**2 / (k - p) / np.sum(1 / (v + t)) ** 2)
    w = 1 / (v + t)
    beta = np.linalg.solve(X.T @ np.diag(w) @ X, X.T @ (w * y))
    P = _P(X, 1 / v)
    qe = max(0.0, Y @ P @ Y)
    vt = (k - p) / np.trace(P)
    if method == "EE":
        i2, h2 = max(0.0, 100 * (qe - (k - p)) / qe), qe / (k - p)
    else:
        i2, h2 = 100 * t / (vt + t), t / vt + 1
    return {"tau2": t, "se_tau2": se_t, "QE": qe, "I2": i2, "H2": h2, "beta": beta}


def _data(k: int, seed: int, spread: float = 0.3) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    v = rng.uniform(0.01, 0.2, k)
    x1 = rng.normal(50, 10, k)
    x2 = rng.integers(0, 2, k).astype(float)
    y = 0.2 + 0.01 * (x1 - 50) + 0.3 * x2 + rng.normal(0, np.sqrt(v + spread**2))
    return y, v, np.column_stack([x1, x2])


def _check(got, exp) -> None:
    for key in ("tau2", "se_tau2", "QE", "I2", "H2"):
        a, e = getattr(got, key), exp[key]
        if math.isnan(e):
            assert math.isnan(a), key
        else:
            assert a == pytest.approx(e, rel=1e-7, abs=1e-10), key
    np.testing.assert_allclose(got.beta, exp["beta"], rtol=1e-7, atol=1e-10)


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [1, 2])
def test_intercept_only_matches_dense(method: str, seed: int) -> None:
    y, v, _ = _data(25, seed)
    _check(rma(y, v, method=method), dense_rma(y, v, np.ones((25, 1)), method))


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("seed", [3, 4])
def test_meta_regression_matches_dense(method: str, seed: int) -> None:
    y, v, M = _data(30, seed)
    X = np.column_stack([np.ones(30), M])
    _check(rma(y, v, method=method, X=M), dense_rma(y, v, X, method))


@pytest.mark.parametrize("method", ["DL", "REML", "ML", "PM", "HE", "HS", "EB"])
def test_homogeneous_data_gives_tau2_zero(method: str) -> None:
    # outcomes much closer together than their sampling variances suggest: no heterogeneity
    rng = np.random.default_rng(7)
    v = rng.uniform(0.5, 1.0, 20)
    y = 0.3 + rng.normal(0, 0.01, 20)
    fit = rma(y, v, method=method)
    assert fit.tau2 == 0.0
    assert fit.I2 == 0.0
    assert fit.H2 == 1.0
    assert fit.QE < 19  # QE below its degrees of freedom


def test_extreme_heterogeneity() -> None:
    rng = np.random.default_rng(11)
    v = rng.uniform(0.001, 0.002, 40)
    y = rng.normal(0, 30, 40)
    for method in ("REML", "ML", "PM", "DL", "SJ", "EB"):
        fit = rma(y, v, method=method)
        exp = dense_rma(y, v, np.ones((40, 1)), method)
        assert fit.tau2 == pytest.approx(exp["tau2"], rel=1e-8)
        assert fit.I2 > 99.99


def test_sj_starting_value_is_the_sample_variance() -> None:
    y, v, _ = _data(15, 5)
    fit = rma(y, v, method="SJ")
    assert fit.tau2_0 == pytest.approx(np.var(y), rel=1e-14)
    P = _P(np.ones((15, 1)), 1 / (v + fit.tau2_0))
    yc = y - y.mean()
    assert fit.tau2 == pytest.approx(fit.tau2_0 * (yc @ P @ yc) / 14, rel=1e-12)


def test_reml_solves_its_score_equation() -> None:
    y, v, _ = _data(40, 9, spread=0.5)
    fit = rma(y, v, method="REML")
    P = _P(np.ones((40, 1)), 1 / (v + fit.tau2))
    score = y @ P @ P @ y - np.trace(P)
    assert abs(score) < 1e-8 * np.trace(P)


def test_pm_root_is_exact() -> None:
    y, v, _ = _data(40, 10, spread=0.5)
    fit = rma(y, v, method="PM")
    yc = y - y.mean()
    q = yc @ _P(np.ones((40, 1)), 1 / (v + fit.tau2)) @ yc
    assert q == pytest.approx(39, abs=1e-9)
    eb = rma(y, v, method="EB")
    assert eb.tau2 == pytest.approx(fit.tau2, rel=1e-10)  # EB and PM solve the same equation


def test_ml_tau2_is_not_above_reml() -> None:
    y, v, _ = _data(12, 13, spread=0.4)
    assert rma(y, v, method="ML").tau2 <= rma(y, v, method="REML").tau2


@pytest.mark.parametrize("method", ["REML", "ML", "EB"])
def test_iterations_reach_metafors_fixed_point_near_the_boundary(method: str) -> None:
    # small k and little heterogeneity: many fits end at (or creep towards) tau² = 0, where
    # metafor's step halving approaches 0 geometrically; the engine must land within metafor's
    # convergence threshold of metafor's value in every case
    rng = np.random.default_rng(123)
    hits_zero = 0
    for _ in range(80):
        k = int(rng.integers(3, 12))
        v = rng.uniform(0.01, 0.3, k)
        y = rng.normal(0, np.sqrt(v * rng.uniform(0.3, 2.0)))
        got = rma(y, v, method=method).tau2
        exp = dense_rma(y, v, np.ones((k, 1)), method)["tau2"]
        assert got == pytest.approx(exp, abs=1e-11)
        hits_zero += got == 0.0
    assert hits_zero > 5  # the boundary case was exercised
