"""Random- and equal-effects models and meta-regression as metafor's ``rma.uni()``.

Public API: :func:`rma` fits the model, :func:`predict` gives the pooled estimate with its
confidence and prediction interval, :func:`confint` the Q-profile confidence intervals of tau²,
tau, I² and H². Definitions, defaults and edge cases follow metafor 3.8-1 (Viechtbauer 2010,
J Stat Softw 36(3)); the numerical work is in :mod:`workers.metaanalysis.estimators`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from .design import check_rank
from .errors import ConvergenceError, EngineError, InsufficientDataError, InvalidInputError
from .estimators import (
    DEFAULT_CONTROL,
    METHODS,
    TESTS,
    Control,
    Family,
    IntOnly,
    Problem,
    SingleFit,
    Sums,
    alpha_from_level,
    fit_general_single,
    fit_intercept_only,
    se_tau2,
    solve_decreasing,
    solve_decreasing_scalar,
    wls,
)
from .results import ResultBase, to_jsonable

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


def jsonable(value: Any) -> Any:
    """JSON-ready copy of an engine value: a faster equivalent of ``results.to_jsonable``.

    Non-finite floats become None (JSON has no NaN); arrays become (nested) lists; results are
    converted with their own ``to_dict()``.
    """
    if isinstance(value, np.ndarray):
        if value.dtype.kind == "f":
            out = value.tolist()
            if value.size and not np.isfinite(value).all():
                return _none_for_nan(out)
            return out
        return value.tolist()
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, ResultBase):
        return value.to_dict()
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_jsonable(value)
    return value


def _none_for_nan(values: list[Any]) -> list[Any]:
    return [_none_for_nan(v) if isinstance(v, list) else (v if math.isfinite(v) else None) for v in values]


@dataclasses.dataclass(frozen=True, eq=False)
class EngineResult(ResultBase):
    """Base of the engine's results: ``to_dict()`` through the fast :func:`jsonable`."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: jsonable(getattr(self, f.name)) for f in dataclasses.fields(self)}


@dataclasses.dataclass(frozen=True, eq=False)
class FitResult(EngineResult):
    """A fitted ``rma.uni`` model.

    Attributes
    ----------
    method, test : str
        tau² estimator and test of the coefficients actually used (``test`` becomes ``"z"`` for
        k = 1, as in metafor).
    level : float
        Confidence level in percent.
    k, p : int
        Number of studies and of coefficients (intercept included).
    coef_names : tuple of str
        ``"intrcpt"`` followed by the moderator names.
    beta, se, stat, pval, ci_lb, ci_ub : ndarray, shape (p,)
        Coefficients, standard errors, z (or t) statistics, p-values and confidence limits.
    vb : ndarray, shape (p, p)
        Covariance matrix of the coefficients (scaled by ``s2w`` under Knapp-Hartung).
    tau2, se_tau2 : float
        Estimated tau² and its standard error (NaN for EE and k = 1).
    I2, H2 : float
        I² (percent) and H² (residual versions in a meta-regression).
    QE, QEp : float
        Test for (residual) heterogeneity and its p-value.
    QM, QMp : float
        Omnibus test of the moderators (chi² or F under Knapp-Hartung); NaN without moderators.
    QMdf : tuple
        Its degrees of freedom, ``(m, None)`` for chi², ``(m, k - p)`` for F.
    R2 : float
        Pseudo R² (percent); NaN without moderators.
    dfs : float
        Degrees of freedom of the t tests (NaN under the z test).
    s2w : float
        Knapp-Hartung scale factor (1 otherwise).
    vt : float
        metafor's "typical" within-study variance used for I² and H².
    yi, vi, X : ndarray
        The data the model was fitted to (``X`` includes the intercept column).
    control : Control
        Iteration settings used.
    tau2_0 : float
        The Sidik-Jonkman starting value (NaN for other estimators).
    na_reasons : dict of str to str
        Why a field is NaN/None where metafor gives NA.
    notes : tuple of str
        Things a user should know about the fit (e.g. test switched to z for k = 1).
    """

    method: str
    test: str
    level: float
    k: int
    p: int
    coef_names: tuple[str, ...]
    beta: np.ndarray
    se: np.ndarray
    stat: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    vb: np.ndarray
    tau2: float
    se_tau2: float
    I2: float
    H2: float
    QE: float
    QEp: float
    QM: float
    QMp: float
    QMdf: tuple[int, int | None]
    R2: float
    dfs: float
    s2w: float
    vt: float
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray
    control: Control
    tau2_0: float
    na_reasons: dict[str, str]
    notes: tuple[str, ...]

    @property
    def int_only(self) -> bool:
        """Whether the model is intercept-only."""
        return self.p == 1

    @property
    def weights(self) -> np.ndarray:
        """Model weights 1/(vi + tau²) (metafor ``weights()`` gives them in percent)."""
        return 1.0 / (self.vi + self.tau2)

    def to_dict(self) -> dict[str, Any]:
        """The fields of the reference ``fit`` block (plus ``na_reasons`` and ``notes``)."""
        out: dict[str, Any] = {
            "k": self.k,
            "p": self.p,
            "coef_names": list(self.coef_names),
            "beta": self.beta,
            "se": self.se,
            "stat": self.stat,
            "pval": self.pval,
            "ci_lb": self.ci_lb,
            "ci_ub": self.ci_ub,
            "tau2": self.tau2,
            "se_tau2": self.se_tau2,
            "I2": self.I2,
            "H2": self.H2,
            "QE": self.QE,
            "QEp": self.QEp,
        }
        if self.p > 1:
            out.update(QM=self.QM, QMp=self.QMp, QMdf=list(self.QMdf), R2=self.R2)
        if self.test in ("knha", "t"):
            out["dfs"] = [self.dfs]
        out["method"] = self.method
        out["test"] = self.test
        out["level"] = self.level
        out["na_reasons"] = dict(self.na_reasons)
        out["notes"] = list(self.notes)
        return jsonable(out)


def _validate_options(method: str, test: str, level: float) -> None:
    if method not in METHODS:
        raise InvalidInputError(
            f"unknown method {method!r}; use one of {', '.join(METHODS)}",
            code="invalid_method",
            column="method",
        )
    if test not in TESTS:
        raise InvalidInputError(
            f"unknown test {test!r}; use one of {', '.join(TESTS)}", code="invalid_test", column="test"
        )
    if not (isinstance(level, int | float) and math.isfinite(level) and 0 < level < 100):
        raise InvalidInputError(
            f"level must be a percentage between 0 and 100, got {level!r}",
            code="invalid_level",
            column="level",
        )


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
        pr = None
    else:
        pr = Problem(y, v, Xf)
        sf = fit_general_single(pr, method, test, level, control)
    if not sf.ok:
        raise ConvergenceError(sf.reason or f"the {method} estimator did not converge")
    return _make_fit(y, v, Xf, pr, sf, method, test, level, names, control, notes, reasons, r2)


def _make_fit(
    y: np.ndarray,
    v: np.ndarray,
    Xf: np.ndarray | None,
    pr: Problem | None,
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
    tau2 = sf.tau2
    if method == "EE":
        st2 = math.nan
        reasons["se_tau2"] = "equal-effects model: tau² is fixed at 0, not estimated"
    elif k == 1:
        st2 = math.nan
        reasons["se_tau2"] = "k = 1: tau² is set to 0 and has no standard error"
    elif sf.se_tau2 is not None:
        st2 = sf.se_tau2
    else:
        assert pr is not None
        st2 = se_tau2(pr, method, tau2, sf.tau2_0)
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
    QMdf: tuple[int, int | None] = (0, None)
    if p > 1:
        m = p - 1
        QM = _qm(beta[1:], vb[1:, 1:])
        if math.isnan(QM):
            reasons["QM"] = "covariance matrix of the moderator coefficients is singular"
        if test in ("knha", "t"):
            QM = QM / m
            QMdf = (m, k - p)
            if k - p > 0:
                QMp = float(special.fdtrc(m, k - p, QM))
            else:
                reasons["QMp"] = "no residual degrees of freedom for the F test"
        else:
            QMdf = (m, None)
            QMp = float(special.chdtrc(m, QM))
        if r2:
            assert Xf is not None
            R2 = _r2(y, v, Xf, sf, method, test, level, control, reasons)
        else:
            reasons["R2"] = "not computed for this internal refit"
    else:
        reasons["QM"] = reasons["R2"] = "intercept-only model: no moderators"
    return FitResult(
        method=method,
        test=test,
        level=float(level),
        k=k,
        p=p,
        coef_names=tuple(names),
        beta=beta,
        se=sf.se,
        stat=sf.zval,
        pval=sf.pval,
        ci_lb=sf.ci_lb,
        ci_ub=sf.ci_ub,
        vb=vb,
        tau2=tau2,
        se_tau2=st2,
        I2=sf.I2,
        H2=sf.H2,
        QE=sf.QE,
        QEp=sf.QEp,
        QM=QM,
        QMp=QMp,
        QMdf=QMdf,
        R2=R2,
        dfs=dfs,
        s2w=sf.s2w,
        vt=sf.vt,
        yi=y,
        vi=v,
        X=np.ones((k, 1)) if Xf is None else Xf,
        control=control,
        tau2_0=sf.tau2_0,
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


# ----------------------------------------------------------------------------------------------
# predict
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class PredictResult(EngineResult):
    """Pooled (or predicted) effect with confidence and prediction interval (``predict.rma``).

    Attributes
    ----------
    pred, se, ci_lb, ci_ub : float
        Predicted value, its standard error and confidence limits.
    pi_lb, pi_ub : float
        Prediction interval limits (NaN for the EE model, as metafor omits them).
    na_reasons : dict of str to str
        Why a field is NaN.
    """

    pred: float
    se: float
    ci_lb: float
    ci_ub: float
    pi_lb: float
    pi_ub: float
    na_reasons: dict[str, str]


def _crit(fit: FitResult, level: float) -> float:
    alpha = alpha_from_level(level)
    if fit.test in ("knha", "t"):
        df = fit.k - fit.p
        return float(special.stdtrit(df, 1.0 - alpha / 2.0)) if df > 0 else math.nan
    return float(-special.ndtri(alpha / 2.0))


def predict(
    fit: FitResult, newmods: Sequence[float] | None = None, *, level: float | None = None
) -> PredictResult:
    """Predicted effect with its confidence and prediction interval, as metafor's ``predict.rma()``.

    Parameters
    ----------
    fit : FitResult
    newmods : sequence of float, optional
        Moderator values (one per moderator column) for a meta-regression. Without it a
        meta-regression is predicted at the mean of each moderator column; an intercept-only
        model gives the pooled estimate.
    level : float, optional
        Confidence level in percent (default: the model's).

    Returns
    -------
    PredictResult

    Notes
    -----
    Source: metafor 3.8-1 ``predict.rma()``: ``pred = x'beta``, ``se = sqrt(x' vb x)``,
    ``ci = pred -/+ crit se``, ``pi = pred -/+ crit sqrt(se^2 + tau²)`` with ``crit`` the normal
    quantile, or the t quantile with k - p df under Knapp-Hartung (Riley et al. 2011 discuss
    the choice). The EE model has no prediction interval.
    """
    lev = fit.level if level is None else float(level)
    reasons: dict[str, str] = {}
    if fit.p == 1:
        if newmods is not None and len(newmods) > 0:
            raise InvalidInputError("an intercept-only model has no moderators to set", column="newmods")
        x = np.array([1.0])
    else:
        if newmods is None:
            x = np.concatenate([[1.0], fit.X[:, 1:].mean(axis=0)])
        else:
            vals = np.asarray(newmods, dtype=float).ravel()
            if vals.size != fit.p - 1:
                raise InvalidInputError(
                    f"newmods needs {fit.p - 1} values, got {vals.size}", column="newmods"
                )
            x = np.concatenate([[1.0], vals])
    pred = float(x @ fit.beta)
    vpred = float(x @ fit.vb @ x)
    se = math.sqrt(vpred) if vpred >= 0 else math.nan
    crit = _crit(fit, lev)
    if math.isnan(crit):
        reasons["ci_lb"] = reasons["ci_ub"] = "no residual degrees of freedom for the t distribution"
    ci_lb, ci_ub = pred - crit * se, pred + crit * se
    if fit.method == "EE":
        pi_lb = pi_ub = math.nan
        reasons["pi_lb"] = reasons["pi_ub"] = (
            "equal-effects model: no prediction interval (tau² is 0 by assumption)"
        )
    else:
        half = crit * math.sqrt(vpred + fit.tau2)
        pi_lb, pi_ub = pred - half, pred + half
    return PredictResult(
        pred=pred, se=se, ci_lb=ci_lb, ci_ub=ci_ub, pi_lb=pi_lb, pi_ub=pi_ub, na_reasons=reasons
    )


# ----------------------------------------------------------------------------------------------
# confint (Q-profile)
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class ConfintResult(EngineResult):
    """Q-profile confidence intervals for tau², tau, I² and H² (``confint.rma.uni``).

    Each of ``tau2``, ``tau``, ``I2``, ``H2`` is ``[estimate, lower, upper]``.

    Attributes
    ----------
    lb_sign, ub_sign : str
        ``"<"`` when the bound lies below ``tau2_min`` and ``">"`` when above ``tau2_max``, as
        metafor prints them; ``""`` otherwise.
    ci_null : bool
        The interval is the null set (both bounds below 0).
    tau2_min, tau2_max : float
        The search interval.
    na_reasons : dict of str to str
        Why a bound is NaN.
    """

    tau2: list[float]
    tau: list[float]
    I2: list[float]
    H2: list[float]
    lb_sign: str
    ub_sign: str
    ci_null: bool
    tau2_min: float
    tau2_max: float
    level: float
    na_reasons: dict[str, str]


def _q_profile_fun(pr: Problem):
    fam = Family(pr, "full")

    def q(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        S1r, S2r = fam.var(np.arange(t.size), t, (1, 2))
        S1, S2 = Sums(S1r, pr.p), Sums(S2r, pr.p)
        _, beta, rss = wls(S1)
        d = -(S2.yy - 2.0 * np.einsum("ni,ni->n", beta, S2.Xy) + np.einsum("ni,nij,nj->n", beta, S2.XX, beta))
        return rss, d

    return q


def _bound_fun(S: IntOnly, target: float, t: float) -> tuple[float, float]:
    """Q(t) - target and its derivative, for the Q-profile bound searches."""
    q, dq = S.q_profile(t)
    return q - target, dq


def confint(fit: FitResult, *, level: float | None = None) -> ConfintResult:
    """Q-profile confidence intervals for tau², tau, I² and H², as metafor's ``confint.rma.uni()``.

    Parameters
    ----------
    fit : FitResult
        A random/mixed-effects model (not EE) with k >= 2.
    level : float, optional
        Confidence level in percent (default: the model's).

    Returns
    -------
    ConfintResult

    Raises
    ------
    EngineError
        ``code = "not_applicable"`` for the EE model (no random-effects component).
    InsufficientDataError
        k = 1.

    Notes
    -----
    Source: metafor 3.8-1 ``confint.rma.uni()`` with ``type = "QP"`` (Viechtbauer 2007, Stat Med
    26:37-52): the bounds solve ``Q(tau²) = chi²_{k-p, 1-alpha/2}`` (lower) and
    ``Q(tau²) = chi²_{k-p, alpha/2}`` (upper), Q being the generalised Q statistic, searched on
    ``[tau2_min, tau2_max] = [min(0, tau²), max(100, 10 tau²)]``. If Q(tau2_min) is already below
    the lower critical value both bounds are tau2_min (the interval is the null set at 0); if
    Q(tau2_min) is below the upper critical value the lower bound is tau2_min (0); a bound beyond
    tau2_max is reported as tau2_max with sign ``">"``. The roots of both bounds are found
    together with a vectorised safeguarded Newton method (Q is monotone in tau²), to machine
    precision. I² and H² bounds map the tau² bounds with metafor's vt.
    """
    if fit.method == "EE":
        raise EngineError(
            "the equal-effects model has no random-effects component (no tau² to bound)",
            code="not_applicable",
        )
    if fit.k == 1:
        raise InsufficientDataError("k = 1: no confidence interval for tau²")
    lev = fit.level if level is None else float(level)
    alpha = alpha_from_level(lev)
    df = fit.k - fit.p
    reasons: dict[str, str] = {}
    tau2_min = min(0.0, fit.tau2)
    tau2_max = max(100.0, 10.0 * fit.tau2, 10.0 * tau2_min)
    crit_u = float(special.chdtri(df, alpha / 2.0))
    crit_l = float(special.chdtri(df, 1.0 - alpha / 2.0))
    if fit.p == 1:
        S1 = IntOnly(fit.yi, fit.vi)

        def q(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            vals = [S1.q_profile(float(x)) for x in t]
            return np.array([a for a, _ in vals]), np.array([b for _, b in vals])
    else:
        q = _q_profile_fun(Problem(fit.yi, fit.vi, fit.X))
    qvals, _ = q(np.array([tau2_min, tau2_max]))
    q_min, q_max = float(qvals[0]), float(qvals[1])
    lb = ub = math.nan
    lb_sign = ub_sign = ""
    ci_null = False
    search: list[tuple[str, float]] = []
    # upper bound
    if q_min < crit_l:
        lb = ub = tau2_min
        lb_sign = ub_sign = "<"
        ci_null = tau2_min <= 0
    elif q_max > crit_l:
        ub, ub_sign = tau2_max, ">"
    else:
        search.append(("ub", crit_l))
    # lower bound
    if q_max > crit_u:
        lb = ub = tau2_max
        lb_sign = ub_sign = ">"
        search = [s for s in search if s[0] != "ub"]
    elif q_min < crit_u:
        lb = tau2_min
        if tau2_min > 0:
            lb_sign = "<"
    else:
        search.append(("lb", crit_u))
    # safeguarded Newton to machine precision: intercept-only, one cheap scalar search per bound
    # on O(k) sums; with moderators both bounds at once (vectorised over the targets)
    results: list[tuple[float, bool]]
    if fit.p == 1:
        results = [
            solve_decreasing_scalar(functools.partial(_bound_fun, S1, c), tau2_min, tau2_max, tau2_min)
            for _, c in search
        ]
    elif search:
        targets = np.array([c for _, c in search])

        def fun(idx: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            val, d = q(x)
            return val - targets[idx], d

        n = len(search)
        roots, done = solve_decreasing(fun, np.full(n, tau2_min), np.full(n, tau2_max), np.full(n, tau2_min))
        results = [(float(r), bool(ok)) for r, ok in zip(roots, done, strict=True)]
    else:
        results = []
    for (which, _), (r, ok) in zip(search, results, strict=True):
        if not ok:
            reasons[f"tau2_{which}"] = "the Q-profile search for this bound did not converge"
        elif which == "lb":
            lb = r
        else:
            ub = r
    if ci_null:
        reasons["tau2_ci"] = "Q(0) is below the lower critical value: the confidence interval is the null set"
    vt = fit.vt
    with np.errstate(invalid="ignore", divide="ignore"):
        I2 = [fit.I2, 100.0 * lb / (vt + lb), 100.0 * ub / (vt + ub)]
        H2 = [fit.H2, lb / vt + 1.0, ub / vt + 1.0]
    tau = [math.sqrt(x) if x >= 0 else math.nan for x in (fit.tau2, lb, ub)]
    return ConfintResult(
        tau2=[fit.tau2, lb, ub],
        tau=tau,
        I2=I2,
        H2=H2,
        lb_sign=lb_sign,
        ub_sign=ub_sign,
        ci_null=ci_null,
        tau2_min=tau2_min,
        tau2_max=tau2_max,
        level=lev,
        na_reasons=reasons,
    )
