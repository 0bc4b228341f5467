"""One model's fit: tau², then the coefficients, their Wald inference and the heterogeneity
statistics, as metafor 3.8-1 ``rma.uni()`` computes them before assembling its output."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import special

from .control import DEFAULT_CONTROL, Control
from .control import EPS as _EPS
from .inference import alpha_from_level, i2_h2, wald_tail
from .paule_mandel import paule_mandel_single
from .single_tau2 import InterceptOnlySums, RegressionSums, _ypy, fisher_scoring_single, tau2_intercept_only
from .subsets import Problem, Sums, _inv, _tr


@dataclasses.dataclass(frozen=True, kw_only=True)
class SingleFit:
    """Results of one model (what ``rma.uni`` computes before assembling its output).

    ``se_tau2`` is NaN for the equal-effects model and k = 1; ``ddf`` is NaN under the z test; ``vb`` is scaled by ``s2w`` under Knapp-Hartung.
    """

    tau2: float
    tau2_0: float
    se_tau2: float
    beta: np.ndarray
    vb: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    QE: float
    QEp: float
    I2: float
    H2: float
    vt: float
    s2w: float
    ddf: float
    ok: bool = True
    reason: str | None = None


def _failed_fit(p: int, tau2_0: float, qe: float, reason: str | None) -> SingleFit:
    """A fit whose tau² iteration failed: every estimate NaN, with the reason kept."""
    vectors: dict[str, Any] = dict.fromkeys(
        ("beta", "se", "zval", "pval", "ci_lb", "ci_ub"), np.full(p, np.nan)
    )
    scalars: dict[str, Any] = dict.fromkeys(
        ("tau2", "se_tau2", "QEp", "I2", "H2", "vt", "s2w", "ddf"), math.nan
    )
    return SingleFit(
        **vectors, **scalars, vb=np.full((p, p), np.nan), tau2_0=tau2_0, QE=qe, ok=False, reason=reason
    )


def _assemble(
    *,
    beta: np.ndarray,
    vb: np.ndarray,
    rss: float,
    k: int,
    method: str,
    test: str,
    level: float,
    qe: float,
    trp0: float,
    tau2: float,
    tau2_0: float,
    se_tau2: float,
) -> SingleFit:
    """Knapp-Hartung scaling, the Wald tail and the heterogeneity statistics of one fit.

    ``vb`` is the unscaled covariance (X'WX)^-1 on the original scale; ``rss`` the weighted
    residual sum of squares at tau²; ``trp0`` tr(P) with the equal-effects weights.
    """
    p = beta.size
    df = k - p
    s2w = 1.0
    if test == "knha":
        s2w = 0.0 if rss <= _EPS else rss / df
        vb = s2w * vb
    se = np.sqrt(np.diag(vb))
    ddf = float(df) if test in ("knha", "t") else math.nan
    zval, pval, ci_lb, ci_ub = wald_tail(beta, se, alpha_from_level(level), ddf)
    if k > p:
        qep = float(special.chdtrc(df, qe))
        vt = df / trp0
        i2, h2 = (float(x) for x in i2_h2(qe, df, tau2, vt, method == "EE"))
    else:
        qe, qep, i2, h2, vt = 0.0, 1.0, 0.0, 1.0, 0.0
    # Written out field by field, as fit_family builds FamilyFit: the two results carry the same
    # names on purpose (one model's scalars, a family's arrays), and a keyword list is the
    # clearest way to build a frozen dataclass.
    return SingleFit(
        tau2=tau2,
        tau2_0=tau2_0,
        se_tau2=se_tau2,
        beta=beta,
        vb=vb,
        se=se,
        zval=zval,
        pval=pval,
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        QE=qe,
        QEp=qep,
        I2=i2,
        H2=h2,
        vt=vt,
        s2w=s2w,
        ddf=ddf,
    )


def fit_intercept_only(
    y: np.ndarray, v: np.ndarray, method: str, test: str, level: float, ctl: Control = DEFAULT_CONTROL
) -> SingleFit:
    """metafor's ``rma.uni()`` for an intercept-only model, with scalar arithmetic on O(k) sums.

    Parameters
    ----------
    y, v : ndarray
        Outcomes and sampling variances.
    method, test : str
        As :func:`workers.metaanalysis.rma.rma`.
    level : float
        Confidence level in percent.
    ctl : Control

    Returns
    -------
    SingleFit

    Notes
    -----
    metafor 3.8-1 ``rma.uni()`` (Viechtbauer 2010): tau² by :func:`~.single_tau2.tau2_intercept_only`
    (HE start, the Fisher scoring of Viechtbauer 2005 with step halving and the tau² = 0
    likelihood check for ML/REML, ``uniroot()`` for Paule & Mandel 1982; the other estimators'
    papers are listed there), its standard error by :func:`se_tau2`, then the Wald tail and the
    heterogeneity statistics of :func:`_assemble`.
    """
    k = y.size
    S = InterceptOnlySums(y, v)
    fe = S.sums(0.0, 3)  # equal-effects weights 1/v
    sw0 = fe[0][0]
    qe = max(0.0, _ypy(fe[0]))
    tau2, tau2_0, ok, reason = tau2_intercept_only(S, method, ctl, fe)
    if not ok:
        return _failed_fit(1, tau2_0, qe, reason)
    s = S.sums(tau2, 3)
    sw = s[0][0]
    mu = s[0][1] / sw
    rows = fe if method in ("DL", "HS") else s if method in ("ML", "REML", "EB", "PM") else None
    return _assemble(
        beta=np.array([mu + S.ybar]),
        vb=np.array([[1.0 / sw]]),
        rss=s[0][2] - mu * s[0][1],
        k=k,
        method=method,
        test="z" if k == 1 else test,
        level=level,
        qe=qe,
        trp0=sw0 - fe[1][0] / sw0,
        tau2=tau2,
        tau2_0=tau2_0,
        se_tau2=se_tau2(S, method, tau2, tau2_0, rows),
    )


def fit_regression(
    pr: Problem, method: str, test: str, level: float, ctl: Control = DEFAULT_CONTROL
) -> SingleFit:
    """metafor's ``rma.uni()`` for one meta-regression (p > 1): ``pr`` holds the studies and the
    design; the other parameters and the result are those of :func:`fit_intercept_only`.

    Notes
    -----
    metafor 3.8-1 ``rma.uni()`` (Viechtbauer 2010): the same definitions and iterations as
    :func:`~.family_fit.fit_family`, with the overhead of batching removed -- DL (DerSimonian &
    Laird 1986), HS (Hunter & Schmidt 2004), HE (Hedges 1983), SJ (Sidik & Jonkman 2005), ML and
    REML (Fisher scoring, Viechtbauer 2005), EB (Morris 1983), PM (Paule & Mandel 1982) -- and the
    standard error of tau² by :func:`se_tau2`.
    """
    S = RegressionSums(pr)
    k, p = pr.k, pr.p
    df = k - p
    fe = S.sums(0.0, 2)
    A0, _, qe_raw, _, _ = S.wls(fe[0])
    XX2_0 = S.unpack(fe[1])[0]
    trp0 = float(fe[0][0]) - float(np.sum(A0 * XX2_0))
    qe = max(0.0, qe_raw)
    tau2_0 = math.nan
    reason: str | None = None
    ok = True
    G = pr.G
    if method == "EE":
        tau2 = 0.0
    elif method == "DL":
        tau2 = max(0.0, (qe_raw - df) / trp0)
    elif method == "HS":
        tau2 = max(0.0, (qe_raw - k) / float(fe[0][0]))
    elif method in ("HE", "ML", "REML", "EB"):
        he = S.hedges()
        if method == "HE":
            tau2 = max(0.0, he)
        else:
            tau2, ok, reason = fisher_scoring_single(S, method, ctl, max(0.0, he))
    elif method == "SJ":
        tau2_0 = max(0.0, float(G[:, -1].sum()) / k)  # y is centred: var(y) (k-1)/k
        tau2 = tau2_0 * S.wls(S.sums(tau2_0, 1)[0])[2] / df
    else:  # PM

        def q(t: float) -> float:
            return S.wls(S.sums(t, 1)[0])[2] - df

        tau2, ok, reason = paule_mandel_single(q, qe_raw - df, pr.y, ctl)
    if not ok:
        return _failed_fit(p, tau2_0, qe, reason)
    A, b_c, rss, _, _ = S.wls(S.sums(tau2, 1)[0])
    return _assemble(
        beta=pr.beta_back(b_c[None])[0],
        vb=pr.vb_back(A[None])[0],
        rss=rss,
        k=k,
        method=method,
        test=test,
        level=level,
        qe=qe,
        trp0=trp0,
        tau2=tau2,
        tau2_0=tau2_0,
        se_tau2=se_tau2(S, method, tau2, tau2_0),
    )


def se_tau2(
    sums: InterceptOnlySums | RegressionSums,
    method: str,
    tau2: float,
    tau2_0: float,
    rows: Any = None,
) -> float:
    """Standard error of tau² exactly as metafor's ``rma.uni()`` computes it for each estimator.

    Parameters
    ----------
    sums : InterceptOnlySums or RegressionSums
        The model (intercept-only or meta-regression) on its active studies.
    method : str
        The tau² estimator.
    tau2 : float
        Its estimate.
    tau2_0 : float
        SJ's starting value (unused by the other estimators).
    rows : optional
        ``sums.sums(t, 3)`` at the estimator's weights when the caller has them already: t = 0
        (weights 1/v) for DL and HS, t = ``tau2`` for ML, REML, EB and PM.

    Returns
    -------
    float
        NaN for the equal-effects model and for k = 1.

    Notes
    -----
    metafor 3.8-1 ``rma.uni()``, with P = W - WX(X'WX)⁻¹X'W and V = diag(v), one formula per
    estimator for intercept-only models and meta-regressions alike. ML and REML: the inverse of
    the Fisher information their iteration uses (Viechtbauer 2005, Stat Med 24:2193; 2 / sum w²
    and 2 / tr(PP)); EB (Morris 1983) and PM (Paule & Mandel 1982): sqrt(2k² / (k - p)) / sum w.
    The others from the traces of P with p x p sums (:func:`_p_traces`): DL (DerSimonian & Laird
    1986) and HS (Hunter & Schmidt 2004) from the variance of the generalised Q with W = V⁻¹
    (denominators tr(P)² and (sum w)²), HE (Hedges 1983) from that of the OLS residual sum of
    squares, SJ (Sidik & Jonkman 2005) from that of the weighted one at their starting value.
    """
    G, v = sums.data()
    k, p = v.size, sums.p
    if method == "EE" or k == 1:
        return math.nan
    t = max(tau2, 0.0)
    df = k - p
    if method in ("ML", "REML", "EB", "PM"):
        # the Fisher information of the iteration at tau² (EB's: sum w; PM's is taken as EB's)
        M: Any = sums.sums(tau2, 3) if rows is None else rows
        info = sums.score_of(M, "EB" if method == "PM" else method, False)[1]
        return math.sqrt(2.0 / info) if method in ("ML", "REML") else math.sqrt(2.0 * k * k / df) / info
    if method == "HE":
        tr = _p_traces(G, p, None, v)  # w = 1: P = I - X(X'X)⁻¹X'
        return math.sqrt((2 * tr["trPVPV"] + 4 * t * tr["trPV"] + 2 * t * t * df) / df**2)
    M = np.asarray(sums.sums(tau2_0 if method == "SJ" else 0.0, 3) if rows is None else rows)
    if method == "SJ":
        tr = _p_traces(G, p, M, v, 1.0 / (v + tau2_0))
        return math.sqrt(
            tau2_0**2 / df**2 * (2 * tr["trPVPV"] + 4 * t * tr["trPVP"] + 2 * t * t * tr["trPP"])
        )
    tr = _p_traces(G, p, M, None)
    denom = float(M[0, 0]) ** 2 if method == "HS" else tr["trP"] ** 2
    return math.sqrt((2 * df + 4 * t * tr["trP"] + 2 * t * t * tr["trPP"]) / denom)


def _p_traces(
    G: np.ndarray,
    p: int,
    M: np.ndarray | None,
    v: np.ndarray | None,
    w: np.ndarray | None = None,
) -> dict[str, float]:
    """Traces of P = W - WX(X'WX)⁻¹X'W (and of PV) with p x p algebra, for one model.

    ``M`` holds the sums of w G, w² G and w³ G (rows in the layout of ``G``, as ``sums(t, 3)``
    returns them); None means w = 1. Returns tr(P) and tr(PP) (with ``M``), and with ``v`` also
    tr(PV), tr(PVPV) and (with ``M``) tr(PVP), whose V-weighted sums use the weights ``w``
    (default 1).
    """
    S_w = Sums(M[0:1] if M is not None else (np.ones(G.shape[0]) @ G)[None], p)
    A = _inv(S_w.XtCX)
    out: dict[str, float] = {}
    AX2 = None
    if M is not None:
        S_w2, S_w3 = Sums(M[1:2], p), Sums(M[2:3], p)
        AX2 = A @ S_w2.XtCX
        out["trP"] = float(S_w.sum_c[0] - _tr(A, S_w2.XtCX)[0])
        out["trPP"] = float(S_w2.sum_c[0] - 2.0 * _tr(A, S_w3.XtCX)[0] + np.trace(AX2[0] @ AX2[0]))
    if v is not None:
        w = np.ones_like(v) if w is None else w
        wv = w * v
        # the sums of w v, w² v, w³ v, w³ v² and (w v)² G in one product
        S_wv, S_w2v, S_w3v, S_w3v2, S_w2v2 = (
            Sums(row[None], p) for row in np.stack([wv, w * wv, w * w * wv, w * wv * wv, wv * wv]) @ G
        )
        AD = A @ S_w2v.XtCX
        out["trPV"] = float(S_wv.sum_c[0] - _tr(A, S_w2v.XtCX)[0])
        out["trPVPV"] = float(S_w2v2.sum_c[0] - 2.0 * _tr(A, S_w3v2.XtCX)[0] + np.trace(AD[0] @ AD[0]))
        if AX2 is not None:
            out["trPVP"] = float(S_w2v.sum_c[0] - 2.0 * _tr(A, S_w3v.XtCX)[0] + np.trace(AD[0] @ AX2[0]))
    return out
