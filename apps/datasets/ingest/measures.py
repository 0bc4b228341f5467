"""The statistics each effect measure reads, in R metafor's column names, and what each one means.

A measure's *input forms* come from the engine's registry (:attr:`Measure.forms
<workers.metaanalysis.measures.Measure.forms>`): a given effect size with its variance or its
standard error (every measure), SMD's reported statistics (Cohen's d, a t statistic, each with
both group sizes) and the measure's own inputs (the ``raw`` form). A row is computed from the
first form it has complete; the upload validator chooses it with the engine's own function
(:func:`workers.metaanalysis.input_forms.select_forms`), so the upload and the analysis never
disagree about a row.

Each form lists *requirement groups*: each group must be satisfied by one of its columns. Most
groups have one column; 2x2 tables accept the group size instead of the non-events (``bi`` or
``n1i``, then ``bi = n1i - ai``, as metafor's ``escalc()`` does), and GEN accepts the standard
error instead of the sampling variance (``vi`` or ``sei``).

The same column name means different things for different measures, as in metafor: ``di`` is the
control group's non-events in a 2x2 table but Cohen's d for SMD; ``mi`` is the mean of MN (an
upload never gives a proportion's non-events, so it means nothing else here); for the change-score
measures (SMCR, SMCC, MC) ``m1i`` is the post-test mean, ``m2i`` the pre-test mean, ``sd1i`` the
pre-test SD, ``sd2i`` the post-test SD and ``ri`` the pre-post correlation. :meth:`Measure.statistic`
gives a column's meaning under one measure; :data:`STATISTICS` holds the usual meanings, which the
families' and the reported statistics' meanings override.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from workers.metaanalysis import domains
from workers.metaanalysis import measures as registry
from workers.metaanalysis.measures import InputForm


@dataclass(frozen=True)
class Statistic:
    """One metafor input column: its name and what it means in plain words.

    What values it may hold is the engine's (:attr:`Measure.domain`).
    """

    name: str
    label: str


def _table(*statistics: Statistic) -> dict[str, Statistic]:
    return {s.name: s for s in statistics}


#: The usual meaning of each column (two-group designs, 2x2 tables, a given effect size).
STATISTICS: dict[str, Statistic] = _table(
    Statistic("m1i", "mean of the intervention group"),
    Statistic("sd1i", "standard deviation of the intervention group"),
    Statistic("n1i", "sample size of the intervention group"),
    Statistic("m2i", "mean of the control group"),
    Statistic("sd2i", "standard deviation of the control group"),
    Statistic("n2i", "sample size of the control group"),
    Statistic("ai", "number of events in the intervention group"),
    Statistic("bi", "number of non-events in the intervention group"),
    Statistic("ci", "number of events in the control group"),
    Statistic("di", "number of non-events in the control group"),
    Statistic("ri", "correlation"),
    Statistic("ni", "sample size"),
    Statistic("xi", "number of events"),
    Statistic("x1i", "number of events in the intervention group"),
    Statistic("t1i", "person-time of the intervention group"),
    Statistic("x2i", "number of events in the control group"),
    Statistic("t2i", "person-time of the control group"),
    Statistic("yi", "effect size"),
    Statistic("vi", "sampling variance"),
    Statistic("sei", "standard error"),
)

#: Meanings particular to a family of measures (metafor's names for one group measured twice, and
#: for one group's mean).
_FAMILY_STATISTICS: dict[str, dict[str, Statistic]] = {
    "change": _table(
        Statistic("m1i", "post-test mean"),
        Statistic("m2i", "pre-test mean"),
        Statistic("sd1i", "pre-test standard deviation"),
        Statistic("sd2i", "post-test standard deviation"),
        Statistic("ni", "sample size"),
        Statistic("ri", "pre-post correlation"),
    ),
    "mean": _table(
        Statistic("mi", "mean"),
        Statistic("sdi", "standard deviation"),
        Statistic("ni", "sample size"),
    ),
}

#: The statistic a reported-statistic form leads with (its first column): any number.
_REPORTED_STATISTICS: dict[str, Statistic] = _table(
    Statistic("di", "Cohen's d"),
    Statistic("ti", "independent-samples t statistic"),
)


@dataclass(frozen=True)
class Measure:
    """An effect measure as an upload takes it: its input forms, their columns and what they mean.

    Built from the engine's registry (:mod:`workers.metaanalysis.measures`), which says why each
    ``min_n`` is what it is; only the columns an upload can hold are kept (an upload gives
    proportions' sample size, never their non-events).

    Attributes
    ----------
    groups : tuple of tuple of str
        Requirement groups of the measure's own inputs (GEN: ``yi`` and ``vi`` or ``sei``).
    forms : tuple of InputForm
        Every input form, in the engine's order of precedence, with the same filtering.
    meanings : mapping of str to Statistic
        Every column the measure reads, with its meaning under this measure, in canonical order:
        the measure's own inputs first, then the columns of its other forms.
    log_scale : bool
        A given effect size is on the log scale (ratios).
    """

    code: str
    label: str
    groups: tuple[tuple[str, ...], ...]
    min_n: int = 2
    family: str = "generic"
    forms: tuple[InputForm, ...] = ()
    meanings: Mapping[str, Statistic] = field(default_factory=dict)
    log_scale: bool = False

    @property
    def statistics(self) -> tuple[str, ...]:
        """Every column the measure reads, in canonical order (own inputs first)."""
        return tuple(self.meanings)

    @property
    def domain(self) -> domains.MeasureDomain:
        """The values each column may hold, and the words for one outside: the engine's
        (:mod:`workers.metaanalysis.domains`), so that an upload and an analysis never disagree."""
        return domains.of(self.code)

    def statistic(self, name: str) -> Statistic:
        """What column ``name`` means under this measure (``KeyError`` for a column it does not read)."""
        return self.meanings[name]

    @property
    def raw_form(self) -> InputForm | None:
        """The measure's own inputs as a form (``None`` for GEN, whose forms are the given ones)."""
        return next((f for f in self.forms if f.code == "raw"), None)

    @property
    def forms_for_people(self) -> tuple[InputForm, ...]:
        """The forms in the order a data manager is told them (and the template shows their
        columns): the measure's own inputs, its reported statistics, a given effect size."""
        return tuple(sorted(self.forms, key=_rank))  # stable: the engine's order within a rank

    @property
    def reported_leads(self) -> frozenset[str]:
        """The columns that lead a reported-statistic form (SMD: ``di``, ``ti``)."""
        return _reported_leads(registry.get(self.code))


_GIVEN_CODES = frozenset(f.code for f in registry.GIVEN_FORMS)


def _rank(form: InputForm) -> int:
    """The measure's own inputs first, then its reported statistics, then a given effect size."""
    return 0 if form.code == "raw" else 2 if form.code in _GIVEN_CODES else 1


def _reported_leads(m: registry.Measure) -> frozenset[str]:
    return frozenset(f.groups[0][0] for f in m.reported_forms)


def _meaning(m: registry.Measure, name: str, leads: frozenset[str]) -> Statistic | None:
    if name in leads:
        return _REPORTED_STATISTICS[name]
    return _FAMILY_STATISTICS.get(m.family, {}).get(name) or STATISTICS.get(name)


def _upload_measure(m: registry.Measure) -> Measure:
    leads = _reported_leads(m)
    meanings: dict[str, Statistic] = {}
    for form in sorted(m.forms, key=_rank):  # canonical order, as forms_for_people
        for name in form.columns:
            stat = _meaning(m, name, leads)
            if stat is not None:
                meanings.setdefault(name, stat)

    def kept(groups: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        return tuple(tuple(c for c in group if c in meanings) for group in groups)

    return Measure(
        code=m.code,
        label=m.label,
        groups=kept(m.groups),
        min_n=m.min_n,
        family=m.family,
        forms=tuple(InputForm(f.code, kept(f.groups), f.label) for f in m.forms),
        meanings=meanings,
        log_scale=m.log_scale,
    )


def with_article(label: str) -> str:
    """``label`` as a noun phrase: "the effect size", "Cohen's d"."""
    return label if label[:1].isupper() else f"the {label}"


def _together(labels: list[str]) -> str:
    """Labels joined, two of one thing in both groups said once ("the sample sizes of both groups")."""
    heads = {label.split(" of the ")[0] for label in labels}
    if len(labels) == 2 and len(heads) == 1 and all(" of the " in label for label in labels):
        return f"the {heads.pop()}s of both groups"
    return " and ".join(with_article(label) for label in labels)


def form_name(measure: Measure, form: InputForm) -> str:
    """What a form is, briefly: "means and SDs", "Cohen's d", "the effect size"."""
    if form.code == "raw":
        return form.label
    lead = measure.statistic(form.groups[0][0])
    scale = " on the log scale" if lead.name == "yi" and measure.log_scale else ""
    return with_article(lead.label) + scale


def describe_form(measure: Measure, form: InputForm) -> str:
    """A form in a data manager's words with its columns: "Cohen's d with the sample sizes of both
    groups (di, n1i, n2i)"; alternatives in a group are joined by "or" ("bi or n1i")."""
    columns = ", ".join(" or ".join(group) for group in form.groups)
    if form.code == "raw" or len(form.groups) == 1:
        return f"{form_name(measure, form)} ({columns})"
    rest = [measure.statistic(group[0]).label for group in form.groups[1:]]
    return f"{form_name(measure, form)} with {_together(rest)} ({columns})"


def describe_forms(measure: Measure, forms: tuple[InputForm, ...] | None = None) -> str:
    """Forms as alternatives ("A, or B, or C"), in the order :attr:`Measure.forms_for_people`
    gives them; forms with the same lead and one other column are said once ("the effect size with
    the sampling variance (yi, vi) or the standard error (yi, sei)")."""
    chosen = measure.forms_for_people if forms is None else forms
    phrases: list[str] = []
    merged: dict[str, int] = {}
    for form in chosen:
        lead = form.groups[0][0]
        if form.code != "raw" and len(form.groups) == 2 and lead in merged:
            other = measure.statistic(form.groups[1][0]).label
            columns = ", ".join(" or ".join(group) for group in form.groups)
            phrases[merged[lead]] += f" or {with_article(other)} ({columns})"
            continue
        if form.code != "raw" and len(form.groups) == 2:
            merged[lead] = len(phrases)
        phrases.append(describe_form(measure, form))
    return ", or ".join(phrases)


MEASURES: dict[str, Measure] = {
    code: _upload_measure(registry.get(code)) for code in registry.OUTCOME_MEASURES
}

#: Every column name some measure reads (``mi``, ``sdi`` and ``ti`` besides :data:`STATISTICS`).
STATISTIC_NAMES: frozenset[str] = frozenset(name for m in MEASURES.values() for name in m.statistics)

#: Identity columns, in canonical order. Every parsed row has all of them.
IDENTITY_COLUMNS: tuple[str, ...] = ("study", "comparison", "instrument", "timepoint", "year")

#: Maximum length of a text value (the platform stores study labels in 200 characters).
MAX_TEXT_LENGTH = 200
