"""The (restricted) log-likelihood of a multilevel model and its derivatives, block by block.

For the marginal covariance M(sigma2) = V + sum_a sigma2_a D_a (block-diagonal by study) and the
design X, with W = M^-1 and P = W - W X (X'WX)^-1 X'W, the quantities of Fisher scoring and
Newton's method are (Harville 1977; Searle, Casella & McCulloch 1992, ch. 6):

- ML log-likelihood (beta profiled out): -k/2 log 2pi - 1/2 log|M| - 1/2 y'Py;
  REML: -(k-p)/2 log 2pi + 1/2 log|X'X| - 1/2 log|M| - 1/2 log|X'WX| - 1/2 y'Py (metafor's
  ``.ll.rma.mv``, which keeps the log|X'X| term);
- score: -1/2 tr(W D_a) + 1/2 y'P D_a P y (ML), tr(P D_a) in place of tr(W D_a) (REML);
- expected information: 1/2 tr(W D_a W D_b) (ML), 1/2 tr(P D_a P D_b) (REML);
- observed information (minus the Hessian): y'P D_a P D_b P y - 1/2 tr(P D_a P D_b), with W for
  P in the trace under ML.

W r = P y holds for the ML and the REML estimate of beta alike, so one set of block products
serves both. Every trace and quadratic form is a sum over the blocks of
:mod:`~workers.metaanalysis.multilevel.blocks`; the p x p sums are the only global quantities.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .blocks import Blocks

__all__ = ["Components", "Evaluation", "evaluate"]

_LOG_2PI = math.log(2.0 * math.pi)


@dataclasses.dataclass(frozen=True, eq=False)
class Components:
    """A model's data in block form: what every evaluation of the likelihood reads.

    Attributes
    ----------
    blocks : Blocks
    y : tuple of ndarray, (n, s) per size group
    X : tuple of ndarray, (n, s, p) per size group
    V : tuple of ndarray, (n, s, s) per size group: the sampling covariance
    D : tuple of tuple of ndarray
        Per size group, one (n, s, s) design block per variance component: D_a[i, j] = 1 when
        rows i and j share the component's level (the study; the study and the estimate).
    k, p : int
    logdet_xtx : float
        log|X'X| (REML's constant).
    """

    blocks: Blocks
    y: tuple[np.ndarray, ...]
    X: tuple[np.ndarray, ...]
    V: tuple[np.ndarray, ...]
    D: tuple[tuple[np.ndarray, ...], ...]
    k: int
    p: int
    logdet_xtx: float

    @property
    def n_components(self) -> int:
        return len(self.D[0]) if self.D else 0

    def marginal(self, sigma2: np.ndarray) -> tuple[np.ndarray, ...]:
        """M = V + sum sigma2_a D_a, per size group."""
        out = []
        for V, D in zip(self.V, self.D, strict=True):
            M = V.copy()
            for s, Da in zip(sigma2, D, strict=True):
                M += s * Da
            out.append(M)
        return tuple(out)


@dataclasses.dataclass(frozen=True, eq=False)
class Evaluation:
    """The model at one sigma2: estimates, log-likelihood and (optionally) derivatives.

    ``W`` are the inverse marginal covariance blocks, ``B`` = (X'WX)^-1, ``Py`` = W (y - X beta)
    per size group.
    """

    sigma2: np.ndarray
    W: tuple[np.ndarray, ...]
    B: np.ndarray
    beta: np.ndarray
    Py: tuple[np.ndarray, ...]
    ypy: float
    ll: float
    score: np.ndarray | None
    expected: np.ndarray | None
    observed: np.ndarray | None


def _inverse_and_logdet(M: np.ndarray) -> tuple[np.ndarray, float]:
    """Inverse and log-determinant of stacked positive definite blocks (Cholesky, one LAPACK call)."""
    L = np.linalg.cholesky(M)
    s = M.shape[-1]
    Linv = np.linalg.solve(L, np.broadcast_to(np.eye(s), M.shape))
    W = np.einsum("nji,njk->nik", Linv, Linv)
    logdet = 2.0 * float(np.log(np.einsum("nii->ni", L)).sum())
    return W, logdet


def evaluate(comp: Components, sigma2: np.ndarray, method: str, *, derivatives: int = 0) -> Evaluation:
    """Evaluate the model at ``sigma2``.

    Parameters
    ----------
    comp : Components
    sigma2 : ndarray
        One variance per component (>= 0).
    method : {"ML", "REML"}
    derivatives : {0, 1, 2}
        0: estimates and log-likelihood; 1: also the score and the expected information; 2: also
        the observed information (negative Hessian).

    Raises
    ------
    numpy.linalg.LinAlgError
        M is not positive definite (a zero sampling variance with sigma2 = 0) or X'WX is singular.
    """
    reml = method == "REML"
    W: list[np.ndarray] = []
    WX: list[np.ndarray] = []
    logdet = 0.0
    p = comp.p
    xtwx = np.zeros((p, p))
    xtwy = np.zeros(p)
    for M, X, y in zip(comp.marginal(sigma2), comp.X, comp.y, strict=True):
        Wg, ld = _inverse_and_logdet(M)
        WXg = Wg @ X
        W.append(Wg)
        WX.append(WXg)
        logdet += ld
        xtwx += np.einsum("nsp,nsq->pq", X, WXg)
        xtwy += np.einsum("nsp,ns->p", WXg, y)
    xtwx = (xtwx + xtwx.T) / 2.0
    chol = np.linalg.cholesky(xtwx)
    B = np.linalg.inv(xtwx)
    beta = B @ xtwy
    Py = tuple(np.einsum("nst,nt->ns", Wg, y - X @ beta) for Wg, X, y in zip(W, comp.X, comp.y, strict=True))
    ypy = float(sum(np.einsum("ns,ns->", r, y) for r, y in zip(Py, comp.y, strict=True)))
    if reml:
        logdet_xtwx = 2.0 * float(np.log(np.diag(chol)).sum())
        ll = -0.5 * ((comp.k - p) * _LOG_2PI - comp.logdet_xtx + logdet + logdet_xtwx + ypy)
    else:
        ll = -0.5 * (comp.k * _LOG_2PI + logdet + ypy)
    score = expected = observed = None
    if derivatives:
        score, expected, observed = _derivatives(comp, W, WX, B, Py, reml, derivatives == 2)
    # built by keyword, one field a line, as every frozen result of the engine is: each name beside its value
    return Evaluation(
        sigma2=np.asarray(sigma2, dtype=float),
        W=tuple(W),
        B=B,
        beta=beta,
        Py=Py,
        ypy=ypy,
        ll=ll,
        score=score,
        expected=expected,
        observed=observed,
    )


def _derivatives(
    comp: Components,
    W: list[np.ndarray],
    WX: list[np.ndarray],
    B: np.ndarray,
    Py: tuple[np.ndarray, ...],
    reml: bool,
    observed: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    m = comp.n_components
    p = comp.p
    tr_wd = np.zeros(m)
    quad = np.zeros(m)
    tr_wdwd = np.zeros((m, m))
    F = np.zeros((m, p, p))  # X'W D_a W X
    G = np.zeros((m, m, p, p))  # X'W D_a W D_b W X
    u: list[list[np.ndarray]] = []  # D_a P y per group
    for Wg, WXg, Pyg, D in zip(W, WX, Py, comp.D, strict=True):
        WD = [Wg @ Da for Da in D]
        ug = [np.einsum("nst,nt->ns", Da, Pyg) for Da in D]
        u.append(ug)
        for a in range(m):
            tr_wd[a] += float(np.einsum("nii->", WD[a]))
            quad[a] += float(np.einsum("ns,ns->", Pyg, ug[a]))
            F[a] += np.einsum("nsp,nst,ntq->pq", WXg, D[a], WXg)
            for b in range(a, m):
                tr_wdwd[a, b] += float(np.einsum("nij,nji->", WD[a], WD[b]))
                if reml:
                    G[a, b] += np.einsum("nsp,nst,ntq->pq", WXg, D[a] @ WD[b], WXg)
    for a in range(m):
        for b in range(a):
            tr_wdwd[a, b] = tr_wdwd[b, a]
            G[a, b] = G[b, a].T
    if reml:
        tr_pd = tr_wd - np.einsum("pq,aqp->a", B, F)
        BF = np.einsum("pq,aqr->apr", B, F)
        expected = 0.5 * (tr_wdwd - 2.0 * np.einsum("pq,abqp->ab", B, G) + np.einsum("apq,bqp->ab", BF, BF))
        score = -0.5 * tr_pd + 0.5 * quad
    else:
        expected = 0.5 * tr_wdwd
        score = -0.5 * tr_wd + 0.5 * quad
    expected = (expected + expected.T) / 2.0
    if not observed:
        return score, expected, None
    # y'P D_a P D_b P y = (D_a P y)' P (D_b P y); P applied block-wise, then the p-vector correction
    t = np.zeros((m, p))
    for WXg, ug in zip(WX, u, strict=True):
        for a in range(m):
            t[a] += np.einsum("nsp,ns->p", WXg, ug[a])
    cross = np.zeros((m, m))
    for Wg, ug in zip(W, u, strict=True):
        for a in range(m):
            for b in range(m):
                cross[a, b] += float(np.einsum("ns,nst,nt->", ug[a], Wg, ug[b]))
    cross -= t @ B @ t.T
    # Hessian = 1/2 tr(P D_a P D_b) - y'P D_a P D_b P y (the first term is the expected information)
    return score, expected, cross - expected
