"""Publication-bias and small-study analyses as metafor computes them.

:func:`egger` (``regtest``), :func:`rank_test` (``ranktest``), :func:`fsn` (``fsn``, Rosenthal),
:func:`trimfill` (``trimfill``, estimator L0) and :func:`funnel` (the data behind ``funnel()``).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any

import numpy as np
from scipy import special

from .design import check_rank
from .errors import ConvergenceError, EngineError, InsufficientDataError
from .estimators import METAFOR_DEFAULTS, InterceptOnlySums, alpha_from_level, tau2_intercept_only
from .rma import EngineResult, FitResult, fit_model

__all__ = [
    "EggerResult",
    "FsnResult",
    "RankResult",
    "TrimfillResult",
    "egger",
    "fsn",
    "funnel",
    "rank_test",
    "trimfill",
]


# ----------------------------------------------------------------------------------------------
# Egger's regression test
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class EggerResult(EngineResult):
    """Regression test for funnel-plot asymmetry (``regtest(model = "rma", predictor = "sei")``).

    Attributes
    ----------
    stat, pval : float
        z (t under Knapp-Hartung) statistic of the standard-error coefficient and its p-value.
    dfs : float
        Degrees of freedom of the t test (NaN under z).
    limit_estimate, limit_ci_lb, limit_ci_ub : float
        The intercept (the estimate as the standard error goes to 0) with its CI; only for
        models without moderators, NaN otherwise.
    slope : float
        The standard-error coefficient: with the limit estimate, the line the funnel plot draws
        (``egger_line.egger_line``).
    na_reasons : dict
        Why a field is NaN.
    """

    stat: float
    pval: float
    dfs: float
    limit_estimate: float
    limit_ci_lb: float
    limit_ci_ub: float
    slope: float
    na_reasons: dict[str, str]


def egger(fit: FitResult) -> EggerResult:
    """Egger's regression test as metafor's ``regtest()`` with its defaults.

    Parameters
    ----------
    fit : FitResult
        The fitted model; the test refits it with the standard error ``sqrt(vi)`` added as a
        moderator, with the same estimator, test, level and control settings.

    Returns
    -------
    EggerResult

    Raises
    ------
    InsufficientDataError
        Too few studies for the extra coefficient (k < p + 2 with tau², k < p + 1 for EE).
    SingularModelError
        The standard errors are all equal (or collinear with the moderators).

    Notes
    -----
    Source: metafor 3.8-1 ``regtest()`` (``model = "rma"``, ``predictor = "sei"``); Egger et al.
    (1997, BMJ 315:629-634) in the meta-regression form of Sterne & Egger (2005). The limit
    estimate is the intercept of that model (Stanley & Doucouliagos 2014), reported for models
    without moderators only, as in metafor.
    """
    need = fit.p + (1 if fit.method == "EE" else 2)
    if fit.k < need:
        raise InsufficientDataError(
            f"Egger's test needs at least {need} studies for this model (k = {fit.k})", code="too_few_studies"
        )
    sei = np.sqrt(fit.vi)
    X = np.column_stack([fit.X, sei])
    names = (*fit.coef_names, "sei")
    check_rank(X, names)
    res = fit_model(
        fit.yi,
        fit.vi,
        X,
        names,
        method=fit.method,
        test=fit.test,
        level=fit.level,
        control=fit.control,
        r2=False,
    )
    j = fit.p
    reasons: dict[str, str] = {}
    if fit.int_only:
        est, lb, ub = float(res.beta[0]), float(res.ci_lb[0]), float(res.ci_ub[0])
    else:
        est = lb = ub = math.nan
        reasons["limit_estimate"] = "the limit estimate is only defined for models without moderators"
    if math.isnan(float(res.pval[j])):
        reasons["pval"] = res.na_reasons.get("pval", "no degrees of freedom left for the test")
    return EggerResult(
        stat=float(res.stat[j]),
        pval=float(res.pval[j]),
        dfs=float(res.dfs),
        limit_estimate=est,
        limit_ci_lb=lb,
        limit_ci_ub=ub,
        slope=float(res.beta[j]),
        na_reasons=reasons,
    )


# ----------------------------------------------------------------------------------------------
# Begg & Mazumdar rank correlation test
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class RankResult(EngineResult):
    """Rank correlation test for funnel-plot asymmetry (``ranktest``).

    Attributes
    ----------
    tau : float
        Kendall's tau (tau-b when there are ties) between standardised effects and variances.
    pval : float
        Two-sided p-value: exact without ties, normal approximation with ties.
    exact : bool
        Whether the p-value is exact.
    na_reasons : dict
        Why a field is NaN.
    """

    tau: float
    pval: float
    exact: bool
    na_reasons: dict[str, str]


#: Largest k for which the exact null distribution of Kendall's statistic is computed.
EXACT_KENDALL_MAX_N = 400


@functools.lru_cache(maxsize=64)
def _kendall_cdf(n: int) -> np.ndarray:
    """P(T <= q), q = 0..n(n-1)/2, for the number of concordant pairs T of n untied pairs.

    T has the distribution of the number of inversions of a random permutation (Mahonian
    numbers, which R's ``ckendall`` counts); it is built by convolving the uniform distributions
    on {0, ..., i-1} for i = 2..n, in probabilities rather than counts so nothing overflows.
    """
    m = n * (n - 1) // 2
    f = np.zeros(m + 1)
    f[0] = 1.0
    top = 0
    for i in range(2, n + 1):
        c = np.cumsum(f[: top + i])
        new = c.copy()
        new[i:] -= c[:-i]
        top += i - 1
        f[: top + 1] = new[: top + 1] / i
    return np.minimum(np.cumsum(f), 1.0)


def rank_test(fit: FitResult) -> RankResult:
    """Begg & Mazumdar's rank correlation test as metafor's ``ranktest()``.

    Parameters
    ----------
    fit : FitResult
        Only its ``yi`` and ``vi`` are used (as in metafor).

    Returns
    -------
    RankResult

    Notes
    -----
    Source: metafor 3.8-1 ``ranktest()`` (Begg & Mazumdar 1994, Biometrics 50:1088-1101):
    Kendall's tau between ``(yi - theta_EE)/sqrt(vi - 1/sum(1/vi))`` and ``vi``, tested with R's
    ``cor.test(method = "kendall", exact = TRUE)``: without ties the exact null distribution,
    ``p = min(1, 2 P(T <= q))`` (or the upper tail) with ``q = round((tau + 1) n (n - 1)/4)``;
    with ties the normal approximation with R's tie-corrected variance of S (tau-b and that
    p-value from :func:`scipy.stats.kendalltau`, in O(n log n)). For n above
    :data:`EXACT_KENDALL_MAX_N` the normal approximation is used even without ties (R's exact
    routine overflows beyond n = 170 and returns 0 or NaN there; that is not reproduced).
    """
    # scipy.stats takes longer to import than most analyses take to run: only this test needs it
    from scipy import stats

    y, v = fit.yi, fit.vi
    n = y.size
    reasons: dict[str, str] = {}
    if n < 2:
        raise InsufficientDataError("the rank correlation test needs at least 2 studies")
    w = 1.0 / v
    theta = float(np.sum(w * y) / np.sum(w))
    vstar = v - 1.0 / float(np.sum(w))
    with np.errstate(invalid="ignore", divide="ignore"):
        ystar = (y - theta) / np.sqrt(vstar)
    ties = len(np.unique(ystar)) < n or len(np.unique(v)) < n
    # scipy's O(n log n) tau-b; its asymptotic p-value uses the tie-corrected variance of S that
    # R's cor.test() uses (Kendall 1970), with no continuity correction, as metafor calls it
    exact = not ties and n <= EXACT_KENDALL_MAX_N
    # with two studies a tie leaves one variable constant: tau is undefined (and scipy's
    # variance of S divides by n - 2); the exact p-value is metafor's, below, so scipy is
    # only asked for its cheap asymptotic one
    res = None if ties and n <= 2 else stats.kendalltau(ystar, v, method="asymptotic" if n > 2 else "exact")
    tau = math.nan if res is None else float(res.statistic)
    if res is None or not math.isfinite(tau):
        reasons["tau"] = reasons["pval"] = "all standardised effects or all variances are equal"
        return RankResult(tau=math.nan, pval=math.nan, exact=False, na_reasons=reasons)
    if exact:
        m = n * (n - 1) / 4.0
        q = round((tau + 1.0) * n * (n - 1) / 4.0)
        cdf = _kendall_cdf(n)
        total = n * (n - 1) // 2
        # upper tail by symmetry, P(T >= q) = P(T <= total - q): no 1 - p cancellation
        tail = total - q if q > m else q
        p = float(cdf[tail]) if tail >= 0 else 0.0
        return RankResult(tau=tau, pval=min(2.0 * p, 1.0), exact=True, na_reasons=reasons)
    pval = float(res.pvalue)
    return RankResult(tau=tau, pval=pval, exact=False, na_reasons=reasons)


# ----------------------------------------------------------------------------------------------
# fail-safe N
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class FsnResult(EngineResult):
    """Rosenthal's fail-safe N (``fsn(type = "Rosenthal")``)."""

    type: str
    fsnum: int
    alpha: float
    pval: float


def fsn(yi: Any, vi: Any, alpha: float = 0.05) -> FsnResult:
    """Rosenthal's fail-safe N as metafor's ``fsn()`` (Stouffer's method).

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances of the studies.
    alpha : float
        One-sided significance level of the combined test.

    Returns
    -------
    FsnResult
        ``fsnum`` is the number of studies averaging a null result needed to raise the
        one-sided Stouffer p-value above ``alpha``; ``pval`` is that p-value for the k studies.

    Notes
    -----
    Source: metafor 3.8-1 ``fsn()``; Rosenthal (1979, Psychol Bull 86:638-641):
    ``z = |sum(yi/sqrt(vi))|/sqrt(k)``, ``N = max(0, k (z/z_alpha)^2 - k)``, rounded up unless it
    is within sqrt(machine epsilon) of an integer.
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    k = y.size
    if k == 0:
        raise InsufficientDataError("fail-safe N needs at least one study")
    zi = y / np.sqrt(v)
    z_avg = abs(float(np.sum(zi))) / math.sqrt(k)
    pval = float(special.ndtr(-z_avg))
    z_alpha = float(-special.ndtri(alpha))
    num = max(0.0, k * (z_avg / z_alpha) ** 2 - k)
    num = math.ceil(num) if abs(num - round(num)) >= math.sqrt(np.finfo(float).eps) else round(num)
    return FsnResult(type="Rosenthal", fsnum=int(num), alpha=float(alpha), pval=pval)


# ----------------------------------------------------------------------------------------------
# trim and fill
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class TrimfillResult(EngineResult):
    """Trim-and-fill (``trimfill``, estimator L0).

    Attributes
    ----------
    k0 : int
        Estimated number of missing studies.
    se_k0 : float
        Its standard error.
    side : str
        Side on which studies are imputed (``left`` or ``right``).
    beta, se, stat, pval, ci_lb, ci_ub, tau2 : float
        The model refitted to the observed and the filled-in studies.
    level : float
        Confidence level of that interval.
    test : str
        Test used by that model.
    filled_yi, filled_vi : ndarray
        The imputed studies.
    """

    k0: int
    se_k0: float
    side: str
    # beta..ci_ub: the Wald summary every pooled result carries (FitResult.pooled(), and
    # _PooledTablesResult in mantel_haenszel.py); listed per result to keep each field order.
    beta: float
    se: float
    stat: float
    pval: float
    ci_lb: float
    ci_ub: float
    tau2: float
    level: float
    test: str
    filled_yi: np.ndarray
    filled_vi: np.ndarray


def _side(fit: FitResult) -> str:
    sei = np.sqrt(fit.vi)
    X = np.column_stack([np.ones(fit.k), sei])
    check_rank(X, ("intrcpt", "sei"))
    res = fit_model(
        fit.yi,
        fit.vi,
        X,
        ("intrcpt", "sei"),
        method=fit.method,
        test="z",
        level=95.0,
        control=METAFOR_DEFAULTS,
        r2=False,
    )
    return "right" if res.beta[1] < 0 else "left"


def trimfill(fit: FitResult, side: str | None = None, maxiter: int = 100) -> TrimfillResult:
    """Duval & Tweedie's trim-and-fill as metafor's ``trimfill()`` with estimator L0.

    Parameters
    ----------
    fit : FitResult
        An intercept-only model with k >= 2.
    side : {"left", "right"}, optional
        Side of the funnel with the missing studies; by default metafor's choice: the side
        opposite to the sign of the standard-error slope of Egger's regression (fitted with
        the same estimator).
    maxiter : int
        Iteration limit of the trim-and-fill algorithm.

    Returns
    -------
    TrimfillResult

    Raises
    ------
    EngineError
        ``code = "not_applicable"`` for a meta-regression.
    InsufficientDataError
        k = 1.
    ConvergenceError
        The algorithm did not settle within ``maxiter`` iterations.

    Notes
    -----
    Source: metafor 3.8-1 ``trimfill.rma.uni()``; Duval & Tweedie (2000, Biometrics 56:455-463
    and JASA 95:89-98). Studies are sorted by (side-adjusted) effect; each iteration fits the
    model to the k - k0 smallest, ranks |yi - beta| (ties by position) and sets
    ``k0 = max(0, round((4 Sr - k (k + 1))/(2k - 1)))``. The filled studies mirror the k0 most
    extreme ones around the truncated estimate and the model is refitted with the same
    estimator. As in metafor that refit uses metafor's defaults for the test and level (z test,
    95%), because ``trimfill()`` does not pass them on; with k0 = 0 the original model is
    returned unchanged.
    """
    if not fit.int_only:
        raise EngineError("trim-and-fill applies to models without moderators only", code="not_applicable")
    if fit.k == 1:
        raise InsufficientDataError("trim-and-fill needs at least 2 studies")
    if side is None:
        side = _side(fit)
    elif side not in ("left", "right"):
        raise EngineError(f"side must be 'left' or 'right', got {side!r}", code="invalid_input")
    yi = -fit.yi if side == "right" else fit.yi.copy()
    order = np.argsort(yi, kind="stable")
    yi = yi[order]
    vi = fit.vi[order]
    k = yi.size
    S = InterceptOnlySums(yi, vi)
    k0_prev, k0 = -1, 0
    it = 0
    beta = math.nan
    se_k0 = math.nan
    while k0 != k0_prev:
        k0_prev = k0
        it += 1
        if it > maxiter:
            raise ConvergenceError(f"trim-and-fill did not converge in {maxiter} iterations")
        # only the estimate is needed here (metafor: outlist = "beta=beta"); the truncated data
        # are a prefix of the sorted studies
        if k - k0 < 1:
            # metafor: rma() on the empty truncated data stops ("k = 0")
            raise InsufficientDataError("trim-and-fill estimated that every study is missing (k0 = k)")
        S.m = k - k0
        t2, _, ok, why = tau2_intercept_only(S, fit.method, METAFOR_DEFAULTS)
        if not ok:
            raise ConvergenceError(why or "a trim-and-fill refit did not converge")
        s1 = S.sums(t2, 1)[0]
        beta = s1[1] / s1[0] + S.ybar
        yc = yi - beta
        # rank(abs(yc), ties.method = "first")
        ranks = np.empty(k)
        ranks[np.argsort(np.abs(yc), kind="stable")] = np.arange(1, k + 1)
        sr = float(np.sum(ranks[yc > 0]))
        est = (4.0 * sr - k * (k + 1)) / (2 * k - 1)
        var_sr = (
            k * (k + 1) * (2 * k + 1)
            + 10 * est**3
            + 27 * est**2
            + 17 * est
            - 18 * k * est**2
            - 18 * k * est
            + 6 * k**2 * est
        ) / 24.0
        se_k0 = max(0.0, 4.0 * math.sqrt(var_sr) / (2 * k - 1)) if var_sr >= 0 else math.nan
        k0 = max(0, round(est))  # R's round(): half to even, as Python's
    if k0 == 0:
        return TrimfillResult(
            k0=0,
            se_k0=se_k0,
            side=side,
            **fit.pooled(),
            level=fit.level,
            test=fit.test,
            filled_yi=np.zeros(0),
            filled_vi=np.zeros(0),
        )
    filled = 2.0 * beta - yi[k - k0 :]
    if side == "right":
        filled = -filled
    filled_vi = vi[k - k0 :]
    y_all = np.concatenate([fit.yi, filled])
    v_all = np.concatenate([fit.vi, filled_vi])
    res = fit_model(
        y_all,
        v_all,
        None,
        ("intrcpt",),
        method=fit.method,
        test="z",
        level=95.0,
        control=METAFOR_DEFAULTS,
        r2=False,
    )
    return TrimfillResult(
        k0=int(k0),
        se_k0=se_k0,
        side=side,
        **res.pooled(),
        level=95.0,
        test="z",
        filled_yi=filled,
        filled_vi=filled_vi,
    )


# ----------------------------------------------------------------------------------------------
# funnel plot data
# ----------------------------------------------------------------------------------------------


def funnel(fit: FitResult, trim: TrimfillResult | None = None) -> dict[str, Any]:
    """Data for a funnel plot as metafor's ``funnel()`` draws it for a model without moderators.

    Returns the observed ``yi`` and ``sei``, the pooled estimate as ``center``, and the pseudo
    confidence region ``center -/+ z_{1-alpha/2} se`` for se from 0 to the largest ``sei`` (two
    points per line suffice: the limits are straight lines in se). With a trim-and-fill result
    the imputed studies are included as ``filled``.

    Source: metafor 3.8-1 ``funnel.rma()`` (``yaxis = "sei"``; Sterne & Egger 2001).
    """
    if not fit.int_only:
        raise EngineError("the funnel plot is drawn for models without moderators", code="not_applicable")
    sei = np.sqrt(fit.vi)
    center = float(fit.beta[0])
    z = float(-special.ndtri(alpha_from_level(fit.level) / 2.0))
    se_max = float(sei.max())
    out: dict[str, Any] = {
        "yi": fit.yi,
        "sei": sei,
        "center": center,
        "level": fit.level,
        "z": z,
        "lines": {
            "se": [0.0, se_max],
            "lower": [center, center - z * se_max],
            "upper": [center, center + z * se_max],
        },
    }
    if trim is not None and trim.k0 > 0:
        out["filled"] = {"yi": trim.filled_yi, "sei": np.sqrt(trim.filled_vi)}
    return out
