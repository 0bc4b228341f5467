"""The statistics each effect measure needs, in R metafor's column names.

A measure lists *requirement groups*: each group must be satisfied by one of its columns. Most
groups have one column; 2x2 tables accept the group size instead of the non-events (``bi`` or
``n1i``, then ``bi = n1i - ai``, as metafor's ``escalc()`` does), and GEN accepts the standard
error instead of the sampling variance (``vi`` or ``sei``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from workers.metaanalysis import measures as registry

StatKind = Literal[
    "mean", "sd", "group_n", "total_n", "count", "time", "correlation", "effect", "variance", "se"
]

#: Kinds whose values must be whole numbers.
INTEGER_KINDS: frozenset[str] = frozenset({"group_n", "total_n", "count"})


@dataclass(frozen=True)
class Statistic:
    """One metafor input column: its name, what it means in plain words, and its kind."""

    name: str
    label: str
    kind: StatKind

    @property
    def integer(self) -> bool:
        return self.kind in INTEGER_KINDS


STATISTICS: dict[str, Statistic] = {
    s.name: s
    for s in (
        Statistic("m1i", "mean of the intervention group", "mean"),
        Statistic("sd1i", "standard deviation of the intervention group", "sd"),
        Statistic("n1i", "sample size of the intervention group", "group_n"),
        Statistic("m2i", "mean of the control group", "mean"),
        Statistic("sd2i", "standard deviation of the control group", "sd"),
        Statistic("n2i", "sample size of the control group", "group_n"),
        Statistic("ai", "number of events in the intervention group", "count"),
        Statistic("bi", "number of non-events in the intervention group", "count"),
        Statistic("ci", "number of events in the control group", "count"),
        Statistic("di", "number of non-events in the control group", "count"),
        Statistic("ri", "correlation", "correlation"),
        Statistic("ni", "sample size", "total_n"),
        Statistic("xi", "number of events", "count"),
        Statistic("x1i", "number of events in the intervention group", "count"),
        Statistic("t1i", "person-time of the intervention group", "time"),
        Statistic("x2i", "number of events in the control group", "count"),
        Statistic("t2i", "person-time of the control group", "time"),
        Statistic("yi", "effect size", "effect"),
        Statistic("vi", "sampling variance", "variance"),
        Statistic("sei", "standard error", "se"),
    )
}


@dataclass(frozen=True)
class Measure:
    """An effect measure as an upload takes it: its requirement groups and smallest sample size.

    Built from the engine's registry (:mod:`workers.metaanalysis.measures`), which says why each
    ``min_n`` is what it is; only the columns an upload can hold are kept (an upload gives
    proportions' sample size, never their non-events).
    """

    code: str
    label: str
    groups: tuple[tuple[str, ...], ...]
    min_n: int = 2
    positive_means: bool = False
    family: str = "generic"

    @property
    def statistics(self) -> tuple[str, ...]:
        """Every column the measure reads, in canonical order (preferred alternatives first)."""
        firsts = [g[0] for g in self.groups]
        rest = [c for g in self.groups for c in g[1:] if c not in firsts]
        return tuple(firsts + rest)


def _upload_measure(m: registry.Measure) -> Measure:
    groups = tuple(tuple(c for c in group if c in STATISTICS) for group in m.groups)
    return Measure(m.code, m.label, groups, m.min_n, m.positive_means, m.family)


MEASURES: dict[str, Measure] = {
    code: _upload_measure(registry.get(code)) for code in registry.OUTCOME_MEASURES
}

#: Identity columns, in canonical order. Every parsed row has all of them.
IDENTITY_COLUMNS: tuple[str, ...] = ("study", "comparison", "instrument", "timepoint", "year")

#: Maximum length of a text value (the platform stores study labels in 200 characters).
MAX_TEXT_LENGTH = 200
