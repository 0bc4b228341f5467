"""Understanding a header: which column is which, under the names data managers actually write.

Headers are compared by a *key*: case-folded, Unicode-normalised, with everything but letters and
digits removed, so ``"SD (control)"``, ``"sd_control"`` and ``"SD Control "`` are the same column.
Exact canonical names win over aliases: identity columns, the measure's statistics and the data
dictionary's moderators first, then the alias tables below. Aliases depend on the measure (``d``
is a 2x2 cell for OR, Cohen's d for SMD and the effect size for GEN; ``n`` is the sample size for
the measures of one group only; ``r`` is the pre-post correlation of change scores).

Every measure reads a given effect size with its standard error or variance besides its own
inputs. Outside GEN the effect size itself is recognised under its metafor name ``yi`` only: an
"effect size" column next to 2x2 tables is as likely the odds ratio as its logarithm, and the
analysis would take the one for the other without a word.
"""

from __future__ import annotations

import functools
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from workers.metaanalysis.measures import InputForm

from .errors import UploadError
from .measures import IDENTITY_COLUMNS, MEASURES, STATISTIC_NAMES, Measure, describe_forms, form_name
from .naming import column_letter, header_key
from .spec import MappingKind, UploadSpec

#: The ``outcome`` column is read (to check it) but not kept in the canonical rows.
READ_ONLY_IDENTITY = ("outcome",)


# --------------------------------------------------------------------------------------------
# Alias tables (written as data managers write them; keys are computed with header_key)

_ARM1 = (
    "treatment",
    "treated",
    "tx",
    "trt",
    "intervention",
    "int",
    "experimental",
    "exp",
    "e",
    "t",
    "active",
    "group1",
    "g1",
    "1",
)
_ARM2 = ("control", "ctrl", "ctl", "c", "comparator", "placebo", "group2", "g2", "2")

_MEAN = ("m", "mean", "avg", "average")
_SD = ("sd", "stdev", "stddev", "standarddeviation")
_N = ("n", "size", "samplesize", "total", "participants", "nparticipants", "randomised", "randomized")
_EVENTS = ("events", "event", "ev", "cases", "responders")
_NON_EVENTS = ("nonevents", "nonevent", "noevents", "noevent", "nonresponders", "noncases")
_TIME = ("persontime", "pt", "personyears", "py", "exposure", "followuptime", "time")


def _arm(prefixes: Iterable[str], arms: Iterable[str]) -> tuple[str, ...]:
    """Prefix+arm spellings, and arm+prefix for whole-word arms ("mean treatment", "treatment mean")."""
    out: list[str] = []
    for p in prefixes:
        for a in arms:
            out.append(p + a)
            if len(a) > 2 and not a[-1].isdigit():
                out.append(a + p)
    return tuple(out)


_IDENTITY_ALIASES: dict[str, tuple[str, ...]] = {
    "study": (
        "study id",
        "study name",
        "study label",
        "author",
        "authors",
        "author year",
        "first author",
        "reference",
        "citation",
        "trial",
        "trial name",
        "trial id",
    ),
    "comparison": ("contrast", "comparison id", "comparison label", "comparison name"),
    "instrument": (
        "measure",
        "scale",
        "instrument name",
        "questionnaire",
        "tool",
        "outcome measure",
        "measurement instrument",
        "test",
    ),
    "timepoint": (
        "time point",
        "time",
        "wave",
        "follow up",
        "assessment",
        "occasion",
        "visit",
        "assessment point",
    ),
    "outcome": ("outcome code", "outcome id"),
    "year": ("publication year", "pub year", "yr", "study year", "year of publication"),
}

_TOTAL_N = ("n", "sample size", "total n", "n total", "total", "size", "participants", "n participants")

_MEANS_ALIASES: dict[str, tuple[str, ...]] = {
    "m1i": _arm(_MEAN, _ARM1),
    "sd1i": _arm(_SD, _ARM1),
    "n1i": _arm(_N, _ARM1),
    "m2i": _arm(_MEAN, _ARM2),
    "sd2i": _arm(_SD, _ARM2),
    "n2i": _arm(_N, _ARM2),
}

_TABLE_ALIASES: dict[str, tuple[str, ...]] = {
    "ai": ("a", *_arm(_EVENTS, _ARM1)),
    "bi": ("b", *_arm(_NON_EVENTS, _ARM1)),
    "ci": ("c", *_arm(_EVENTS, _ARM2)),
    "di": ("d", *_arm(_NON_EVENTS, _ARM2)),
    "n1i": _arm(_N, _ARM1),
    "n2i": _arm(_N, _ARM2),
}

_CORRELATION_ALIASES: dict[str, tuple[str, ...]] = {
    "ri": ("r", "correlation", "corr", "pearson r", "pearson", "correlation coefficient"),
    "ni": _TOTAL_N,
}

_PROPORTION_ALIASES: dict[str, tuple[str, ...]] = {
    "xi": ("x", "events", "event", "cases", "count", "number of events", "n events"),
    "ni": _TOTAL_N,
}

_PERSON_TIME_ALIASES: dict[str, tuple[str, ...]] = {
    "x1i": ("x1", *_arm(_EVENTS, _ARM1)),
    "t1i": ("t1", *_arm(_TIME, _ARM1)),
    "x2i": ("x2", *_arm(_EVENTS, _ARM2)),
    "t2i": ("t2", *_arm(_TIME, _ARM2)),
}

_GENERIC_ALIASES: dict[str, tuple[str, ...]] = {
    "yi": (
        "y",
        "effect size",
        "es",
        "g",
        "d",
        "logor",
        "log or",
        "lnor",
        "logrr",
        "lnrr",
        "hedges g",
        "cohens d",
        "smd",
        "effect",
        "estimate",
    ),
    "vi": ("v", "variance", "var", "sampling variance"),
    "sei": ("se", "standard error", "stderr", "std error", "sem"),
}

# One group measured twice (SMCR, SMCC, MC). metafor's m1i is the post-test mean: numbered
# spellings ("m1", "sd1") are left out, since many would read "1" as the first measurement.
_PRE = ("pre", "pretest", "baseline", "before")
_POST = ("post", "posttest", "after")

_CHANGE_ALIASES: dict[str, tuple[str, ...]] = {
    "m1i": _arm(_MEAN, _POST),
    "m2i": _arm(_MEAN, _PRE),
    "sd1i": _arm(_SD, _PRE),
    "sd2i": _arm(_SD, _POST),
    "ni": _TOTAL_N,
    "ri": (
        "r",
        "correlation",
        "corr",
        "pre post correlation",
        "pre post r",
        "r pre post",
        "correlation pre post",
        "test retest correlation",
        "baseline post correlation",
    ),
}

# One group's mean (MN)
_MEAN_ALIASES: dict[str, tuple[str, ...]] = {
    "mi": _MEAN,
    "sdi": _SD,
    "ni": _TOTAL_N,
}

#: Aliases by the measure's family: the same statistics go by the same names whatever the measure.
_FAMILY_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    "means": _MEANS_ALIASES,
    "change": _CHANGE_ALIASES,
    "mean": _MEAN_ALIASES,
    "table": _TABLE_ALIASES,
    "correlation": _CORRELATION_ALIASES,
    "proportion": _PROPORTION_ALIASES,
    "person_time": _PERSON_TIME_ALIASES,
    "generic": _GENERIC_ALIASES,
}

#: A given effect size's standard error or variance, for the measures other than GEN: the names
#: that cannot mean anything else beside the measure's own inputs ("var" may be an SD squared,
#: "sem" a group mean's standard error).
_GIVEN_ALIASES: dict[str, tuple[str, ...]] = {
    "vi": ("sampling variance",),
    "sei": ("se", "standard error", "stderr", "std error"),
}

#: The statistics SMD's reported-statistic forms lead with.
_REPORTED_ALIASES: dict[str, tuple[str, ...]] = {
    "di": ("d", "cohens d", "cohen d"),
    "ti": ("t", "t value", "t statistic", "t stat", "t test", "tvalue"),
}


def _measure_aliases(m: Measure) -> dict[str, tuple[str, ...]]:
    """The aliases of every column ``m`` reads: its family's, then its other forms' columns."""
    tables = [_FAMILY_ALIASES[m.family]]
    if m.family != "generic":
        tables.append(_GIVEN_ALIASES)
    tables.append({name: _REPORTED_ALIASES[name] for name in m.reported_leads})
    out: dict[str, tuple[str, ...]] = {}
    for table in tables:
        for target, aliases in table.items():
            if target in m.meanings:
                out[target] = (*out.get(target, ()), *aliases)
    return out


#: The aliases each measure accepts.
_STAT_ALIASES: dict[str, dict[str, tuple[str, ...]]] = {
    code: _measure_aliases(m) for code, m in MEASURES.items()
}


@functools.cache
def alias_table(measure: str) -> Mapping[str, str]:
    """Header key -> canonical name, for the aliases valid under ``measure`` (not exact names)."""
    table: dict[str, str] = {}
    for target, aliases in (*_IDENTITY_ALIASES.items(), *_STAT_ALIASES[measure].items()):
        for alias in aliases:
            table.setdefault(header_key(alias), target)
    return MappingProxyType(table)


#: Spellings quoted in messages about a missing column (each is also a working alias); a table,
#: one canonical column a line.
_SHOWN_ALIASES: dict[str, tuple[str, ...]] = {
    "study": ("study_id", "author_year"),
    "m1i": ("mean_treatment", "m1", "post_mean"),
    "sd1i": ("sd_treatment", "sd1", "pre_sd"),
    "n1i": ("n_treatment", "n1"),
    "m2i": ("mean_control", "m2", "pre_mean"),
    "sd2i": ("sd_control", "sd2", "post_sd"),
    "n2i": ("n_control", "n2"),
    "ai": ("events_treatment", "a"),
    "bi": ("nonevents_treatment", "b"),
    "ci": ("events_control", "c"),
    "di": ("nonevents_control", "d", "cohens_d"),
    "ti": ("t", "t_value"),
    "ri": ("r", "correlation"),
    "ni": ("n", "sample_size"),
    "xi": ("events", "x"),
    "mi": ("mean", "m"),
    "sdi": ("sd", "standard_deviation"),
    "x1i": ("events_treatment", "x1"),
    "t1i": ("persontime_treatment", "t1"),
    "x2i": ("events_control", "x2"),
    "t2i": ("persontime_control", "t2"),
    "yi": ("effect_size", "es"),
    "vi": ("variance", "var"),
    "sei": ("se", "standard_error"),
}


def accepted_headers(target: str, measure: str) -> str:
    """The canonical name and a couple of accepted aliases, quoted, for messages."""
    valid = alias_table(measure)
    shown = [a for a in _SHOWN_ALIASES.get(target, ()) if valid.get(header_key(a)) == target]
    return ", ".join(f"'{name}'" for name in (target, *shown))


@functools.cache
def _known_keys() -> frozenset[str]:
    keys = {header_key(n) for n in (*IDENTITY_COLUMNS, *READ_ONLY_IDENTITY, *STATISTIC_NAMES)}
    for measure in MEASURES:
        keys.update(alias_table(measure))
    return frozenset(keys)


def known_header_keys(spec: UploadSpec | None = None) -> frozenset[str]:
    """Every key any measure recognises, plus the spec's moderators (to find the real header)."""
    if spec is None or not spec.moderators:
        return _known_keys()
    return _known_keys() | {header_key(m.name) for m in spec.moderators}


# --------------------------------------------------------------------------------------------
# Resolution


@dataclass(frozen=True)
class ResolvedColumn:
    """A column of the file that will be read: where it is, what the user called it, what it is."""

    index: int
    source: str
    target: str
    kind: MappingKind

    @property
    def is_alias(self) -> bool:
        return self.source != self.target


@dataclass
class Resolution:
    """The outcome of reading a header."""

    columns: list[ResolvedColumn] = field(default_factory=list)
    errors: list[UploadError] = field(default_factory=list)

    @property
    def by_target(self) -> dict[str, ResolvedColumn]:
        return {c.target: c for c in self.columns}


def _is_formula_text(text: str) -> bool:
    # A header is never a number, so any of these leading characters marks a formula.
    return text[:1] in ("=", "+", "@")


def resolve_columns(
    header: Sequence[str | None],
    has_data: Sequence[bool],
    spec: UploadSpec,
    *,
    header_row: int | None,
    single_column_hint: str | None = None,
) -> Resolution:
    """Map each header cell to a canonical column and report header problems.

    ``header`` holds the header texts (``None`` for a formula cell, reported by the reader);
    ``has_data[i]`` tells whether column ``i`` holds any value below the header (a blank header
    above an empty column is just an unused column; above values it is an error).
    """
    measure: Measure = MEASURES[spec.measure]
    exact: dict[str, tuple[str, MappingKind]] = {}
    for name in (*IDENTITY_COLUMNS, *READ_ONLY_IDENTITY):
        exact[header_key(name)] = (name, "identity")
    for name in measure.statistics:
        exact.setdefault(header_key(name), (name, "statistic"))
    for mod in spec.moderators:
        # A moderator named like an identity column or a statistic (the data dictionary may list
        # "year" as a numeric moderator) is read by the identity/statistic rules under that name.
        exact.setdefault(header_key(mod.name), (mod.name, "moderator"))
    aliases = alias_table(spec.measure)

    res = Resolution()
    taken: dict[str, ResolvedColumn] = {}
    for index, raw in enumerate(header):
        if raw is None:
            continue
        source = " ".join(raw.split())
        letter = column_letter(index)
        if not source:
            if index < len(has_data) and has_data[index]:
                res.errors.append(
                    UploadError.about(
                        "unnamed_column",
                        f"Column {letter} has values but no header; add a header or delete the column.",
                    )
                )
            continue
        if _is_formula_text(source):
            res.errors.append(
                UploadError.about(
                    "formula_cell",
                    f"The header of column {letter} is a formula ('{source[:60]}'); write the column "
                    "name as plain text.",
                    row=header_row,
                    column=source,
                    value=source[:100],
                )
            )
            continue
        key = header_key(source)
        hit = exact.get(key)
        if hit is None and key in aliases:
            target = aliases[key]
            hit = exact.get(header_key(target), (target, "identity"))
        target, kind = hit if hit is not None else (source, "extra")
        taken_key = header_key(target) if kind == "extra" else target
        if taken_key in taken:
            first = taken[taken_key]
            what = f"'{target}'" + (f" ({measure.statistic(target).label})" if kind == "statistic" else "")
            res.errors.append(
                UploadError.about(
                    "duplicate_column",
                    f"Columns '{first.source}' and '{source}' both mean {what}; keep only one of "
                    "them (the second was not read).",
                    column=source,
                )
            )
            continue
        col = ResolvedColumn(index=index, source=source, target=target, kind=kind)
        taken[taken_key] = col
        res.columns.append(col)

    res.errors.extend(_missing_columns({c.target for c in res.columns}, spec, single_column_hint))
    return res


def form_missing_from(measure: Measure, present: Collection[str]) -> InputForm | None:
    """The form whose missing columns to report when the header completes none (``None`` when
    it completes one): the form the header has started with the fewest columns missing, the
    measure's own inputs on a tie or when the header holds no column of any form."""
    ranked = []
    for index, form in enumerate(measure.forms_for_people):
        gaps = sum(not any(c in present for c in group) for group in form.groups)
        if gaps == 0:
            return None
        if any(c in present for c in form.columns):
            ranked.append((gaps, index, form))
    if ranked:
        return min(ranked, key=lambda r: (r[0], r[1]))[2]
    return measure.forms_for_people[0]


def _missing_columns(
    present: set[str], spec: UploadSpec, single_column_hint: str | None
) -> list[UploadError]:
    """``missing_column`` errors for the study, the measure's statistics and a required instrument.

    When the whole header was read as one column the delimiter is the likely culprit; the first
    error says so (once: repeating it in every message would bury the other sentences).
    """
    measure = MEASURES[spec.measure]
    missing: list[tuple[str, str]] = []
    if "study" not in present:
        missing.append(
            (
                "study",
                "The header has no 'study' column; every row needs a study label "
                f"(accepted headers include: {accepted_headers('study', spec.measure)}).",
            )
        )
    form = form_missing_from(measure, present)
    if form is not None:
        if form.code == "raw" or measure.raw_form is None:
            needs = f"which the {measure.label} needs"
        else:
            needs = f"which the {measure.label} needs when given as {form_name(measure, form)}"
        others = [f for f in measure.forms_for_people if f is not form]
        # GEN's forms differ in one alternative column, which the sentence names already
        otherwise = f" Or give {describe_forms(measure, tuple(others))}." if measure.raw_form else ""
        for group in form.groups:
            if any(name in present for name in group):
                continue
            name = group[0]
            alternatives = "".join(
                f" (or the {measure.statistic(alt).label} in a column named '{alt}')" for alt in group[1:]
            )
            missing.append(
                (
                    name,
                    f"The header has no column for the {measure.statistic(name).label} ('{name}')"
                    f"{alternatives}, {needs} (accepted headers include: "
                    f"{accepted_headers(name, spec.measure)}).{otherwise}",
                )
            )
            otherwise = ""  # the other forms are said once, after the first column missing
    if spec.instruments and "instrument" not in present:
        missing.append(
            (
                "instrument",
                "The header has no 'instrument' column; this outcome requires the instrument "
                f"of every row, one of: {', '.join(sorted(spec.instruments))}.",
            )
        )
    errors: list[UploadError] = []
    for i, (column, message) in enumerate(missing):
        if i == 0 and single_column_hint:
            message = f"{message} {single_column_hint}"
        errors.append(UploadError.about("missing_column", message, column=column))
    return errors
