"""Cluster-robust inference for any fitted model: metafor's ``robust()``, with and without clubSandwich.

A model's standard errors are right only if its covariance is. The sandwich estimator replaces the
model's "meat" by the residuals' cross-products within each cluster (study), so that tests stay
valid when the within-study correlation is misspecified (Hedges, Tipton & Johnson 2010):

- CR1: V_R = n/(n - p) B [sum_j X_j'W_j e_j e_j'W_j X_j] B, t tests with n - p df (metafor's
  ``robust(fit, cluster)``);
- CR2: the bias-reduced linearisation of Bell & McCaffrey (2002) with the fitted covariance as the
  working model, Satterthwaite degrees of freedom per coefficient and the Hotelling's T² (HTZ) test
  of the moderators (Tipton 2015; Tipton & Pustejovsky 2015; clubSandwich's ``vcovCR(type = "CR2")``,
  ``coef_test`` and ``Wald_test``, as ``robust(fit, cluster, clubSandwich = TRUE)`` reports them).

W is block-diagonal by cluster, so every sum runs over clusters with batched s x s algebra; the
degrees of freedom, which pair every cluster with every other, reduce to p x p (and m p x m p)
sums: no n x n array over clusters is formed.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from scipy import special

from ..errors import InsufficientDataError
from ..estimators import alpha_from_level, moderator_test, wald_tail
from ..fit_result import CoefficientTests, FitResult, jsonable
from .blocks import Blocks, group_rows
from .fit import MultilevelFit

__all__ = ["RobustResult", "WorkingModel", "robust", "working_model_of_rma"]

#: Eigenvalues of the CR2 adjustment at or below this are treated as 0 (clubSandwich's rule).
EIGEN_FLOOR = 1e-12


@dataclasses.dataclass(frozen=True, eq=False)
class WorkingModel:
    """What robust inference reads from a fit: the data and fitted covariance, grouped by cluster.

    ``M`` and ``W`` are the fitted marginal covariance blocks and their inverses, ``X`` and ``e``
    the design and residual blocks, ``B`` = (X'WX)^-1, per size group of ``blocks``.
    """

    blocks: Blocks
    X: tuple[np.ndarray, ...]
    e: tuple[np.ndarray, ...]
    M: tuple[np.ndarray, ...]
    W: tuple[np.ndarray, ...]
    B: np.ndarray
    beta: np.ndarray
    coef_names: tuple[str, ...]
    level: float


def working_model_of_multilevel(fit: MultilevelFit) -> WorkingModel:
    comp, ev = fit.components, fit.evaluation
    e = tuple(y - X @ ev.beta for y, X in zip(comp.y, comp.X, strict=True))
    # built by keyword, one field a line, as every frozen result of the engine is: each name beside its value
    return WorkingModel(
        blocks=comp.blocks,
        X=comp.X,
        e=e,
        M=comp.marginal(ev.sigma2),
        W=ev.W,
        B=ev.B,
        beta=ev.beta,
        coef_names=fit.coef_names,
        level=fit.level,
    )


def working_model_of_rma(fit: FitResult, cluster: Sequence[object]) -> WorkingModel:
    """The working model of an ``rma`` fit (rows independent, M = diag(vi + tau²)) by ``cluster``."""
    blocks = group_rows(cluster)
    tau2 = 0.0 if not math.isfinite(fit.tau2) else fit.tau2
    m = fit.vi + tau2
    Xs, es, Ms, Ws = [], [], [], []
    resid = fit.yi - fit.X @ fit.beta
    for g in blocks.groups:
        eye = np.eye(g.size)
        mg = g.take(m)
        Xs.append(g.take(fit.X))
        es.append(g.take(resid))
        Ms.append(mg[:, :, None] * eye)
        Ws.append((1.0 / mg)[:, :, None] * eye)
    w = 1.0 / m
    B = np.linalg.inv(fit.X.T @ (w[:, None] * fit.X))
    # by keyword, as working_model_of_multilevel builds it: the same fields from another fit
    return WorkingModel(
        blocks=blocks,
        X=tuple(Xs),
        e=tuple(es),
        M=tuple(Ms),
        W=tuple(Ws),
        B=B,
        beta=np.asarray(fit.beta, dtype=float),
        coef_names=tuple(fit.coef_names),
        level=fit.level,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class RobustResult(CoefficientTests):
    """Cluster-robust tests of a model's coefficients.

    Attributes
    ----------
    type : {"CR1", "CR2"}
    coef_names : tuple of str
    beta, se, stat, pval, ci_lb, ci_ub : ndarray, shape (p,)
        t tests with ``dfs`` degrees of freedom.
    dfs : ndarray, shape (p,)
        n - p (CR1) or Satterthwaite (CR2), per coefficient.
    vb : ndarray, shape (p, p)
        The robust covariance of the coefficients.
    n_clusters : int
    QM, QMp : float
        Test of the moderators: F(m, n - p) (CR1) or HTZ (CR2); NaN without moderators.
    QMdf : tuple
    level : float
    na_reasons : dict of str to str
    """

    type: str
    dfs: np.ndarray
    vb: np.ndarray
    n_clusters: int
    QM: float
    QMp: float
    QMdf: tuple[int, float | None]
    level: float
    na_reasons: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": self.type,
            **self.coefficients(),
            "dfs": self.dfs,
            "n_clusters": self.n_clusters,
        }
        if len(self.coef_names) > 1:
            out.update(QM=self.QM, QMp=self.QMp, QMdf=list(self.QMdf))
        out.update(level=self.level, na_reasons=dict(self.na_reasons))
        return jsonable(out)


def robust(
    model: WorkingModel | MultilevelFit, type: Literal["CR1", "CR2"] = "CR2", level: float | None = None
) -> RobustResult:
    """Cluster-robust standard errors, t tests and the test of the moderators.

    Parameters
    ----------
    model : WorkingModel or MultilevelFit
        A multilevel fit (clustered by study), or :func:`working_model_of_rma` of an ``rma`` fit.
    type : {"CR1", "CR2"}
    level : float, optional
        Confidence level in percent (default: the model's).

    Notes
    -----
    metafor 3.8-1 ``robust()``; clubSandwich 0.5.8 ``vcovCR(type = "CR2")`` with the fitted
    covariance as the working model, ``coef_test(test = "Satterthwaite")`` and
    ``Wald_test(test = "HTZ")`` (Pustejovsky & Tipton 2018).
    """
    wm = working_model_of_multilevel(model) if isinstance(model, MultilevelFit) else model
    level = wm.level if level is None else float(level)
    n = wm.blocks.n_clusters
    p = wm.B.shape[0]
    if n - p < 1:
        raise InsufficientDataError(f"cluster-robust tests need more clusters ({n}) than coefficients ({p})")
    B = wm.B
    if type == "CR1":
        meat = np.zeros((p, p))
        for X, e, W in zip(wm.X, wm.e, wm.W, strict=True):
            s = np.einsum("nsp,nst,nt->np", X, W, e)
            meat += s.T @ s
        vb = n / (n - p) * B @ meat @ B
        dfs = np.full(p, float(n - p))
    else:
        vb, dfs, parts = _cr2(wm)
    vb = (vb + vb.T) / 2.0
    se = np.sqrt(np.diag(vb))
    stat, pval, ci_lb, ci_ub = wald_tail(wm.beta, se, alpha_from_level(level), dfs)
    na: dict[str, str] = {}
    m = p - 1
    qmdf: tuple[int, float | None]
    if m > 0:
        b2 = wm.beta[1:]
        q = float(b2 @ np.linalg.solve(vb[1:, 1:], b2))
        if type == "CR1":
            qm, qmp, qmdf = moderator_test(q, m, float(n - p))
        else:
            # HTZ: an F test on q scaled by its own degrees of freedom, not on q / m
            nu = _htz_df(parts, m)
            den = nu - m + 1.0
            qm, qmdf = den / (nu * m) * q, (m, den)
            qmp = float(special.fdtrc(m, den, qm)) if den > 0 else math.nan
    else:
        qm = qmp = math.nan
        qmdf = (0, None)
        na["QM"] = "intercept-only model: no moderators"
    for arr in (se, stat, pval, ci_lb, ci_ub, dfs, vb):
        arr.setflags(write=False)
    # built by keyword, one field a line, as every frozen result of the engine is: each name beside its value
    return RobustResult(
        type=type,
        coef_names=wm.coef_names,
        beta=wm.beta,
        se=se,
        stat=stat,
        pval=pval,
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        dfs=dfs,
        vb=vb,
        n_clusters=n,
        QM=qm,
        QMp=qmp,
        QMdf=qmdf,
        level=level,
        na_reasons=na,
    )


@dataclasses.dataclass(frozen=True)
class _CR2Parts:
    """Per size group: T_j = B X_j'W_j A_j (n, p, s), L_j (n, s, s) with L_j L_j' = M_j, and X_j;
    with L_B (L_B L_B' = B). Enough to write g_j(c) = c T_j L_j and h_j(c) = c T_j X_j L_B."""

    T: tuple[np.ndarray, ...]
    L: tuple[np.ndarray, ...]
    X: tuple[np.ndarray, ...]
    LB: np.ndarray


def _inverse_sqrt(Q: np.ndarray) -> np.ndarray:
    """Symmetric inverse square root of stacked symmetric blocks; eigenvalues <= EIGEN_FLOOR -> 0."""
    lam, vec = np.linalg.eigh((Q + np.swapaxes(Q, -1, -2)) / 2.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        inv = np.where(lam > EIGEN_FLOOR, 1.0 / np.sqrt(np.where(lam > EIGEN_FLOOR, lam, 1.0)), 0.0)
    return np.einsum("nij,nj,nkj->nik", vec, inv, vec)


def _cr2(wm: WorkingModel) -> tuple[np.ndarray, np.ndarray, _CR2Parts]:
    B = wm.B
    p = B.shape[0]
    meat = np.zeros((p, p))
    Ts, Ls = [], []
    for X, e, M, W in zip(wm.X, wm.e, wm.M, wm.W, strict=True):
        L = np.linalg.cholesky(M)  # U = L'
        XBX = np.einsum("nsp,pq,ntq->nst", X, B, X)
        Q = np.einsum("nji,njk,nkl->nil", L, M - XBX, L)  # U (M - X B X') U'
        A = np.einsum("nij,njk,nlk->nil", L, _inverse_sqrt(Q), L)  # U' Q^-1/2 U
        WA = W @ A
        s = np.einsum("nsp,nst,nt->np", X, WA, e)
        meat += s.T @ s
        Ts.append(np.einsum("pq,nsq,nst->npt", B, X, WA))
        Ls.append(L)
    vb = B @ meat @ B
    LB = np.linalg.cholesky((B + B.T) / 2.0)
    parts = _CR2Parts(T=tuple(Ts), L=tuple(Ls), X=wm.X, LB=LB)
    # Satterthwaite df of each coefficient c = e_i: (sum_j P_jj)^2 / sum_jk P_jk^2 with
    # P_jk = [j = k] g_j.g_j - h_j.h_k, expanded so that the double sum over clusters is a p x p one
    omega = np.zeros(p)
    sum_a2 = np.zeros(p)
    sum_ab = np.zeros(p)
    S = np.zeros((p, p, p))  # per coefficient i: sum_j h_j' h_j
    for T, L, X in zip(parts.T, parts.L, parts.X, strict=True):
        G = T @ L  # (n, p, s): row i is g_j(e_i)
        H = np.einsum("nps,nsq,qr->npr", T, X, LB)  # row i is h_j(e_i)
        a = np.einsum("nps,nps->np", G, G)
        b = np.einsum("npr,npr->np", H, H)
        omega += (a - b).sum(axis=0)
        sum_a2 += (a * a).sum(axis=0)
        sum_ab += (a * b).sum(axis=0)
        S += np.einsum("npr,npq->prq", H, H)
    denom = sum_a2 - 2.0 * sum_ab + np.einsum("prq,prq->p", S, S)
    dfs = omega**2 / denom
    return vb, dfs, parts


def _htz_df(parts: _CR2Parts, m: int) -> float:
    """The HTZ test's degrees of freedom nu for the m non-intercept coefficients (Tipton &
    Pustejovsky 2015): nu = m(m + 1) / sum_jk [tr(B^jk B^jk) + (tr B^jk)^2], B^jk the P_jk matrix
    of the Omega^(-1/2)-transformed contrasts."""
    p = parts.LB.shape[0]
    C = np.eye(p)[1:]
    # Omega_st = sum_j P_jj(c_s, c_t)
    omega = np.zeros((m, m))
    for T, L, X in zip(parts.T, parts.L, parts.X, strict=True):
        G = np.einsum("mp,nps,nst->nmt", C, T, L)
        H = np.einsum("mp,nps,nsq,qr->nmr", C, T, X, parts.LB)
        omega += np.einsum("nst,nut->su", G, G) - np.einsum("nsr,nur->su", H, H)
    lam, vec = np.linalg.eigh((omega + omega.T) / 2.0)
    Ct = (vec / np.sqrt(lam)) @ vec.T @ C  # Omega^-1/2 C
    tr_bb = 0.0
    tr_b2 = 0.0
    Tsum = np.zeros((m, p, m, p))  # sum_j H_j[s, a] H_j[t, b]
    for T, L, X in zip(parts.T, parts.L, parts.X, strict=True):
        G = np.einsum("mp,nps,nst->nmt", Ct, T, L)
        H = np.einsum("mp,nps,nsq,qr->nmr", Ct, T, X, parts.LB)
        Gam = np.einsum("nst,nut->nsu", G, G)
        HH = np.einsum("nsr,nur->nsu", H, H)
        tr_bb += float(np.einsum("nst,nts->", Gam, Gam)) - 2.0 * float(np.einsum("nst,nts->", Gam, HH))
        tr_g = np.einsum("nss->n", Gam)
        tr_h = np.einsum("nss->n", HH)
        tr_b2 += float((tr_g * tr_g).sum()) - 2.0 * float((tr_g * tr_h).sum())
        Tsum += np.einsum("nsa,ntb->satb", H, H)
    tr_bb += float(np.einsum("satb,tasb->", Tsum, Tsum))
    tr_b2 += float((Tsum * Tsum).sum())
    return m * (m + 1.0) / (tr_bb + tr_b2)
