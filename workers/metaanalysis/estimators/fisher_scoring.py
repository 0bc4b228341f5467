"""The one Fisher-scoring loop of the ML, REML and EB estimators (metafor's ``rma.uni()``).

Every iterative tau² of the engine runs here: one model (:func:`~.single_tau2.fisher_scoring_single`,
the fast path of ``rma()``, trim-and-fill and subgroup fits) and every subset of a leave-one-out
or cumulative family at once (:func:`~.batched.fisher_scoring_family`). They differ only in how
the score and the information are computed (scalar sums of one model, or batched sums of a
family), which the loop takes as a function; the iteration itself -- Newton or Fisher step,
step halving at tau² = 0, convergence, divergence, the iteration limit and the check that
tau² = 0 does not have a larger likelihood -- is written once, on arrays of tau² values (one
entry for a single model).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .control import EPS as _EPS
from .control import Control

#: ``score(idx, t)``: score, expected information and (for Newton steps, else None) the score's
#: derivative of the rows ``idx`` at tau² = ``t``, each an array over ``idx``.
ScoreFunction = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]]
#: ``finish_one(i, t, it)``: continue row i alone from tau² = t after ``it`` iterations:
#: (tau², ok, reason).
FinishOne = Callable[[int, float, int], tuple[float, bool, str | None]]
#: ``loglik_gain(idx, t)``: log-likelihood at tau² = 0 minus that at ``t`` for the rows ``idx``
#: (-inf where tau² = 0 cannot win).
LoglikGain = Callable[[np.ndarray, np.ndarray], np.ndarray]

#: Below this many unfinished rows the loop hands them to ``finish_one`` (a family's last slow
#: subsets continue on the cheaper single-model sums).
HANDOFF_ROWS = 4


def fisher_scoring(
    score: ScoreFunction,
    t: np.ndarray,
    active: np.ndarray,
    ctl: Control,
    newton: bool,
    *,
    it: int = 0,
    finish_one: FinishOne | None = None,
    loglik_gain: LoglikGain | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str | None], int]:
    """metafor's Fisher scoring for tau² (ML, REML, EB) of one model or of many at once.

    Parameters
    ----------
    score : callable
        ``score(idx, t)`` -> (score, Fisher information, derivative of the score or None) of
        the rows ``idx`` at tau² = ``t``. The Fisher step is score / information (metafor's
        ``adj``).
    t : ndarray
        Starting values (metafor's max(0, HE)), one per row; updated in place.
    active : ndarray of int
        The rows to iterate (the others keep their value of ``t``).
    ctl : Control
        ``threshold`` (convergence on the change in tau²), ``tol`` (the tau² = 0 likelihood
        check) and ``maxiter``.
    newton : bool
        Take the Newton step -score/score' where the score decreases and the Newton step agrees
        with the Fisher step to within a factor of 10 (needs the derivative from ``score``).
    it : int
        Iterations already done (a row handed over by ``finish_one`` continues its count).
    finish_one : callable, optional
        ``finish_one(i, t, it)`` -> (tau², ok, reason): once at most :data:`HANDOFF_ROWS`
        rows are left, each continues alone (on cheaper sums) through this function.
    loglik_gain : callable, optional
        ``loglik_gain(idx, t)`` -> log-likelihood at tau² = 0 minus that at ``t``: metafor's
        check (ML, REML) that sets tau² = 0 where that gain exceeds ``ctl.tol``.

    Returns
    -------
    t : ndarray
        tau² of every row (NaN where the iteration failed).
    ok : ndarray of bool
    reason : list of str or None
        Why a row failed (divergence, iteration limit).
    it : int
        Iterations done.

    Notes
    -----
    metafor 3.8-1 ``rma.uni()`` (Viechtbauer 2010, J Stat Softw 36(3)): Fisher scoring for the ML
    and REML estimators (Viechtbauer 2005, Stat Med 24:2193) and for Morris's (1983) empirical
    Bayes estimator, from max(0, HE), each step halved until tau² stays non-negative
    (``tau2.min = 0``), stopping when the change in tau² is at most ``threshold`` (or a few ulps of
    tau², below which floating point cannot go; metafor would iterate to ``maxiter`` there), then
    keeping tau² = 0 if its likelihood is larger by more than ``tol``. Under a tight threshold the
    Newton steps reach the same root in fewer iterations (quadratic instead of linear
    convergence); under metafor's default threshold (1e-5) where iteration stops depends on the
    path, so callers pass ``newton = False`` there and metafor's path is followed exactly.
    """
    n = t.size
    reason: list[str | None] = [None] * n
    ok = np.ones(n, dtype=bool)
    with np.errstate(divide="ignore", invalid="ignore"):
        while active.size:
            it += 1
            ta = t[active]
            sc, info, dscore = score(active, ta)
            adj = sc / info
            if newton and dscore is not None:
                nadj = -sc / dscore
                ratio = nadj / adj  # NaN or infinite unless both steps are finite and non-zero
                use = (dscore < 0) & (ratio > 0.1) & (ratio < 10.0)
                adj = np.where(use, nadj, adj)
            tn = ta + adj
            if not (np.minimum.reduce(tn) >= 0.0 and np.maximum.reduce(tn) < np.inf):
                # a NaN, infinite or negative value: the steps to repair (usually none is)
                adj[np.isnan(adj)] = 0.0  # as metafor (a saturated model gives NaN)
                diverged = np.isinf(adj)
                if diverged.any():
                    # an infinite step (no information left): metafor would halve it forever
                    for i in active[diverged]:
                        ok[i] = False
                        reason[i] = "Fisher scoring diverged (infinite step)"
                    t[active[diverged]] = np.nan
                    keep = ~diverged
                    active, ta, adj = active[keep], ta[keep], adj[keep]
                # step halving so that tau² stays >= tau2.min = 0; from tau² = 0 with a negative
                # step, halving only ends when the step underflows, so that case is short-cut to
                # a zero step
                adj[(ta == 0.0) & (adj < 0.0)] = 0.0
                neg = ta + adj < 0.0
                if neg.any():
                    adj[neg] = _halved(ta[neg], adj[neg])
                tn = ta + adj
            change = np.abs(tn - ta)
            t[active] = tn
            conv = change <= np.maximum(ctl.threshold, 8.0 * _EPS * tn)
            active = active[~conv]
            if finish_one is not None and 0 < active.size <= HANDOFF_ROWS and it < ctl.maxiter:
                # a few slow rows left (typically creeping towards tau² = 0 by step halving, one
                # halving per iteration): finish them one by one, continuing the same iteration
                for i in active:
                    ti, oki, why = finish_one(int(i), float(t[i]), it)
                    t[i] = ti
                    if not oki:
                        ok[i] = False
                        reason[i] = why
                break
            if it >= ctl.maxiter and active.size:
                for i in active:
                    ok[i] = False
                    reason[i] = f"Fisher scoring did not converge in {ctl.maxiter} iterations"
                t[active] = np.nan
                break
    if loglik_gain is not None:
        cand = np.flatnonzero(ok & (t > ctl.threshold))
        if cand.size:
            t[cand[loglik_gain(cand, t[cand]) > ctl.tol]] = 0.0
    return t, ok, reason, it


def _halved(ta: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """metafor's step halving: ``adj`` halved until ``ta + adj >= 0``, for steps that cross 0.

    Jumps straight to the number of halvings (scaling by powers of two is exact, so this is the
    same step as repeated halving).
    """
    with np.errstate(divide="ignore"):
        h = np.maximum(1, np.ceil(np.log2(-adj / ta)) - 1).astype(int)
    step = np.ldexp(adj, -h)
    short = ta + step < 0.0
    while np.any(short):
        h[short] += 1
        step[short] = np.ldexp(adj[short], -h[short])
        short = ta + step < 0.0
    return step
