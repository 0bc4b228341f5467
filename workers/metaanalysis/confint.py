"""Q-profile confidence intervals of tau², tau, I² and H², as metafor's ``confint.rma.uni()``
(metafor 3.8-1; Viechtbauer 2007, Stat Med 26:37-52)."""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np
from scipy import special

from .errors import EngineError, InsufficientDataError
from .estimators import (
    Family,
    InterceptOnlySums,
    Problem,
    Sums,
    alpha_from_level,
    solve_decreasing,
    solve_decreasing_scalar,
    wls,
)
from .fit_result import EngineResult, FitResult

__all__ = ["ConfintResult", "confint"]


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
        d = -(
            S2.ytCy
            - 2.0 * np.einsum("ni,ni->n", beta, S2.XtCy)
            + np.einsum("ni,nij,nj->n", beta, S2.XtCX, beta)
        )
        return rss, d

    return q


def _bound_fun(S: InterceptOnlySums, target: float, t: float) -> tuple[float, float]:
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
        S1 = InterceptOnlySums(fit.yi, fit.vi)

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
