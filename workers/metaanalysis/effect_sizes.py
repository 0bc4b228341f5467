"""Effect sizes and their sampling variances, as R's ``metafor::escalc()`` computes them.

The definitions, defaults and missing-value rules follow metafor 3.8-1 (Viechtbauer 2010,
``R/escalc.r``): the platform's numbers are checked against that version. Every row of the
input gives one ``(yi, vi)`` pair; a row that cannot give one gets ``NaN`` and a reason in
``EffectSizes.na_reasons``, exactly where metafor gives ``NA``.

A row may give its effect size in several forms (a given ``yi`` with ``vi`` or ``sei``; for SMD
Cohen's d or a t statistic with the group sizes; the measure's raw inputs): each row is computed
from the first form it has complete, and ``EffectSizes.forms`` and ``EffectSizes.derivations``
record which (see :mod:`workers.metaanalysis.measures` and
:mod:`workers.metaanalysis.input_forms`). The kernels are in :mod:`workers.metaanalysis.kernels`.

Input problems that metafor refuses with an error (negative counts, events above the group
size, |r| > 1, ...: the ``escalc`` limits of :mod:`workers.metaanalysis.domains`) raise
:class:`InvalidStudyDataError`, listing every offending row and column at once so that a data
manager can fix a file in one pass.

Rows are numbered from 0 in the order given (the caller maps them to spreadsheet lines).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import domains, input_forms
from .errors import EngineError, InvalidInputError
from .jsonable import ResultBase
from .kernels import (
    KERNELS,
    ZERO_CELL_RULES,
    Reasons,
    ZeroCellRule,
    add_to_zero_cells,
    check_zero_cell_rule,
    form_kernel,
)
from .measures import REGISTRY

__all__ = [
    "MEASURE_COLUMNS",
    "ZERO_CELL_RULES",
    "EffectSizes",
    "InvalidStudyDataError",
    "StudyTable",
    "ZeroCellRule",
    "add_to_zero_cells",
    "compute_effect_sizes",
    "effect_sizes_from_table",
    "read_study_table",
]

#: Columns of each measure's raw inputs, in metafor's argument names, from the registry. A tuple
#: inside the tuple lists alternatives: for 2x2 tables ``bi`` may be replaced by ``n1i`` (then
#: ``bi = n1i - ai``), as in metafor; for proportions ``ni`` may be replaced by ``mi`` (non-events).
#: The other input forms (a given ``yi``/``vi``, SMD's ``di``/``ti``) are ``Measure.forms``.
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
        One float array per column any input form of the measure reads, ``NaN`` where a value is
        missing (every row, for a column the data do not hold). Derived columns are filled in
        (``bi`` from ``n1i - ai``, ``mi`` from ``ni - xi``).
    missing : dict of int to tuple of str
        Rows lacking a value of the measure's raw inputs (its requirement groups), with the
        columns that are missing: these rows have no table for ``rma.mh()``, whatever form gives
        their effect size.
    n_rows : int
        Number of input rows.
    forms : tuple of str or None
        Per row, the code of the input form its effect size is computed from (``yi_vi``,
        ``yi_sei``, ``di``, ``ti``, ``raw``), ``None`` where no form is complete.
    incomplete : dict of int to str
        For every row with no complete form: what is missing, or what to give.
    """

    measure: str
    columns: dict[str, np.ndarray]
    missing: dict[int, tuple[str, ...]]
    n_rows: int
    forms: tuple[str | None, ...]
    incomplete: dict[int, str]


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
    forms : tuple of str or None
        Per row, the input form its effect size comes from: ``yi_vi`` and ``yi_sei`` (given),
        ``di`` (Cohen's d), ``ti`` (t statistic), ``raw`` (the measure's own inputs); ``None``
        where no form is complete (the row has no usable effect size).
    derivations : tuple of str
        Per row, how its effect size was derived, in words ("SMD from t = 2.1, n = 20/22",
        "given yi = 0.31 with SE 0.12", "SMD from means and SDs"); for a row with no complete
        form, what is missing.
    """

    measure: str
    yi: np.ndarray
    vi: np.ndarray
    ni: np.ndarray
    na_reasons: dict[int, str]
    add: float
    to: str
    drop00: bool
    forms: tuple[str | None, ...]
    derivations: tuple[str, ...]

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


def _absent_column(measure: str, data: Mapping[str, Any]) -> InvalidInputError:
    """The error for data holding no complete input form: the first raw column they lack."""
    m = REGISTRY[measure]
    group = next(g for g in m.groups if not any(c in data for c in g))
    alternative = f" (or {group[1]!r})" if len(group) > 1 else ""
    others = [f for f in m.forms if f.code != "raw"]
    if m.family != "generic" and others:
        alternative += "; or give " + input_forms.describe_forms(others)
    return InvalidInputError(
        f"measure {measure} needs column {group[0]!r}{alternative}", code="missing_column", column=group[0]
    )


def read_study_table(measure: str, data: Mapping[str, Any]) -> StudyTable:
    """Read and validate the columns ``measure`` needs from ``data``, and choose each row's form.

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
        Unknown measure, or the data hold the columns of no input form of the measure.
    InvalidStudyDataError
        Values metafor's ``escalc()`` rejects with an error (every offending row is listed).

    Notes
    -----
    The checks and the derived columns are metafor 3.8-1 ``escalc()``'s, as the ``escalc``
    limits and the totals of :mod:`workers.metaanalysis.domains` state them (beyond metafor, a
    negative ``vi`` or ``sei`` is refused: metafor silently turns it into ``NA``). They apply to
    every value given, whichever form its row is computed from; infinite values are refused too.
    """
    if measure not in MEASURE_COLUMNS:
        known = ", ".join(MEASURE_COLUMNS)
        raise InvalidInputError(
            f"unknown measure {measure!r}; known measures: {known}", code="unknown_measure"
        )
    m = REGISTRY[measure]
    offered = input_forms.offered_forms(m, data.keys())
    if not offered:
        raise _absent_column(measure, data)

    problems: list[EngineError] = []
    wanted = list(dict.fromkeys(c for f in offered for c in f.columns if c in data))
    if m.family == "generic" and "ni" in data:
        wanted.append("ni")  # optional sample sizes, used by the fail-safe N and the funnel

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
    # which values were given, before any column is derived: the forms are chosen on these
    given = {name: ~np.isnan(v) for name, v in cols.items()}
    for name in dict.fromkeys(c for f in m.forms for c in f.columns):
        cols.setdefault(name, np.full(n_rows, np.nan))

    with np.errstate(invalid="ignore"):  # comparisons with NaN (missing) are simply False
        _check_domain(measure, cols, problems)

    if problems:
        raise InvalidStudyDataError(problems)

    forms = input_forms.select_forms(offered, given, n_rows)
    return StudyTable(
        measure=measure,
        columns=cols,
        missing=dict(input_forms.missing_columns(m.groups, given, n_rows)),
        n_rows=n_rows,
        forms=forms,
        incomplete=input_forms.incomplete_reasons(m, offered, given, forms),
    )


def _check_domain(measure: str, cols: dict[str, np.ndarray], problems: list[EngineError]) -> None:
    """Refuse the values metafor's ``escalc()`` refuses (the limits of :mod:`.domains`) and derive
    the parts of the totals (``bi = n1i - ai`` where ``bi`` is missing).

    Every column is present (``NaN`` where the data do not give it), and comparisons with ``NaN``
    are ``False``. The counts are checked before the totals are derived, so that a derived part
    below 0 is reported once, as events above the total.
    """
    domain = domains.of(measure)
    _refuse_outside(domain.counts, cols, problems)
    for total in domain.totals:
        _derive_from_total(cols, total, problems)
    _refuse_outside(domain.after_counts, cols, problems)


def _refuse_outside(
    columns: Sequence[domains.ColumnDomain], cols: dict[str, np.ndarray], problems: list[EngineError]
) -> None:
    """A problem for every value of ``columns`` outside metafor's limit."""
    for column in columns:
        assert column.escalc is not None
        _problem_rows(
            column.escalc.breaks(cols[column.column]), column.escalc_message, column.column, problems
        )


def _derive_from_total(
    cols: dict[str, np.ndarray], total: domains.Total, problems: list[EngineError]
) -> None:
    """Fill the part (e.g. ``bi``) from ``total - events`` where it is missing (metafor's
    ``replmiss``), then the total from ``events + part``, as metafor does.

    A total that contradicts a given part is an error, as in metafor; so is a total below the
    event count, reported on the event column (the derived part would be negative).
    """
    given_total = cols[total.total]
    derived = given_total - cols[total.events]
    given = cols[total.part]
    _problem_rows(
        ~np.isnan(given) & ~np.isnan(derived) & (given != derived), total.mismatch, total.total, problems
    )
    cols[total.part] = np.where(np.isnan(given), derived, given)
    _problem_rows(cols[total.events] > given_total, total.excess, total.events, problems)
    cols[total.total] = cols[total.events] + cols[total.part]


def unaccepted_values(table: StudyTable) -> list[EngineError]:
    """The values of a valid study table that a stored row may not hold (see :mod:`.domains`):
    a standard deviation, variance or standard error of 0, |r| = 1, a sample size below the
    measure's minimum, a mean of 0 or less for the ratio of means, a fractional count."""
    problems: list[EngineError] = []
    with np.errstate(invalid="ignore"):  # comparisons with NaN (missing) are simply False
        for column in domains.of(table.measure).columns.values():
            values = table.columns[column.column]
            if column.whole:
                _problem_rows(domains.not_whole(values), column.whole_message, column.column, problems)
            if column.accepted is not None:
                _problem_rows(
                    column.accepted.breaks(values), column.accepted_message, column.column, problems
                )
    return problems


# --------------------------------------------------------------------------------------------
# Computing


def _total_sample_size(table: StudyTable) -> np.ndarray:
    c = table.columns
    family = REGISTRY[table.measure].family
    if family == "table":
        return c["ai"] + c["bi"] + c["ci"] + c["di"]
    if family == "person_time":
        return c["t1i"] + c["t2i"]
    if family == "means":
        return c["n1i"] + c["n2i"]
    if family in ("change", "mean", "correlation", "proportion"):
        return c["ni"].copy()
    return c["ni"].copy() if "ni" in c else np.full(table.n_rows, np.nan)


def _raw_effect_sizes(
    table: StudyTable, add: float, to: str, drop00: bool
) -> tuple[np.ndarray, np.ndarray, Reasons]:
    """The kernel of the measure's family on every row, with metafor's missing-value rules."""
    measure = REGISTRY[table.measure]
    cols = table.columns
    yi, vi, reasons = KERNELS[measure.family](table.measure, cols, add, to, drop00)
    if measure.family == "generic":
        return yi, vi, reasons  # the given values themselves: a missing one is already NaN
    # R keeps two kinds of missing apart and so must we. A missing input propagates as NA
    # into whatever depends on it, and only there (MD with a missing SD still has its yi).
    # A non-finite result from complete inputs (Inf or NaN) makes metafor set *both* yi
    # and vi to NA (end of escalc()).
    yi_na = np.logical_or.reduce([np.isnan(cols[name]) for name in measure.yi_inputs])
    vi_na = np.logical_or.reduce([np.isnan(cols[name]) for name in measure.vi_inputs])
    if measure.family == "correlation":
        # the variance formulas are undefined for ni <= 3; metafor sets vi to NA there
        # before the Inf/NaN step, so a finite yi stays
        small = cols["ni"] <= 3
        vi_na = vi_na | small
        reasons.append((small, "the sampling variance of a correlation needs ni > 3"))
    bad = (~np.isfinite(yi) & ~yi_na) | (~np.isfinite(vi) & ~vi_na)
    return np.where(bad | yi_na, np.nan, yi), np.where(bad | vi_na, np.nan, vi), reasons


def effect_sizes_from_table(
    table: StudyTable, *, add: float = 0.5, to: str = "only0", drop00: bool = False
) -> EffectSizes:
    """Compute effect sizes from an already validated :class:`StudyTable`.

    See :func:`compute_effect_sizes`, which reads and validates the input and then calls this.
    """
    check_zero_cell_rule(to)
    if not np.isfinite(add) or add < 0:
        raise InvalidInputError(f"add must be a non-negative number, got {add!r}", code="bad_option")
    measure = REGISTRY[table.measure]
    forms = np.array(table.forms, dtype=object)
    with np.errstate(all="ignore"):
        yi, vi, raw_reasons = _raw_effect_sizes(table, float(add), to, bool(drop00))
        # rows without a complete form keep what the raw inputs give (metafor's NA rules:
        # never a usable pair); the reasons of the raw kernel speak for the raw rows only
        by_raw = forms == "raw"
        reasons: Reasons = [(mask & by_raw, reason) for mask, reason in raw_reasons]
        for form in dict.fromkeys(f for f in table.forms if f not in ("raw", None)):
            rows = forms == form
            fyi, fvi, form_reasons = form_kernel(form, table.columns)
            bad = ~np.isfinite(fyi) | ~np.isfinite(fvi)
            yi = np.where(rows, np.where(bad, np.nan, fyi), yi)
            vi = np.where(rows, np.where(bad, np.nan, fvi), vi)
            reasons += [(mask & rows, reason) for mask, reason in form_reasons]
        # metafor turns a negative sampling variance into NA (vi only)
        negative = vi < 0
        vi = np.where(negative, np.nan, vi)
        reasons.append((negative, "the sampling variance is negative"))

    na_reasons: dict[int, str] = {}
    for row in np.flatnonzero(np.isnan(yi) | np.isnan(vi)).tolist():
        if row in table.incomplete:
            na_reasons[row] = table.incomplete[row]
            continue
        na_reasons[row] = next((reason for mask, reason in reasons if mask[row]), _NOT_FINITE)

    for arr in (yi, vi):
        arr.setflags(write=False)
    ni = _total_sample_size(table)
    ni.setflags(write=False)
    # frozen results are built by keyword, one field a line (the shape rma() shares when it
    # builds FitResult): each name stands beside its value
    return EffectSizes(
        measure=table.measure,
        yi=yi,
        vi=vi,
        ni=ni,
        na_reasons=na_reasons,
        add=float(add),
        to=to,
        drop00=bool(drop00),
        forms=table.forms,
        derivations=input_forms.derivations(measure, table.forms, table.columns, table.incomplete),
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
        or ``ai n1i ci n2i``); ``IRR``, ``IRD`` (``x1i t1i x2i t2i``); ``MD``, ``SMD``,
        ``SMDH``, ``ROM`` (``m1i sd1i n1i m2i sd2i n2i``); ``SMCR`` (``m1i m2i sd1i ni ri``),
        ``SMCC``, ``MC`` (``m1i m2i sd1i sd2i ni ri``; m1i post-test, m2i pre-test, sd1i the
        pre-test SD); ``MN`` (``mi sdi ni``); ``COR``, ``ZCOR`` (``ri ni``); ``PR``, ``PLO``
        (``xi ni``); ``GEN`` (``yi vi`` or ``yi sei`` given). Any measure also takes ``yi``
        with ``vi`` or ``sei`` per row, and SMD Cohen's ``di`` or a t statistic ``ti`` with
        ``n1i n2i``; each row uses the first of these it has complete (see
        :mod:`workers.metaanalysis.measures`).
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
        ``yi`` and ``vi`` for every row, ``NaN`` with a reason where metafor gives ``NA`` or no
        input form is complete; the form and a sentence per row.

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
      correction ``J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m-1)/2))``, ``m = n1i + n2i - 2``, and
      variance ``1/n1i + 1/n2i + g^2 / (2 (n1i + n2i))`` (Hedges 1981), from the means, a
      given Cohen's ``di``, or ``di = ti sqrt(1/n1i + 1/n2i)``. SMDH: ``J(m) (m1i - m2i) / s``
      with ``s^2 = (sd1i^2 + sd2i^2) / 2`` and Bonett's (2008) variance times ``J(m)^2``. ROM:
      log ratio of means (Hedges, Gurevitch & Curtis 1999), without the bias correction later
      metafor versions add.
    - SMCR, SMCC, MC (Morris 2008; Becker 1988): standardised mean change ``J(ni - 1)
      (m1i - m2i) / sd1i`` with variance ``2 (1 - ri) / ni + yi^2 / (2 ni)``; ``J(ni - 1)
      (m1i - m2i) / sdd``, ``sdd^2 = sd1i^2 + sd2i^2 - 2 ri sd1i sd2i``, with variance
      ``1 / ni + yi^2 / (2 ni)``; raw mean change ``m1i - m2i`` with variance ``sdd^2 / ni``.
    - MN: raw mean ``mi`` with variance ``sdi^2 / ni``.
    - COR: raw correlation, variance ``(1 - r^2)^2 / (ni - 1)``; ZCOR: Fisher's z, variance
      ``1 / (ni - 3)``; both leave ``vi`` missing for ``ni <= 3``.
    - PR, PLO: raw proportion and logit with the large-sample variances.
    """
    return effect_sizes_from_table(read_study_table(measure, data), add=add, to=to, drop00=drop00)
