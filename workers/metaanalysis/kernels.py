"""The effect-size kernels of ``escalc()``: one per family of inputs, plus the reported statistics.

Each kernel takes validated float columns (``NaN`` where a value is missing) and returns
``yi``, ``vi`` and the known reasons for ``NaN``, as (row mask, reason) pairs in order of
precedence. Kernels run under ``np.errstate(all="ignore")``: division by zero and logs of zero are
expected for some rows and are turned into ``NaN`` with a reason by
:func:`~workers.metaanalysis.effect_sizes.effect_sizes_from_table`, which also applies metafor's
missing-value rules. The formulas are those of metafor 3.8-1 ``R/escalc.r`` with its defaults
(``vtype = "LS"``); the reference is named beside each.

Zero-cell handling (metafor's ``add``/``to``/``drop00``) lives here too: the 2x2-table, person-time
and proportion kernels use it, and so do ``rma.mh()`` and ``rma.peto()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Literal

import numpy as np
from scipy import special

from .errors import InvalidInputError

ZeroCellRule = Literal["all", "only0", "if0all", "none"]
ZERO_CELL_RULES: tuple[str, ...] = ("all", "only0", "if0all", "none")

Reasons = list[tuple[np.ndarray, str]]
Kernel = Callable[[str, dict[str, np.ndarray], float, str, bool], tuple[np.ndarray, np.ndarray, Reasons]]

_HEDGES_SMALL = "Hedges' bias correction needs n1i + n2i > 3"


# --------------------------------------------------------------------------------------------
# Zero-cell handling


def check_zero_cell_rule(to: str) -> None:
    """Refuse a ``to`` that is not one of :data:`ZERO_CELL_RULES`."""
    if to not in ZERO_CELL_RULES:
        raise InvalidInputError(
            f"unknown zero-cell rule to={to!r}; use one of {ZERO_CELL_RULES}", code="bad_option"
        )


def drop_double_zero(cells: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]) -> np.ndarray:
    """Rows where, for any pair of cells, both are zero (metafor's ``drop00``)."""
    mask = np.zeros(cells[0].shape, dtype=bool)
    for i, j in pairs:
        mask |= (cells[i] == 0) & (cells[j] == 0)
    return mask


def add_to_zero_cells(cells: Sequence[np.ndarray], add: float, to: str) -> list[np.ndarray]:
    """Add ``add`` to the cells of tables as metafor's ``add``/``to`` arguments specify.

    Parameters
    ----------
    cells : sequence of ndarray
        The count arrays of one kind of table (e.g. ``ai, bi, ci, di``); ``NaN`` stays ``NaN``.
    add : float
        Amount added (metafor's default is 1/2).
    to : {"all", "only0", "if0all", "none"}
        ``all``: every table; ``only0``: tables with at least one zero cell; ``if0all``: every
        table if any table has a zero cell; ``none``: no table.

    Returns
    -------
    list of ndarray
        New arrays; the input is not changed.

    Notes
    -----
    metafor 3.8-1 ``escalc()``, ``rma.mh()`` and ``rma.peto()`` (``to``/``add`` handling).
    """
    check_zero_cell_rule(to)
    out = [np.array(c, dtype=float) for c in cells]
    if to == "none" or add == 0:
        return out
    if to == "all":
        return [c + add for c in out]
    has_zero = np.zeros(out[0].shape, dtype=bool)
    for c in out:
        has_zero |= c == 0
    if to == "only0":
        return [np.where(has_zero, c + add, c) for c in out]
    # if0all
    return [c + add for c in out] if has_zero.any() else out


# --------------------------------------------------------------------------------------------
# Family kernels


def _table_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    ai, bi, ci, di = (c[k].copy() for k in ("ai", "bi", "ci", "di"))
    reasons: Reasons = []
    if drop00:
        # tables without events, or with only events, in both groups carry no information
        # about a ratio; metafor's drop00 makes them NA
        dropped = drop_double_zero((ai, bi, ci, di), ((0, 2), (1, 3)))
        for arr in (ai, bi, ci, di):
            arr[dropped] = np.nan
        reasons.append((dropped, "no events (or only events) in both groups: table dropped (drop00)"))
    raw_zero = (ai == 0) | (bi == 0) | (ci == 0) | (di == 0)
    ai, bi, ci, di = add_to_zero_cells((ai, bi, ci, di), add, to)
    n1i, n2i = ai + bi, ci + di
    p1i, p2i = ai / n1i, ci / n2i
    if measure == "RR":
        yi = np.log(p1i) - np.log(p2i)
        vi = 1 / ai - 1 / n1i + 1 / ci - 1 / n2i
        reasons.append((raw_zero, "a zero cell makes the log risk ratio infinite (no zero-cell correction)"))
    elif measure == "OR":
        yi = np.log(p1i / (1 - p1i)) - np.log(p2i / (1 - p2i))
        vi = 1 / ai + 1 / bi + 1 / ci + 1 / di
        reasons.append((raw_zero, "a zero cell makes the log odds ratio infinite (no zero-cell correction)"))
    elif measure == "RD":
        yi = p1i - p2i
        vi = p1i * (1 - p1i) / n1i + p2i * (1 - p2i) / n2i
        reasons.append(((n1i == 0) | (n2i == 0), "a group has no participants"))
    else:  # PETO: one-step log odds ratio (Yusuf et al. 1985)
        ni = n1i + n2i
        xt, yt = ai + ci, bi + di
        expected = xt * n1i / ni
        variance = xt * yt * (n1i / ni) * (n2i / ni) / (ni - 1)
        yi = (ai - expected) / variance
        vi = 1 / variance
        reasons.append(
            ((xt == 0) | (yt == 0), "no events or no non-events in the table: Peto's variance is 0")
        )
    return yi, vi, reasons


def _person_time_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    x1i, x2i = c["x1i"].copy(), c["x2i"].copy()
    t1i, t2i = c["t1i"], c["t2i"]
    reasons: Reasons = []
    if drop00:
        dropped = drop_double_zero((x1i, x2i), ((0, 1),))
        x1i[dropped] = np.nan
        x2i[dropped] = np.nan
        reasons.append((dropped, "no events in either group: study dropped (drop00)"))
    raw_zero = (x1i == 0) | (x2i == 0)
    x1i, x2i = add_to_zero_cells((x1i, x2i), add, to)
    ir1i, ir2i = x1i / t1i, x2i / t2i
    if measure == "IRR":
        yi = np.log(ir1i) - np.log(ir2i)
        vi = 1 / x1i + 1 / x2i
        reasons.append((raw_zero, "zero events make the log rate ratio infinite (no zero-cell correction)"))
    else:  # IRD
        yi = ir1i - ir2i
        vi = ir1i / t1i + ir2i / t2i
    return yi, vi, reasons


def hedges_correction(df: np.ndarray) -> np.ndarray:
    """Exact small-sample correction factor J(m) of Hedges (1981) for ``df`` = m degrees of
    freedom; NaN for m <= 1.

    ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, written with log-gamma, as metafor's
    ``.cmicalc`` (whose argument is ``mi``), because gamma(m/2) overflows for m >= 344.
    """
    m = np.asarray(df, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        cmi = np.exp(special.gammaln(m / 2) - np.log(np.sqrt(m / 2)) - special.gammaln((m - 1) / 2))
    return np.where(m > 1, cmi, np.nan)


def smd_from_d(di: np.ndarray, n1i: np.ndarray, n2i: np.ndarray) -> tuple[np.ndarray, np.ndarray, Reasons]:
    """Hedges' g and its large-sample variance from a standardised difference ``di``.

    Parameters
    ----------
    di : ndarray
        Cohen's d: from the means and the pooled SD, given, or from a t statistic
        (``ti sqrt(1/n1i + 1/n2i)``); metafor's ``escalc()`` takes all three through this formula.
    n1i, n2i : ndarray
        Group sizes.

    Returns
    -------
    yi, vi : ndarray
        ``yi = J(n1i + n2i - 2) di`` and ``vi = 1/n1i + 1/n2i + yi^2 / (2 (n1i + n2i))``.
    reasons : list of (ndarray, str)
        Rows where ``J`` is undefined (``n1i + n2i <= 3``).

    Notes
    -----
    Hedges (1981), J Educ Stat 6(2); metafor 3.8-1 ``escalc(measure = "SMD")``, ``vtype = "LS"``.
    """
    yi = hedges_correction(n1i + n2i - 2) * di
    vi = 1 / n1i + 1 / n2i + yi**2 / (2 * (n1i + n2i))
    return yi, vi, [(n1i + n2i - 2 <= 1, _HEDGES_SMALL)]


def _means_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    """Two groups' means and SDs: MD, SMD (Hedges 1981), SMDH (Bonett 2008), ROM.

    SMDH: ``J(m) (m1i - m2i) / s`` with ``s^2 = (sd1i^2 + sd2i^2) / 2``, ``m = n1i + n2i - 2``,
    and Bonett's (2008, Psychol Methods 13(2)) variance with the corrected ``yi`` inside, times
    ``J(m)^2``, as metafor 3.8-1 ``escalc(measure = "SMDH")`` with ``vtype = "LS"``.
    """
    m1i, sd1i, n1i, m2i, sd2i, n2i = (c[k] for k in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"))
    reasons: Reasons = []
    if measure == "MD":
        # heteroscedastic variance (metafor's default vtype "LS" = "UB" for MD)
        yi = m1i - m2i
        vi = sd1i**2 / n1i + sd2i**2 / n2i
    elif measure == "SMD":
        # Hedges' g: pooled SD, exact bias correction, large-sample variance (vtype "LS")
        sdpi = np.sqrt(((n1i - 1) * sd1i**2 + (n2i - 1) * sd2i**2) / (n1i + n2i - 2))
        yi, vi, reasons = smd_from_d((m1i - m2i) / sdpi, n1i, n2i)
        reasons.append((sdpi == 0, "the pooled standard deviation is 0"))
    elif measure == "SMDH":
        # Bonett (2008): the SD is the root of the unweighted mean of the two variances; metafor
        # multiplies Bonett's variance (with the corrected yi inside) by J^2 (vtype "LS")
        cmi = hedges_correction(n1i + n2i - 2)
        var1, var2 = sd1i**2, sd2i**2
        s2 = (var1 + var2) / 2
        yi = cmi * (m1i - m2i) / np.sqrt(s2)
        vi = cmi**2 * (
            yi**2 * (var1**2 / (n1i - 1) + var2**2 / (n2i - 1)) / (2 * (var1 + var2) ** 2)
            + (var1 / (n1i - 1) + var2 / (n2i - 1)) / s2
        )
        reasons.append((n1i + n2i - 2 <= 1, _HEDGES_SMALL))
        reasons.append(((n1i == 1) | (n2i == 1), "the variance of SMDH needs at least 2 per group"))
        reasons.append((s2 == 0, "both standard deviations are 0"))
    else:  # ROM: log ratio of means, large-sample variance (vtype "LS"), no bias correction (3.8-1)
        yi = np.log(m1i / m2i)
        vi = sd1i**2 / (n1i * m1i**2) + sd2i**2 / (n2i * m2i**2)
        reasons.append(
            (
                (m1i == 0) | (m2i == 0) | (m1i / m2i < 0),
                "the log ratio of means needs two non-zero means of the same sign",
            )
        )
    return yi, vi, reasons


def _change_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    """Change scores of one group measured twice: SMCR, SMCC, MC (``m1i`` post, ``m2i`` pre).

    SMCR (raw-score standardisation, Becker 1988): ``J(ni - 1) (m1i - m2i) / sd1i`` with
    ``sd1i`` the pre-test SD, variance ``2 (1 - ri) / ni + yi^2 / (2 ni)``. SMCC (change-score
    standardisation, Gibbons et al. 1993): ``J(ni - 1) (m1i - m2i) / sdd`` with ``sdd^2 =
    sd1i^2 + sd2i^2 - 2 ri sd1i sd2i``, variance ``1 / ni + yi^2 / (2 ni)``. MC: ``m1i - m2i``
    with variance ``sdd^2 / ni``. Morris (2008), Organ Res Methods 11(2); metafor 3.8-1
    ``escalc()``, ``vtype = "LS"``.
    """
    m1i, m2i, sd1i, ni, ri = (c[k] for k in ("m1i", "m2i", "sd1i", "ni", "ri"))
    small = (ni - 1 <= 1, "the bias correction J(ni - 1) needs ni > 2")
    if measure == "SMCR":
        # standardised by the pre-test SD (SMCR reads no post-test SD)
        yi = hedges_correction(ni - 1) * (m1i - m2i) / sd1i
        vi = 2 * (1 - ri) / ni + yi**2 / (2 * ni)
        return yi, vi, [small, (sd1i == 0, "the pre-test standard deviation (sd1i) is 0")]
    sd2i = c["sd2i"]
    # variance of the change scores, from the two SDs and their correlation
    var_d = sd1i**2 + sd2i**2 - 2 * ri * sd1i * sd2i
    if measure == "MC":
        return m1i - m2i, var_d / ni, []
    # SMCC: standardised by the SD of the change scores
    sd_d = np.sqrt(var_d)
    yi = hedges_correction(ni - 1) * (m1i - m2i) / sd_d
    vi = 1 / ni + yi**2 / (2 * ni)
    return yi, vi, [small, (sd_d == 0, "the standard deviation of the change scores is 0")]


def _mean_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    """A single group's raw mean: ``yi = mi``, ``vi = sdi^2 / ni`` (MN)."""
    return c["mi"].copy(), c["sdi"] ** 2 / c["ni"], []


def _correlation_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    ri, ni = c["ri"], c["ni"]
    reasons: Reasons = []
    if measure == "COR":
        yi = ri.copy()
        vi = (1 - ri**2) ** 2 / (ni - 1)
    else:  # ZCOR: Fisher's r-to-z
        yi = np.arctanh(ri)
        vi = 1 / (ni - 3)
        reasons.append((np.abs(ri) == 1, "Fisher's z is infinite for |ri| = 1"))
    return yi, vi, reasons


def _proportion_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    xi, mi = add_to_zero_cells((c["xi"], c["mi"]), add, to)
    raw_zero = (c["xi"] == 0) | (c["mi"] == 0)
    ni = xi + mi
    pri = xi / ni
    reasons: Reasons = []
    if measure == "PR":
        yi = pri
        vi = pri * (1 - pri) / ni
    else:  # PLO: logit
        yi = np.log(pri / (1 - pri))
        vi = 1 / xi + 1 / mi
        reasons.append(
            (raw_zero, "zero events or zero non-events make the logit infinite (no zero-cell correction)"),
        )
    return yi, vi, reasons


def _generic_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    # GEN's values are its inputs (a row lacking one keeps the other, as in metafor); the input
    # forms give the same numbers for every complete row
    return c["yi"].copy(), np.where(np.isnan(c["vi"]), c["sei"] ** 2, c["vi"]), []


#: The kernel of each family of raw inputs.
KERNELS: Mapping[str, Kernel] = {
    "table": _table_kernel,
    "person_time": _person_time_kernel,
    "means": _means_kernel,
    "change": _change_kernel,
    "mean": _mean_kernel,
    "correlation": _correlation_kernel,
    "proportion": _proportion_kernel,
    "generic": _generic_kernel,
}


def form_kernel(form: str, c: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, Reasons]:
    """Effect sizes from an input form other than the raw inputs, for every row.

    Parameters
    ----------
    form : {"yi_vi", "yi_sei", "di", "ti"}
        The form (see :mod:`workers.metaanalysis.measures`).
    c : dict of str to ndarray
        The study table's columns.

    Returns
    -------
    yi, vi : ndarray
        ``yi_vi``: ``yi`` and ``vi`` as given; ``yi_sei``: ``yi`` and ``sei^2``; ``di``: Hedges'
        g from Cohen's d; ``ti``: Hedges' g from ``di = ti sqrt(1/n1i + 1/n2i)``.
    reasons : list of (ndarray, str)
        Known reasons for ``NaN``.

    Notes
    -----
    metafor 3.8-1 ``escalc()``: ``yi``/``vi``/``sei`` given (``replace = FALSE`` keeps them),
    the ``di`` and ``ti`` arguments of ``measure = "SMD"`` (via :func:`smd_from_d`; Hedges 1981).
    """
    if form == "yi_vi":
        return c["yi"].copy(), c["vi"].copy(), []
    if form == "yi_sei":
        return c["yi"].copy(), c["sei"] ** 2, []
    n1i, n2i = c["n1i"], c["n2i"]
    if form == "di":
        return smd_from_d(c["di"], n1i, n2i)
    if form == "ti":
        return smd_from_d(c["ti"] * np.sqrt(1 / n1i + 1 / n2i), n1i, n2i)
    raise ValueError(f"no kernel for input form {form!r}")
