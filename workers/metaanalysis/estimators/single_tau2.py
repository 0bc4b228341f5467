"""One model's tau²: weighted sums of an intercept-only model or a meta-regression, their
score functions and the estimators that run on them.

The single-model counterparts of :mod:`.subsets` and :mod:`.batched`: the same definitions
(metafor 3.8-1 ``rma.uni()``), with scalar or p x p arithmetic where a batch of one would spend
its time in overhead. The iteration of ML, REML and EB is the one loop of
:mod:`.fisher_scoring`, run with a single row. This is the hot path of ``rma()``, trim-and-fill and
subgroup fits.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .control import NEWTON_BELOW_THRESHOLD, Control
from .fisher_scoring import fisher_scoring
from .paule_mandel import paule_mandel_single
from .subsets import Problem


class InterceptOnlySums:
    """Weighted sums for one intercept-only model, with buffers reused across iterations.

    ``sums(t, n)`` returns, for j = 1..n, the row ``[sum w^j, sum w^j y, sum w^j y^2]`` with
    ``w = 1/(v + t)`` and y centred at its mean, from one (n x k) @ (k x 3) product. Setting
    ``m`` restricts every sum to the first m studies (trim-and-fill fits prefixes of one sorted
    data set).
    """

    __slots__ = ("G", "Wp", "k", "m", "tmp", "v", "y", "ybar")
    #: Coefficients: the intercept.
    p = 1

    def __init__(self, y: np.ndarray, v: np.ndarray) -> None:
        k = y.size
        self.k = k
        self.m = k
        self.y = y
        self.v = v
        self.ybar = float(y.mean())
        G = np.empty((k, 3))
        G[:, 0] = 1.0
        np.subtract(y, self.ybar, out=G[:, 1])
        np.multiply(G[:, 1], G[:, 1], out=G[:, 2])
        self.G = G
        self.Wp = np.empty((3, k))
        self.tmp = np.empty(k)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-study products G (rows ``[1, y - mean, (y - mean)²]``) and v of the active studies."""
        return self.G[: self.m], self.v[: self.m]

    def q_profile(self, t: float) -> tuple[float, float]:
        """Generalised Q statistic at tau² = t and its derivative -sum w²(y - mu)²."""
        s1, s2 = self.sums(t, 2)
        mu = s1[1] / s1[0]
        return s1[2] - mu * s1[1], -(s2[2] - 2.0 * mu * s2[1] + mu * mu * s2[0])

    def sums(self, t: float, n: int = 1) -> list[list[float]]:
        m = self.m
        if m == self.k:
            Wp, tmp, G = self.Wp, self.tmp, self.G
            np.add(self.v, t, out=tmp)
        else:
            Wp, tmp, G = self.Wp[:, :m], self.tmp[:m], self.G[:m]
            np.add(self.v[:m], t, out=tmp)
        np.divide(1.0, tmp, out=Wp[0])
        if n > 1:
            np.multiply(Wp[0], Wp[0], out=Wp[1])
        if n > 2:
            np.multiply(Wp[1], Wp[0], out=Wp[2])
        return (Wp[:n] @ G).tolist()

    def unweighted(self) -> tuple[float, float]:
        """(sum (y - mean)^2, sum v) over the active studies: HE's and SJ's ingredients."""
        m = self.m
        c = self.G[:m].sum(axis=0).tolist()
        return c[2] - c[1] * c[1] / m, float(self.v[:m].sum())

    def hedges(self) -> float:
        """Hedges' (1983) estimator, untruncated: (RSS_OLS - tr(PV)) / (k - 1).

        Returns
        -------
        float
            metafor's ``rma.uni(method = "HE")`` before truncation at 0 (also the starting value
            of its Fisher scoring).
        """
        rss, sv = self.unweighted()
        k = self.m
        return (rss - (sv - sv / k)) / (k - 1)

    def score(self, t: float, n: int, method: str, newton: bool) -> tuple[float, float, float | None]:
        """Score, Fisher information and (with ``newton``) the score's derivative at tau² = t."""
        return self.score_of(self.sums(t, n), method, newton)

    def score_of(self, s: list[list[float]], method: str, newton: bool) -> tuple[float, float, float | None]:
        """:meth:`score` from the sums ``s = sums(t, n)`` at tau² = t."""
        s = s + [None] * (3 - len(s))  # type: ignore[list-item]
        return intercept_only_score(s[0], s[1], s[2], self.m, method, newton)

    def loglik(self, t: float, method: str) -> float:
        """ML or REML log-likelihood at tau² = t."""
        s1 = self.sums(t, 1)[0]
        rss = s1[2] - s1[1] * s1[1] / s1[0]
        k = self.m
        logsum = float(np.log(self.tmp[:k]).sum())  # self.tmp holds v + t after sums()
        if method == "ML":
            return -0.5 * k * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * rss
        return -0.5 * (k - 1) * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * math.log(s1[0]) - 0.5 * rss


class RegressionSums:
    """Weighted sums and small dense algebra for one meta-regression (p > 1).

    The single-model counterpart of :class:`~.subsets.Family` without the batching machinery: every
    iteration is one (n x k) @ (k x q) product and p x p algebra.
    """

    def __init__(self, pr: Problem) -> None:
        self.problem = pr
        self.p = pr.p
        self.k = pr.k
        self.Wp = np.empty((3, pr.k))
        self.tmp = np.empty(pr.k)

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """The per-study products G (:class:`~.subsets.Problem`'s layout) and v."""
        return self.problem.G, self.problem.v

    def sums(self, t: float, n: int = 1) -> np.ndarray:
        Wp = self.Wp
        np.add(self.problem.v, t, out=self.tmp)
        np.divide(1.0, self.tmp, out=Wp[0])
        if n > 1:
            np.multiply(Wp[0], Wp[0], out=Wp[1])
        if n > 2:
            np.multiply(Wp[1], Wp[0], out=Wp[2])
        return Wp[:n] @ self.problem.G

    def unpack(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
        p = self.p
        pp = p * p
        return row[:pp].reshape(p, p), row[pp : pp + p], float(row[pp + p])

    def wls(self, row: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, np.ndarray, np.ndarray]:
        """(A, beta, y'Py, XX, Xy) for the sums of weight w."""
        XX, Xy, yy = self.unpack(row)
        A = _inv_small(XX)
        b = A @ Xy
        return A, b, yy - float(b @ Xy), XX, Xy

    def hedges(self) -> float:
        """Hedges' (1983) estimator with p coefficients: (RSS_OLS - tr(PV)) / (k - p), untruncated,
        as :meth:`InterceptOnlySums.hedges`."""
        pr = self.problem
        XX0, Xy0, yy0 = self.unpack(pr.G.sum(axis=0))
        A = np.linalg.inv(XX0)
        rss = yy0 - float(Xy0 @ A @ Xy0)
        XXv = self.unpack(pr.v @ pr.G)[0]
        return (rss - (float(pr.v.sum()) - float(np.sum(A * XXv)))) / (self.k - self.p)

    def score(self, t: float, n: int, method: str, newton: bool) -> tuple[float, float, float | None]:
        """Score, Fisher information and (with ``newton``) the score's derivative at tau² = t."""
        return regression_score(self, self.sums(t, n), method, newton)

    def score_of(self, M: np.ndarray, method: str, newton: bool) -> tuple[float, float, float | None]:
        """:meth:`score` from the sums ``M = sums(t, n)`` at tau² = t."""
        return regression_score(self, M, method, newton)

    def loglik(self, t: float, method: str) -> float:
        """ML or REML log-likelihood at tau² = t (REML up to a constant)."""
        M = self.sums(t, 1)
        _, _, rss, XX, _ = self.wls(M[0])
        logsum = float(np.log(self.tmp).sum())
        k, p = self.k, self.p
        if method == "ML":
            return -0.5 * k * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * rss
        logdet = float(np.linalg.slogdet(XX)[1])  # on the centred/scaled scale: a constant offset
        return -0.5 * (k - p) * math.log(2 * math.pi) - 0.5 * logsum - 0.5 * logdet - 0.5 * rss


def _inv_small(M: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric p x p matrix; closed form for 2 x 2 (Egger's and most regressions
    with one moderator), where ``np.linalg.inv``'s call overhead dominates."""
    if M.shape[0] == 2:
        a, b, d = float(M[0, 0]), float(M[0, 1]), float(M[1, 1])
        det = a * d - b * b
        if det == 0.0 or not math.isfinite(det):
            return np.linalg.inv(M)  # raises LinAlgError for a singular matrix
        return np.array([[d / det, -b / det], [-b / det, a / det]])
    return np.linalg.inv(M)


def _resq(b: np.ndarray, XX: np.ndarray, Xy: np.ndarray, yy: float) -> float:
    return yy - 2.0 * float(b @ Xy) + float(b @ XX @ b)


def _ypy(s1: list[float]) -> float:
    """y'Py (the weighted residual sum of squares) from the sums of weight w."""
    return s1[2] - s1[1] * s1[1] / s1[0]


def intercept_only_score(
    s1: Any, s2: Any, s3: Any, k: Any, method: str, newton: bool
) -> tuple[Any, Any, Any]:
    """Score, Fisher information and score derivative of intercept-only models for Fisher scoring.

    Parameters
    ----------
    s1, s2, s3 : sequence
        The weighted sums ``s_j = (sum w^j, sum w^j y, sum w^j y^2)``, w = 1/(v + tau²), y
        centred: three floats (one model) or three arrays (a family of subsets); the formulas
        are written once for both. ``s2`` and ``s3`` may be None where the method does not
        need them.
    k : int or ndarray
        Studies in the model (an array of sizes for a family).
    method : {"ML", "REML", "EB"}
    newton : bool
        Also return the derivative of the score (else None).

    Returns
    -------
    score, information, dscore
        The Fisher step is score / information (metafor's ``adj``).

    Notes
    -----
    metafor 3.8-1 ``rma.uni()``: the ML and REML score and expected information of
    Viechtbauer (2005, Stat Med 24:2193) -- y'PPy - tr(W) and sum w² (ML), y'PPy - tr(P) and
    tr(PP) (REML) -- and Morris's (1983) EB step, (k/(k - 1)) y'Py - k over sum w.
    """
    sw = s1[0]
    mu = s1[1] / sw
    if method == "EB":
        score = (s1[2] - mu * s1[1]) * k / (k - 1) - k
        dscore = -(s2[2] - 2.0 * mu * s2[1] + mu * mu * s2[0]) * k / (k - 1) if newton else None
        return score, sw, dscore
    yppy = s2[2] - 2.0 * mu * s2[1] + mu * mu * s2[0]
    if method == "ML":
        score, info = yppy - sw, s2[0]
    else:
        r = s2[0] / sw
        info = s2[0] - 2.0 * s3[0] / sw + r * r
        score = yppy - (sw - r)
    dscore = None
    if newton:
        u = s2[1] - s2[0] * mu
        ypppy = s3[2] - 2.0 * mu * s3[1] + mu * mu * s3[0] - u * u / sw
        dscore = -2.0 * ypppy + info
    return score, info, dscore


# Its numpydoc shares method/newton/Returns with intercept_only_score's: the two are the scalar
# and the regression form of one score, and each docstring is read on its own.
def regression_score(
    S: RegressionSums, M: np.ndarray, method: str, newton: bool
) -> tuple[float, float, float | None]:
    """Score, Fisher information and score derivative of one meta-regression for Fisher scoring.

    Parameters
    ----------
    S : RegressionSums
        The model.
    M : ndarray
        ``S.sums(t, n)`` at tau² = t (n = 3 for REML and for Newton steps).
    method : {"ML", "REML", "EB"}
    newton : bool
        Also return the derivative of the score (else None).

    Returns
    -------
    score, information, dscore

    Notes
    -----
    The formulas of :func:`intercept_only_score` with p x p algebra (metafor 3.8-1
    ``rma.uni()``; Viechtbauer 2005, Stat Med 24:2193, for ML and REML; Morris 1983 for EB).
    """
    k, p = S.k, S.p
    A, b, ypy, _, _ = S.wls(M[0])
    sw = float(M[0][0])
    if method == "EB":
        score = ypy * k / (k - p) - k
        dscore = None
        if newton:
            XX2, Xy2, yy2 = S.unpack(M[1])
            dscore = -_resq(b, XX2, Xy2, yy2) * k / (k - p)
        return score, sw, dscore
    XX2, Xy2, yy2 = S.unpack(M[1])
    yppy = _resq(b, XX2, Xy2, yy2)
    if method == "ML":
        score, info = yppy - sw, float(M[1][0])
    else:
        AX2 = A @ XX2
        trp = sw - float(np.trace(AX2))
        info = float(M[1][0]) - 2.0 * float(np.sum(A * S.unpack(M[2])[0])) + float(np.sum(AX2 * AX2.T))
        score = yppy - trp
    dscore = None
    if newton:
        XX3, Xy3, yy3 = S.unpack(M[2])
        u = Xy2 - XX2 @ b  # X'W^2 r
        ypppy = _resq(b, XX3, Xy3, yy3) - float(u @ A @ u)
        dscore = -2.0 * ypppy + (float(M[1][0]) if method == "ML" else info)
    return score, info, dscore


def fisher_scoring_single(
    sums: InterceptOnlySums | RegressionSums,
    method: str,
    ctl: Control,
    start: float | None = None,
    it: int = 0,
    ll0: bool = True,
) -> tuple[float, bool, str | None]:
    """ML, REML or EB tau² of one model by metafor's Fisher scoring.

    Parameters
    ----------
    sums : InterceptOnlySums or RegressionSums
        The model's weighted sums.
    method : {"ML", "REML", "EB"}
    ctl : Control
    start : float, optional
        Starting value (default metafor's max(0, HE)).
    it : int
        Iterations already done: the batched solver hands its last few subsets over and they
        continue the same iteration here.
    ll0 : bool
        Apply metafor's check that tau² = 0 does not have a larger likelihood (ML, REML).

    Returns
    -------
    tau2, ok, reason

    Notes
    -----
    metafor 3.8-1 ``rma.uni()``: Fisher scoring for ML and REML (Viechtbauer 2005, Stat Med
    24:2193) and Morris's (1983) EB estimator, from max(0, HE), each step halved until tau² stays
    non-negative, stopping when the change is below ``threshold``. The iteration is the one loop
    :func:`~.fisher_scoring.fisher_scoring` with a single row, its score from this model's scalar
    or p x p sums. Under a tight threshold Newton steps replace the Fisher steps where they agree:
    the same root in fewer iterations.
    """
    t = np.array([max(0.0, sums.hedges()) if start is None else start])
    newton = ctl.threshold < NEWTON_BELOW_THRESHOLD
    n = (2 if newton else 1) if method == "EB" else 3 if (method == "REML" or newton) else 2

    def score(idx: np.ndarray, ta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        sc, info, dscore = sums.score(float(ta[0]), n, method, newton)
        return np.array([sc]), np.array([info]), None if dscore is None else np.array([dscore])

    def loglik_gain(idx: np.ndarray, tc: np.ndarray) -> np.ndarray:
        return np.array([sums.loglik(0.0, method) - sums.loglik(float(tc[0]), method)])

    gain = loglik_gain if ll0 and method in ("ML", "REML") else None
    tau2, ok, reason, _ = fisher_scoring(score, t, _ONE_ROW, ctl, newton, it=it, loglik_gain=gain)
    return float(tau2[0]), bool(ok[0]), reason[0]


#: The active rows of a single model's iteration.
_ONE_ROW = np.zeros(1, dtype=np.intp)


# Parameters documented as batched.estimate_tau2's (method, ctl): the same options, one model.
def tau2_intercept_only(
    S: InterceptOnlySums, method: str, ctl: Control, fe: list[list[float]] | None = None
) -> tuple[float, float, bool, str | None]:
    """tau² of an intercept-only model on the active studies of ``S`` by metafor's estimator.

    Parameters
    ----------
    S : InterceptOnlySums
    method : str
        One of metafor's ``method`` names (:data:`~.control.METHODS`).
    ctl : Control
    fe : list, optional
        The equal-effects sums ``S.sums(0, 2)`` when the caller has them already.

    Returns
    -------
    tau2, tau2_0, ok, reason
        ``tau2_0`` is SJ's starting value (NaN for the others).

    Notes
    -----
    metafor 3.8-1 ``rma.uni()``: DL (DerSimonian & Laird 1986), HS (Hunter & Schmidt 2004), HE
    (Hedges 1983), SJ (Sidik & Jonkman 2005), ML and REML (Fisher scoring, Viechtbauer 2005), EB
    (Morris 1983) and PM (Paule & Mandel 1982, R's ``uniroot()``); k = 1 and EE give 0.
    """
    k = S.m
    df = k - 1
    if k == 1 or method == "EE":
        return 0.0, math.nan, True, None
    if method in ("DL", "HS"):
        if fe is None:
            fe = S.sums(0.0, 2)
        sw0 = fe[0][0]
        q = _ypy(fe[0])
        if method == "DL":
            return max(0.0, (q - df) / (sw0 - fe[1][0] / sw0)), math.nan, True, None
        return max(0.0, (q - k) / sw0), math.nan, True, None
    if method == "HE":
        return max(0.0, S.hedges()), math.nan, True, None
    if method == "SJ":
        rss, _ = S.unweighted()
        t0 = max(0.0, rss / k)
        return t0 * _ypy(S.sums(t0, 1)[0]) / df, t0, True, None
    if method in ("ML", "REML", "EB"):
        t, ok, reason = fisher_scoring_single(S, method, ctl)
        return t, math.nan, ok, reason
    t, ok, reason = paule_mandel_single(
        lambda t: _ypy(S.sums(t, 1)[0]) - k + 1, _ypy(S.sums(0.0, 1)[0]) - df, S.y[:k], ctl
    )
    return t, math.nan, ok, reason
