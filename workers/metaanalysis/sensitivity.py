"""Leave-one-out, cumulative, influence and Baujat diagnostics as metafor's ``leave1out()``,
``cumul()``, ``influence()`` and ``baujat()``.

metafor refits the model k times. Here the k refits are one batched computation (see
:mod:`workers.metaanalysis.estimators`): every subset's tau² is iterated at once, with the
subset's sums taken over exactly its own studies, so the results are those of the k refits
(same estimator, test, level and convergence settings) at a fraction of the cost.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import EngineError, InsufficientDataError
from .estimators import Family, FamilyFit, Problem, estimate_tau2, fit_family
from .rma import EngineResult, FitResult, jsonable
from .weights import weights_percent

__all__ = [
    "BaujatResult",
    "CumulativeResult",
    "InfluenceResult",
    "LeaveOneOutResult",
    "baujat",
    "cumulative",
    "influence",
    "leave1out",
    "loo_fits",
]

_EPS = float(np.finfo(float).eps)


def _reasons(ff: FamilyFit) -> dict[int, str]:
    return {i: r for i, r in enumerate(ff.reason) if r is not None}


@dataclasses.dataclass(frozen=True, eq=False)
class LeaveOneOutResult(EngineResult):
    """One model per left-out study (``leave1out``), in the order of the model's studies.

    ``estimate se zval pval ci_lb ci_ub`` describe the pooled effect without study i, ``Q``/``Qp``
    the heterogeneity test, ``tau2 I2 H2`` the heterogeneity. ``to_dict()`` mirrors metafor's
    output names: for the EE model ``tau2`` is empty (metafor drops it) and under a t test
    (Knapp-Hartung) the statistic is ``tval`` and ``zval`` is empty. ``failed`` maps positions
    whose refit failed to the reason.
    """

    method: str
    test: str
    estimate: np.ndarray
    se: np.ndarray
    zval: np.ndarray
    pval: np.ndarray
    ci_lb: np.ndarray
    ci_ub: np.ndarray
    Q: np.ndarray
    Qp: np.ndarray
    tau2: np.ndarray
    I2: np.ndarray
    H2: np.ndarray
    failed: dict[int, str]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if self.method == "EE":
            out["tau2"] = []
        if self.test in ("knha", "t"):
            # metafor names the statistic tval under a t test and has no zval then
            out["tval"] = out["zval"]
            out["zval"] = []
        return jsonable(out)


def _require_int_only(fit: FitResult, what: str) -> None:
    if not fit.int_only:
        raise EngineError(
            f"{what} applies to models without moderators only (as in metafor)", code="not_applicable"
        )
    if fit.k < 2:
        raise InsufficientDataError(f"{what} needs at least 2 studies (k = {fit.k})")


def _start(fit: FitResult, B: int) -> np.ndarray | None:
    # Fisher-type estimators start every refit at the full-data estimate, which is close to each
    # refit's root (the root, not the path, is the result); other estimators are closed form.
    if fit.method in ("ML", "REML", "EB"):
        return np.full(B, fit.tau2)
    return None


def loo_fits(fit: FitResult) -> FamilyFit:
    """The k leave-one-out refits of ``fit`` (shared by :func:`leave1out` and :func:`influence`).

    Each refit is metafor's ``rma.uni(..., subset = -i)`` with the model's method, test, level,
    control and (for influence) design; all k are computed together (see
    :mod:`workers.metaanalysis.estimators`), starting the iterative estimators at the full-data
    tau², which is close to every refit's root.
    """
    if fit.k < 2:
        raise InsufficientDataError(f"leave-one-out refits need at least 2 studies (k = {fit.k})")
    pr = Problem(fit.yi, fit.vi, fit.X if fit.p > 1 else None)
    fam = Family(pr, "loo")
    return fit_family(
        fam, fit.method, fit.test, fit.level, fit.control, start=_start(fit, fam.n_subsets), newton=True
    )


def _per_model_fields(fit: FitResult, ff: FamilyFit) -> dict[str, Any]:
    """The per-model columns of a family of refits (leave-one-out or cumulative), as metafor names them."""
    return {
        "method": fit.method,
        "test": fit.test,
        "estimate": ff.beta[:, 0],
        "se": ff.se[:, 0],
        "zval": ff.zval[:, 0],
        "pval": ff.pval[:, 0],
        "ci_lb": ff.ci_lb[:, 0],
        "ci_ub": ff.ci_ub[:, 0],
        "Q": ff.QE,
        "Qp": ff.QEp,
        "tau2": ff.tau2,
        "I2": ff.I2,
        "H2": ff.H2,
        "failed": _reasons(ff),
    }


def leave1out(fit: FitResult, loo: FamilyFit | None = None) -> LeaveOneOutResult:
    """Leave-one-out analysis as metafor's ``leave1out.rma.uni()``.

    Parameters
    ----------
    fit : FitResult
        An intercept-only model with k >= 2.
    loo : FamilyFit, optional
        The refits from :func:`loo_fits` when they are computed already.

    Returns
    -------
    LeaveOneOutResult

    Notes
    -----
    Source: metafor 3.8-1 ``leave1out.rma.uni()``: the model is refitted without each study with
    the same ``method``, ``test``, ``level`` and ``control``. A refit with one study left uses
    metafor's k = 1 rules (tau² = 0, z test, QE = 0, I² = 0, H² = 1). Here all k refits are
    computed together (prefix/suffix sums, an exact Taylor series in tau² or a masked weight
    matrix, Newton steps from the full-data tau²); the roots are those of the separate refits.
    """
    _require_int_only(fit, "leave-one-out")
    ff = loo_fits(fit) if loo is None else loo
    return LeaveOneOutResult(**_per_model_fields(fit, ff))


@dataclasses.dataclass(frozen=True, eq=False)
class CumulativeResult(LeaveOneOutResult):
    """Cumulative meta-analysis (``cumul``): entry i pools the first i + 1 studies of ``order``.

    ``order`` gives, for each entry, the position of the study added (in the model's studies).
    """

    order: np.ndarray


def cumulative(fit: FitResult, order: Sequence[Any] | None = None) -> CumulativeResult:
    """Cumulative meta-analysis as metafor's ``cumul.rma.uni()``.

    Parameters
    ----------
    fit : FitResult
        An intercept-only model.
    order : sequence, optional
        One sort key per study of the model (e.g. publication year); studies are added in
        increasing order of the key, ties in their original order (R's ``order()``), missing
        keys (None/NaN) last. Default: the order of the studies.

    Returns
    -------
    CumulativeResult
        Entries in the order the studies are added.

    Notes
    -----
    Source: metafor 3.8-1 ``cumul.rma.uni()``: model i is fitted to the first i studies with
    the same ``method``, ``test``, ``level`` and ``control`` (the first with metafor's k = 1
    rules). All k models are computed together on the prefix sums.
    """
    if not fit.int_only:
        raise EngineError(
            "cumulative meta-analysis applies to models without moderators only (as in metafor)",
            code="not_applicable",
        )
    k = fit.k
    if order is None:
        perm = np.arange(k)
    else:
        keys = list(order)
        if len(keys) != k:
            raise EngineError(f"order has {len(keys)} keys for {k} studies", code="invalid_input")
        perm = _r_order(keys)
    pr = Problem(fit.yi[perm], fit.vi[perm], None)
    fam = Family(pr, "cumul")
    # Fisher-type estimators start each model at its DL estimate (close to the root; metafor
    # starts at HE: same root, more iterations)
    start = estimate_tau2(fam, "DL").tau2 if fit.method in ("ML", "REML", "EB") else None
    ff = fit_family(fam, fit.method, fit.test, fit.level, fit.control, start=start, newton=True)
    return CumulativeResult(**_per_model_fields(fit, ff), order=perm)


def _r_order(keys: list[Any]) -> np.ndarray:
    """R's ``order()``: stable increasing order, NA last."""
    from .design import is_missing

    present = [i for i, x in enumerate(keys) if not is_missing(x)]
    absent = [i for i, x in enumerate(keys) if is_missing(x)]
    try:
        present.sort(key=lambda i: keys[i])
    except TypeError as exc:
        raise EngineError("order keys must all be numbers or all text", code="invalid_input") from exc
    return np.array(present + absent, dtype=int)


@dataclasses.dataclass(frozen=True, eq=False)
class InfluenceResult(EngineResult):
    """Case diagnostics (``influence.rma.uni``), one entry per study of the model.

    Attributes
    ----------
    rstudent : ndarray
        Externally studentised residuals.
    dffits : ndarray
        DFFITS.
    cook_d : ndarray
        Cook's distances.
    cov_r : ndarray
        Covariance ratios.
    tau2_del, QE_del : ndarray
        tau² and QE of the model without the study.
    hat : ndarray
        Leverages (diagonal of the hat matrix).
    weight : ndarray
        Weights in percent.
    failed : dict
        Positions whose leave-one-out refit failed, with the reason.
    """

    rstudent: np.ndarray
    dffits: np.ndarray
    cook_d: np.ndarray
    cov_r: np.ndarray
    tau2_del: np.ndarray
    QE_del: np.ndarray
    hat: np.ndarray
    weight: np.ndarray
    failed: dict[int, str]


def influence(fit: FitResult, loo: FamilyFit | None = None) -> InfluenceResult:
    """Influence diagnostics as metafor's ``influence.rma.uni()``.

    Parameters
    ----------
    fit : FitResult
        Any model with k >= 2 (moderators allowed).
    loo : FamilyFit, optional
        The refits from :func:`loo_fits` when they are computed already.

    Returns
    -------
    InfluenceResult

    Notes
    -----
    Source: metafor 3.8-1 ``influence.rma.uni()`` (Viechtbauer & Cheung 2010, Res Synth Methods
    1:112-125). With beta_(-i), vb_(-i), tau²_(-i) and s2w_(-i) from the model refitted without
    study i: ``rstudent = (y_i - x_i'beta_(-i)) / sqrt(s2w_(-i) (v_i + tau²_(-i)) + x_i'vb_(-i)x_i)``;
    ``dffits = x_i'(beta - beta_(-i)) / sqrt(s2w_(-i) h_i (tau²_(-i) + v_i))``;
    ``cook_d = (beta - beta_(-i))' vb^-1 (beta - beta_(-i))``; ``cov_r = det vb_(-i) / det vb``;
    ``h_i`` the diagonal of ``X (X'WX)^-1 X'W``; weights ``100 w_i / sum(w)``. A refit that fails
    (too few studies left, a moderator no longer estimable) gives NaN for that study, as metafor.
    """
    if fit.k < 2:
        raise InsufficientDataError("influence diagnostics need at least 2 studies")
    k, p = fit.k, fit.p
    failed: dict[int, str] = {}
    # refits that fail (too few studies left, a moderator no longer estimable) are NaN with the
    # reason, as metafor's NA
    ff = loo_fits(fit) if loo is None else loo
    for i, r in _reasons(ff).items():
        failed[i] = r
    good = ff.ok.copy()
    X = fit.X
    w = 1.0 / (fit.vi + fit.tau2)
    if p == 1:
        hat = w / np.sum(w)
    else:
        A = np.linalg.inv((X * w[:, None]).T @ X)
        hat = w * np.einsum("ij,jk,ik->i", X, A, X)
    hat = np.where(hat > 1 - 10 * _EPS, 1.0, hat)
    weight = weights_percent(fit)
    nan = np.full(k, np.nan)
    rstudent, dffits, cook_d, cov_r = nan.copy(), nan.copy(), nan.copy(), nan.copy()
    tau2_del, qe_del = nan.copy(), nan.copy()
    idx = np.flatnonzero(good)
    if idx.size:
        b_del = ff.beta[idx]
        vb_del = ff.vb[idx]
        s2w = ff.s2w[idx]
        t_del = ff.tau2[idx]
        Xi = X[idx]
        delpred = np.einsum("ij,ij->i", Xi, b_del)
        vdelpred = np.einsum("ij,ijk,ik->i", Xi, vb_del, Xi)
        pred_full = Xi @ fit.beta
        vi = fit.vi[idx]
        with np.errstate(divide="ignore", invalid="ignore"):
            dffits[idx] = (pred_full - delpred) / np.sqrt(s2w * hat[idx] * (t_del + vi))
            dfb = fit.beta[None, :] - b_del
            try:
                svb = np.linalg.inv(fit.vb)
                cook_d[idx] = np.einsum("ij,jk,ik->i", dfb, svb, dfb)
            except np.linalg.LinAlgError:
                pass
            cov_r[idx] = np.linalg.det(vb_del) / np.linalg.det(fit.vb)
            resid = fit.yi[idx] - delpred
            resid[np.abs(resid) < 100 * _EPS] = 0.0
            seresid = np.sqrt(vi * s2w + vdelpred + t_del * s2w)
            rstudent[idx] = resid / seresid
        tau2_del[idx] = t_del
        qe_del[idx] = ff.QE[idx]
    return InfluenceResult(
        rstudent=rstudent,
        dffits=dffits,
        cook_d=cook_d,
        cov_r=cov_r,
        tau2_del=tau2_del,
        QE_del=qe_del,
        hat=hat,
        weight=weight,
        failed=failed,
    )


@dataclasses.dataclass(frozen=True, eq=False)
class BaujatResult(EngineResult):
    """The coordinates of a Baujat plot (``baujat``), one entry per study of the model.

    Attributes
    ----------
    x : ndarray
        Contribution to the (residual) heterogeneity: the squared Pearson residual
        ``(y_i - x_i'beta)² / (tau² + v_i)``; they add up to Q for the equal-effects model.
    y : ndarray
        Influence on the fitted value: ``(x_i'beta_(-i) - x_i'beta)² / x_i'vb_(-i)x_i``, from the
        model refitted without study i (for a model without moderators, the pooled estimate).
    failed : dict
        Positions whose leave-one-out refit failed (their ``y`` is NaN), with the reason.
    """

    x: np.ndarray
    y: np.ndarray
    failed: dict[int, str]


def baujat(fit: FitResult, loo: FamilyFit | None = None) -> BaujatResult:
    """Baujat's coordinates as metafor's ``baujat.rma()`` computes them, for any model with k >= 2
    (moderators allowed), from the leave-one-out refits ``loo`` (:func:`loo_fits`, computed here
    when not given).

    Source: metafor 3.8-1 ``baujat.rma()`` (Baujat et al. 2002, Stat Med 21:2641-2652): the model
    is refitted without each study (same method, test, level and control); a refit that fails, or
    whose coefficients are no longer all estimable, gives NA for that study's ``y``.
    """
    if fit.k < 2:
        raise InsufficientDataError("the Baujat plot needs at least 2 studies")
    ff = loo_fits(fit) if loo is None else loo
    fitted = fit.X @ fit.beta
    x = (fit.yi - fitted) ** 2 / (fit.tau2 + fit.vi)
    y = np.full(fit.k, np.nan)
    idx = np.flatnonzero(ff.ok)
    Xi = fit.X[idx]
    refitted = np.einsum("ij,ij->i", Xi, ff.beta[idx])
    var = np.einsum("ij,ijk,ik->i", Xi, ff.vb[idx], Xi)
    with np.errstate(divide="ignore", invalid="ignore"):
        y[idx] = (refitted - fitted[idx]) ** 2 / var
    return BaujatResult(x=x, y=y, failed=_reasons(ff))
