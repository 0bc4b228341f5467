"""Per-subset fits of a :class:`~.subsets.Family`: leave-one-out and cumulative models at once."""

from __future__ import annotations

import dataclasses

import numpy as np
from scipy import special

from .batched import estimate_tau2
from .control import DEFAULT_CONTROL, Control
from .control import EPS as _EPS
from .inference import alpha_from_level, i2_h2, wald_tail
from .subsets import Family, Sums, equal_effects_parts, wls


@dataclasses.dataclass(frozen=True, kw_only=True)
class FamilyFit:
    """Per-subset results of a family of fits (arrays with a leading subset axis)."""

    sizes: np.ndarray  # studies in each subset
    tau2: np.ndarray
    ok: np.ndarray
    reason: list[str | None]
    beta: np.ndarray  # (B, p)
    vb: np.ndarray  # (B, p, p), scaled by s2w under knha
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    QE: np.ndarray
    QEp: np.ndarray
    I2: np.ndarray
    H2: np.ndarray
    vt: np.ndarray
    s2w: np.ndarray
    ddf: np.ndarray  # NaN under the z test
    test: list[str]


# The estimator options of batched.estimate_tau2, passed on to it: the signatures match on purpose.
def fit_family(
    family: Family,
    method: str,
    test: str,
    level: float,
    ctl: Control = DEFAULT_CONTROL,
    start: np.ndarray | None = None,
    newton: bool = False,
) -> FamilyFit:
    """Fit metafor's ``rma.uni()`` model to every subset of ``family``.

    Parameters
    ----------
    family : Family
    method, test : str
        As :func:`workers.metaanalysis.rma.rma` (k = 1 subsets take the z test, as metafor).
    level : float
        Confidence level (metafor's convention, :func:`~.inference.alpha_from_level`).
    ctl : Control
    start, newton
        Starting values and Newton steps for ML/REML/EB (see :func:`~.batched.estimate_tau2`).

    Returns
    -------
    FamilyFit

    Notes
    -----
    The estimators and their sources are listed in :mod:`.batched`; the inference tail (Wald
    tests, Knapp & Hartung 2003 scaling, I² and H² after Higgins & Thompson 2002) is the one
    every model of the engine uses (:mod:`.inference`).
    """
    pr = family.problem
    p = pr.p
    B = family.n_subsets
    sizes = family.sizes
    t2 = estimate_tau2(family, method, ctl, start=start, newton=newton)
    tau2 = t2.tau2
    ok = t2.ok.copy()
    tau2_eval = np.where(ok, tau2, 0.0)
    (S1r,) = family.var(np.arange(B), tau2_eval, (1,))
    S1 = Sums(S1r, p)
    A_c, beta_c, rss = wls(S1)
    # metafor applies the Knapp-Hartung test as requested, except that k = 1 forces test = "z"
    tests = [("z" if sizes[i] == 1 else test) for i in range(B)]
    knha = np.array([tt == "knha" for tt in tests])
    tdist = np.array([tt in ("knha", "t") for tt in tests])
    with np.errstate(divide="ignore", invalid="ignore"):
        s2w = np.ones(B)
        s2w_k = np.where(rss <= _EPS, 0.0, rss / (sizes - p))
        s2w = np.where(knha, s2w_k, s2w)
        vb_c = A_c * s2w[:, None, None]
        beta = pr.beta_back(beta_c)
        vb = pr.vb_back(vb_c)
        se = np.sqrt(vb[:, :, 0] if p == 1 else np.einsum("nii->ni", vb))
        ddf = np.where(tdist, sizes - p, np.nan)
        zval, pval, ci_lb, ci_ub = wald_tail(beta, se, alpha_from_level(level), ddf)
        qe, trP, _ = equal_effects_parts(family)
        QE = np.maximum(0.0, qe)
        df = sizes - p
        QEp = special.chdtrc(np.maximum(df, 1.0), QE)
        vt = df / trP
        I2, H2 = i2_h2(QE, df, tau2, vt, method == "EE")
        sat = sizes <= p
        QE = np.where(sat, 0.0, QE)
        QEp = np.where(sat, 1.0, QEp)
        I2 = np.where(sat, 0.0, I2)
        H2 = np.where(sat, 1.0, H2)
        vt = np.where(sat, 0.0, vt)
    bad = ~ok
    if np.any(bad):
        for arr in (beta, se, zval, pval, ci_lb, ci_ub):
            arr[bad] = np.nan
        vb[bad] = np.nan
        for arr in (tau2, I2, H2, s2w):
            arr[bad] = np.nan
    # The same field names as SingleFit (see single_fit._assemble), here one array entry per subset.
    return FamilyFit(
        sizes=sizes,
        tau2=tau2,
        ok=ok,
        reason=t2.reason,
        beta=beta,
        vb=vb,
        se=se,
        zval=zval,
        pval=pval,
        ci_lb=ci_lb,
        ci_ub=ci_ub,
        QE=QE,
        QEp=QEp,
        I2=I2,
        H2=H2,
        vt=vt,
        s2w=s2w,
        ddf=ddf,
        test=tests,
    )
