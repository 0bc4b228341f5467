"""Pooled (or predicted) effect with its confidence and prediction interval, as metafor's
``predict.rma()`` (metafor 3.8-1, Viechtbauer 2010)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInputError
from .estimators import alpha_from_level, critical_values
from .fit_result import EngineResult, FitResult
from .multilevel.fit import MultilevelFit

__all__ = ["PredictResult", "predict", "robust_prediction_interval"]


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


def _crit(fit: FitResult | MultilevelFit, level: float) -> float:
    df = fit.k - fit.p if fit.test in ("knha", "t") else math.nan
    return float(critical_values(alpha_from_level(level), df))


def robust_prediction_interval(
    fit: FitResult | MultilevelFit, robust: Any, level: float | None = None
) -> tuple[float, float]:
    """The prediction interval of an intercept-only model whose inference is cluster-robust, as
    metafor's ``predict(robust(res, cluster, clubSandwich = TRUE))``: the robust estimate
    -/+ the t quantile with the robust (Satterthwaite) df times sqrt(robust SE² + heterogeneity),
    the heterogeneity being tau² (``rma``) or the sum of the variance components (``rma.mv``).

    The same inference as the confidence interval beside it: the model-based ``predict(res)``
    uses the model's SE and the z quantile, which a CR2 interval does not."""
    lev = fit.level if level is None else float(level)
    beta, se, df = float(robust.beta[0]), float(robust.se[0]), float(robust.dfs[0])
    if fit.p != 1 or fit.method == "EE" or not math.isfinite(df) or df <= 0:
        return math.nan, math.nan
    crit = float(critical_values(alpha_from_level(lev), df))
    heterogeneity = fit.tau2 if isinstance(fit, FitResult) else float(np.sum(fit.sigma2))
    half = crit * math.sqrt(se**2 + heterogeneity)
    return beta - half, beta + half


def predict(
    fit: FitResult | MultilevelFit, newmods: Sequence[float] | None = None, *, level: float | None = None
) -> PredictResult:
    """Predicted effect with its confidence and prediction interval, as metafor's ``predict.rma()``.

    Parameters
    ----------
    fit : FitResult or MultilevelFit
        An ``rma`` fit, or a multilevel one (``predict.rma.mv``: the prediction interval adds the
        sum of the variance components).
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
            X = fit.X if isinstance(fit, FitResult) else fit.design
            x = np.concatenate([[1.0], X[:, 1:].mean(axis=0)])
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
        heterogeneity = fit.tau2 if isinstance(fit, FitResult) else float(np.sum(fit.sigma2))
        half = crit * math.sqrt(vpred + heterogeneity)
        pi_lb, pi_ub = pred - half, pred + half
    return PredictResult(
        pred=pred, se=se, ci_lb=ci_lb, ci_ub=ci_ub, pi_lb=pi_lb, pi_ub=pi_ub, na_reasons=reasons
    )
