"""Header matching: canonical names, aliases by measure, duplicates, missing columns."""

from __future__ import annotations

import pytest

from apps.datasets.ingest import MEASURES, ModeratorSpec, UploadSpec
from apps.datasets.ingest.columns import (
    _IDENTITY_ALIASES,
    _SHOWN_ALIASES,
    _STAT_ALIASES,
    alias_table,
    column_letter,
    header_key,
    resolve_columns,
)


def spec(measure: str = "SMD", **kw: object) -> UploadSpec:
    return UploadSpec(outcome_code="dep", measure=measure, **kw)  # type: ignore[arg-type]


def mapping(header: list[str], s: UploadSpec) -> dict[str, tuple[str, str]]:
    res = resolve_columns(header, [True] * len(header), s, header_row=1)
    return {c.source: (c.target, c.kind) for c in res.columns}


def test_header_key_ignores_case_spaces_and_punctuation() -> None:
    assert (
        header_key("  SD (Control) ") == header_key("sd_control") == header_key("Sd-Control") == "sdcontrol"
    )
    assert header_key("Größe") == "grösse"


@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_aliases_never_point_at_two_targets_within_a_measure(measure: str) -> None:
    seen: dict[str, str] = {}
    for target, aliases in (*_IDENTITY_ALIASES.items(), *_STAT_ALIASES[measure].items()):
        for alias in aliases:
            key = header_key(alias)
            assert seen.setdefault(key, target) == target, (alias, seen[key], target)


@pytest.mark.parametrize("measure", sorted(MEASURES))
def test_aliases_never_shadow_a_canonical_statistic(measure: str) -> None:
    exact = {header_key(n) for n in MEASURES[measure].statistics}
    for key, target in alias_table(measure).items():
        assert key not in exact or key == header_key(target)


def test_shown_aliases_work() -> None:
    for target, shown in _SHOWN_ALIASES.items():
        measures = [m for m in MEASURES if target in MEASURES[m].statistics] or ["SMD"]
        for alias in shown:
            assert any(alias_table(m).get(header_key(alias)) == target for m in measures), (target, alias)


@pytest.mark.parametrize(
    ("measure", "header", "target"),
    [
        ("SMD", "Mean intervention", "m1i"),
        ("SMD", "mean_tx", "m1i"),
        ("SMD", "m_t", "m1i"),
        ("SMD", "M1", "m1i"),
        ("SMD", "SD control", "sd2i"),
        ("SMD", "sd_c", "sd2i"),
        ("SMD", "sd2", "sd2i"),
        ("SMD", "n intervention", "n1i"),
        ("SMD", "N_treatment", "n1i"),
        ("SMD", "treatment mean", "m1i"),
        ("OR", "events_treatment", "ai"),
        ("OR", "a", "ai"),
        ("OR", "d", "di"),
        ("OR", "non-events control", "di"),
        ("OR", "n control", "n2i"),
        ("COR", "r", "ri"),
        ("COR", "Correlation", "ri"),
        ("COR", "N", "ni"),
        ("COR", "sample size", "ni"),
        ("PR", "n", "ni"),
        ("PR", "events", "xi"),
        ("IRR", "person-time treatment", "t1i"),
        ("IRR", "events control", "x2i"),
        ("GEN", "effect size", "yi"),
        ("GEN", "ES", "yi"),
        ("GEN", "g", "yi"),
        ("GEN", "d", "yi"),
        ("GEN", "logOR", "yi"),
        ("GEN", "variance", "vi"),
        ("GEN", "var", "vi"),
        ("GEN", "SE", "sei"),
        ("GEN", "standard error", "sei"),
        ("SMD", "Study ID", "study"),
        ("SMD", "study name", "study"),
        ("SMD", "Author", "study"),
        ("SMD", "author_year", "study"),
        ("SMD", "Time point", "timepoint"),
        ("SMD", "time", "timepoint"),
        ("SMD", "wave", "timepoint"),
        ("SMD", "Measure", "instrument"),
        ("SMD", "scale", "instrument"),
        ("SMD", "instrument name", "instrument"),
        ("SMD", " YEAR ", "year"),
    ],
)
def test_alias(measure: str, header: str, target: str) -> None:
    assert mapping([header], spec(measure))[header.strip()][0] == target


def test_aliases_depend_on_the_measure() -> None:
    # "n" is a total sample size for correlations and proportions only; for SMD it is unknown
    assert mapping(["n"], spec("SMD"))["n"] == ("n", "extra")
    assert mapping(["r"], spec("SMD"))["r"] == ("r", "extra")
    assert mapping(["effect size"], spec("SMD"))["effect size"] == ("effect size", "extra")


def test_moderator_names_beat_aliases_and_identity_names_beat_moderators() -> None:
    s = spec(moderators=(ModeratorSpec("time", "numeric"), ModeratorSpec("year", "numeric")))
    m = mapping(["time", "Year", "wave"], s)
    assert m["time"] == ("time", "moderator")  # not the time-point alias
    assert m["Year"] == ("year", "identity")  # read with the year rules, kept under "year"
    assert m["wave"] == ("timepoint", "identity")


def test_duplicate_targets_are_reported_once_each() -> None:
    res = resolve_columns(["study", "m1i", "Mean treatment", "M1", "Study"], [True] * 5, spec(), header_row=1)
    dups = [(e.column, e.code) for e in res.errors if e.code == "duplicate_column"]
    assert dups == [
        ("Mean treatment", "duplicate_column"),
        ("M1", "duplicate_column"),
        ("Study", "duplicate_column"),
    ]
    assert [c.source for c in res.columns] == ["study", "m1i"]


def test_blank_header_is_ignored_without_data_and_reported_with_data() -> None:
    res = resolve_columns(["study", "", "m1i", ""], [True, False, True, True], spec(), header_row=1)
    unnamed = [e for e in res.errors if e.code == "unnamed_column"]
    assert len(unnamed) == 1
    assert "Column D" in unnamed[0].message


def test_missing_columns_name_alternatives() -> None:
    res = resolve_columns(["study", "ai", "ci"], [True] * 3, spec("OR"), header_row=1)
    missing = {e.column: e.message for e in res.errors if e.code == "missing_column"}
    assert set(missing) == {"bi", "di"}
    assert "'n1i'" in missing["bi"] and "'n2i'" in missing["di"]


def test_instrument_is_required_only_when_the_outcome_lists_instruments() -> None:
    header = ["study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
    assert not resolve_columns(header, [True] * 7, spec(), header_row=1).errors
    res = resolve_columns(header, [True] * 7, spec(instruments={"PHQ-9"}), header_row=1)
    assert [(e.column, e.code) for e in res.errors] == [("instrument", "missing_column")]


def test_column_letters() -> None:
    assert [column_letter(i) for i in (0, 25, 26, 27, 701, 702)] == ["A", "Z", "AA", "AB", "ZZ", "AAA"]
