"""Validation of values: all errors at once, all-or-nothing, canonical rows, messages."""

from __future__ import annotations

import math
from typing import Any

import pytest

from apps.datasets.ingest import (
    ModeratorSpec,
    ParsedUpload,
    UploadRejected,
    UploadSpec,
    parse_json_rows,
    parse_upload,
)

from .malformed import SMD_HEADER, SMD_ROWS, changed, corpus_spec, csv_bytes

SMD = corpus_spec("SMD")


def smd_rows(**changes: Any) -> list[dict[str, Any]]:
    rows = [dict(zip(SMD_HEADER, r, strict=True)) for r in SMD_ROWS]
    for key, value in changes.items():
        index, column = key.split("__")
        rows[int(index)][column] = value
    return rows


def rejection(rows: object, spec: UploadSpec = SMD) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        parse_json_rows(rows, spec=spec)
    return info.value


def test_every_problem_is_reported_at_once_in_file_order() -> None:
    rows = changed(
        SMD_HEADER,
        SMD_ROWS,
        {
            (0, "study"): "",
            (0, "n2i"): "0",
            (1, "m1i"): "abc",
            (1, "instrument"): "HADS",
            (2, "sd1i"): "-1",
        },
    )
    rows.append(SMD_ROWS[2])
    with pytest.raises(UploadRejected) as info:
        parse_upload(csv_bytes(SMD_HEADER, rows), filename="x.csv", spec=SMD)
    got = [(e.row, e.column, e.code) for e in info.value.errors]
    assert got == [
        (2, "study", "missing_study"),
        (2, "n2i", "n_too_small"),
        (3, "instrument", "unknown_instrument"),
        (3, "m1i", "non_numeric"),
        (4, "sd1i", "sd_not_positive"),
        (5, "study", "duplicate_row"),
    ]
    assert str(info.value) == "The upload was rejected: 6 problems found."
    assert info.value.errors[0].to_dict() == {
        "row": 2,
        "column": "study",
        "value": None,
        "code": "missing_study",
        "message": "Row 2, column 'study': the study label is empty; every row needs the study it comes "
        "from.",
    }


def test_one_problem_per_cell_the_first_rule_broken() -> None:
    # -2.5 as a group size is fractional and too small: the data manager is told the first thing.
    err = rejection(smd_rows(**{"0__n1i": "-2.5"})).errors
    assert [(e.column, e.code) for e in err] == [("n1i", "not_integer")]


def test_messages_name_the_users_header_and_the_canonical_name() -> None:
    header = [
        "Study",
        "Instrument",
        "Wave",
        "Mean TX",
        "SD TX",
        "N TX",
        "Mean control",
        "SD control",
        "N control",
    ]
    rows = changed(SMD_HEADER, SMD_ROWS, {(2, "sd2i"): "-1.2"})
    with pytest.raises(UploadRejected) as info:
        parse_upload(csv_bytes(header, rows), filename="x.csv", spec=SMD)
    (error,) = info.value.errors
    assert error.column == "SD control"
    assert error.value == "-1.2"
    assert error.message == (
        "Row 4, column 'SD control' (sd2i): the standard deviation must be greater than 0, but it is -1.2."
    )


def test_values_are_shown_as_written_with_decimal_commas() -> None:
    content = csv_bytes(
        SMD_HEADER, changed(SMD_HEADER, SMD_ROWS, {(0, "sd1i"): "-1,5", (1, "m1i"): "2,5"}), delimiter=";"
    )
    with pytest.raises(UploadRejected) as info:
        parse_upload(content, filename="x.csv", spec=SMD)
    assert info.value.errors[0].message.endswith("but it is -1,5.")


def test_canonical_rows_types_and_columns() -> None:
    spec = UploadSpec(
        outcome_code="dep",
        measure="SMD",
        instruments={"PHQ-9", "BDI-II"},
        moderators=(
            ModeratorSpec("age", "numeric"),
            ModeratorSpec("setting", "categorical"),
            ModeratorSpec("dose", "numeric"),
        ),
    )
    rows = smd_rows(
        **{
            "0__age": "41,5",
            "0__setting": 1.0,
            "0__year": 2010.0,
            "0__n1i": 40.0,
            "1__comparison": "  CBT   vs\nwaitlist ",
            "2__notes": "fine",
            "0__instrument": "phq 9",
        }
    )
    parsed = parse_json_rows(rows, spec=spec)
    assert parsed.columns == (
        "study",
        "comparison",
        "instrument",
        "timepoint",
        "year",
        "m1i",
        "sd1i",
        "n1i",
        "m2i",
        "sd2i",
        "n2i",
        "age",
        "setting",
        "notes",
    )
    first, second, third = parsed.rows
    assert first["instrument"] == "PHQ-9"
    assert first["year"] == 2010 and isinstance(first["year"], int)
    assert first["n1i"] == 40 and isinstance(first["n1i"], int)
    assert isinstance(first["m1i"], float)
    assert first["age"] == 41.5 and second["age"] is None
    assert first["setting"] == "1"
    assert second["comparison"] == "CBT vs waitlist"
    assert third["notes"] == "fine" and first["notes"] is None
    assert {m.target: m.kind for m in parsed.mapping} == {
        "study": "identity",
        "instrument": "identity",
        "timepoint": "identity",
        "m1i": "statistic",
        "sd1i": "statistic",
        "n1i": "statistic",
        "m2i": "statistic",
        "sd2i": "statistic",
        "n2i": "statistic",
        "age": "moderator",
        "setting": "moderator",
        "year": "identity",
        "comparison": "identity",
        "notes": "extra",
    }
    # "41,5" is unambiguous; the rows mix decimal marks, so no file-wide decimal comma is reported
    assert [w.code for w in parsed.warnings] == ["extra_column"]
    assert parsed.source_format == "json" and parsed.encoding is None and parsed.delimiter is None


def test_extra_columns_are_numbers_when_every_value_is_one() -> None:
    parsed = parse_json_rows(
        smd_rows(**{"0__dose": "10", "1__dose": 12.5, "2__dose": None, "0__arm": "a", "1__arm": 3}), spec=SMD
    )
    assert [r["dose"] for r in parsed.rows] == [10.0, 12.5, None]
    assert [r["arm"] for r in parsed.rows] == ["a", "3", None]
    messages = {w.column: w.message for w in parsed.warnings}
    assert "read as numbers" in messages["dose"] and "read as text" in messages["arm"]


def test_extra_column_named_like_another_measures_statistic_gets_a_hint() -> None:
    parsed = parse_json_rows(smd_rows(**{"0__ai": 3}), spec=SMD)
    (warning,) = parsed.warnings
    assert "statistic of other effect measures" in warning.message


def test_moderator_named_year_is_read_as_the_year() -> None:
    spec = UploadSpec(outcome_code="dep", measure="SMD", moderators=(ModeratorSpec("year", "numeric"),))
    parsed = parse_json_rows(smd_rows(**{"0__year": 2010}), spec=spec)
    assert parsed.rows[0]["year"] == 2010
    assert parsed.columns.count("year") == 1


def test_two_by_two_group_sizes_give_non_events() -> None:
    spec = UploadSpec(outcome_code="dep", measure="RR")
    parsed = parse_json_rows(
        [
            {"study": "A", "ai": 3, "n1i": 10, "ci": 4, "di": 6},
            {"study": "B", "ai": 1, "n1i": 9, "ci": 2, "di": 7, "bi": None},
        ],
        spec=spec,
    )
    assert [(r["ai"], r["bi"], r["ci"], r["di"], r["n1i"]) for r in parsed.rows] == [
        (3, 7, 4, 6, 10),
        (1, 8, 2, 7, 9),
    ]
    assert [w.code for w in parsed.warnings] == ["derived_column"]
    assert "in 2 rows" in parsed.warnings[0].message


def test_generic_standard_errors_give_variances() -> None:
    spec = UploadSpec(outcome_code="dep", measure="GEN")
    parsed = parse_json_rows(
        [
            {"study": "A", "yi": 0.2, "vi": 0.04, "sei": None},
            {"study": "B", "yi": 0.3, "vi": None, "sei": 0.5},
        ],
        spec=spec,
    )
    assert [(r["vi"], r["sei"]) for r in parsed.rows] == [(0.04, None), (0.25, 0.5)]


def test_blank_alternatives_are_one_missing_value() -> None:
    spec = UploadSpec(outcome_code="dep", measure="GEN")
    err = rejection([{"study": "A", "yi": 0.2, "vi": None, "sei": ""}], spec).errors
    assert [(e.column, e.code) for e in err] == [("vi", "missing_value")]
    assert "standard error (sei)" in err[0].message


def test_instrument_and_timepoint_are_matched_loosely_and_stored_in_dictionary_spelling() -> None:
    parsed = parse_json_rows(smd_rows(**{"0__instrument": "bdi ii", "1__timepoint": "6 MONTHS"}), spec=SMD)
    assert parsed.rows[0]["instrument"] == "BDI-II"
    assert parsed.rows[1]["timepoint"] == "6 months"


def test_unknown_instrument_suggests_the_closest() -> None:
    (error,) = rejection(smd_rows(**{"0__instrument": "PHQ-8"})).errors
    assert error.code == "unknown_instrument"
    assert "Did you mean 'PHQ-9'?" in error.message


def test_any_instrument_when_the_outcome_lists_none() -> None:
    spec = UploadSpec(outcome_code="dep", measure="SMD")
    parsed = parse_json_rows(smd_rows(**{"0__instrument": "HADS", "1__timepoint": "week 3"}), spec=spec)
    assert parsed.rows[0]["instrument"] == "HADS" and parsed.rows[1]["timepoint"] == "week 3"


def test_outcome_column_may_repeat_the_target_and_is_not_kept() -> None:
    parsed = parse_json_rows(smd_rows(**{"0__outcome": "Depression", "1__outcome": ""}), spec=SMD)
    assert "outcome" not in parsed.columns
    assert ("outcome", "identity") in {(m.target, m.kind) for m in parsed.mapping}


def test_comparison_tells_duplicates_apart() -> None:
    rows = smd_rows()
    rows.append(dict(rows[0]))
    assert rejection(rows).codes == {"duplicate_row"}
    rows[0]["comparison"], rows[3]["comparison"] = "CBT vs waitlist", "CBT vs usual care"
    assert len(parse_json_rows(rows, spec=SMD).rows) == 4


def test_a_text_value_starting_with_a_quote_and_minus_round_trips_from_export() -> None:
    parsed = parse_json_rows(smd_rows(**{"0__comparison": "'-5 mg vs placebo"}), spec=SMD)
    assert parsed.rows[0]["comparison"] == "-5 mg vs placebo"
    assert rejection(smd_rows(**{"0__comparison": "'=cmd()"})).codes == {"formula_cell"}


def test_numbers_with_a_plus_sign_are_numbers_not_formulas() -> None:
    parsed = parse_json_rows(smd_rows(**{"0__m1i": "+10.2"}), spec=SMD)
    assert parsed.rows[0]["m1i"] == 10.2


def test_engine_catches_rows_the_column_checks_cannot() -> None:
    # Every value is in its domain, but the ratio of means' variance overflows: the engine
    # computes nothing for this row, so the upload must not accept it.
    spec = UploadSpec(outcome_code="dep", measure="ROM")
    rows = [
        {"study": "A", "m1i": 1e-300, "sd1i": 1.0, "n1i": 10, "m2i": 5.0, "sd2i": 1.0, "n2i": 10},
        {"study": "B", "m1i": 4.0, "sd1i": 1.0, "n1i": 10, "m2i": 5.0, "sd2i": 1.0, "n2i": 10},
    ]
    (error,) = rejection(rows, spec).errors
    assert (error.row, error.column, error.code) == (1, "m1i", "effect_not_computable")
    assert "no effect size can be computed" in error.message


@pytest.mark.parametrize(
    ("measure", "row"),
    [
        ("SMD", {"m1i": 1.5, "sd1i": 1.0, "n1i": 2, "m2i": 1.0, "sd2i": 1.0, "n2i": 2}),
        ("MD", {"m1i": -3, "sd1i": 0.1, "n1i": 2, "m2i": 0, "sd2i": 0.1, "n2i": 2}),
        ("ROM", {"m1i": 0.01, "sd1i": 1.0, "n1i": 2, "m2i": 100, "sd2i": 1.0, "n2i": 2}),
        ("OR", {"ai": 0, "bi": 10, "ci": 0, "di": 10}),
        ("RR", {"ai": 10, "bi": 0, "ci": 10, "di": 0}),
        ("RD", {"ai": 0, "n1i": 1, "ci": 1, "n2i": 1}),
        ("COR", {"ri": -0.999, "ni": 4}),
        ("ZCOR", {"ri": 0.999, "ni": 4}),
        ("PR", {"xi": 0, "ni": 2}),
        ("PLO", {"xi": 2, "ni": 2}),
        ("IRR", {"x1i": 0, "t1i": 0.5, "x2i": 0, "t2i": 1e-3}),
        ("GEN", {"yi": 0, "sei": 1e-6}),
    ],
)
def test_boundary_values_the_checks_accept_give_effect_sizes(measure: str, row: dict[str, Any]) -> None:
    from workers.metaanalysis import effects

    parsed = parse_json_rows([{"study": "A", **row}], spec=UploadSpec(outcome_code="dep", measure=measure))
    data = {
        c: [r[c] for r in parsed.rows]
        for c in parsed.columns
        if c not in ("study", "comparison", "instrument", "timepoint", "year")
    }
    sizes = effects.escalc(measure, data)
    assert math.isfinite(sizes.yi[0]) and math.isfinite(sizes.vi[0])


def test_demo_rows_of_the_platform_parse() -> None:
    from apps.demo import synthetic as demo

    specs = {
        o.code: UploadSpec(
            outcome_code=o.code,
            measure=o.measure,
            instruments=frozenset(o.instruments),
            timepoints=frozenset({"post", "6m", "12m"}),
            moderators=tuple(ModeratorSpec(m["name"], m["kind"]) for m in demo.MODERATORS),
        )
        for o in demo.OUTCOMES
    }
    for (_, outcome), rows in demo.demo_rows().items():
        parsed: ParsedUpload = parse_json_rows(rows, spec=specs[outcome])
        assert len(parsed.rows) == len(rows)
        # the only note: some trials report Cohen's d or t instead of means (the demo mixes forms)
        assert {w.code for w in parsed.warnings} <= {"input_forms"}
    smd_forms = {
        form
        for (_, outcome), rows in demo.demo_rows().items()
        if outcome != "secure-attachment"
        for form in parse_json_rows(rows, spec=specs[outcome]).forms
    }
    assert smd_forms == {"raw", "di", "ti"}


def test_spec_is_checked() -> None:
    with pytest.raises(ValueError, match="unknown effect measure"):
        UploadSpec(outcome_code="dep", measure="HR")
    with pytest.raises(ValueError, match="moderator kind"):
        ModeratorSpec("age", "ordinal")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unique"):
        UploadSpec(
            outcome_code="dep",
            measure="SMD",
            moderators=(ModeratorSpec("Age mean", "numeric"), ModeratorSpec("age_mean", "numeric")),
        )
    spec = UploadSpec(outcome_code="dep", measure="SMD", instruments=["PHQ-9", " "])  # type: ignore[arg-type]
    assert spec.instruments == frozenset({"PHQ-9"})


def test_rejection_needs_errors() -> None:
    with pytest.raises(ValueError):
        UploadRejected([])


def test_allowed_values_sharing_a_loose_spelling_need_the_exact_one() -> None:
    spec = UploadSpec(outcome_code="dep", measure="SMD", instruments={"BDI-1", "BDI 1"})
    assert (
        parse_json_rows(
            smd_rows(**{"0__instrument": "bdi-1", "1__instrument": "BDI 1", "2__instrument": "BDI 1"}),
            spec=spec,
        ).rows[0]["instrument"]
        == "BDI-1"
    )
    (error,) = rejection(
        smd_rows(**{"0__instrument": "BDI_1", "1__instrument": "BDI-1", "2__instrument": "BDI-1"}), spec
    ).errors
    assert (error.row, error.code) == (1, "unknown_instrument")


def test_extra_columns_are_checked_for_formulas_and_unstorable_values() -> None:
    err = rejection(smd_rows(**{"0__notes": "=1+1", "1__notes": {"a": 1}, "2__year": "@YEAR()"})).errors
    assert [(e.row, e.column, e.code) for e in err] == [
        (1, "notes", "formula_cell"),
        (2, "notes", "invalid_value"),
        (3, "year", "formula_cell"),
    ]


def test_an_empty_extra_column_is_kept_and_said_to_be_empty() -> None:
    parsed = parse_json_rows(smd_rows(**{"0__notes": "", "1__notes": None}), spec=SMD)
    assert [r["notes"] for r in parsed.rows] == [None, None, None]
    assert "read as an empty column" in parsed.warnings[0].message


def test_mapping_and_errors_serialise() -> None:
    parsed = parse_json_rows(smd_rows(), spec=SMD)
    assert parsed.mapping[0].to_dict() == {"source": "study", "target": "study", "kind": "identity"}
