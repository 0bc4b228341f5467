"""Three-level meta-analysis: metafor's ``rma.mv(yi, V, mods, random = ~ 1 | study/es_id)``.

Each row is one estimate; estimates are nested in studies. The marginal covariance of the
estimates is M = V + sigma2_1 D_1 + sigma2_2 D_2: V the sampling covariance (diagonal, or
correlated within a study for the correlated-and-hierarchical-effects model), D_1 joins the rows
of a study (between-study variance sigma2_1) and D_2 the rows of one estimate (within-study
variance sigma2_2). The variance components maximise the ML or REML likelihood (Konstantopoulos
2011; Van den Noortgate et al. 2013; Cheung 2014); the fixed effects are then the generalised
least-squares estimate. Iterated to the exact optimum: metafor's default optimiser stops up to
2e-6 (relative) short of it, the engine's Newton steps do not.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from ..errors import ConvergenceError, InsufficientDataError, SingularModelError
from ..estimators import alpha_from_level, moderator_test, wald_tail
from ..fit_result import CoefficientTests, jsonable
from ..spec import check_multilevel, check_rho
from .blocks import Blocks, group_rows, sampling_blocks
from .likelihood import Components, Evaluation, evaluate

__all__ = ["MultilevelFit", "build_components", "maximise", "rma_mv"]

#: Newton's method stops when no variance component moves by more than this (relative to the
#: component, or absolutely below 1e-14): the reference files are exact optima.
STEP_TOLERANCE = 1e-12
MAX_ITERATIONS = 500


@dataclasses.dataclass(frozen=True, eq=False)
class MultilevelFit(CoefficientTests):
    """A fitted three-level model (``rma.mv``).

    Attributes
    ----------
    method, test : str
        ``ML`` or ``REML``; ``z`` or ``t`` (t with k - p df, metafor's ``dfs = "residual"``).
    level : float
    k, p : int
        Estimates in the model and coefficients.
    coef_names : tuple of str
    beta, se, stat, pval, ci_lb, ci_ub : ndarray, shape (p,)
    vb : ndarray, shape (p, p)
    sigma2 : ndarray, shape (2,)
        Between-study and within-study (between-estimate) variance.
    s_nlevels : tuple of int
        Studies, and (study, estimate) pairs.
    QE, QEp : float
        Test of residual heterogeneity (V-weighted, k - p df).
    QM, QMp : float
        Test of the moderators (NaN without moderators); ``QMdf`` its degrees of freedom.
    loglik, deviance, AIC, BIC, AICc : float
        metafor's ``fitstats()``.
    I2 : ndarray
        Multilevel I² per component (percent), ``I2_total`` their sum: metafor's FAQ definition
        with the typical sampling variance (k - p)/tr(P), P = W - WX(X'WX)^-1X'W, W = V^-1.
    rho : float
        Assumed correlation of the sampling errors within a study (0: independent).
    iterations : int
    components : Components
        The data in block form (for robust inference and profiling).
    evaluation : Evaluation
        The model at the estimate (inverse covariance blocks, residuals).
    na_reasons : dict of str to str
    notes : tuple of str
    """

    # rma.mv's output under metafor's names, as FitResult lists rma.uni's: two models' fields, each class its own
    method: str
    test: str
    level: float
    k: int
    p: int
    vb: np.ndarray
    sigma2: np.ndarray
    s_nlevels: tuple[int, int]
    QE: float
    QEp: float
    QM: float
    QMp: float
    QMdf: tuple[int, float | None]
    loglik: float
    deviance: float
    AIC: float
    BIC: float
    AICc: float
    I2: np.ndarray
    I2_total: float
    rho: float
    iterations: int
    components: Components
    evaluation: Evaluation
    na_reasons: dict[str, str]
    notes: tuple[str, ...]

    @property
    def dfs(self) -> float:
        """Degrees of freedom of the t tests (NaN under z)."""
        return float(self.k - self.p) if self.test == "t" else math.nan

    @property
    def blocks(self) -> Blocks:
        return self.components.blocks

    @property
    def design(self) -> np.ndarray:
        """The design matrix, rows grouped by study (for summaries over rows, not row order)."""
        return np.concatenate([X.reshape(-1, self.p) for X in self.components.X])

    def to_dict(self) -> dict[str, Any]:
        """The fields of the reference ``multilevel_fit`` block (plus options and notes)."""
        out: dict[str, Any] = {
            "k": self.k,
            "p": self.p,
            **self.coefficients(),
            "sigma2": self.sigma2,
            "s_nlevels": list(self.s_nlevels),
            "QE": self.QE,
            "QEp": self.QEp,
            "logLik": self.loglik,
            "deviance": self.deviance,
            "AIC": self.AIC,
            "BIC": self.BIC,
            "AICc": self.AICc,
        }
        if self.p > 1:
            out.update(QM=self.QM, QMp=self.QMp, QMdf=list(self.QMdf))
        if self.test == "t":
            out["dfs"] = [self.dfs] * self.p
        out.update(I2=self.I2, I2_total=self.I2_total)
        # the options the fit ran with, one keyword each (as the engine's other blocks report them)
        out.update(
            method=self.method,
            test=self.test,
            level=self.level,
            rho=self.rho,
            na_reasons=dict(self.na_reasons),
            notes=list(self.notes),
        )
        return jsonable(out)


def build_components(
    yi: np.ndarray,
    vi: np.ndarray,
    X: np.ndarray,
    study: Sequence[object],
    es_id: Sequence[object] | None = None,
    rho: float = 0.0,
) -> Components:
    """The model's data in block form (see :class:`~.likelihood.Components`).

    ``es_id`` identifies an estimate within its study (None: every row is its own estimate).
    """
    blocks = group_rows(study)
    k, p = X.shape
    es = np.arange(k) if es_id is None else np.array([str(e) for e in es_id], dtype=object)
    if es_id is not None:
        # estimates are numbered within their study: (study, es_id) pairs are the inner level
        _, es = np.unique(
            np.array([f"{c}\x00{e}" for c, e in zip(blocks.cluster, es, strict=True)]), return_inverse=True
        )
    ys, Xs, Vs, Ds = [], [], [], []
    for g in blocks.groups:
        ys.append(g.take(yi))
        Xs.append(g.take(X))
        Vs.append(sampling_blocks(vi, g, rho))
        e = g.take(es)
        D1 = np.ones((g.rows.shape[0], g.size, g.size))
        D2 = (e[:, :, None] == e[:, None, :]).astype(float)
        Ds.append((D1, D2))
    _sign, logdet_xtx = np.linalg.slogdet(X.T @ X)
    # built by keyword, one field a line, as every frozen result of the engine is: each name beside its value
    return Components(
        blocks=blocks,
        y=tuple(ys),
        X=tuple(Xs),
        V=tuple(Vs),
        D=tuple(Ds),
        k=k,
        p=p,
        logdet_xtx=float(logdet_xtx),
    )


def _start(comp: Components) -> np.ndarray:
    """Starting values: a method-of-moments total heterogeneity split evenly over the components.

    Any start converges to the same optimum (the likelihood has one maximum in these models but
    for degenerate data); this one is close, so that few Newton steps are needed.
    """
    zero = np.zeros(comp.n_components)
    ev = evaluate(comp, zero, "ML")
    k, p = comp.k, comp.p
    vbar = float(np.mean(np.concatenate([np.einsum("nii->ni", V).ravel() for V in comp.V])))
    total = max((ev.ypy - (k - p)) / max(k - p, 1) * vbar, 0.1 * vbar)
    return np.full(comp.n_components, total / comp.n_components)


def maximise(
    comp: Components,
    method: str,
    start: np.ndarray | None = None,
    fixed: dict[int, float] | None = None,
) -> tuple[Evaluation, int]:
    """Maximise the (restricted) likelihood over the variance components >= 0.

    Newton's method with the observed information where it is positive definite, Fisher scoring
    (the expected information) elsewhere, step halving when the likelihood would fall, and
    components held at 0 while their score points below 0 (the boundary).

    Parameters
    ----------
    comp : Components
    method : {"ML", "REML"}
    start : ndarray, optional
    fixed : dict, optional
        Components held at a given value (profile likelihood).

    Returns
    -------
    Evaluation, int
        The model at the optimum and the number of iterations.
    """
    fixed = fixed or {}
    theta = (_start(comp) if start is None else np.array(start, dtype=float)).copy()
    free = np.ones(theta.size, dtype=bool)
    for j, value in fixed.items():
        theta[j] = value
        free[j] = False
    theta = np.maximum(theta, 0.0)
    ev = evaluate(comp, theta, method, derivatives=2)
    for iteration in range(1, MAX_ITERATIONS + 1):
        assert ev.score is not None and ev.expected is not None and ev.observed is not None
        active = free & ~((theta <= 0.0) & (ev.score <= 0.0))
        if not active.any():
            return ev, iteration
        sub = np.ix_(active, active)
        info = ev.observed[sub]
        if np.any(np.linalg.eigvalsh(info) <= 0):
            info = ev.expected[sub]
        try:
            step = np.linalg.solve(info, ev.score[active])
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(info, ev.score[active], rcond=None)[0]
        for _ in range(60):
            new = theta.copy()
            new[active] = np.maximum(theta[active] + step, 0.0)
            try:
                cand = evaluate(comp, new, method, derivatives=2)
            except np.linalg.LinAlgError:
                cand = None
            if cand is not None and cand.ll >= ev.ll - 1e-12 * max(1.0, abs(ev.ll)):
                break
            step = step / 2.0
        else:
            return ev, iteration
        assert cand is not None
        moved = np.abs(new - theta)
        theta, ev = new, cand
        if np.all(moved <= STEP_TOLERANCE * np.maximum(theta, 1e-2) + 1e-14):
            return ev, iteration
    raise ConvergenceError(f"the variance components did not converge in {MAX_ITERATIONS} iterations")


def rma_mv(
    yi: np.ndarray,
    vi: np.ndarray,
    study: Sequence[object],
    es_id: Sequence[object] | None = None,
    *,
    X: np.ndarray | None = None,
    coef_names: Sequence[str] | None = None,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
    rho: float = 0.0,
) -> MultilevelFit:
    """Fit the three-level model ``rma.mv(yi, V, mods, random = ~ 1 | study/es_id)``.

    Parameters
    ----------
    yi, vi : ndarray, shape (k,)
        Estimates and sampling variances (every row complete).
    study : sequence
        The study of each row (the outer level and the cluster).
    es_id : sequence, optional
        The estimate within its study (default: each row its own).
    X : ndarray, shape (k, p), optional
        Design matrix with the intercept column (default: intercept only).
    coef_names : sequence of str, optional
    method : {"REML", "ML"}
    test : {"z", "t"}
    level : float
        Confidence level in percent.
    rho : float
        Correlation of two sampling errors of one study: V = ``vcalc(vi, cluster = study,
        obs = es_id, rho)`` when not 0 (the correlated-and-hierarchical-effects model of
        Pustejovsky & Tipton 2022).

    Notes
    -----
    metafor 3.8-1 ``rma.mv()``, ``fitstats()``; multilevel I² as in the metafor FAQ ("I^2 for
    multilevel and multivariate models").
    """
    check_multilevel(method=method, test=test)
    yi = np.asarray(yi, dtype=float)
    vi = np.asarray(vi, dtype=float)
    k = yi.size
    if X is None:
        X = np.ones((k, 1))
        coef_names = ("intrcpt",)
    X = np.asarray(X, dtype=float)
    p = X.shape[1]
    names = tuple(coef_names) if coef_names is not None else tuple(f"b{i}" for i in range(p))
    if k - p < 1:
        raise InsufficientDataError(
            f"{k} estimate(s) cannot fit a model with {p} coefficient(s) and two variance components"
        )
    if np.linalg.matrix_rank(X) < p:
        raise SingularModelError("the moderators are collinear: the model cannot be fitted")
    check_rho(rho)
    comp = build_components(yi, vi, X, study, es_id, rho)
    notes: list[str] = []
    n_studies = comp.blocks.n_clusters
    n_estimates = _estimate_levels(comp)
    if n_studies == n_estimates:
        notes.append(
            "every study has one estimate: the two variance components cannot be told apart, "
            "only their sum is estimated"
        )
    try:
        ev, iterations = maximise(comp, method)
    except np.linalg.LinAlgError as exc:
        raise SingularModelError(
            "the model's covariance matrix is singular (a sampling variance of 0?)"
        ) from exc
    return _result(comp, ev, iterations, method, test, level, rho, names, n_estimates, notes)


def _estimate_levels(comp: Components) -> int:
    """Number of distinct (study, estimate) pairs: per study, the distinct rows of D_2."""
    total = 0
    for D in comp.D:
        D2 = D[1]
        # rows of a study with the same estimate share a row of D_2; count the first of each
        s = D2.shape[1]
        first = np.ones(D2.shape[:2], dtype=bool)
        for i in range(1, s):
            first[:, i] = ~np.any(D2[:, i, :i] > 0, axis=1)
        total += int(first.sum())
    return total


def _result(
    comp: Components,
    ev: Evaluation,
    iterations: int,
    method: str,
    test: str,
    level: float,
    rho: float,
    names: tuple[str, ...],
    n_estimates: int,
    notes: list[str],
) -> MultilevelFit:
    k, p = comp.k, comp.p
    vb = ev.B
    se = np.sqrt(np.diag(vb))
    ddf = float(k - p) if test == "t" else math.nan
    stat, pval, ci_lb, ci_ub = wald_tail(ev.beta, se, alpha_from_level(level), ddf)
    na: dict[str, str] = {}
    # QE: residual heterogeneity with the sampling covariance alone
    qe = evaluate(comp, np.zeros(comp.n_components), "ML").ypy  # V-weighted residuals
    qep = float(special.chdtrc(k - p, qe))
    m = p - 1
    qmdf: tuple[int, float | None]
    if m > 0:
        b2 = ev.beta[1:]
        q = float(b2 @ np.linalg.solve(vb[1:, 1:], b2))
        qm, qmp, qmdf = moderator_test(q, m, ddf if test == "t" else None)
    else:
        qm = qmp = math.nan
        qmdf = (0, None)
        na["QM"] = "intercept-only model: no moderators"
    parms = p + comp.n_components
    ll = ev.ll
    if method == "REML":
        deviance = -2.0 * ll
        n_eff = k - p
    else:
        logdet_v = sum(float(np.linalg.slogdet(V)[1].sum()) for V in comp.V)
        ll_sat = -0.5 * (k * math.log(2 * math.pi) + logdet_v)
        deviance = -2.0 * (ll - ll_sat)
        n_eff = k
    aic = -2.0 * ll + 2.0 * parms
    bic = -2.0 * ll + parms * math.log(n_eff)
    big_n = max(n_eff, parms + 2)
    aicc = -2.0 * ll + 2.0 * parms * big_n / (big_n - parms - 1)
    sigma2 = ev.sigma2.copy()
    # I² with the typical sampling variance (k - p)/tr(P), P from the sampling covariance alone
    # (the metafor FAQ's "I^2 for multilevel and multivariate models", W = V^-1, so that it also
    # holds for sampling errors correlated within a study)
    v_only = evaluate(comp, np.zeros(comp.n_components), "ML")
    tr_w = sum(float(np.einsum("nii->", W)) for W in v_only.W)
    xtw2x = sum(np.einsum("nsp,nsq->pq", W @ X, W @ X) for W, X in zip(v_only.W, comp.X, strict=True))
    tr_p = tr_w - float(np.trace(v_only.B @ xtw2x))
    typical = (k - p) / tr_p
    total = float(sigma2.sum())
    i2 = 100.0 * sigma2 / (total + typical)
    i2_total = 100.0 * total / (total + typical)
    for arr in (ev.beta, se, stat, pval, ci_lb, ci_ub, vb, sigma2):
        arr.setflags(write=False)
    # built by keyword, one field a line, as every frozen result of the engine is: each name beside its value
    return MultilevelFit(
        method=method,
        test=test,
        level=float(level),
        k=k,
        p=p,
        coef_names=names,
        beta=ev.beta,
        se=se,
        stat=stat,
        pval=pval,
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        vb=vb,
        sigma2=sigma2,
        s_nlevels=(comp.blocks.n_clusters, n_estimates),
        QE=float(qe),
        QEp=qep,
        QM=qm,
        QMp=qmp,
        QMdf=qmdf,
        loglik=ll,
        deviance=deviance,
        AIC=aic,
        BIC=bic,
        AICc=aicc,
        I2=i2,
        I2_total=i2_total,
        rho=float(rho),
        iterations=iterations,
        components=comp,
        evaluation=ev,
        na_reasons=na,
        notes=tuple(notes),
    )
