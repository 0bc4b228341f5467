"""Fixed-effect pooling of 2x2 tables and person-time data: Mantel-Haenszel and Peto.

These methods pool the tables themselves rather than per-study effect sizes, so they stay valid
with sparse data where inverse-variance weights break down. Definitions follow metafor 3.8-1
``rma.mh()`` and ``rma.peto()`` (Viechtbauer 2010), including their two-stage zero-cell
settings: the first element of ``add``/``to``/``drop00`` applies to the per-study effect sizes
used for the heterogeneity test, the second to the tables that are pooled.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import stats

from .effect_sizes import StudyTable, add_to_zero_cells, effect_sizes_from_table, read_study_table
from .errors import InsufficientDataError, InvalidInputError
from .estimators.inference import alpha_from_level, i2_h2, wald_tail
from .jsonable import ResultBase
from .measures import MANTEL_HAENSZEL_MEASURES, MANTEL_HAENSZEL_TESTS
from .measures import get as get_measure
from .spec import check_level

#: The measures ``rma.mh()`` pools (from the registry).
MH_MEASURES: tuple[str, ...] = MANTEL_HAENSZEL_MEASURES

_DROPPED = "no events (or only events) in both groups: table dropped (drop00)"


@dataclasses.dataclass(frozen=True, eq=False)
class _PooledTablesResult(ResultBase):
    """Fields shared by the Mantel-Haenszel and the Peto result.

    Attributes
    ----------
    measure : str
        Effect measure; OR, RR and IRR are on the log scale.
    level : float
        Confidence level in percent.
    k : int
        Number of tables pooled.
    k_yi : int
        Number of studies with a finite effect size, used by the heterogeneity test.
    rows_used : tuple of int
        Input rows of the pooled tables.
    omitted : dict of int to str
        Input rows left out of the pooled estimate, with the reason.
    beta, se, stat, pval, ci_lb, ci_ub : float
        Pooled estimate, its standard error, z statistic, two-sided p-value and confidence limits.
    QE, QEp : float
        Cochran's Q test of heterogeneity (k_yi - 1 df) and its p-value.
    I2, H2 : float
        I² (percent, clamped at 0) and H² = QE / (k_yi - 1), not clamped, as in metafor.
    na_reasons : dict of str to str
        Why each ``NaN`` field is missing.
    """

    measure: str
    level: float
    k: int
    k_yi: int
    rows_used: tuple[int, ...]
    omitted: dict[int, str]
    # beta..ci_ub: the Wald summary every pooled result carries (as TrimfillResult in bias.py);
    # listed per result to keep each field order.
    beta: float
    se: float
    stat: float
    pval: float
    ci_lb: float
    ci_ub: float
    QE: float
    QEp: float
    I2: float
    H2: float
    na_reasons: dict[str, str]


@dataclasses.dataclass(frozen=True, eq=False)
class MantelHaenszelResult(_PooledTablesResult):
    """Mantel-Haenszel pooled estimate (``rma.mh()``).

    Attributes
    ----------
    CO, COp : float
        Cochran's test that the common OR is 1 (OR only).
    MH, MHp : float
        Cochran-Mantel-Haenszel test that the common OR (or IRR) is 1 (OR and IRR only).
    BD, BDp : float
        Breslow-Day test of homogeneous odds ratios (OR only).
    TA, TAp : float
        Tarone's corrected Breslow-Day test (OR only).
    k_pos : int or None
        Tables entering the Breslow-Day test (OR only).
    correct : bool
        Whether the CO and MH tests use the continuity correction.
    """

    CO: float
    COp: float
    MH: float
    MHp: float
    BD: float
    BDp: float
    TA: float
    TAp: float
    k_pos: int | None
    correct: bool


# the header every frozen engine result has (see EffectSizes): a convention, not repeated logic
@dataclasses.dataclass(frozen=True, eq=False)
class PetoResult(_PooledTablesResult):
    """Peto's one-step pooled log odds ratio (``rma.peto()``).

    Attributes
    ----------
    k_pos : int
        Tables with a positive hypergeometric variance (they carry information).
    """

    k_pos: int


# --------------------------------------------------------------------------------------------


def _pair(value: Any, second: Any, name: str) -> tuple[Any, Any]:
    """metafor's convention: a single value sets the first stage only, the second keeps its default."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise InvalidInputError(f"{name} must be one value or two", code="bad_option")
        return value[0], value[1]
    return value, second


def _alpha(level: float) -> float:
    """alpha of a confidence level given in percent (metafor's ``.level()``)."""
    return alpha_from_level(check_level(level))


def _is_person_time(measure: str) -> bool:
    return get_measure(measure).family == "person_time"


def _cell_names(measure: str) -> tuple[str, ...]:
    return ("x1i", "x2i") if _is_person_time(measure) else ("ai", "bi", "ci", "di")


def _select_tables(table: StudyTable, drop00: bool) -> tuple[np.ndarray, dict[int, str]]:
    """Rows whose table enters the pooled estimate, and the reason for each other row.

    Tables with a missing count are left out, as metafor does under ``na.omit``; with ``drop00``
    tables without events (or with only events) in both groups are too.
    """
    cols = table.columns
    used = np.ones(table.n_rows, dtype=bool)
    omitted: dict[int, str] = {}
    for row, names in table.missing.items():
        used[row] = False
        omitted[row] = "missing value in " + ", ".join(names)
    if drop00:
        if _is_person_time(table.measure):
            double_zero = (cols["x1i"] == 0) & (cols["x2i"] == 0)
        else:
            double_zero = ((cols["ai"] == 0) & (cols["ci"] == 0)) | ((cols["bi"] == 0) & (cols["di"] == 0))
        for row in np.flatnonzero(double_zero & used).tolist():
            omitted[row] = _DROPPED
        used &= ~double_zero
    if not used.any():
        raise InsufficientDataError(
            "no table is left to pool (all have missing values or no events in both groups)",
            code="no_tables",
        )
    return used, omitted


def _heterogeneity(
    yi: np.ndarray, vi: np.ndarray, beta: float, na_reasons: dict[str, str]
) -> tuple[float, float, float, float]:
    """Cochran's Q around ``beta`` with inverse-variance weights, with I² and H² (as in rma.mh)."""
    k_yi = yi.size
    if k_yi <= 1:
        return 0.0, 1.0, 0.0, 1.0
    df = k_yi - 1
    with np.errstate(divide="ignore", invalid="ignore"):
        qe = float(np.sum((yi - beta) ** 2 / vi))
    if not np.isfinite(qe):
        # only reachable with the zero-cell correction switched off (to="none"): a study with
        # sampling variance 0 has infinite weight
        for name in ("QE", "QEp", "I2", "H2"):
            na_reasons[name] = "a study has sampling variance 0, so Q is undefined"
        return np.nan, np.nan, np.nan, np.nan
    qe = max(0.0, qe)
    return qe, float(stats.chi2.sf(qe, df)), _i2(qe, df), qe / df


def _clamp0(value: float) -> float:
    """max(0, value) that keeps NaN, as R's max() does (Python's max(0.0, nan) returns 0.0)."""
    return value if np.isnan(value) else max(0.0, value)


def _i2(qe: float, df: int) -> float:
    return float(i2_h2(qe, df, math.nan, math.nan, equal_effects=True)[0])


def _z_summary(
    beta: float, se: float, alpha: float, na_reasons: dict[str, str]
) -> tuple[float, float, float, float]:
    """z statistic, two-sided p-value and confidence limits of a pooled estimate: the Wald tail
    every pooled estimate shares (:func:`~.estimators.inference.wald_tail`)."""
    if not se > 0:
        # every table has risks of exactly 0 or 1 (possible for RD without correction); metafor
        # divides by zero here and reports z = +-Inf, p = 0, which would read as certainty
        na_reasons["stat"] = na_reasons["pval"] = "the standard error is 0: no test is possible"
        return np.nan, np.nan, beta, beta
    stat, pval, ci_lb, ci_ub = wald_tail(np.asarray(beta), np.asarray(se), alpha, math.nan)
    return float(stat), float(pval), float(ci_lb), float(ci_ub)


def _shared_fields(
    level: float,
    used: np.ndarray,
    omitted: dict[int, str],
    k_yi: int,
    pooled: tuple[float, ...],
    heterogeneity: tuple[float, float, float, float],
    na_reasons: dict[str, str],
) -> dict[str, Any]:
    """The fields of :class:`_PooledTablesResult` by name, from the pooled estimate's
    ``(beta, se, stat, pval, ci_lb, ci_ub)`` and the ``(QE, QEp, I2, H2)`` of both methods."""
    return {
        "level": float(level),
        "k": int(used.sum()),
        "k_yi": k_yi,
        "rows_used": tuple(int(i) for i in np.flatnonzero(used)),
        "omitted": omitted,
        **dict(zip(("beta", "se", "stat", "pval", "ci_lb", "ci_ub"), pooled, strict=True)),
        **dict(zip(("QE", "QEp", "I2", "H2"), heterogeneity, strict=True)),
        "na_reasons": na_reasons,
    }


def rma_mh(
    measure: str,
    data: Mapping[str, Any],
    *,
    level: float = 95.0,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
    correct: bool = True,
) -> MantelHaenszelResult:
    """Mantel-Haenszel fixed-effect meta-analysis of 2x2 tables or person-time data.

    Parameters
    ----------
    measure : {"OR", "RR", "RD", "IRR", "IRD"}
        Effect measure; 2x2 tables (``ai bi ci di`` or ``ai n1i ci n2i``) for OR, RR, RD,
        person-time data (``x1i t1i x2i t2i``) for IRR, IRD.
    data : mapping of str to array_like
        Columns by metafor's argument names; ``None``/``NaN`` mark missing values.
    level : float, default 95
        Confidence level in percent.
    add, to, drop00 : single value or pair
        Zero-cell handling, metafor's defaults. The first element applies to the per-study
        effect sizes of the heterogeneity test (``add=1/2``, ``to="only0"``, ``drop00=True``),
        the second to the pooled tables (``add=0``, ``to="none"``, ``drop00=False``: the
        Mantel-Haenszel estimators need no correction). A single value sets the first element.
    correct : bool, default True
        Continuity correction in Cochran's and the Cochran-Mantel-Haenszel test.

    Returns
    -------
    MantelHaenszelResult

    Raises
    ------
    InvalidInputError
        Unknown measure or option, or invalid data (see
        :func:`~workers.metaanalysis.effect_sizes.read_study_table`).
    InsufficientDataError
        No table is left to pool.

    Notes
    -----
    Source: metafor 3.8-1 ``rma.mh()``. Estimators: Mantel & Haenszel (1959) for OR with the
    variance of Robins, Breslow & Greenland (1986); RR with the variance of Greenland & Robins
    (1985); RD with the variance of Sato, Greenland & Robins (1989); IRR and IRD after Rothman,
    Greenland & Lash (2008, ch. 15). Tests: Cochran's and the Cochran-Mantel-Haenszel test,
    Breslow & Day (1980) and Tarone (1985). The heterogeneity statistic is the inverse-variance
    Q of the per-study effect sizes around the pooled estimate.
    """
    if measure not in MH_MEASURES:
        raise InvalidInputError(
            f"the Mantel-Haenszel method is defined for {', '.join(MH_MEASURES)}, not {measure!r}",
            code="unknown_measure",
        )
    add_es, add_mh = _pair(add, 0.0, "add")
    to_es, to_mh = _pair(to, "none", "to")
    drop_es, drop_mh = _pair(drop00, False, "drop00")
    alpha = _alpha(level)

    table = read_study_table(measure, data)
    es = effect_sizes_from_table(table, add=add_es, to=to_es, drop00=drop_es)
    used, omitted = _select_tables(table, drop_mh)
    cells = add_to_zero_cells([table.columns[c][used] for c in _cell_names(measure)], add_mh, to_mh)
    na_reasons: dict[str, str] = {}
    tests = dict.fromkeys(("CO", "COp", "MH", "MHp", "BD", "BDp", "TA", "TAp"), np.nan)
    k_pos: int | None = None

    with np.errstate(divide="ignore", invalid="ignore"):
        if not _is_person_time(measure):
            ai, bi, ci, di = cells
            n1i, n2i = ai + bi, ci + di
            ni = n1i + n2i
            if measure == "OR":
                beta, se, undefined = _mh_or(ai, bi, ci, di, ni)
                tests, k_pos = _mh_or_tests(ai, bi, ci, di, beta, correct, na_reasons)
            elif measure == "RR":
                beta, se, undefined = _mh_rr(ai, ci, n1i, n2i, ni)
            else:
                beta, se, undefined = _mh_rd(ai, ci, n1i, n2i, ni)
        else:
            x1i, x2i = cells
            t1i, t2i = table.columns["t1i"][used], table.columns["t2i"][used]
            if measure == "IRR":
                beta, se, undefined = _mh_irr(x1i, x2i, t1i, t2i)
                tests["MH"], tests["MHp"] = _mh_irr_test(x1i, x2i, t1i, t2i, correct, na_reasons)
            else:
                beta, se, undefined = _mh_ird(x1i, x2i, t1i, t2i)

    if undefined:
        summary: tuple[float, ...] = (np.nan,) * 4
        for name in ("beta", "se", "stat", "pval", "ci_lb", "ci_ub", "QE", "QEp", "I2", "H2"):
            na_reasons[name] = undefined
        heterogeneity = (np.nan, np.nan, np.nan, np.nan)
    else:
        summary = _z_summary(beta, se, alpha, na_reasons)
        usable = es.usable
        heterogeneity = _heterogeneity(es.yi[usable], es.vi[usable], beta, na_reasons)

    for name, measures in MANTEL_HAENSZEL_TESTS.items():
        if measure not in measures:
            why = f"computed for {' and '.join(measures)} only"
            na_reasons.setdefault(name, why)
            na_reasons.setdefault(name + "p", why)
    for name, value in tests.items():
        if np.isnan(value):
            na_reasons.setdefault(name, "the test statistic is undefined for these tables")

    return MantelHaenszelResult(
        measure=measure,
        **_shared_fields(
            level, used, omitted, int(es.usable.sum()), (beta, se, *summary), heterogeneity, na_reasons
        ),
        CO=tests["CO"],
        COp=tests["COp"],
        MH=tests["MH"],
        MHp=tests["MHp"],
        BD=tests["BD"],
        BDp=tests["BDp"],
        TA=tests["TA"],
        TAp=tests["TAp"],
        k_pos=k_pos,
        correct=bool(correct),
    )


# Each estimator returns (beta, se, reason): the reason is "" when beta is defined.


def _mh_or(ai, bi, ci, di, ni) -> tuple[float, float, str]:
    """Mantel-Haenszel log odds ratio with the Robins-Breslow-Greenland (1986) variance."""
    pi, qi = (ai + di) / ni, (bi + ci) / ni
    ri, si = ai * di / ni, bi * ci / ni
    r, s = float(ri.sum()), float(si.sum())
    if r == 0 or s == 0:
        return (
            np.nan,
            np.nan,
            "the Mantel-Haenszel odds ratio is 0 or infinite (all ai*di or all bi*ci are 0)",
        )
    var = 0.5 * (np.sum(pi * ri) / r**2 + np.sum(pi * si + qi * ri) / (r * s) + np.sum(qi * si) / s**2)
    return float(np.log(r / s)), float(np.sqrt(var)), ""


def _mh_or_tests(ai, bi, ci, di, beta, correct, na_reasons) -> tuple[dict[str, float], int]:
    """Cochran, Cochran-Mantel-Haenszel, Breslow-Day and Tarone tests for a common odds ratio."""
    n1i, n2i = ai + bi, ci + di
    ni = n1i + n2i
    xt, yt = ai + ci, bi + di
    out = dict.fromkeys(("CO", "COp", "MH", "MHp", "BD", "BDp", "TA", "TAp"), np.nan)
    if xt.sum() == 0 or yt.sum() == 0:
        for name in ("CO", "COp", "MH", "MHp"):
            na_reasons[name] = "no events (or only events) in any table"
    else:
        deviation = (abs(np.sum(ai - n1i / ni * xt)) - (0.5 if correct else 0.0)) ** 2
        out["CO"] = float(deviation / np.sum(n1i / ni * (n2i / ni) * (xt * (yt / ni))))
        out["MH"] = float(deviation / np.sum(n1i / ni * (n2i / ni) * (xt * (yt / (ni - 1)))))
        out["COp"] = float(stats.chi2.sf(out["CO"], 1))
        out["MHp"] = float(stats.chi2.sf(out["MH"], 1))
    if np.isnan(beta):
        for name in ("BD", "BDp", "TA", "TAp"):
            na_reasons[name] = "needs the Mantel-Haenszel odds ratio, which is undefined"
        return out, 0
    # expected ai under the common odds ratio psi: the root in (0, min(n1i, xt)) of a quadratic
    psi = float(np.exp(beta))
    if psi == 1:
        n11 = n1i / ni * xt
    else:
        a = psi * (n1i + xt) + (n2i - xt)
        b = np.sqrt(a**2 - 4 * n1i * xt * psi * (psi - 1))
        n11 = (a - b) / (2 * (psi - 1))
    pos = (n11 > 0) & (xt > 0) & (yt > 0)
    k_pos = int(pos.sum())
    n11 = n11[pos]
    n12 = n1i[pos] - n11
    n21 = xt[pos] - n11
    n22 = n11 - n1i[pos] - xt[pos] + ni[pos]
    dev = ai[pos] - n11
    inv_var = 1 / n11 + 1 / n12 + 1 / n21 + 1 / n22
    out["BD"] = _clamp0(float(np.sum(dev**2 * inv_var)))
    out["TA"] = _clamp0(out["BD"] - float(np.sum(dev) ** 2 / np.sum(1 / inv_var)))
    if k_pos > 1:
        out["BDp"] = float(stats.chi2.sf(out["BD"], k_pos - 1))
        out["TAp"] = float(stats.chi2.sf(out["TA"], k_pos - 1))
    else:
        na_reasons["BDp"] = na_reasons["TAp"] = "needs at least two informative tables"
    return out, k_pos


def _mh_rr(ai, ci, n1i, n2i, ni) -> tuple[float, float, str]:
    """Mantel-Haenszel log risk ratio with the Greenland-Robins (1985) variance."""
    if ai.sum() == 0 or ci.sum() == 0:
        return np.nan, np.nan, "no events in one of the groups in any table: the risk ratio is 0 or infinite"
    r, s = float(np.sum(ai * (n2i / ni))), float(np.sum(ci * (n1i / ni)))
    var = np.sum(n1i / ni * (n2i / ni) * (ai + ci) - ai / ni * ci) / (r * s)
    return float(np.log(r / s)), float(np.sqrt(var)), ""


def _mh_rd(ai, ci, n1i, n2i, ni) -> tuple[float, float, str]:
    """Mantel-Haenszel risk difference with the Sato-Greenland-Robins (1989) variance.

    This variance is consistent in both the sparse-data and the large-strata limit (the
    Greenland-Robins 1985 one that Stata's metan uses is not).
    """
    w = n1i * (n2i / ni)
    beta = float(np.sum(ai * (n2i / ni) - ci * (n1i / ni)) / w.sum())
    p = np.sum(ci * (n1i / ni) ** 2 - ai * (n2i / ni) ** 2 + n1i / ni * (n2i / ni) * (n2i - n1i) / 2)
    q = np.sum(ai * (n2i - ci) / ni + ci * (n1i - ai) / ni) / 2
    return beta, float(np.sqrt((beta * p + q) / w.sum() ** 2)), ""


def _mh_irr(x1i, x2i, t1i, t2i) -> tuple[float, float, str]:
    """Mantel-Haenszel log incidence rate ratio (Rothman, Greenland & Lash 2008)."""
    if x1i.sum() == 0 or x2i.sum() == 0:
        return np.nan, np.nan, "no events in one of the groups in any study: the rate ratio is 0 or infinite"
    ti = t1i + t2i
    r, s = float(np.sum(x1i * (t2i / ti))), float(np.sum(x2i * (t1i / ti)))
    var = np.sum(t1i / ti * (t2i / ti) * (x1i + x2i)) / (r * s)
    return float(np.log(r / s)), float(np.sqrt(var)), ""


def _mh_irr_test(x1i, x2i, t1i, t2i, correct, na_reasons) -> tuple[float, float]:
    """Mantel-Haenszel test that the common rate ratio is 1."""
    ti = t1i + t2i
    xt = x1i + x2i
    if xt.sum() == 0:
        na_reasons["MH"] = na_reasons["MHp"] = "no events in any study"
        return np.nan, np.nan
    deviation = (abs(np.sum(x1i - xt * (t1i / ti))) - (0.5 if correct else 0.0)) ** 2
    mh = deviation / np.sum(xt * (t1i / ti) * (t2i / ti))
    return float(mh), float(stats.chi2.sf(mh, 1))


def _mh_ird(x1i, x2i, t1i, t2i) -> tuple[float, float, str]:
    """Mantel-Haenszel incidence rate difference (Rothman, Greenland & Lash 2008, ch. 15)."""
    ti = t1i + t2i
    w = t1i / ti * t2i
    beta = float(np.sum((x1i * t2i - x2i * t1i) / ti) / w.sum())
    se = float(np.sqrt(np.sum(w**2 * (x1i / t1i**2 + x2i / t2i**2))) / w.sum())
    return beta, se, ""


# --------------------------------------------------------------------------------------------


def rma_peto(
    data: Mapping[str, Any],
    *,
    level: float = 95.0,
    add: float | tuple[float, float] = 0.5,
    to: str | tuple[str, str] = "only0",
    drop00: bool | tuple[bool, bool] = True,
) -> PetoResult:
    """Peto's one-step fixed-effect meta-analysis of 2x2 tables (log odds ratio).

    Parameters
    ----------
    data : mapping of str to array_like
        2x2 tables as ``ai bi ci di`` (or ``ai n1i ci n2i``); ``None``/``NaN`` mark missing values.
    level : float, default 95
        Confidence level in percent.
    add, to, drop00 : single value or pair
        As in :func:`rma_mh` (first element: per-study Peto effect sizes; second: the tables
        pooled, defaults ``add=0``, ``to="none"``, ``drop00=False``).

    Returns
    -------
    PetoResult

    Raises
    ------
    InvalidInputError
        Invalid option or data.
    InsufficientDataError
        No table is left, or no table has both outcomes (the pooled variance is 0).

    Notes
    -----
    Source: metafor 3.8-1 ``rma.peto()``; Yusuf, Peto, Lewis, Collins & Sleight (1985). With
    ``O - E`` the observed minus the hypergeometric expected events in group 1 and ``V`` the
    hypergeometric variance, ``beta = sum(O - E) / sum(V)`` and ``se = 1 / sqrt(sum(V))``; the
    heterogeneity statistic is ``sum((O - E)^2 / V) - sum(O - E)^2 / sum(V)`` over tables with
    ``V > 0``, on ``k_yi - 1`` degrees of freedom.
    """
    add_es, add_peto = _pair(add, 0.0, "add")
    to_es, to_peto = _pair(to, "none", "to")
    drop_es, drop_peto = _pair(drop00, False, "drop00")
    alpha = _alpha(level)

    table = read_study_table("PETO", data)
    es = effect_sizes_from_table(table, add=add_es, to=to_es, drop00=drop_es)
    used, omitted = _select_tables(table, drop_peto)
    ai, bi, ci, di = add_to_zero_cells(
        [table.columns[c][used] for c in ("ai", "bi", "ci", "di")], add_peto, to_peto
    )
    n1i, n2i = ai + bi, ci + di
    ni = n1i + n2i
    xt, yt = ai + ci, bi + di
    with np.errstate(divide="ignore", invalid="ignore"):
        expected = xt * n1i / ni
        # hypergeometric variance; 0 for tables without events or without non-events
        variance = xt * yt * (n1i / ni) * (n2i / ni) / (ni - 1)
    sum_v = float(np.nansum(variance))
    if sum_v == 0:
        raise InsufficientDataError(
            "one of the two outcomes never occurred in any table: Peto's method cannot be used",
            code="no_information",
        )
    o_minus_e = ai - expected
    beta = float(np.sum(o_minus_e) / sum_v)
    se = float(np.sqrt(1 / sum_v))
    na_reasons: dict[str, str] = {}
    summary = _z_summary(beta, se, alpha, na_reasons)

    informative = variance > 0
    k_pos = int(informative.sum())
    k_yi = int(es.usable.sum())
    qe = _clamp0(
        float(np.sum(o_minus_e[informative] ** 2 / variance[informative]) - np.sum(o_minus_e) ** 2 / sum_v)
    )
    if k_pos > 1:
        df = k_yi - 1
        qep, i2, h2 = float(stats.chi2.sf(qe, df)), _i2(qe, df), qe / df
    else:
        # metafor reports the test as uninformative rather than missing here
        qep, i2, h2 = 1.0, 0.0, 1.0

    return PetoResult(
        measure="OR",
        **_shared_fields(level, used, omitted, k_yi, (beta, se, *summary), (qe, qep, i2, h2), na_reasons),
        k_pos=k_pos,
    )
