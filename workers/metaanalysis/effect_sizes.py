"""Effect sizes and their sampling variances, as R's ``metafor::escalc()`` computes them.

The definitions, defaults and missing-value rules follow metafor 3.8-1 (Viechtbauer 2010,
``R/escalc.r``): the platform's numbers are checked against that version. Every row of the
input gives one ``(yi, vi)`` pair; a row that cannot give one gets ``NaN`` and a reason in
``EffectSizes.na_reasons``, exactly where metafor gives ``NA``.

Input problems that metafor refuses with an error (negative counts, events above the group
size, |r| > 1, ...) raise :class:`InvalidStudyDataError`, listing every offending row and column
at once so that a data manager can fix a file in one pass.

Rows are numbered from 0 in the order given (the caller maps them to spreadsheet lines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np
from scipy import special

from .errors import EngineError, InvalidInputError
from .measures import REGISTRY
from .results import ResultBase

ZeroCellRule = Literal["all", "only0", "if0all", "none"]
ZERO_CELL_RULES: tuple[str, ...] = ("all", "only0", "if0all", "none")

#: Columns each measure reads, in metafor's argument names, from the registry. A tuple inside the
#: tuple lists alternatives: for 2x2 tables ``bi`` may be replaced by ``n1i`` (then
#: ``bi = n1i - ai``), as in metafor; for proportions ``ni`` may be replaced by ``mi`` (non-events).
MEASURE_COLUMNS: Mapping[str, tuple[str | tuple[str, ...], ...]] = {
    code: tuple(g[0] if len(g) == 1 else g for g in m.groups) for code, m in REGISTRY.items()
}

_NOT_FINITE = "the effect size or its sampling variance is not finite for these values"


class InvalidStudyDataError(InvalidInputError):
    """One or more rows hold values outside their domain.

    ``row`` and ``column`` point at the first problem; ``problems`` holds every one, each an
    :class:`~workers.metaanalysis.errors.InvalidInputError` with its own row and column.
    """

    def __init__(self, problems: Sequence[EngineError]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(first.message + more, code=first.code, row=first.row, column=first.column)
        self.problems: tuple[EngineError, ...] = tuple(problems)

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        out["problems"] = [p.to_dict() for p in self.problems]
        return out


@dataclasses.dataclass(frozen=True, eq=False)
class StudyTable:
    """Validated numeric input for one measure: what :func:`read_study_table` returns.

    Attributes
    ----------
    measure : str
        metafor's measure code.
    columns : dict of str to ndarray
        One float array per column the measure uses, ``NaN`` where a value is missing. Derived
        columns are filled in (``bi`` from ``n1i - ai``, ``mi`` from ``ni - xi``, ``vi`` from
        ``sei**2``).
    missing : dict of int to tuple of str
        Rows lacking a needed value, with the columns that are missing.
    n_rows : int
        Number of input rows.
    """

    measure: str
    columns: dict[str, np.ndarray]
    missing: dict[int, tuple[str, ...]]
    n_rows: int


# A frozen result with a numpydoc Attributes section, the form of every engine result (the
# header mantel_haenszel's results share is that convention, not repeated logic).
@dataclasses.dataclass(frozen=True, eq=False)
class EffectSizes(ResultBase):
    """Observed effect sizes and sampling variances, one per input row (``escalc()``).

    Attributes
    ----------
    measure : str
        metafor's measure code. Ratio measures (OR, RR, ROM, IRR, PETO) are on the log scale.
    yi, vi : ndarray
        Effect size and sampling variance per row; ``NaN`` where metafor gives ``NA``.
    ni : ndarray
        Unadjusted total sample size per row (metafor's ``attr(yi, "ni")``): ``ai+bi+ci+di``,
        ``n1i+n2i``, ``ni``, or for person-time data the total person-time ``t1i+t2i``.
    na_reasons : dict of int to str
        For every row where ``yi`` or ``vi`` is ``NaN``: why.
    add, to, drop00 : float, str, bool
        The zero-cell settings used (they change the numbers, so they belong to the result).
    """

    measure: str
    yi: np.ndarray
    vi: np.ndarray
    ni: np.ndarray
    na_reasons: dict[int, str]
    add: float
    to: str
    drop00: bool

    @property
    def usable(self) -> np.ndarray:
        """Boolean mask of the rows a model can use (both ``yi`` and ``vi`` finite)."""
        return np.isfinite(self.yi) & np.isfinite(self.vi)


# --------------------------------------------------------------------------------------------
# Reading and validating input


def _column_values(values: Any, name: str, problems: list[EngineError]) -> np.ndarray:
    """Convert one input column to float, ``None``/``NaN`` meaning missing.

    numpy would silently turn ``"12"`` or ``True`` into numbers; an upload with text in a numeric
    column is a data error the data manager must see, so only real numbers are accepted.
    """
    arr = np.asarray(values)
    if arr.ndim != 1:
        problems.append(InvalidInputError(f"column {name!r} must be one-dimensional", column=name))
        return np.full(arr.size, np.nan)
    if arr.dtype.kind in "fiu":
        return arr.astype(float)
    out = np.empty(arr.shape[0])
    for i, v in enumerate(arr.tolist()):
        # pandas' nullable dtypes hand over pd.NA; recognised by type name so the engine does not
        # need pandas
        if v is None or type(v).__name__ == "NAType":
            out[i] = np.nan
        elif isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
            out[i] = float(v)
        else:
            problems.append(
                InvalidInputError(
                    f"{name} must be a number, got {v!r}", code="not_a_number", row=i, column=name
                )
            )
            out[i] = np.nan
    return out


def _problem_rows(mask: np.ndarray, message: str, column: str, problems: list[EngineError]) -> None:
    for row in np.flatnonzero(mask).tolist():
        problems.append(InvalidInputError(message, row=row, column=column))


def read_study_table(measure: str, data: Mapping[str, Any]) -> StudyTable:
    """Read and validate the columns ``measure`` needs from ``data``.

    Parameters
    ----------
    measure : str
        One of :data:`MEASURE_COLUMNS`.
    data : mapping of str to array_like
        Columns by metafor's argument names (a dict of lists, or a pandas DataFrame). ``None``
        and ``NaN`` mark missing values. Other columns are ignored.

    Returns
    -------
    StudyTable

    Raises
    ------
    InvalidInputError
        Unknown measure, or a needed column is absent.
    InvalidStudyDataError
        Values metafor's ``escalc()`` rejects with an error (every offending row is listed).

    Notes
    -----
    The checks and the derived columns are those of metafor 3.8-1 ``escalc()``: counts must be
    non-negative and ``ai <= n1i``; person-times, group and sample sizes positive; SDs
    non-negative; ``|ri| <= 1``; a given ``n1i`` must equal ``ai + bi``. Beyond metafor, a given
    ``vi`` or ``sei`` must be non-negative (metafor silently turns a negative ``vi`` into ``NA``;
    a negative variance in an upload is a data error) and infinite values are refused.
    """
    if measure not in MEASURE_COLUMNS:
        known = ", ".join(MEASURE_COLUMNS)
        raise InvalidInputError(
            f"unknown measure {measure!r}; known measures: {known}", code="unknown_measure"
        )

    problems: list[EngineError] = []
    wanted: list[str] = []
    for spec in MEASURE_COLUMNS[measure]:
        if isinstance(spec, tuple):
            present = [c for c in spec if c in data]
            if not present:
                raise InvalidInputError(
                    f"measure {measure} needs column {spec[0]!r} (or {spec[1]!r})",
                    code="missing_column",
                    column=spec[0],
                )
            wanted.extend(present)
        else:
            if spec not in data:
                raise InvalidInputError(
                    f"measure {measure} needs column {spec!r}", code="missing_column", column=spec
                )
            wanted.append(spec)
    if REGISTRY[measure].family == "generic" and "ni" in data:
        wanted.append("ni")

    cols = {name: _column_values(data[name], name, problems) for name in wanted}
    lengths = {len(v) for v in cols.values()}
    if len(lengths) > 1:
        raise InvalidInputError(
            "columns have different lengths: " + ", ".join(f"{name}={len(v)}" for name, v in cols.items()),
            code="ragged_columns",
        )
    n_rows = lengths.pop()
    for name, v in cols.items():
        _problem_rows(np.isinf(v), f"{name} is infinite", name, problems)

    family = REGISTRY[measure].family
    needed: tuple[str, ...]
    with np.errstate(invalid="ignore"):  # comparisons with NaN (missing) are simply False
        if family == "table":
            # sign checks on the given values first: a derived bi = n1i - ai below 0 is reported
            # once, as ai > n1i
            for name in ("ai", "bi", "ci", "di"):
                if name in cols:
                    _problem_rows(cols[name] < 0, f"{name} (a count) is negative", name, problems)
            _derive_from_total(cols, "bi", "n1i", "ai", problems)
            _derive_from_total(cols, "di", "n2i", "ci", problems)
            needed = ("ai", "bi", "ci", "di")
        elif family == "person_time":
            # each family's domain rules are written out (alike in shape to the means' below): the
            # columns and the words of each message are what the user reads
            for name in ("x1i", "x2i"):
                _problem_rows(cols[name] < 0, f"{name} (a count) is negative", name, problems)
            for name in ("t1i", "t2i"):
                _problem_rows(cols[name] <= 0, f"{name} (person-time) must be positive", name, problems)
            needed = ("x1i", "t1i", "x2i", "t2i")
        elif family == "means":
            for name in ("sd1i", "sd2i"):
                _problem_rows(cols[name] < 0, f"{name} (a standard deviation) is negative", name, problems)
            for name in ("n1i", "n2i"):
                _problem_rows(cols[name] <= 0, f"{name} (a group size) must be positive", name, problems)
            needed = ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
        elif family == "correlation":
            _problem_rows(np.abs(cols["ri"]) > 1, "ri (a correlation) must lie in [-1, 1]", "ri", problems)
            _problem_rows(cols["ni"] <= 0, "ni (a sample size) must be positive", "ni", problems)
            needed = ("ri", "ni")
        elif family == "proportion":
            for name in ("xi", "mi"):
                if name in cols:
                    _problem_rows(cols[name] < 0, f"{name} (a count) is negative", name, problems)
            _derive_from_total(cols, "mi", "ni", "xi", problems)
            cols["ni"] = cols["xi"] + cols["mi"]
            _problem_rows(cols["ni"] <= 0, "ni (a sample size) must be positive", "ni", problems)
            needed = ("xi", "mi")
        else:  # generic yi/vi
            if "vi" not in cols:
                cols["vi"] = cols["sei"] ** 2
                _problem_rows(cols["sei"] < 0, "sei (a standard error) is negative", "sei", problems)
            else:
                _problem_rows(cols["vi"] < 0, "vi (a sampling variance) is negative", "vi", problems)
            needed = ("yi", "vi")

    if problems:
        raise InvalidStudyDataError(problems)

    missing: dict[int, tuple[str, ...]] = {}
    nan = np.column_stack([np.isnan(cols[name]) for name in needed])
    for row in np.flatnonzero(nan.any(axis=1)).tolist():
        missing[row] = tuple(name for name, m in zip(needed, nan[row], strict=True) if m)
    return StudyTable(measure=measure, columns=cols, missing=missing, n_rows=n_rows)


def _derive_from_total(
    cols: dict[str, np.ndarray], part: str, total: str, events: str, problems: list[EngineError]
) -> None:
    """Fill ``part`` (e.g. ``bi``) from ``total - events`` where it is missing (metafor's ``replmiss``).

    A total that contradicts a given part is an error, as in metafor; so is a total below the
    event count, reported on the event column (the derived part would be negative).
    """
    if total not in cols:
        return
    given_total = cols[total]
    derived = given_total - cols[events]
    if part in cols:
        given = cols[part]
        _problem_rows(
            ~np.isnan(given) & ~np.isnan(derived) & (given != derived),
            f"{total} is not equal to {events} + {part}",
            total,
            problems,
        )
        cols[part] = np.where(np.isnan(given), derived, given)
    else:
        cols[part] = derived
    _problem_rows(cols[events] > given_total, f"{events} is larger than {total}", events, problems)


# --------------------------------------------------------------------------------------------
# Zero-cell handling


def _drop_double_zero(cells: Sequence[np.ndarray], pairs: Sequence[tuple[int, int]]) -> np.ndarray:
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
    if to not in ZERO_CELL_RULES:
        raise InvalidInputError(
            f"unknown zero-cell rule to={to!r}; use one of {ZERO_CELL_RULES}", code="bad_option"
        )
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
# Kernels: each returns yi, vi and the known reasons for NaN, as (row mask, reason) pairs in
# order of precedence. They run under np.errstate(all="ignore"): division by zero and logs of
# zero are expected for some rows and are turned into NaN with a reason afterwards.

_Reasons = list[tuple[np.ndarray, str]]
_Kernel = Callable[[str, dict[str, np.ndarray], float, str, bool], tuple[np.ndarray, np.ndarray, _Reasons]]


def _table_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    ai, bi, ci, di = (c[k].copy() for k in ("ai", "bi", "ci", "di"))
    reasons: _Reasons = []
    if drop00:
        # tables without events, or with only events, in both groups carry no information
        # about a ratio; metafor's drop00 makes them NA
        dropped = _drop_double_zero((ai, bi, ci, di), ((0, 2), (1, 3)))
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
) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    x1i, x2i = c["x1i"].copy(), c["x2i"].copy()
    t1i, t2i = c["t1i"], c["t2i"]
    reasons: _Reasons = []
    if drop00:
        dropped = _drop_double_zero((x1i, x2i), ((0, 1),))
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


def _hedges_correction(mi: np.ndarray) -> np.ndarray:
    """Exact small-sample correction factor c(m) of Hedges (1981); NaN for m <= 1.

    Written with log-gamma, as metafor's ``.cmicalc``, because gamma(m/2) overflows for m >= 344.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        cmi = np.exp(special.gammaln(mi / 2) - np.log(np.sqrt(mi / 2)) - special.gammaln((mi - 1) / 2))
    return np.where(mi > 1, cmi, np.nan)


def _means_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    m1i, sd1i, n1i, m2i, sd2i, n2i = (c[k] for k in ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"))
    reasons: _Reasons = []
    if measure == "MD":
        # heteroscedastic variance (metafor's default vtype "LS" = "UB" for MD)
        yi = m1i - m2i
        vi = sd1i**2 / n1i + sd2i**2 / n2i
    elif measure == "SMD":
        # Hedges' g: pooled SD, exact bias correction, large-sample variance (vtype "LS")
        mi = n1i + n2i - 2
        sdpi = np.sqrt(((n1i - 1) * sd1i**2 + (n2i - 1) * sd2i**2) / mi)
        yi = _hedges_correction(mi) * (m1i - m2i) / sdpi
        vi = 1 / n1i + 1 / n2i + yi**2 / (2 * (n1i + n2i))
        reasons.append((mi <= 1, "Hedges' bias correction needs n1i + n2i > 3"))
        reasons.append((sdpi == 0, "the pooled standard deviation is 0"))
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


def _correlation_kernel(
    measure: str, c: dict[str, np.ndarray], add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    ri, ni = c["ri"], c["ni"]
    reasons: _Reasons = []
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
) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    xi, mi = add_to_zero_cells((c["xi"], c["mi"]), add, to)
    raw_zero = (c["xi"] == 0) | (c["mi"] == 0)
    ni = xi + mi
    pri = xi / ni
    reasons: _Reasons = []
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
) -> tuple[np.ndarray, np.ndarray, _Reasons]:
    return c["yi"].copy(), c["vi"].copy(), []


_KERNELS: Mapping[str, _Kernel] = {
    "table": _table_kernel,
    "person_time": _person_time_kernel,
    "means": _means_kernel,
    "correlation": _correlation_kernel,
    "proportion": _proportion_kernel,
    "generic": _generic_kernel,
}


def _total_sample_size(table: StudyTable) -> np.ndarray:
    c = table.columns
    family = REGISTRY[table.measure].family
    if family == "table":
        return c["ai"] + c["bi"] + c["ci"] + c["di"]
    if family == "person_time":
        return c["t1i"] + c["t2i"]
    if family == "means":
        return c["n1i"] + c["n2i"]
    if family in ("correlation", "proportion"):
        return c["ni"].copy()
    return c["ni"].copy() if "ni" in c else np.full(table.n_rows, np.nan)


def effect_sizes_from_table(
    table: StudyTable, *, add: float = 0.5, to: str = "only0", drop00: bool = False
) -> EffectSizes:
    """Compute effect sizes from an already validated :class:`StudyTable`.

    See :func:`compute_effect_sizes`, which reads and validates the input and then calls this.
    """
    if to not in ZERO_CELL_RULES:
        raise InvalidInputError(
            f"unknown zero-cell rule to={to!r}; use one of {ZERO_CELL_RULES}", code="bad_option"
        )
    if not np.isfinite(add) or add < 0:
        raise InvalidInputError(f"add must be a non-negative number, got {add!r}", code="bad_option")
    measure = table.measure
    cols = table.columns
    with np.errstate(all="ignore"):
        yi, vi, reasons = _KERNELS[REGISTRY[measure].family](measure, cols, float(add), to, bool(drop00))
        # R keeps two kinds of missing apart and so must we. A missing input propagates as NA
        # into whatever depends on it, and only there (MD with a missing SD still has its yi).
        # A non-finite result from complete inputs (Inf or NaN) makes metafor set *both* yi
        # and vi to NA (end of escalc()).
        yi_deps, vi_deps = REGISTRY[measure].yi_inputs, REGISTRY[measure].vi_inputs
        yi_na = np.logical_or.reduce([np.isnan(cols[name]) for name in yi_deps])
        vi_na = np.logical_or.reduce([np.isnan(cols[name]) for name in vi_deps])
        if REGISTRY[measure].family == "correlation":
            # the variance formulas are undefined for ni <= 3; metafor sets vi to NA there
            # before the Inf/NaN step, so a finite yi stays
            small = cols["ni"] <= 3
            vi_na = vi_na | small
            reasons.append((small, "the sampling variance of a correlation needs ni > 3"))
        bad = (~np.isfinite(yi) & ~yi_na) | (~np.isfinite(vi) & ~vi_na)
        yi = np.where(bad | yi_na, np.nan, yi)
        vi = np.where(bad | vi_na, np.nan, vi)

    na_reasons: dict[int, str] = {}
    for row in np.flatnonzero(np.isnan(yi) | np.isnan(vi)).tolist():
        if row in table.missing:
            na_reasons[row] = "missing value in " + ", ".join(table.missing[row])
            continue
        na_reasons[row] = next((reason for mask, reason in reasons if mask[row]), _NOT_FINITE)

    for arr in (yi, vi):
        arr.setflags(write=False)
    ni = _total_sample_size(table)
    ni.setflags(write=False)
    # frozen results are built by keyword, one field a line (the shape rma() shares when it
    # builds FitResult): each name stands beside its value
    return EffectSizes(
        measure=measure,
        yi=yi,
        vi=vi,
        ni=ni,
        na_reasons=na_reasons,
        add=float(add),
        to=to,
        drop00=bool(drop00),
    )


def compute_effect_sizes(
    measure: str,
    data: Mapping[str, Any],
    *,
    add: float = 0.5,
    to: ZeroCellRule = "only0",
    drop00: bool = False,
) -> EffectSizes:
    """Effect sizes and sampling variances for each row, as metafor's ``escalc()``.

    Parameters
    ----------
    measure : str
        metafor's measure code: ``OR``, ``RR``, ``RD``, ``PETO`` (2x2 tables: ``ai bi ci di``,
        or ``ai n1i ci n2i``); ``IRR``, ``IRD`` (``x1i t1i x2i t2i``); ``MD``, ``SMD``, ``ROM``
        (``m1i sd1i n1i m2i sd2i n2i``); ``COR``, ``ZCOR`` (``ri ni``); ``PR``, ``PLO``
        (``xi ni``); ``GEN`` (``yi vi`` or ``yi sei`` given).
    data : mapping of str to array_like
        Columns by metafor's argument names; ``None`` or ``NaN`` mark a missing value.
    add : float, default 0.5
        Amount added to cells of 2x2 tables, event counts, or proportions' counts (zero-cell
        correction).
    to : {"only0", "all", "if0all", "none"}, default "only0"
        Which tables get ``add`` (see :func:`add_to_zero_cells`).
    drop00 : bool, default False
        Give ``NaN`` for tables with no events (or only events) in both groups.

    Returns
    -------
    EffectSizes
        ``yi`` and ``vi`` for every row, ``NaN`` with a reason where metafor gives ``NA``.

    Raises
    ------
    InvalidInputError, InvalidStudyDataError
        See :func:`read_study_table`.

    Notes
    -----
    Source: metafor 3.8-1 ``escalc()`` with its defaults (``vtype = "LS"``, ``add = 1/2``,
    ``to = "only0"``, ``drop00 = FALSE``); Viechtbauer (2010), J Stat Softw 36(3). Formulas:

    - OR, RR, RD: log odds ratio, log risk ratio, risk difference with the large-sample
      variances (Fleiss & Berlin 2009).
    - PETO: Peto's one-step log odds ratio (Yusuf et al. 1985), ``(ai - E) / V`` with variance
      ``1 / V``.
    - IRR, IRD: log incidence rate ratio and rate difference (Rothman et al. 2008).
    - MD: raw mean difference, heteroscedastic variance. SMD: Hedges' g with the exact bias
      correction ``c(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1i + n2i - 2``, and
      variance ``1/n1i + 1/n2i + g^2 / (2 (n1i + n2i))`` (Hedges 1981). ROM: log ratio of means
      (Hedges, Gurevitch & Curtis 1999), without the bias correction later metafor versions add.
    - COR: raw correlation, variance ``(1 - r^2)^2 / (ni - 1)``; ZCOR: Fisher's z, variance
      ``1 / (ni - 3)``; both leave ``vi`` missing for ``ni <= 3``.
    - PR, PLO: raw proportion and logit with the large-sample variances.
    """
    return effect_sizes_from_table(read_study_table(measure, data), add=add, to=to, drop00=drop00)
