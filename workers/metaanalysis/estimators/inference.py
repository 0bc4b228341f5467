"""The Wald inference tail of every pooled estimate: critical value, p-value, confidence limits,
the omnibus test of the moderators, and the heterogeneity summaries I² and H².

One convention for the confidence level (metafor's ``.level()``) serves ``rma()``, its
leave-one-out and cumulative families, ``predict()``, ``confint()``, Mantel-Haenszel and Peto.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special


def alpha_from_level(level: float) -> float:
    """Convert a confidence level to alpha exactly as metafor's ``.level()`` does.

    Parameters
    ----------
    level : float
        ``level >= 1`` is a percentage (95 -> 0.05); ``0.5 < level < 1`` a proportion;
        ``level == 0`` gives alpha 1.

    Returns
    -------
    float
    """
    if level == 0:
        return 1.0
    if level >= 1:
        return (100.0 - level) / 100.0
    if level > 0.5:
        return 1.0 - level
    return float(level)


def critical_values(alpha: float, df: np.ndarray | float) -> np.ndarray:
    """Two-sided critical values: the normal quantile where ``df`` is NaN, else Student's t.

    Parameters
    ----------
    alpha : float
    df : ndarray or float
        Degrees of freedom per estimate; NaN selects the normal distribution, ``df <= 0`` gives NaN.

    Returns
    -------
    ndarray
    """
    df = np.asarray(df, dtype=float)
    z = ~(df == df)  # NaN: the z test
    out = np.full(df.shape, np.nan)
    out[z] = -special.ndtri(alpha / 2.0)
    t = df > 0
    out[t] = special.stdtrit(df[t], 1.0 - alpha / 2.0)
    return out


def wald_tail(
    beta: np.ndarray, se: np.ndarray, alpha: float, df: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Wald statistic, two-sided p-value and confidence limits of estimates.

    Parameters
    ----------
    beta, se : ndarray, shape (n, p) or (p,)
        Estimates and standard errors (rows: models).
    alpha : float
        From :func:`alpha_from_level`.
    df : ndarray of shape (n,), or float
        Degrees of freedom of each model's t test; NaN for the z test.

    Returns
    -------
    stat, pval, ci_lb, ci_ub : ndarray
        Same shape as ``beta``; p-values and limits are NaN where ``df <= 0``.
    """
    df = np.asarray(df, dtype=float)
    crit = critical_values(alpha, df)
    dcol = df[..., None] if beta.ndim == 2 else df
    ccol = crit[..., None] if beta.ndim == 2 else crit
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = beta / se
        tdf = np.broadcast_to(dcol, stat.shape)
        pval = np.where(tdf == tdf, np.nan, 2.0 * special.ndtr(-np.abs(stat)))
        tt = tdf > 0
        pval[tt] = 2.0 * special.stdtr(tdf[tt], -np.abs(stat[tt]))
        return stat, pval, beta - ccol * se, beta + ccol * se


def moderator_test(q: float, m: int, ddf: float | None) -> tuple[float, float, tuple[int, float | None]]:
    """metafor's omnibus test of the ``m`` moderators (``QM``) from their Wald statistic.

    Parameters
    ----------
    q : float
        The Wald statistic b' V^-1 b of the moderator coefficients.
    m : int
        Their number.
    ddf : float or None
        None for the chi² test (the z test of the coefficients); else the denominator degrees
        of freedom of the F test (t tests, Knapp-Hartung, cluster-robust CR1).

    Returns
    -------
    QM, QMp, QMdf
        chi²(m): ``q``, its p-value and ``(m, None)``; F(m, ddf): ``q / m``, its p-value (NaN
        where ``ddf <= 0``) and ``(m, ddf)``.
    """
    if ddf is None:
        return q, float(special.chdtrc(m, q)), (m, None)
    f = q / m
    return f, float(special.fdtrc(m, ddf, f)) if ddf > 0 else math.nan, (m, ddf)


def i2_h2(
    qe: np.ndarray | float,
    df: np.ndarray | float,
    tau2: np.ndarray | float,
    vt: np.ndarray | float,
    equal_effects: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """I² (percent) and H² as metafor reports them (Higgins & Thompson 2002).

    Parameters
    ----------
    qe, df : ndarray or float
        Cochran's (residual) Q and its degrees of freedom.
    tau2, vt : ndarray or float
        Estimated tau² and the typical within-study variance ``vt = df / tr(P)``.
    equal_effects : bool
        The EE model (and the fixed-effect MH and Peto pooling): from Q, ``I² = max(0, 100 (Q -
        df)/Q)`` (0 when Q = 0) and ``H² = Q/df``; otherwise ``I² = 100 tau²/(vt + tau²)``,
        ``H² = tau²/vt + 1``.

    Returns
    -------
    I2, H2 : ndarray
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        if equal_effects:
            q = np.asarray(qe, dtype=float)
            i2 = np.where(q > 0, np.maximum(0.0, 100.0 * (q - df) / q), 0.0)
            return i2, q / df
        t = np.asarray(tau2, dtype=float)
        return 100.0 * t / (vt + t), t / vt + 1.0
