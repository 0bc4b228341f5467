"""The Paule-Mandel estimator of tau² (Paule & Mandel 1982; metafor 3.8-1 ``rma.uni(method =
"PM")``): the tau² at which the generalised Q statistic equals its degrees of freedom k - p.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .control import Control
from .roots import mad, solve_decreasing, zeroin
from .subsets import Family, Sums, _resid_quad, equal_effects_parts, wls


def tau2_max(y: np.ndarray) -> float:
    """metafor's upper end of the search, ``tau2.max = max(100, 10 mad(y)^2)``."""
    return max(100.0, 10.0 * mad(y) ** 2)


def above_tau2_max(tmax: float) -> str:
    """The reason given when the root lies above ``tau2.max`` (metafor stops with an error)."""
    return f"the Paule-Mandel estimate lies above tau2.max = {tmax:.6g} (metafor: \"Value of 'tau2.max' too low\")"


def paule_mandel_single(
    q: Callable[[float], float], q0: float, y: np.ndarray, ctl: Control
) -> tuple[float, bool, str | None]:
    """Paule-Mandel tau² of one model exactly as metafor finds it.

    Parameters
    ----------
    q : callable
        ``Q(tau²) - (k - p)``, non-increasing in tau².
    q0 : float
        ``q(0)``.
    y : ndarray
        The model's outcomes (for ``tau2.max``).
    ctl : Control
        ``tol`` and ``maxiter`` of ``uniroot()``.

    Returns
    -------
    tau2, ok, reason

    Notes
    -----
    metafor 3.8-1 ``rma.uni(method = "PM")`` (Paule & Mandel 1982): 0 when Q(0) < k - p, else
    ``uniroot()`` on [0, tau2.max]. Brent's iterates are
    reproduced (:func:`~.roots.zeroin`) because at a loose ``tol`` the stopping point, not the
    exact root, is the estimate.
    """
    if q0 < 0:
        return 0.0, True, None
    tmax = tau2_max(y)
    qmax = q(tmax)
    if qmax > 0:
        return math.nan, False, above_tau2_max(tmax)
    root, done = zeroin(q, 0.0, tmax, q0, qmax, ctl.tol, ctl.maxiter)
    if not done:
        return math.nan, False, "uniroot() for the Paule-Mandel estimator did not converge"
    return root, True, None


def paule_mandel_family(family: Family, ctl: Control, skip: np.ndarray | None = None):
    """Paule-Mandel tau² of every subset of ``family``.

    Parameters
    ----------
    family : Family
    ctl : Control
        ``tol`` and ``maxiter`` of the single model's ``uniroot()``.
    skip : ndarray of bool, optional
        Subsets left out (too few studies, singular design).

    Returns
    -------
    tau2, ok, reason
        Per subset; ``reason`` says why a subset has no estimate.

    Notes
    -----
    Paule & Mandel (1982): the tau² where the generalised Q equals k - p (metafor 3.8-1
    ``rma.uni(method = "PM")``: ``uniroot()`` on [tau2.min,
    tau2.max], tau2.max = max(100, 10 mad(y)^2); 0 when Q(0) < k - p). The full model follows
    R's ``uniroot()`` iterates (:func:`paule_mandel_single`); the subsets of larger families are
    solved together to machine precision by a safeguarded Newton method (their roots are the
    same to within metafor's tolerance).
    """
    pr = family.problem
    if family.kind == "full":

        def q_full(t: float) -> float:
            (S,) = family.var(np.zeros(1, dtype=int), np.array([t]), (1,))
            return float(wls(Sums(S, pr.p))[2][0]) - (pr.k - pr.p)

        if pr.k == 1:
            return np.zeros(1), np.ones(1, dtype=bool), [None]
        t, ok1, why = paule_mandel_single(q_full, q_full(0.0), pr.y, ctl)
        return np.array([t]), np.array([ok1]), [why]
    p = pr.p
    B = family.n_subsets
    kb = family.sizes
    reason: list[str | None] = [None] * B
    ok = np.ones(B, dtype=bool)
    target = kb - p
    qe, _, _ = equal_effects_parts(family)
    tau2 = np.zeros(B)
    need = np.flatnonzero((qe >= target) & (kb > 1) & (True if skip is None else ~skip))
    if need.size == 0:
        return tau2, ok, reason

    def fun(ii: np.ndarray, x: np.ndarray):
        rows = need[ii]
        S1r, S2r = family.var(rows, x, (1, 2))
        S1, S2 = Sums(S1r, p), Sums(S2r, p)
        _, beta, q = wls(S1)
        return q - target[rows], -_resid_quad(beta, S2)

    # bracket: Q is non-increasing in tau²; grow the upper end until Q(hi) < target
    hi = np.full(need.size, 100.0)
    for _ in range(200):
        f_hi, _ = fun(np.arange(need.size), hi)
        grow = f_hi > 0
        if not np.any(grow):
            break
        hi[grow] *= 4.0
    root, done = solve_decreasing(fun, np.zeros(need.size), hi)
    tau2[need] = root
    # roots above 100 must also lie below metafor's adaptive tau2.max of their own subset
    for j in np.flatnonzero(root > 100.0):
        i = need[j]
        if family.kind == "full":
            ysub = pr.y
        elif family.kind == "loo":
            ysub = np.delete(pr.y, i)
        else:
            ysub = pr.y[: i + 1]
        tmax = tau2_max(ysub)
        if root[j] > tmax:
            done[j] = False
            reason[i] = above_tau2_max(tmax)
    for j in np.flatnonzero(~done):
        i = need[j]
        ok[i] = False
        tau2[i] = np.nan
        if reason[i] is None:
            reason[i] = "root finding for the Paule-Mandel estimator did not converge"
    return tau2, ok, reason
