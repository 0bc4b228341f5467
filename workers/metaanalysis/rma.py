"""Random- and equal-effects models and meta-regression as metafor's ``rma.uni()``.

Public API: :func:`rma` fits the model (a :class:`~.fit_result.FitResult`); :func:`predict`
(:mod:`.predict`) gives the pooled estimate with its confidence and prediction interval,
:func:`confint` (:mod:`.confint`) the Q-profile confidence intervals of tau², tau, I² and H².
Definitions, defaults and edge cases follow metafor 3.8-1 (Viechtbauer 2010,
J Stat Softw 36(3)); the numerical work is in :mod:`workers.metaanalysis.estimators`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .confint import ConfintResult, confint
from .design import check_rank
from .errors import ConvergenceError, InsufficientDataError, InvalidInputError
from .estimators import (
    DEFAULT_CONTROL,
    Control,
    Problem,
    SingleFit,
    fit_intercept_only,
    fit_regression,
    moderator_test,
)
from .fit_result import EngineResult, FitResult, jsonable
from .predict import PredictResult, predict
from .spec import check_choice, check_level

# predict, confint and the result classes live in their own modules; they are re-exported here,
# where the rest of the engine and the tests import them from.
__all__ = [
    "ConfintResult",
    "EngineResult",
    "FitResult",
    "PredictResult",
    "confint",
    "fit_model",
    "jsonable",
    "predict",
    "rma",
]


def _validate_options(method: str, test: str, level: float) -> None:
    """The settings' rules (``spec``): a known method and test, a confidence level."""
    check_choice("method", method)
    check_choice("test", test)
    check_level(level)


def _as_vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise InvalidInputError(f"{name} must be one-dimensional", column=name)
    return arr


def _check_data(yi: Any, vi: Any, X: Any, coef_names: Sequence[str] | None):
    y = _as_vector(yi, "yi")
    v = _as_vector(vi, "vi")
    if y.size != v.size:
        raise InvalidInputError(f"yi has {y.size} values but vi has {v.size}", column="vi")
    if y.size == 0:
        raise InsufficientDataError("no studies to analyse (k = 0)")
    bad = ~np.isfinite(y)
    if np.any(bad):
        raise InvalidInputError("yi must be finite", row=int(np.flatnonzero(bad)[0]), column="yi")
    bad = ~np.isfinite(v)
    if np.any(bad):
        raise InvalidInputError("vi must be finite", row=int(np.flatnonzero(bad)[0]), column="vi")
    bad = v <= 0
    if np.any(bad):
        i = int(np.flatnonzero(bad)[0])
        raise InvalidInputError(
            f"sampling variances must be positive (vi = {v[i]!r} in row {i})",
            row=i,
            column="vi",
            code="nonpositive_variance",
        )
    k = y.size
    if X is None:
        return y, v, None, ("intrcpt",)
    M = np.asarray(X, dtype=float)
    if M.ndim == 1:
        M = M[:, None]
    if M.ndim != 2 or M.shape[0] != k:
        raise InvalidInputError(f"X must have {k} rows (one per study)", column="X")
    if M.shape[1] == 0:
        return y, v, None, ("intrcpt",)
    if not np.all(np.isfinite(M)):
        i = int(np.flatnonzero(~np.all(np.isfinite(M), axis=1))[0])
        raise InvalidInputError("moderators must be finite", row=i, column="X")
    if coef_names is None:
        names = tuple(f"X{j + 1}" for j in range(M.shape[1]))
    else:
        names = tuple(str(c) for c in coef_names)
        if len(names) != M.shape[1]:
            raise InvalidInputError(
                f"coef_names has {len(names)} names for {M.shape[1]} columns", column="coef_names"
            )
    full = np.column_stack([np.ones(k), M])
    all_names = ("intrcpt", *names)
    check_rank(full, all_names)
    return y, v, full, all_names


def rma(
    yi: Any,
    vi: Any,
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    X: Any = None,
    coef_names: Sequence[str] | None = None,
    control: Control = DEFAULT_CONTROL,
) -> FitResult:
    """Fit an equal-, random- or mixed-effects model (meta-regression) as metafor's ``rma.uni()``.

    Parameters
    ----------
    yi, vi : array_like, shape (k,)
        Observed effect sizes and their (positive) sampling variances.
    method : {"REML", "EE", "DL", "HE", "HS", "SJ", "ML", "EB", "PM"}
        tau² estimator (metafor's ``method``; ``EE`` is the equal-effects model).
    test : {"z", "knha", "t"}
        Test of the coefficients: normal, Knapp-Hartung (t with k - p df and the scaled
        covariance, not truncated at 1), or t with k - p df without scaling.
    level : float
        Confidence level in percent.
    X : array_like, shape (k, m), optional
        Moderators; the intercept is always added.
    coef_names : sequence of str, optional
        Names of the moderator columns (default ``X1``...).
    control : Control
        Convergence settings (defaults: the tight settings of the reference results).

    Returns
    -------
    FitResult

    Raises
    ------
    InvalidInputError
        Non-finite data, ``vi <= 0``, unknown method/test, invalid level.
    InsufficientDataError
        Fewer studies than parameters (k < p + 1 when tau² is estimated, k < p for EE; an
        intercept-only model may have k = 1 as in metafor).
    SingularModelError
        The moderators are linearly dependent (the offending columns are named).
    ConvergenceError
        An iterative estimator did not converge.

    Notes
    -----
    Source: metafor 3.8-1 ``rma.uni()`` (Viechtbauer 2010). Estimators: DL (DerSimonian & Laird
    1986), HE (Hedges 1983), HS (Hunter & Schmidt 2004), SJ (Sidik & Jonkman 2005, starting at
    the sample variance of y), ML/REML (Fisher scoring from max(0, HE) with step halving at 0 and
    metafor's check that tau² = 0 does not have a larger likelihood), EB (Morris 1983, Fisher
    scoring), PM (Paule & Mandel 1982, root of the generalised Q = k - p; 0 if Q(0) < k - p).
    Non-iterative estimators are truncated at 0. I² = 100 tau²/(vt + tau²) and H² = tau²/vt + 1
    with vt = (k - p)/tr(P) (Higgins & Thompson 2002), for EE from QE. Knapp & Hartung (2003)
    scale s2w = RSS/(k - p) with the model weights. R² = max(0, (tau²_RE - tau²)/tau²_RE) with
    tau²_RE from the intercept-only model fitted the same way (Raudenbush 2009); for EE, as
    metafor 3.8-1, the adjusted R² of the weighted least-squares regression.

    Under the (default) tight convergence threshold the ML/REML/EB iterations take Newton steps
    where these agree with the Fisher step; the result is the same root as metafor's Fisher
    scoring (to within its threshold) in far fewer iterations. PM's root is found with R's
    ``uniroot()`` algorithm (Brent) at tolerance ``control.tol``.

    With k = 1 metafor fits tau² = 0, switches to the z test and reports QE = 0, QEp = 1,
    I² = 0 and H² = 1 (its output for a saturated model); se_tau2 is NA. The engine does the
    same and records the reason in ``na_reasons``/``notes``.
    """
    _validate_options(method, test, level)
    y, v, Xf, names = _check_data(yi, vi, X, coef_names)
    return fit_model(y, v, Xf, names, method=method, test=test, level=level, control=control)


def fit_model(
    y: np.ndarray,
    v: np.ndarray,
    Xf: np.ndarray | None,
    names: Sequence[str],
    *,
    method: str,
    test: str,
    level: float,
    control: Control = DEFAULT_CONTROL,
    r2: bool = True,
) -> FitResult:
    """:func:`rma` on data that is already checked (finite, vi > 0, full-rank design).

    ``Xf`` is the full design including the intercept column (None for intercept-only). The
    engine's own refits (regtest, trim-and-fill, subgroups) call this directly; ``r2 = False``
    skips the extra intercept-only fit behind R² (metafor's ``skipr2``).
    """
    k = y.size
    p = 1 if Xf is None else Xf.shape[1]
    notes: list[str] = []
    reasons: dict[str, str] = {}
    if not (p == 1 and k == 1):
        need = p if method == "EE" else p + 1
        if k < need:
            raise InsufficientDataError(
                f"{k} studies cannot estimate {need} parameters "
                f"({p} coefficient{'s' if p > 1 else ''}{'' if method == 'EE' else ' and tau²'})",
                code="too_few_studies",
            )
    if k == 1 and test != "z":
        notes.append(f"k = 1: test '{test}' is not possible, the z test is used (as metafor)")
        test = "z"
    if p == 1:
        sf = fit_intercept_only(y, v, method, test, level, control)
    else:
        sf = fit_regression(Problem(y, v, Xf), method, test, level, control)
    if not sf.ok:
        raise ConvergenceError(sf.reason or f"the {method} estimator did not converge")
    return _make_fit(y, v, Xf, sf, method, test, level, names, control, notes, reasons, r2)


# The fields of FitResult that are SingleFit's as they stand (``stat`` and ``dfs`` are its ``zval``
# and ``ddf``; ``se_tau2`` is NaN with a reason for EE and k = 1).
_FROM_SINGLE_FIT = (
    "tau2",
    "tau2_0",
    "beta",
    "vb",
    "se",
    "pval",
    "ci_lb",
    "ci_ub",
    "QE",
    "QEp",
    "I2",
    "H2",
    "vt",
    "s2w",
)


def _make_fit(
    y: np.ndarray,
    v: np.ndarray,
    Xf: np.ndarray | None,
    sf: SingleFit,
    method: str,
    test: str,
    level: float,
    names: Sequence[str],
    control: Control,
    notes: list[str],
    reasons: dict[str, str],
    r2: bool = True,
) -> FitResult:
    k = y.size
    p = 1 if Xf is None else Xf.shape[1]
    if method == "EE":
        st2 = math.nan
        reasons["se_tau2"] = "equal-effects model: tau² is fixed at 0, not estimated"
    elif k == 1:
        st2 = math.nan
        reasons["se_tau2"] = "k = 1: tau² is set to 0 and has no standard error"
    else:
        st2 = sf.se_tau2
    if k == 1:
        notes.append("k = 1: tau² is set to 0; QE = 0, QEp = 1, I² = 0 and H² = 1 carry no information")
    if k == p:
        reasons.setdefault("QE", "saturated model (k = p): no residual heterogeneity test")
    beta, vb = sf.beta, sf.vb
    dfs = sf.ddf
    if test in ("knha", "t") and not dfs > 0:
        reasons["pval"] = "no residual degrees of freedom (k = p) for the t distribution"
    if test == "knha" and sf.s2w == 0.0:
        notes.append("Knapp-Hartung scale factor is 0 (all outcomes fitted exactly): standard errors are 0")
    QM = QMp = R2 = math.nan
    QMdf: tuple[int, float | None] = (0, None)
    if p > 1:
        q = _qm(beta[1:], vb[1:, 1:])
        if math.isnan(q):
            reasons["QM"] = "covariance matrix of the moderator coefficients is singular"
        f_test = test in ("knha", "t")
        QM, QMp, QMdf = moderator_test(q, p - 1, k - p if f_test else None)
        if f_test and k - p <= 0:
            reasons["QMp"] = "no residual degrees of freedom for the F test"
        if r2:
            assert Xf is not None
            R2 = _r2(y, v, Xf, sf, method, test, level, control, reasons)
        else:
            reasons["R2"] = "not computed for this internal refit"
    else:
        reasons["QM"] = reasons["R2"] = "intercept-only model: no moderators"
    # built by keyword, as every frozen result is (the shape effect_sizes shares with it)
    return FitResult(
        **{name: getattr(sf, name) for name in _FROM_SINGLE_FIT},
        stat=sf.zval,
        dfs=dfs,
        se_tau2=st2,
        method=method,
        test=test,
        level=float(level),
        k=k,
        p=p,
        coef_names=tuple(names),
        QM=QM,
        QMp=QMp,
        QMdf=QMdf,
        R2=R2,
        yi=y,
        vi=v,
        X=np.ones((k, 1)) if Xf is None else Xf,
        control=control,
        na_reasons=reasons,
        notes=tuple(notes),
    )


def _qm(b: np.ndarray, V: np.ndarray) -> float:
    """Wald statistic b' V^-1 b through a Cholesky factor (NaN if V is not positive definite)."""
    try:
        L = np.linalg.cholesky(V)
    except np.linalg.LinAlgError:
        return math.nan
    z = np.linalg.solve(L, b)
    return float(z @ z)


def _r2(
    y: np.ndarray,
    v: np.ndarray,
    Xf: np.ndarray,
    sf: SingleFit,
    method: str,
    test: str,
    level: float,
    control: Control,
    reasons: dict[str, str],
) -> float:
    """metafor 3.8-1's pseudo R² (``r2def = "1"``; adjusted R² of weighted LS for EE)."""
    k, p = Xf.shape
    if method == "EE":
        if np.all(y == y[0]):
            return 0.0
        # adj.r.squared of lm(yi ~ X, weights = 1/vi): 1 - (1 - R^2)(k - 1)/(k - p)
        w = 1.0 / v
        fitted = Xf @ sf.beta
        rss = float(np.sum(w * (y - fitted) ** 2))
        fbar = float(np.sum(w * fitted) / np.sum(w))
        mss = float(np.sum(w * (fitted - fbar) ** 2))
        if k - p <= 0:
            reasons["R2"] = "no residual degrees of freedom for the adjusted R²"
            return math.nan
        r2 = mss / (mss + rss)
        return max(0.0, 100.0 * (1.0 - (1.0 - r2) * (k - 1) / (k - p)))
    sf0 = fit_intercept_only(y, v, method, test, level, control)
    if not sf0.ok:
        reasons["R2"] = "the intercept-only model needed for R² could not be fitted"
        return math.nan
    if sf0.tau2 == 0.0:
        return 0.0
    return max(0.0, 100.0 * (sf0.tau2 - sf.tau2) / sf0.tau2)
