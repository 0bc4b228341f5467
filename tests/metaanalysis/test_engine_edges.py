"""Edge cases of the pooling core: tiny and huge k, degenerate data, invalid input, errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from workers.metaanalysis.errors import (
    ConvergenceError,
    EngineError,
    InsufficientDataError,
    InvalidInputError,
    SingularModelError,
)
from workers.metaanalysis.estimators import METHODS, Control
from workers.metaanalysis.rma import confint, predict, rma


@pytest.mark.parametrize("method", METHODS)
def test_k1_follows_metafor(method: str) -> None:
    fit = rma([0.4], [0.04], method=method, test="knha")
    assert fit.k == 1 and fit.tau2 == 0.0
    assert fit.test == "z" and any("k = 1" in n for n in fit.notes)
    assert math.isnan(fit.se_tau2) and "se_tau2" in fit.na_reasons
    assert (fit.QE, fit.QEp, fit.I2, fit.H2) == (0.0, 1.0, 0.0, 1.0)
    assert fit.beta[0] == pytest.approx(0.4) and fit.se[0] == pytest.approx(0.2)
    pred = predict(fit)
    assert pred.ci_lb == pytest.approx(0.4 - 1.959963984540054 * 0.2)
    expected = EngineError if method == "EE" else InsufficientDataError  # EE: not applicable at all
    with pytest.raises(expected):
        confint(fit)


@pytest.mark.parametrize("method", METHODS)
def test_k2_fits(method: str) -> None:
    fit = rma([0.1, 0.9], [0.02, 0.03], method=method)
    assert fit.k == 2 and fit.tau2 >= 0
    assert pytest.approx((0.1 - 0.9) ** 2 / 0.05, rel=1e-12) == fit.QE
    if method not in ("EE", "HS"):
        assert fit.tau2 > 0  # the two studies disagree far beyond their variances


@pytest.mark.parametrize("method", METHODS)
def test_identical_studies(method: str) -> None:
    fit = rma(np.full(6, 0.25), np.full(6, 0.1), method=method)
    assert fit.tau2 == 0.0 and fit.QE == 0.0 and fit.I2 == 0.0
    assert fit.beta[0] == pytest.approx(0.25)
    assert (0.0 if method == "EE" else 1.0) == fit.H2  # metafor: QE/(k-1) for EE


def test_identical_studies_knha_scale_is_zero() -> None:
    fit = rma(np.full(5, 0.3), np.full(5, 0.1), test="knha")
    assert fit.s2w == 0.0 and fit.se[0] == 0.0
    assert fit.pval[0] == 0.0 and fit.ci_lb[0] == pytest.approx(0.3)
    assert any("scale factor is 0" in n for n in fit.notes)


def test_huge_k() -> None:
    rng = np.random.default_rng(0)
    k = 100_000
    v = rng.uniform(0.01, 1.0, k)
    y = rng.normal(0.2, np.sqrt(v + 0.04))
    fit = rma(y, v)
    w = 1 / (v + fit.tau2)
    mu = np.sum(w * y) / np.sum(w)
    score = np.sum(w**2 * (y - mu) ** 2) - (np.sum(w) - np.sum(w**2) / np.sum(w))
    assert abs(score) < 1e-6 * np.sum(w)
    assert fit.tau2 == pytest.approx(0.04, rel=0.1)
    assert fit.beta[0] == pytest.approx(mu, rel=1e-12)


def test_nonpositive_variance_is_invalid() -> None:
    with pytest.raises(InvalidInputError) as err:
        rma([0.1, 0.2, 0.3], [0.1, 0.0, 0.2])
    assert err.value.row == 1 and err.value.column == "vi" and err.value.code == "nonpositive_variance"
    with pytest.raises(InvalidInputError):
        rma([0.1, 0.2], [0.1, -0.2])


@pytest.mark.parametrize(
    ("yi", "vi", "kwargs"),
    [
        ([0.1, float("nan")], [0.1, 0.1], {}),
        ([0.1, 0.2], [0.1, float("inf")], {}),
        ([0.1, 0.2, 0.3], [0.1, 0.1], {}),
        ([0.1, 0.2], [0.1, 0.1], {"method": "XX"}),
        ([0.1, 0.2], [0.1, 0.1], {"test": "F"}),
        ([0.1, 0.2], [0.1, 0.1], {"level": 120}),
        ([0.1, 0.2], [0.1, 0.1], {"X": [[1.0], [float("nan")]]}),
        ([0.1, 0.2], [0.1, 0.1], {"X": [1.0, 2.0, 3.0]}),
    ],
)
def test_invalid_inputs(yi, vi, kwargs) -> None:
    with pytest.raises(InvalidInputError):
        rma(yi, vi, **kwargs)


def test_empty_input() -> None:
    with pytest.raises(InsufficientDataError):
        rma([], [])


def test_too_few_studies_for_the_parameters() -> None:
    with pytest.raises(InsufficientDataError) as err:
        rma([0.1, 0.2], [0.1, 0.1], X=[1.0, 2.0])  # 2 coefficients + tau²
    assert err.value.code == "too_few_studies"
    fit = rma([0.1, 0.2], [0.1, 0.1], X=[1.0, 2.0], method="EE")  # saturated EE model is allowed
    assert fit.QE == 0.0 and fit.QEp == 1.0
    assert fit.beta[1] == pytest.approx(0.1)


def test_singular_moderators_are_named() -> None:
    y, v = np.array([0.1, 0.3, 0.2, 0.5, 0.4]), np.full(5, 0.05)
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    with pytest.raises(SingularModelError) as err:
        rma(y, v, X=np.column_stack([x, 2 * x]), coef_names=["dose", "dose2"])
    assert "dose2" in err.value.message and err.value.column == "dose2"
    with pytest.raises(SingularModelError) as err:
        rma(y, v, X=np.column_stack([x, np.ones(5)]), coef_names=["dose", "const"])
    assert "const" in err.value.message


def test_knha_with_k_equal_p_plus_1() -> None:
    y, v, x = np.array([0.1, 0.5, 0.2]), np.array([0.02, 0.03, 0.025]), np.array([1.0, 3.0, 2.0])
    fit = rma(y, v, X=x, test="knha", method="DL")
    assert fit.dfs == 1 and fit.QMdf == (1, 1)
    X = np.column_stack([np.ones(3), x])
    w = 1 / (v + fit.tau2)
    A = np.linalg.inv((X * w[:, None]).T @ X)
    b = A @ (X.T @ (w * y))
    s2w = np.sum(w * (y - X @ b) ** 2) / 1
    np.testing.assert_allclose(fit.se, np.sqrt(s2w * np.diag(A)), rtol=1e-10)
    from scipy import stats

    assert fit.pval[1] == pytest.approx(2 * stats.t.sf(abs(fit.stat[1]), 1), rel=1e-10)
    assert fit.QMp == pytest.approx(stats.f.sf(fit.QM, 1, 1), rel=1e-10)
    assert pytest.approx(fit.stat[1] ** 2, rel=1e-10) == fit.QM


def test_non_convergence_raises() -> None:
    rng = np.random.default_rng(2)
    v = rng.uniform(0.01, 0.1, 20)
    y = rng.normal(0, 1, 20)
    with pytest.raises(ConvergenceError):
        rma(y, v, method="REML", control=Control(maxiter=2))


def test_pm_above_tau2_max_raises() -> None:
    # mad(y) = 0 keeps metafor's search interval at [0, 100]; one outlier needs tau² far above it
    y = np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1e4])
    with pytest.raises(ConvergenceError) as err:
        rma(y, np.full(6, 0.01), method="PM")
    assert "tau2.max" in err.value.message


def test_ee_has_no_confint_and_no_prediction_interval() -> None:
    fit = rma([0.1, 0.4, 0.3], [0.01, 0.02, 0.03], method="EE")
    with pytest.raises(EngineError) as err:
        confint(fit)
    assert err.value.code == "not_applicable"
    pred = predict(fit)
    assert math.isnan(pred.pi_lb) and "pi_lb" in pred.na_reasons
    assert pred.to_dict()["pi_ub"] is None


def test_confint_null_set_and_zero_lower_bound() -> None:
    # homogeneous: Q(0) below the lower critical value -> both bounds 0, the CI is the null set
    y = np.array([0.30, 0.31, 0.29, 0.30, 0.30, 0.31])
    ci = confint(rma(y, np.full(6, 0.5)))
    assert ci.tau2[1:] == [0.0, 0.0] and ci.ci_null and ci.lb_sign == "<"
    # moderate: Q(0) between the critical values -> lower bound 0, upper bound searched
    rng = np.random.default_rng(5)
    v = rng.uniform(0.05, 0.1, 12)
    y = rng.normal(0, np.sqrt(v))
    ci = confint(rma(y, v))
    assert ci.tau2[1] == 0.0 and ci.tau2[2] > 0 and not ci.ci_null


def test_confint_bounds_solve_the_q_profile_equations() -> None:
    rng = np.random.default_rng(6)
    v = rng.uniform(0.01, 0.1, 20)
    y = rng.normal(0, np.sqrt(v + 0.2))
    fit = rma(y, v)
    ci = confint(fit)
    from scipy import stats

    def q(t: float) -> float:
        w = 1 / (v + t)
        mu = np.sum(w * y) / np.sum(w)
        return float(np.sum(w * (y - mu) ** 2))

    assert q(ci.tau2[1]) == pytest.approx(stats.chi2.isf(0.025, 19), rel=1e-10)
    assert q(ci.tau2[2]) == pytest.approx(stats.chi2.ppf(0.025, 19), rel=1e-10)
    assert ci.tau[1] == pytest.approx(math.sqrt(ci.tau2[1]))
    assert ci.I2[2] == pytest.approx(100 * ci.tau2[2] / (fit.vt + ci.tau2[2]))


def test_prediction_interval_uses_t_under_knha() -> None:
    from scipy import stats

    y, v = np.array([0.1, 0.5, 0.2, 0.8, 0.3]), np.array([0.02, 0.03, 0.025, 0.04, 0.02])
    fit = rma(y, v, test="knha")
    pred = predict(fit)
    half = stats.t.isf(0.025, 4) * math.sqrt(fit.se[0] ** 2 + fit.tau2)
    assert pred.pi_ub - pred.pred == pytest.approx(half, rel=1e-10)


def test_predict_meta_regression_at_given_values() -> None:
    y, v, x = np.array([0.1, 0.5, 0.2, 0.8, 0.3]), np.full(5, 0.02), np.array([1.0, 4.0, 2.0, 5.0, 3.0])
    fit = rma(y, v, X=x)
    pred = predict(fit, [2.5])
    assert pred.pred == pytest.approx(fit.beta[0] + 2.5 * fit.beta[1])
    assert predict(fit).pred == pytest.approx(fit.beta[0] + 3.0 * fit.beta[1])  # at the mean
    with pytest.raises(InvalidInputError):
        predict(fit, [1.0, 2.0])


def test_r2_is_truncated_at_zero_and_defined_for_ee() -> None:
    rng = np.random.default_rng(8)
    v = rng.uniform(0.02, 0.1, 20)
    y = rng.normal(0, np.sqrt(v + 0.1))
    noise = rng.normal(size=20)
    fit = rma(y, v, X=noise)
    assert fit.R2 >= 0.0
    ee = rma(y, v, X=noise, method="EE")
    w = 1 / v
    X = np.column_stack([np.ones(20), noise])
    b = np.linalg.solve((X * w[:, None]).T @ X, X.T @ (w * y))
    f = X @ b
    mss = np.sum(w * (f - np.sum(w * f) / np.sum(w)) ** 2)
    rss = np.sum(w * (y - f) ** 2)
    adj = 1 - (1 - mss / (mss + rss)) * 19 / 18
    assert pytest.approx(max(0.0, 100 * adj), abs=1e-10) == ee.R2


def _random_rows(rng: np.random.Generator, kind: int, k: int) -> tuple[str, list[dict]]:
    if kind == 0:  # generic effects, heterogeneous
        return "GEN", [
            {
                "study": f"s{i}",
                "yi": float(rng.normal(0, 1)),
                "vi": float(rng.uniform(0.001, 1)),
                "x": float(rng.normal()),
                "g": str(rng.choice(list("ab"))),
                "yr": int(rng.integers(1990, 2000)),
            }
            for i in range(k)
        ]
    if kind == 1:  # identical studies
        return "GEN", [
            {"study": f"s{i}", "yi": 0.5, "vi": 0.1, "x": float(i), "g": "a", "yr": 1} for i in range(k)
        ]
    if kind == 2:  # sparse 2x2 tables with zero cells
        rows = []
        for i in range(k):
            n1, n2 = int(rng.integers(5, 50)), int(rng.integers(5, 50))
            a, c = int(rng.integers(0, 4)), int(rng.integers(0, 4))
            rows.append(
                {
                    "study": f"s{i}",
                    "ai": a,
                    "bi": n1 - a,
                    "ci": c,
                    "di": n2 - c,
                    "x": float(rng.normal()),
                    "g": str(rng.choice(list("abc"))),
                    "yr": i,
                }
            )
        return str(rng.choice(["OR", "RR", "RD"])), rows
    # homogeneous: tau² at 0
    return "GEN", [
        {
            "study": f"s{i}",
            "yi": float(rng.normal(0, 0.01)),
            "vi": float(rng.uniform(0.5, 1)),
            "x": float(rng.normal()),
            "g": "a" if i % 2 else "b",
            "yr": -i,
        }
        for i in range(k)
    ]


def test_run_analysis_never_crashes_or_warns_on_small_random_data() -> None:
    # every estimator x test x design on tiny, degenerate, sparse and homogeneous data: the
    # report is produced (or a model-level EngineError becomes notes), strictly JSON, and no
    # numpy warning escapes (pytest turns RuntimeWarnings from workers.* into errors)
    import json

    from workers.metaanalysis.analysis import AnalysisSpec, run_analysis

    rng = np.random.default_rng(2024)
    for it in range(270):
        k = int(rng.integers(1, 9))
        measure, rows = _random_rows(rng, int(rng.integers(0, 4)), k)
        mods = () if rng.random() < 0.6 else (("x",) if rng.random() < 0.5 else ("g",))
        spec = AnalysisSpec(
            measure=measure,
            method=METHODS[it % 9],
            test=("z", "knha")[it % 2],
            mods=mods,
            level=float(rng.choice([90.0, 95.0, 99.0])),
            subgroup="g" if rng.random() < 0.3 else None,
            cumulative_order="yr" if rng.random() < 0.3 else None,
        )
        report = run_analysis(spec, rows).to_dict()
        json.dumps(report, allow_nan=False)
        assert "effect_sizes" in report["blocks"]
        if "fit" not in report["blocks"]:
            assert any(n["block"] == "fit" for n in report["notes"])
