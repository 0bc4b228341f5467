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
from .single import InterceptOnlySums, RegressionSums, _ypy, fisher_scoring_single, tau2_intercept_only
from .subsets import Problem, Sums, _inv, _tr


@dataclasses.dataclass(frozen=True, kw_only=True)
class SingleFit:
    """Results of one model (what ``rma.uni`` computes before assembling its output).

    ``se_tau2`` is None where it is computed later from the design (meta-regression); ``ddf``
    is NaN under the z test; ``vb`` is scaled by ``s2w`` under Knapp-Hartung.
    """

    tau2: float
    tau2_0: float
    se_tau2: float | None
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
    se_tau2: float | None,
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

    Same definitions and iteration as :func:`~.family_fit.fit_family` (and metafor): HE start,
    Fisher scoring with step halving and the tau² = 0 likelihood check for ML/REML,
    ``uniroot()`` for PM. The estimators' sources are listed in :mod:`.batched`.
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
    se_t2: float | None = math.nan
    if k > 1 and method != "EE":
        se_t2 = _se_tau2_intercept_only(method, k, tau2, tau2_0, s, fe, v)
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
        se_tau2=se_t2,
    )


def fit_regression(
    pr: Problem, method: str, test: str, level: float, ctl: Control = DEFAULT_CONTROL
) -> SingleFit:
    """metafor's ``rma.uni()`` for one meta-regression (p > 1).

    The same definitions and iterations as :func:`~.family_fit.fit_family` (and metafor), with
    the overhead of batching removed. The estimators' sources are listed in :mod:`.batched`.
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
        se_tau2=None,
    )


def _wsums(pr: Problem, c: np.ndarray) -> Sums:
    return Sums((pr.G * c[:, None]).sum(axis=0, keepdims=True), pr.p)


def _p_traces(pr: Problem, w: np.ndarray, v: np.ndarray | None) -> dict[str, float]:
    """Traces of P = W - WX(X'WX)^-1X'W (and of PV) with p x p algebra.

    Returns tr(P), tr(PP), and with ``v`` also tr(PV), tr(PVPV), tr(PVP).
    """
    S_w = _wsums(pr, w)
    A = _inv(S_w.XtCX)
    S_w2 = _wsums(pr, w * w)
    S_w3 = _wsums(pr, w**3)
    AX2 = A @ S_w2.XtCX
    out = {
        "trP": float(S_w.sum_c[0] - _tr(A, S_w2.XtCX)[0]),
        "trPP": float(S_w2.sum_c[0] - 2.0 * _tr(A, S_w3.XtCX)[0] + np.trace(AX2[0] @ AX2[0])),
    }
    if v is not None:
        S_wv = _wsums(pr, w * v)  # not needed for traces but gives sum(w v)
        S_w2v = _wsums(pr, w * w * v)
        S_w3v = _wsums(pr, w**3 * v)
        S_w3v2 = _wsums(pr, w**3 * v * v)
        S_w2v2 = _wsums(pr, (w * v) ** 2)
        AD = A @ S_w2v.XtCX
        out["trPV"] = float(S_wv.sum_c[0] - _tr(A, S_w2v.XtCX)[0])
        out["trPVPV"] = float(S_w2v2.sum_c[0] - 2.0 * _tr(A, S_w3v2.XtCX)[0] + np.trace(AD[0] @ AD[0]))
        out["trPVP"] = float(S_w2v.sum_c[0] - 2.0 * _tr(A, S_w3v.XtCX)[0] + np.trace(AD[0] @ AX2[0]))
    return out


def se_tau2(pr: Problem, method: str, tau2: float, tau2_0: float | None) -> float:
    """Standard error of tau² exactly as ``rma.uni()`` computes it for each estimator."""
    k, p = pr.k, pr.p
    v = pr.v
    t = max(tau2, 0.0)
    if method == "EE" or k == 1:
        return math.nan
    if method in ("HS", "DL"):
        w = 1.0 / v
        tr = _p_traces(pr, w, None)
        denom = float(np.sum(w)) ** 2 if method == "HS" else tr["trP"] ** 2
        return math.sqrt(1.0 / denom * (2 * (k - p) + 4 * t * tr["trP"] + 2 * t * t * tr["trPP"]))
    if method == "HE":
        tr = _p_traces(pr, np.ones(k), v)
        return math.sqrt(1.0 / (k - p) ** 2 * (2 * tr["trPVPV"] + 4 * t * tr["trPV"] + 2 * t * t * (k - p)))
    if method == "SJ":
        assert tau2_0 is not None
        w = 1.0 / (v + tau2_0)
        tr = _p_traces(pr, w, v)
        return math.sqrt(
            tau2_0**2 / (k - p) ** 2 * (2 * tr["trPVPV"] + 4 * t * tr["trPVP"] + 2 * t * t * tr["trPP"])
        )
    w = 1.0 / (v + tau2)
    if method == "ML":
        return math.sqrt(2.0 / float(np.sum(w * w)))
    if method == "REML":
        return math.sqrt(2.0 / _p_traces(pr, w, None)["trPP"])
    # EB and PM: sqrt(2 k^2 / (k - p)) / sum(w)
    return math.sqrt(2.0 * k * k / (k - p)) / float(np.sum(w))


def _se_tau2_intercept_only(
    method: str,
    k: int,
    tau2: float,
    tau2_0: float,
    s: list[list[float]],
    fe: list[list[float]],
    v: np.ndarray,
) -> float:
    """Standard error of tau² (as :func:`se_tau2`) for an intercept-only model, from its sums."""
    t = max(tau2, 0.0)
    df = k - 1
    if method in ("HS", "DL"):
        sw, s2, s3 = fe[0][0], fe[1][0], fe[2][0]
        trp = sw - s2 / sw
        trpp = s2 - 2.0 * s3 / sw + (s2 / sw) ** 2
        denom = sw * sw if method == "HS" else trp * trp
        return math.sqrt((2 * df + 4 * t * trp + 2 * t * t * trpp) / denom)
    if method == "HE":
        sv, sv2 = float(v.sum()), float((v * v).sum())
        trpv = sv - sv / k
        trpvpv = sv2 - 2.0 * sv2 / k + (sv / k) ** 2
        return math.sqrt((2 * trpvpv + 4 * t * trpv + 2 * t * t * df) / df**2)
    if method == "SJ":
        w = 1.0 / (v + tau2_0)
        wv = w * v
        sw, sw2, sw3 = float(w.sum()), float((w * w).sum()), float((w**3).sum())
        sw2v, sw3v, sw3v2, swv2 = (
            float((w * wv).sum()),
            float((w * w * wv).sum()),
            float((w * wv * wv).sum()),
            float((wv * wv).sum()),
        )
        trpvpv = swv2 - 2.0 * sw3v2 / sw + (sw2v / sw) ** 2
        trpvp = sw2v - 2.0 * sw3v / sw + (sw2v / sw) * (sw2 / sw)
        trpp = sw2 - 2.0 * sw3 / sw + (sw2 / sw) ** 2
        return math.sqrt(tau2_0**2 / df**2 * (2 * trpvpv + 4 * t * trpvp + 2 * t * t * trpp))
    sw, s2, s3 = s[0][0], s[1][0], s[2][0]
    if method == "ML":
        return math.sqrt(2.0 / s2)
    if method == "REML":
        return math.sqrt(2.0 / (s2 - 2.0 * s3 / sw + (s2 / sw) ** 2))
    return math.sqrt(2.0 * k * k / df) / sw
