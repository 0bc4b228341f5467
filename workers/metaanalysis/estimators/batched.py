"""tau² of every subset of a :class:`~.subsets.Family` at once, by metafor's estimators.

metafor 3.8-1 ``rma.uni()`` (Viechtbauer 2010, J Stat Softw 36(3)): DL (DerSimonian & Laird 1986),
HE (Hedges 1983), HS (Hunter & Schmidt 2004), SJ (Sidik & Jonkman 2005), ML and REML (Fisher
scoring; Viechtbauer 2005), EB (Morris 1983) and PM (Paule & Mandel 1982, in
:mod:`.paule_mandel`). Iteration follows metafor (Fisher scoring from max(0, HE), step halving
at tau² = 0, the check that tau² = 0 does not have a larger likelihood). Under a tight threshold
the iterations take Newton steps where those agree with the Fisher step (quadratic instead of
linear convergence): the converged value is the same root up to metafor's threshold. Under
metafor's loose default threshold (1e-5) the stopping point depends on the path, so metafor's
path is followed exactly.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .control import DEFAULT_CONTROL, NEWTON_BELOW_THRESHOLD, Control
from .fisher_scoring import fisher_scoring
from .paule_mandel import paule_mandel_family
from .single_tau2 import InterceptOnlySums, RegressionSums, fisher_scoring_single, intercept_only_score
from .subsets import (
    Family,
    Problem,
    Sums,
    _dot,
    _matvec,
    _resid_quad,
    _solve,
    _tr,
    equal_effects_parts,
    hedges_untruncated,
    wls,
)


@dataclasses.dataclass
class Tau2Result:
    """tau² for each subset with bookkeeping for the single-fit standard error."""

    tau2: np.ndarray
    ok: np.ndarray
    reason: list[str | None]
    tau2_0: np.ndarray | None = None  # SJ's starting value


# fit_family (family_fit.py) takes the same estimator options and passes them on here: the
# signatures match because one calls the other.
def estimate_tau2(
    family: Family,
    method: str,
    ctl: Control = DEFAULT_CONTROL,
    start: np.ndarray | None = None,
    newton: bool = False,
) -> Tau2Result:
    """tau² for every subset of ``family`` by metafor's estimator ``method``.

    Parameters
    ----------
    family : Family
    method : str
        One of metafor's ``method`` names (:data:`~.control.METHODS`).
    ctl : Control
    start : ndarray, optional
        Replaces metafor's starting value (max(0, HE)) of the iterative ML/REML/EB estimators.
    newton : bool
        Newton steps in their Fisher scoring where they agree with the Fisher step.

    Returns
    -------
    Tau2Result

    Notes
    -----
    metafor 3.8-1 ``rma.uni()`` refitted to each subset: DL (DerSimonian & Laird 1986), HE
    (Hedges 1983), HS (Hunter & Schmidt 2004), SJ (Sidik & Jonkman 2005), ML and REML (Fisher
    scoring, Viechtbauer 2005), EB (Morris 1983) and PM (Paule & Mandel 1982). Subsets with a
    single study get tau² = 0 (metafor's ``k = 1`` handling). ``start`` and ``newton`` only change
    the path, not the root; they are used for leave-one-out families started at the full-data
    estimate.
    """
    pr = family.problem
    p = pr.p
    sizes = family.sizes
    B = family.n_subsets
    reason: list[str | None] = [None] * B
    ok = np.ones(B, dtype=bool)
    tau2_0 = None
    one = sizes == 1
    # metafor refuses a model with more parameters than studies (p + 1 with tau², p for EE; an
    # intercept-only model with one study is the exception): such subsets are left out
    need = p if method == "EE" else p + 1
    too_few = (sizes < need) & ~(one & (p == 1))
    singular = family.inestimable() & ~too_few
    skip = too_few | singular
    with np.errstate(divide="ignore", invalid="ignore"):
        if method == "EE":
            tau2 = np.zeros(B)
        elif method in ("DL", "HS"):
            qe, trP, sw = equal_effects_parts(family)
            tau2 = (qe - (sizes - p)) / trP if method == "DL" else (qe - sizes) / sw
            tau2 = np.maximum(0.0, tau2)
        elif method == "HE":
            tau2 = np.maximum(0.0, hedges_untruncated(family))
        elif method == "SJ":
            S0 = Sums(family.fixed("one", None), p)
            # metafor: var(ymci) * (k-1)/k, the plain (not model-based) variance of y
            t0 = (S0.ytCy - S0.XtCy[:, 0] ** 2 / sizes) / sizes
            t0 = np.maximum(t0, 0.0)
            (S1raw,) = family.var(np.arange(B), t0, (1,))
            _, _, rss = wls(Sums(S1raw, p))
            tau2 = t0 * rss / (sizes - p)
            tau2_0 = t0
        elif method in ("ML", "REML", "EB"):
            tau2, ok, reason, _ = fisher_scoring_family(family, method, ctl, start, newton, skip)
        elif method == "PM":
            tau2, ok, reason = paule_mandel_family(family, ctl, skip)
        else:
            raise ValueError(f"unknown method {method!r}")
    tau2 = np.where(one & ok, 0.0, tau2)
    if np.any(one):
        for i in np.flatnonzero(one & ~too_few):
            reason[i] = None
            ok[i] = True
    if np.any(skip):
        tau2 = np.where(skip, np.nan, tau2)
        ok = ok & ~skip
        for i in np.flatnonzero(too_few):
            reason[i] = f"{int(sizes[i])} studies cannot estimate {need} parameters"
        for i in np.flatnonzero(singular):
            reason[i] = "a coefficient is not estimable in this subset (singular design)"
    return Tau2Result(tau2=tau2, ok=ok, reason=reason, tau2_0=tau2_0)


def _score_parts(family: Family, idx: np.ndarray, t: np.ndarray, method: str, newton: bool):
    """Score, Fisher information and score derivative of the subsets ``idx`` at tau² = ``t``.

    Parameters
    ----------
    family : Family
    idx : ndarray of int
        The subsets.
    t : ndarray
        Their tau² values.
    method : {"ML", "REML", "EB"}
    newton : bool
        Also return the derivative of the score (else None).

    Returns
    -------
    score, information, dscore : ndarray

    Notes
    -----
    The batched form of :func:`~.single_tau2.regression_score` (intercept-only families through
    :func:`~.single_tau2.intercept_only_score`): metafor 3.8-1 ``rma.uni()``'s Fisher scoring for ML and
    REML (Viechtbauer 2005, Stat Med 24:2193) and EB (Morris 1983).
    """
    p = family.problem.p
    sizes = family.sizes[idx]
    if method == "EB":
        powers: tuple[int, ...] = (1, 2) if newton else (1,)
    elif method == "ML":
        powers = (1, 2, 3) if newton else (1, 2)
    else:
        powers = (1, 2, 3)
    raw = family.var(idx, t, powers)
    if p == 1:
        # the sums' columns (sum w^j, sum w^j y, sum w^j y^2) as rows, for the shared formulas
        cols = [r.T for r in raw] + [None] * (3 - len(raw))
        return intercept_only_score(cols[0], cols[1], cols[2], sizes, method, newton)
    sums = [Sums(S, p) for S in raw]
    S1 = sums[0]
    A, beta, ypy = wls(S1)
    if method == "EB":
        score = ypy * sizes / (sizes - p) - sizes
        info = S1.sum_c
        dscore = -_resid_quad(beta, sums[1]) * sizes / (sizes - p) if newton else None
        return score, info, dscore
    S2 = sums[1]
    yppy = _resid_quad(beta, S2)
    if method == "ML":
        score = yppy - S1.sum_c
        info = S2.sum_c
        tr_pp = None
    else:
        S3 = sums[2]
        trP = S1.sum_c - _tr(A, S2.XtCX)
        AX2 = A @ S2.XtCX if p > 1 else A * S2.XtCX
        tr_pp = (
            S2.sum_c
            - 2.0 * _tr(A, S3.XtCX)
            + (np.einsum("nij,nji->n", AX2, AX2) if p > 1 else AX2[:, 0, 0] ** 2)
        )
        score = yppy - trP
        info = tr_pp
    dscore = None
    if newton:
        S3 = sums[2]
        u = S2.XtCy - _matvec(S2.XtCX, beta)  # X'W^2 r
        ypppy = _resid_quad(beta, S3) - _dot(u, _solve(A, u))
        dscore = -2.0 * ypppy + (S2.sum_c if method == "ML" else tr_pp)
    return score, info, dscore


def fisher_scoring_family(
    family: Family,
    method: str,
    ctl: Control,
    start: np.ndarray | None,
    newton: bool,
    skip: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, list[str | None], int]:
    """ML, REML or EB tau² of every subset of ``family`` by metafor's Fisher scoring.

    Parameters
    ----------
    family : Family
    method : {"ML", "REML", "EB"}
    ctl : Control
    start : ndarray, optional
        Starting values (default metafor's max(0, HE) of each subset).
    newton : bool
        Newton steps where they agree with the Fisher step (leave-one-out families started at
        the full-data estimate); ignored under metafor's loose default threshold.
    skip : ndarray of bool, optional
        Subsets not to iterate (too few studies, singular design).

    Returns
    -------
    tau2, ok, reason, iterations

    Notes
    -----
    metafor 3.8-1 ``rma.uni()`` refitted to each subset (as ``leave1out()`` and ``cumul()`` do):
    Fisher scoring for ML and REML (Viechtbauer 2005, Stat Med 24:2193) and EB (Morris 1983),
    with step halving at tau2.min = 0 and the tau² = 0 likelihood check, in the one loop
    :func:`~.fisher_scoring.fisher_scoring`, here on the batched sums of all subsets at once.
    The last few slow subsets continue alone on their own single-model sums (:func:`_finish_one`).
    """
    sizes = family.sizes
    if ctl.threshold >= NEWTON_BELOW_THRESHOLD:
        # loose threshold: where iteration stops depends on the path, so follow metafor's exactly
        start, newton = None, False
    if start is None:
        t = np.maximum(0.0, hedges_untruncated(family))
        t[~np.isfinite(t)] = 0.0
    else:
        t = np.array(start, dtype=float, copy=True)
    t[sizes == 1] = 0.0
    active = np.flatnonzero((sizes > 1) if skip is None else (sizes > 1) & ~skip)

    def score(idx: np.ndarray, ta: np.ndarray):
        return _score_parts(family, idx, ta, method, newton)

    def finish_one(i: int, ti: float, it: int) -> tuple[float, bool, str | None]:
        return _finish_one(family, i, method, ctl, ti, it)

    def loglik_gain(cand: np.ndarray, tc: np.ndarray) -> np.ndarray:
        return _loglik_gain(family, cand, tc, method)

    return fisher_scoring(
        score,
        t,
        active,
        ctl,
        newton,
        finish_one=finish_one,
        loglik_gain=loglik_gain if method in ("ML", "REML") else None,
    )


def _finish_one(
    family: Family, i: int, method: str, ctl: Control, t: float, it: int
) -> tuple[float, bool, str | None]:
    """Continue subset i's iteration from tau² = t after ``it`` iterations, on its own data.

    Returns
    -------
    tau2, ok, reason

    Notes
    -----
    The same Fisher scoring (metafor's ``rma.uni()``, Viechtbauer 2005) on the subset's
    single-model sums: :func:`~.single_tau2.fisher_scoring_single` without the tau² = 0 check, which
    the family's loop applies to all subsets at the end.
    """
    pr = family.problem
    if family.kind == "full":
        keep = np.arange(pr.k)
    elif family.kind == "loo":
        keep = np.delete(np.arange(pr.k), i)
    else:
        keep = np.arange(i + 1)
    if pr.p == 1:
        sums: InterceptOnlySums | RegressionSums = InterceptOnlySums(pr.y[keep], pr.v[keep])
    else:
        sums = RegressionSums(Problem(pr.y[keep], pr.v[keep], pr.X[keep]))
    t1, ok, why = fisher_scoring_single(sums, method, ctl, t, it=it, ll0=False)
    return (t1 if ok else math.nan), ok, why


def _loglik(family: Family, idx: np.ndarray, t: np.ndarray, method: str) -> np.ndarray:
    """ML or REML log-likelihood (without the constant log|X'X| term) of subsets at tau² = t.

    Returns
    -------
    ndarray
        One value per subset in ``idx``: metafor 3.8-1 ``rma.uni()``'s ``ll.ML``/``ll.REML``
        (Viechtbauer 2005), up to a constant, for its check at tau² = 0.
    """
    pr = family.problem
    p = pr.p
    sizes = family.sizes[idx]
    (S,) = family.var(idx, t, (1,))
    S1 = Sums(S, p)
    _, _, rss = wls(S1)
    # sum(log(v + t)) over each subset, through the same masked machinery on a log-weight column
    logsum = _masked_logsum(family, idx, t)
    if method == "ML":
        return -0.5 * sizes * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * rss
    if p == 1:
        logdet = np.log(S1.XtCX[:, 0, 0])
    else:
        logdet = np.linalg.slogdet(S1.XtCX)[1] + 2.0 * float(np.sum(np.log(pr.scale)))
    return -0.5 * (sizes - p) * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * logdet - 0.5 * rss


def _masked_logsum(family: Family, idx: np.ndarray, t: np.ndarray) -> np.ndarray:
    v = family.problem.v
    out = np.empty(idx.size)
    for j, (i, ti) in enumerate(zip(idx, t, strict=True)):
        lv = np.log(v + ti)
        if family.kind == "full":
            out[j] = lv.sum()
        elif family.kind == "loo":
            out[j] = lv.sum() - lv[i]
        else:
            out[j] = lv[: i + 1].sum()
    return out


def _loglik_gain(family: Family, cand: np.ndarray, tc: np.ndarray, method: str) -> np.ndarray:
    """Log-likelihood at tau² = 0 minus that at ``tc`` for the subsets ``cand`` (metafor's check
    whether tau² = 0 beats the converged value; -inf where it cannot).

    Only subsets whose score is negative at tau² = 0 can have the boundary win (otherwise the
    likelihood increases away from 0 towards the root found), so only those are evaluated.
    """
    pr = family.problem
    gain = np.full(cand.size, -np.inf)
    sel = np.flatnonzero(family.sizes[cand] > 1)
    if sel.size and family.kind != "full":
        # score at 0 uses the fixed weights 1/v: cheap prefix/suffix sums
        p = pr.p
        S1 = Sums(family.fixed("w1", 1.0 / pr.v), p)
        S2 = Sums(family.fixed("w2", 1.0 / pr.v**2), p)
        A, beta, _ = wls(S1)
        yppy = _resid_quad(beta, S2)
        score0 = yppy - S1.sum_c if method == "ML" else yppy - (S1.sum_c - _tr(A, S2.XtCX))
        sel = sel[score0[cand[sel]] < 0]
    if sel.size:
        rows = cand[sel]
        ll0 = _loglik(family, rows, np.zeros(rows.size), method)
        ll1 = _loglik(family, rows, tc[sel], method)
        gain[sel] = ll0 - ll1
    return gain
