"""The domain of each measure's inputs: the values each column may hold, and the words for one outside.

This is the one place that says them. The engine's ``escalc`` (:func:`~workers.metaanalysis.
effect_sizes.read_study_table`), its check of the rows a platform stores
(:func:`~workers.metaanalysis.effects.check_rows`), the upload validator and the upload template's
notes (``apps.datasets.ingest``) all read them here; ``tests/platform/test_measure_domains_home.py``
fails when a column's bound is written anywhere else.

Each input column of a measure is of a :class:`Kind` (a count, a standard deviation, a sample
size...), which gives it up to two limits:

- ``escalc``: the values metafor 3.8-1 ``escalc()`` refuses with an error, which the engine refuses
  too: a negative count or standard deviation, a correlation outside [-1, 1], a sample size or a
  person-time of 0 or less; and, beyond metafor, a negative sampling variance or standard error
  (metafor quietly turns a negative ``vi`` into a missing value; in data it is an error). The group
  sizes of a 2x2 table have no limit of their own: metafor checks them through the counts
  (:class:`Total`).
- ``accepted``: the values a stored row may hold, which the upload refuses at their cell and
  ``check_rows`` refuses as well. It is metafor's domain narrowed where metafor still computes an
  effect size that cannot be analysed or that no data set should give: standard deviations,
  sampling variances and standard errors above 0 (at 0 the sampling variance of MD, MN, ROM and
  the mean changes is 0, which ``rma`` refuses, and the SMD of two SDs of 0 is undefined);
  correlations strictly between -1 and 1 (at |r| = 1 the variance of COR is 0 and Fisher's z
  infinite); sample sizes of at least the measure's ``min_n`` (:class:`~workers.metaanalysis.
  measures.Measure` says why each is what it is); means above 0 for the ratio of means
  (``positive_means``); and whole numbers for counts and sample sizes.

Between columns, the events and non-events of a 2x2 table's group, or of a proportion, add up to
its size (:class:`Total`). This module imports no numpy: the limits compare floats and numpy
arrays alike, so the upload can read them without loading the engine.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping
from typing import Any

from . import measures as registry


def _number(value: float) -> str:
    return f"{value:g}"


def not_whole(value: Any) -> Any:
    """True where ``value`` has a fractional part (element-wise for arrays; NaN never has one)."""
    return value % 1 > 0


@dataclasses.dataclass(frozen=True)
class Limit:
    """``value > bound`` when ``strict``, else ``value >= bound``; with ``absolute``, the same from
    above on the size of the value (``|value| < bound`` or ``|value| <= bound``)."""

    bound: float
    strict: bool
    absolute: bool = False

    def breaks(self, value: Any) -> Any:
        """True where ``value`` lies outside (element-wise for arrays; a missing NaN never does)."""
        if self.absolute:
            size = abs(value)
            return size >= self.bound if self.strict else size > self.bound
        return value <= self.bound if self.strict else value < self.bound

    @property
    def requirement(self) -> str:
        """The limit as a requirement: "must be greater than 0", "cannot be negative", "must be at
        least 4", "must lie strictly between -1 and 1"."""
        bound = _number(self.bound)
        if self.absolute:
            return f"must lie {'strictly ' if self.strict else ''}between -{bound} and {bound}"
        if self.strict:
            return f"must be greater than {bound}"
        return "cannot be negative" if self.bound == 0 else f"must be at least {bound}"

    @property
    def violation(self) -> str:
        """What a value outside is, in the engine's words: "is negative", "must be positive",
        "must lie in [-1, 1]"."""
        bound = _number(self.bound)
        if self.absolute and not self.strict:
            return f"must lie in [-{bound}, {bound}]"
        if self.bound == 0 and not self.absolute:
            return "must be positive" if self.strict else "is negative"
        return self.requirement


_NOT_NEGATIVE = Limit(0, strict=False)
_ABOVE_ZERO = Limit(0, strict=True)


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of input and its limits.

    Attributes
    ----------
    what : str
        The kind in the engine's messages, after the column's name: "sd1i (a standard deviation)".
    subject : str
        The value in the upload's sentences, ``{label}`` standing for the column's meaning under
        the measure: "the standard deviation", "the {label}".
    code : str
        The upload's error code for a value outside ``accepted``.
    escalc, accepted : Limit or None
        metafor's limit and the platform's (see the module docstring); ``None`` for none.
    whole : bool
        Values are whole numbers (counts, sample sizes).
    """

    what: str
    subject: str
    code: str
    escalc: Limit | None
    accepted: Limit | None
    whole: bool = False


#: Every kind of input. The sample sizes' accepted limit is the measure's ``min_n``, a mean's is
#: above 0 for a measure with ``positive_means`` (see :func:`of`).
KINDS: Mapping[str, Kind] = {
    "count": Kind("a count", "the {label}", "negative_count", _NOT_NEGATIVE, _NOT_NEGATIVE, whole=True),
    "sd": Kind(
        "a standard deviation", "the standard deviation", "sd_not_positive", _NOT_NEGATIVE, _ABOVE_ZERO
    ),
    "group_n": Kind("a group size", "the sample size", "n_too_small", _ABOVE_ZERO, None, whole=True),
    "total_n": Kind("a sample size", "the sample size", "n_too_small", _ABOVE_ZERO, None, whole=True),
    "time": Kind("person-time", "the person-time", "time_not_positive", _ABOVE_ZERO, _ABOVE_ZERO),
    "correlation": Kind(
        "a correlation",
        "a correlation",
        "correlation_out_of_range",
        Limit(1, strict=False, absolute=True),
        Limit(1, strict=True, absolute=True),
    ),
    "variance": Kind(
        "a sampling variance", "the sampling variance", "variance_not_positive", _NOT_NEGATIVE, _ABOVE_ZERO
    ),
    "se": Kind("a standard error", "the standard error", "variance_not_positive", _NOT_NEGATIVE, _ABOVE_ZERO),
    "mean": Kind("a mean", "the mean", "mean_not_positive_for_ratio", None, None),
    "effect": Kind("an effect size", "the effect size", "", None, None),
}

#: The kind of each column, by metafor's argument names (the usual meaning; see :func:`kind_of`).
_COLUMN_KINDS: Mapping[str, str] = {
    **dict.fromkeys(("m1i", "m2i", "mi"), "mean"),
    **dict.fromkeys(("sd1i", "sd2i", "sdi"), "sd"),
    **dict.fromkeys(("n1i", "n2i"), "group_n"),
    "ni": "total_n",
    **dict.fromkeys(("ai", "bi", "ci", "di", "xi", "x1i", "x2i"), "count"),
    **dict.fromkeys(("t1i", "t2i"), "time"),
    "ri": "correlation",
    **dict.fromkeys(("yi", "ti"), "effect"),
    "vi": "variance",
    "sei": "se",
}

#: The order in which the engine checks the kinds (counts first: see :attr:`MeasureDomain.counts`).
_CHECK_ORDER = (
    "count",
    "sd",
    "correlation",
    "time",
    "group_n",
    "total_n",
    "variance",
    "se",
    "mean",
    "effect",
)


def kind_of(measure: registry.Measure, column: str) -> str:
    """The kind of ``column`` under ``measure``: a proportion's ``mi`` is its non-events (a
    count, not a mean), and the lead of a reported-statistic form (SMD's ``di``) is an effect size."""
    if any(form.groups[0][0] == column for form in measure.reported_forms):
        return "effect"
    if measure.family == "proportion" and column == "mi":
        return "count"
    return _COLUMN_KINDS[column]


@dataclasses.dataclass(frozen=True)
class Total:
    """Events and non-events adding up to a group's size, as metafor's ``escalc()`` takes them.

    A given ``total`` must equal ``events + part``, ``events`` must not be above it, and a missing
    ``part`` is ``total - events`` (metafor's ``replmiss``); ``group`` names the group in the upload's
    words (``None`` for a proportion's single sample).
    """

    events: str
    part: str
    total: str
    group: str | None

    @property
    def mismatch(self) -> str:
        return f"{self.total} is not equal to {self.events} + {self.part}"

    @property
    def excess(self) -> str:
        return f"{self.events} is larger than {self.total}"


#: The totals of each family that has them.
_TOTALS: Mapping[str, tuple[Total, ...]] = {
    "table": (Total("ai", "bi", "n1i", "intervention"), Total("ci", "di", "n2i", "control")),
    "proportion": (Total("xi", "mi", "ni", None),),
}


@dataclasses.dataclass(frozen=True)
class ColumnDomain:
    """One input column's domain under one measure: its kind's limits, with the measure's own
    ``min_n`` or positive means where they apply."""

    column: str
    kind: str
    what: str
    subject: str
    code: str
    escalc: Limit | None
    accepted: Limit | None
    whole: bool
    #: the measure, in words, when the accepted limit is the measure's own ("the correlation (COR)")
    owner: str | None = None

    @property
    def escalc_message(self) -> str:
        """The engine's message for a value metafor refuses: "sd1i (a standard deviation) is negative"."""
        assert self.escalc is not None
        return f"{self.column} ({self.what}) {self.escalc.violation}"

    @property
    def accepted_message(self) -> str:
        """The engine's message for a value a stored row may not hold: "ni (a sample size) must be
        at least 4 for the correlation (COR)"."""
        assert self.accepted is not None
        return f"{self.column} ({self.what}) {self._requirement()}"

    @property
    def whole_message(self) -> str:
        return f"{self.column} ({self.what}) must be a whole number"

    def _requirement(self) -> str:
        assert self.accepted is not None
        return self.accepted.requirement + (f" for the {self.owner}" if self.owner else "")

    def refusal(self, value: float, label: str) -> tuple[str, str] | None:
        """The upload's error code and sentence for a value a stored row may not hold, or ``None``.

        ``label`` is the column's meaning under the measure ("number of events in the intervention
        group"); the sentence is, e.g., "the standard deviation must be greater than 0" or "the
        sample size must be at least 4 for the correlation (COR)".
        """
        if self.whole and not_whole(value):
            return "not_integer", f"the {label} must be a whole number"
        if self.accepted is not None and self.accepted.breaks(value):
            return self.code, f"{self.subject.format(label=label)} {self._requirement()}"
        return None

    def refuses(self, value: float) -> bool:
        """Whether a stored row may not hold ``value`` (:meth:`refusal` without the words)."""
        return self.refusal(value, "") is not None

    @property
    def allowed_values(self) -> str:
        """The accepted values, as the upload template's notes say them: "A whole number, at least
        4", "A number greater than 0", "A number between -1 and 1 (exclusive)"."""
        number = "A whole number" if self.whole else "A number"
        limit = self.accepted
        if limit is None:
            return number
        bound = _number(limit.bound)
        if limit.absolute:
            return f"{number} between -{bound} and {bound} ({'exclusive' if limit.strict else 'inclusive'})"
        if limit.strict:
            return f"{number} greater than {bound}"
        return f"{number}, {bound} or more" if limit.bound == 0 else f"{number}, at least {bound}"


@dataclasses.dataclass(frozen=True)
class MeasureDomain:
    """The domain of every column a measure's input forms read, and its totals."""

    code: str
    columns: Mapping[str, ColumnDomain]
    totals: tuple[Total, ...]

    @property
    def counts(self) -> tuple[ColumnDomain, ...]:
        """The columns metafor checks before the totals are derived: the counts (a part derived
        below 0 is then reported once, as events above the total)."""
        return tuple(c for c in self._checked() if c.kind == "count")

    @property
    def after_counts(self) -> tuple[ColumnDomain, ...]:
        """The other columns with a limit of metafor's, checked once the totals are derived."""
        return tuple(c for c in self._checked() if c.kind != "count")

    def _checked(self) -> list[ColumnDomain]:
        limited = [c for c in self.columns.values() if c.escalc is not None]
        return sorted(limited, key=lambda c: _CHECK_ORDER.index(c.kind))


@functools.cache
def of(code: str) -> MeasureDomain:
    """The domain of the measure ``code`` (``KeyError`` for an unknown one)."""
    m = registry.get(code)
    columns: dict[str, ColumnDomain] = {}
    for name in dict.fromkeys(c for form in m.forms for c in form.columns):
        kind = kind_of(m, name)
        spec = KINDS[kind]
        escalc, accepted, owner = spec.escalc, spec.accepted, None
        if kind in ("group_n", "total_n"):
            accepted, owner = Limit(m.min_n, strict=False), m.label
            if m.family == "table":
                escalc = None  # metafor checks a 2x2 table's group sizes through its counts
        elif kind == "mean" and m.positive_means:
            accepted, owner = _ABOVE_ZERO, m.label
        columns[name] = ColumnDomain(
            name, kind, spec.what, spec.subject, spec.code, escalc, accepted, spec.whole, owner
        )
    return MeasureDomain(code, columns, _TOTALS.get(m.family, ()))
