"""Subgroup analysis: a pooled estimate per subgroup and two tests for subgroup differences."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from .design import check_rank, is_missing, level_sort_key
from .errors import EngineError, InsufficientDataError, InvalidInputError
from .rma import EngineResult, fit_model

__all__ = ["SubgroupsResult", "subgroups"]


@dataclasses.dataclass(frozen=True, eq=False)
class SubgroupsResult(EngineResult):
    """Per-subgroup pooled estimates and the tests for subgroup differences.

    Attributes
    ----------
    levels : list of str
        Subgroups in sorted order (the first is the reference of the meta-regression).
    groups : list of dict
        Per subgroup: ``level k beta se stat pval ci_lb ci_ub tau2 I2 QE QEp`` (or ``error``).
    moderator_test : dict
        ``QM QMdf QMp tau2 I2`` of the meta-regression on the subgroup factor (one tau² shared
        by all subgroups); empty when it cannot be fitted (see ``na_reasons``).
    between_test : dict
        ``Q df pval``: Cochran's Q across the subgroup estimates of the separate fits, weighted by
        1/se² (equal-effects model on the subgroup estimates).
    na_reasons : dict
        Why a test is missing.
    """

    levels: list[str]
    groups: list[dict[str, Any]]
    moderator_test: dict[str, Any]
    between_test: dict[str, Any]
    na_reasons: dict[str, str]


def subgroups(
    yi: Any,
    vi: Any,
    groups: Sequence[Any],
    *,
    method: str = "REML",
    test: str = "z",
    level: float = 95.0,
) -> SubgroupsResult:
    """Subgroup analysis with the separate-fits and the meta-regression test of differences.

    Parameters
    ----------
    yi, vi : array_like
        Effect sizes and sampling variances.
    groups : sequence
        Subgroup label per study; missing labels (None, NaN, "") leave the study out.
    method, test, level
        As for :func:`workers.metaanalysis.rma.rma`, used for every fit.

    Returns
    -------
    SubgroupsResult

    Notes
    -----
    Two tests for subgroup differences are reported because practice differs:

    * ``moderator_test`` -- the omnibus test QM of the meta-regression ``rma(yi, vi, mods =
      ~ factor(group))`` (metafor 3.8-1 ``rma.uni``; Borenstein et al. 2009, ch. 19, "pooled
      tau²"): chi² with G - 1 df, or F under Knapp-Hartung.
    * ``between_test`` -- Q-between from the separate subgroup fits, ``Q = sum w_g (b_g - b)^2``
      with ``w_g = 1/se_g^2`` and G - 1 df (as ``rma(b_g, sei = se_g, method = "EE")``; the
      "separate tau²" approach of Borenstein et al. 2009 and RevMan).
    """
    y = np.asarray(yi, dtype=float)
    v = np.asarray(vi, dtype=float)
    labels_in = list(groups)
    if len(labels_in) != y.size:
        raise InvalidInputError(f"groups has {len(labels_in)} labels for {y.size} studies", column="subgroup")
    keep = np.array([not is_missing(g) for g in labels_in], dtype=bool)
    labels = [str(g) for g, kp in zip(labels_in, keep, strict=True) if kp]
    y, v = y[keep], v[keep]
    levels = sorted(set(labels), key=level_sort_key)
    if not levels:
        raise InsufficientDataError("no study has a subgroup label")
    lab = np.array(labels, dtype=object)
    reasons: dict[str, str] = {}
    out_groups: list[dict[str, Any]] = []
    est, ses = [], []
    for lev in levels:
        sel = lab == lev
        entry: dict[str, Any] = {"level": lev, "k": int(sel.sum())}
        try:
            f = fit_model(y[sel], v[sel], None, ("intrcpt",), method=method, test=test, level=level, r2=False)
        except EngineError as exc:
            entry["error"] = exc.message
            out_groups.append(entry)
            continue
        entry.update(f.pooled(), I2=f.I2, QE=f.QE, QEp=f.QEp)
        out_groups.append(entry)
        est.append(float(f.beta[0]))
        ses.append(float(f.se[0]))
    between: dict[str, Any] = {}
    if len(est) >= 2 and all(s > 0 for s in ses):
        b, s = np.array(est), np.array(ses)
        w = 1.0 / s**2
        mean = float(np.sum(w * b) / np.sum(w))
        q = float(np.sum(w * (b - mean) ** 2))
        between = {"Q": q, "df": len(est) - 1, "pval": float(special.chdtrc(len(est) - 1, q))}
    else:
        reasons["between_test"] = "fewer than two subgroups with a pooled estimate"
    moderator: dict[str, Any] = {}
    if len(levels) >= 2:
        X = np.column_stack([np.ones(y.size)] + [(lab == lev).astype(float) for lev in levels[1:]])
        names = ("intrcpt", *(f"group{lev}" for lev in levels[1:]))
        try:
            check_rank(X, names)
            f = fit_model(y, v, X, names, method=method, test=test, level=level, r2=False)
            moderator = {"QM": f.QM, "QMdf": list(f.QMdf), "QMp": f.QMp, "tau2": f.tau2, "I2": f.I2}
        except EngineError as exc:
            reasons["moderator_test"] = exc.message
    else:
        reasons["moderator_test"] = "only one subgroup"
    if math.isnan(moderator.get("QMp", 0.0)):
        reasons.setdefault("moderator_test", "QM p-value not available (no residual degrees of freedom)")
    return SubgroupsResult(
        levels=list(levels),
        groups=out_groups,
        moderator_test=moderator,
        between_test=between,
        na_reasons=reasons,
    )
