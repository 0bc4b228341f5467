"""Input forms in uploads: every form of the outcome's measure, mixed in one file, each row using
the first it has complete (the engine's rule); the change-score and one-group measures."""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl
import pytest

from apps.datasets.ingest import (
    MEASURES,
    WARNING_CODES,
    ParsedUpload,
    UploadRejected,
    UploadSpec,
    parse_json_rows,
    parse_upload,
    template_for,
)
from apps.datasets.ingest.columns import alias_table, header_key, resolve_columns
from apps.datasets.ingest.templates import example_rows, template_columns
from workers.metaanalysis import effects

from .malformed import csv_bytes, xlsx_bytes

CASES = Path(__file__).resolve().parents[1] / "metaanalysis" / "cases"

#: Rows cycling through means and SDs, Cohen's d, t and a given g with its SE; row 14 gives only
#: the group sizes (see the case's "source").
MIXED = json.loads((CASES / "lehmann2018-SMD-mixed-inputs-REML.json").read_text())
MIXED_COLUMNS = MIXED["columns"]
EMPTY_ROW = 13  # 0-based: row 14 of the case, row 15 of a spreadsheet
MIXED_FORMS = ("raw", "di", "ti", "yi_sei") * 7


def spec(measure: str = "SMD") -> UploadSpec:
    return UploadSpec(outcome_code="dep", measure=measure)


def table(rows: list[dict[str, Any]], columns: list[str] = MIXED_COLUMNS) -> list[list[Any]]:
    return [[r.get(c) for c in columns] for r in rows]


def mixed_rows(*, with_empty: bool = False) -> list[dict[str, Any]]:
    return [r for i, r in enumerate(MIXED["rows"]) if with_empty or i != EMPTY_ROW]


def mixed_upload(fmt: str, *, with_empty: bool = False) -> bytes:
    rows = table(mixed_rows(with_empty=with_empty))
    return csv_bytes(MIXED_COLUMNS, rows) if fmt == "csv" else xlsx_bytes(MIXED_COLUMNS, rows)


def engine_sizes(measure: str, parsed: ParsedUpload) -> Any:
    """The engine's effect sizes on the parsed rows, every statistic column passed as stored."""
    names = [c for c in parsed.columns if c in MEASURES[measure].statistics]
    return effects.escalc(measure, {n: [r[n] for r in parsed.rows] for n in names})


def rejection(content: bytes, measure: str = "SMD", filename: str = "x.csv") -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        parse_upload(content, filename=filename, spec=spec(measure))
    return info.value


# --------------------------------------------------------------------------------------------
# A file mixing the forms of SMD


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_mixed_form_upload_is_accepted_and_reports_each_rows_form(fmt: str) -> None:
    parsed = parse_upload(mixed_upload(fmt), filename=f"mixed.{fmt}", spec=spec())
    expected = tuple(f for i, f in enumerate(MIXED_FORMS) if i != EMPTY_ROW)
    assert parsed.forms == expected
    assert parsed.form_counts == {"raw": 7, "di": 6, "ti": 7, "yi_sei": 7}
    (note,) = [w for w in parsed.warnings if w.code == "input_forms"]
    assert note.message == (
        "27 rows: 7 from means and SDs, 6 from Cohen's d, 7 from an independent-samples t statistic, "
        "7 from a given effect size and standard error."
    )
    assert "input_forms" in WARNING_CODES
    # every statistic is kept as given; no variance is made up for the rows given with an SE
    assert parsed.columns[5:] == ("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "di", "ti", "yi", "sei")
    assert parsed.rows[1]["di"] == 0.22 and parsed.rows[1]["m1i"] is None
    assert isinstance(parsed.rows[1]["n1i"], int)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_effect_sizes_of_a_mixed_upload_are_metafors(fmt: str) -> None:
    parsed = parse_upload(mixed_upload(fmt), filename=f"mixed.{fmt}", spec=spec())
    sizes = engine_sizes("SMD", parsed)
    assert sizes.forms == parsed.forms  # the upload and the analysis agree on every row's form
    expected = MIXED["expected"]["effect_sizes"]
    keep = [i for i in range(len(MIXED["rows"])) if i != EMPTY_ROW]
    for name in ("yi", "vi"):
        np.testing.assert_allclose(getattr(sizes, name), [expected[name][i] for i in keep], rtol=1e-6)


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_row_with_no_complete_form_is_refused_naming_the_row_and_what_to_give(fmt: str) -> None:
    errors = rejection(mixed_upload(fmt, with_empty=True), filename=f"mixed.{fmt}").errors
    (error,) = errors
    assert (error.row, error.code) == (EMPTY_ROW + 2, "missing_value")
    assert error.message.startswith(f"Row {EMPTY_ROW + 2}, column 'di': no effect size can be computed")
    assert error.message.endswith(
        "give means and SDs (m1i, sd1i, n1i, m2i, sd2i, n2i), or Cohen's d with the sample sizes of "
        "both groups (di, n1i, n2i), or the independent-samples t statistic with the sample sizes of "
        "both groups (ti, n1i, n2i), or the effect size with the sampling variance (yi, vi) or the "
        "standard error (yi, sei)."
    )


def test_a_row_names_what_its_nearest_form_lacks() -> None:
    rows = mixed_rows()
    rows[0] = {**rows[0], "sd2i": None}  # means and SDs without the control group's SD
    rows[1] = {**rows[1], "n2i": None}  # Cohen's d without the control group's size
    rows[3] = {**rows[3], "sei": None}  # a given g alone
    errors = rejection(csv_bytes(MIXED_COLUMNS, table(rows))).errors
    got = {(e.row, e.column): e.message.split(". ")[-1] for e in errors}
    assert got == {
        (2, "sd2i"): "For means and SDs, it lacks the standard deviation of the control group (sd2i).",
        (3, "n2i"): "For Cohen's d, it lacks the sample size of the control group (n2i).",
        (5, "sei"): "For the effect size, it lacks the standard error (sei).",
    }
    assert all(e.code == "missing_value" for e in errors)


def test_the_nearest_given_form_names_both_of_its_alternatives() -> None:
    content = csv_bytes(["study", "yi", "vi", "sei", "n1i"], [["A", 0.3, None, None, 20]])
    (error,) = rejection(content).errors
    assert error.message.endswith("it lacks the sampling variance (vi) or the standard error (sei).")


def test_a_column_the_file_lacks_is_named_as_missing_from_the_file() -> None:
    # the means are there but the control group's SD has no column; Cohen's d is offered instead
    content = b"study,m1i,sd1i,n1i,m2i,n2i,di\nA,10,3,20,11,22,\nB,,,20,,22,0.3\n"
    (error,) = rejection(content).errors
    assert (error.row, error.column, error.code) == (2, "di", "missing_value")
    assert error.message.endswith(
        "For means and SDs, it lacks the standard deviation of the control group (sd2i), for which the "
        "file has no column."
    )


def test_partly_filled_other_forms_are_fine_when_one_form_is_complete() -> None:
    rows = [
        {"study": "A", "m1i": 10.2, "sd1i": None, "n1i": 20, "n2i": 22, "di": 0.4},
        {"study": "B", "m1i": 10.2, "sd1i": 3.1, "n1i": 20, "m2i": 9.8, "sd2i": 3.3, "n2i": 22, "ti": None},
        {"study": "C", "yi": 0.31, "sei": 0.2, "ti": None, "n1i": 15},
    ]
    parsed = parse_json_rows(rows, spec=spec())
    assert parsed.forms == ("di", "raw", "yi_sei")


def test_a_row_complete_in_several_forms_uses_the_first_as_the_engine_does() -> None:
    row = {"m1i": 10.2, "sd1i": 3.1, "n1i": 20, "m2i": 9.8, "sd2i": 3.3, "n2i": 22}
    rows = [
        {"study": "A", **row, "ti": 2.1},
        {"study": "B", **row, "ti": 2.1, "di": 0.5},
        {"study": "C", **row, "yi": 0.3, "sei": 0.2},
    ]
    parsed = parse_json_rows(rows, spec=spec())
    assert parsed.forms == ("ti", "di", "yi_sei")
    assert engine_sizes("SMD", parsed).forms == parsed.forms


def test_every_value_given_is_checked_whichever_form_its_row_uses() -> None:
    row = {"study": "A", "m1i": 10.2, "sd1i": 3.1, "n1i": 20, "m2i": 9.8, "sd2i": 3.3, "n2i": 22}
    with pytest.raises(UploadRejected) as info:
        parse_json_rows([{**row, "yi": 0.3, "sei": 0}, {**row, "study": "B", "ti": "2,1x"}], spec=spec())
    assert [(e.row, e.column, e.code) for e in info.value.errors] == [
        (1, "sei", "variance_not_positive"),
        (2, "ti", "non_numeric"),
    ]
    assert info.value.errors[1].message == (
        "Item 2, field 'ti': the independent-samples t statistic must be a number, but it is '2,1x'."
    )


def test_standard_errors_at_or_below_zero_name_row_and_column() -> None:
    content = csv_bytes(
        ["study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "yi", "se"],
        [
            ["A", None, None, None, None, None, None, 0.3, 0],
            ["B", None, None, None, None, None, None, 0.2, -0.1],
        ],
    )
    errors = rejection(content).errors
    assert [(e.row, e.column, e.code) for e in errors] == [
        (2, "se", "variance_not_positive"),
        (3, "se", "variance_not_positive"),
    ]
    assert (
        errors[0].message
        == "Row 2, column 'se' (sei): the standard error must be greater than 0, but it is 0."
    )


def test_a_header_completing_no_form_names_the_nearest_forms_columns() -> None:
    errors = rejection(b"study,di,n1i\nA,0.3,20\n").errors
    assert [(e.column, e.code) for e in errors] == [("n2i", "missing_column")]
    assert "needs when given as Cohen's d" in errors[0].message
    assert "Or give means and SDs (m1i, sd1i, n1i, m2i, sd2i, n2i)" in errors[0].message
    # with no column of any form, the measure's own inputs are asked for, as before
    errors = rejection(b"study,year\nA,2010\n").errors
    assert [e.column for e in errors] == ["m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]


def test_a_file_of_the_measures_own_inputs_reports_blank_cells_one_by_one() -> None:
    rows = [{"study": "A", "m1i": 10.2, "sd1i": None, "n1i": 20, "m2i": 9.8, "sd2i": 3.3, "n2i": None}]
    errors = rejection(csv_bytes(list(rows[0]), table(rows, list(rows[0])))).errors
    assert [(e.column, e.code) for e in errors] == [("sd1i", "missing_value"), ("n2i", "missing_value")]


# --------------------------------------------------------------------------------------------
# What a column means depends on the measure


def test_di_is_cohens_d_for_smd_and_non_events_for_odds_ratios() -> None:
    smd = parse_upload(b"study,di,n1i,n2i\nA,0.45,20,22\n", filename="d.csv", spec=spec("SMD"))
    assert smd.rows[0]["di"] == 0.45 and smd.forms == ("di",)
    assert engine_sizes("SMD", smd).yi[0] == pytest.approx(0.45 * (1 - 3 / (4 * 40 - 1)), rel=1e-3)

    table_rows = parse_upload(b"study,ai,bi,ci,di\nA,12,28,20,18\n", filename="t.csv", spec=spec("OR"))
    assert table_rows.rows[0]["di"] == 18 and isinstance(table_rows.rows[0]["di"], int)
    assert table_rows.forms == ("raw",)
    assert engine_sizes("OR", table_rows).yi[0] == pytest.approx(math.log(12 * 18 / (28 * 20)))

    errors = rejection(b"study,ai,bi,ci,di\nA,12,28,20,0.45\n", "OR").errors
    assert [(e.column, e.code) for e in errors] == [("di", "not_integer")]
    assert "number of non-events in the control group" in errors[0].message
    # "d" goes by the measure too: Cohen's d, a cell of the table, the effect size itself
    assert alias_table("SMD")[header_key("d")] == "di"
    assert alias_table("OR")[header_key("d")] == "di"
    assert alias_table("GEN")[header_key("d")] == "yi"
    assert header_key("d") not in alias_table("MD")


def test_every_measure_accepts_a_given_effect_size_with_its_standard_error() -> None:
    content = b"study,ai,bi,ci,di,yi,se\nA,12,28,20,18,,\nB,,,,,-0.4,0.3\n"
    parsed = parse_upload(content, filename="or.csv", spec=spec("OR"))
    assert parsed.forms == ("raw", "yi_sei")
    assert [w.code for w in parsed.warnings] == ["input_forms"]
    assert (
        parsed.warnings[0].message
        == "2 rows: 1 from a 2x2 table, 1 from a given effect size and standard error."
    )
    assert engine_sizes("OR", parsed).yi[1] == -0.4


# --------------------------------------------------------------------------------------------
# Change scores and one group's mean


_NEW_CASES = {
    "SMCR": "morris2008-SMCR-REML.json",
    "SMCC": "morris2008-SMCC-REML.json",
    "MC": "morris2008-MC-REML.json",
    "MN": "senn2013-MN-REML-placebo.json",
}

#: Headers as a data manager writes them for each statistic of the new families.
_HEADERS = {
    "m1i": "Post mean",
    "m2i": "Pre mean",
    "sd1i": "Pre SD",
    "sd2i": "Post SD",
    "ni": "N",
    "ri": "Pre-post correlation",
    "mi": "Mean",
    "sdi": "SD",
}


@pytest.mark.parametrize("measure", sorted(_NEW_CASES))
@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_new_measures_upload_and_give_the_engines_effect_sizes(measure: str, fmt: str) -> None:
    case = json.loads((CASES / _NEW_CASES[measure]).read_text())
    columns = case["columns"]
    header = ["Study", *(_HEADERS[c] for c in columns[1:])]
    rows = table(case["rows"], columns)
    content = csv_bytes(header, rows) if fmt == "csv" else xlsx_bytes(header, rows)
    parsed = parse_upload(content, filename=f"{measure}.{fmt}", spec=spec(measure))
    assert parsed.warnings == ()
    assert parsed.forms == ("raw",) * len(rows)
    assert {m.source: m.target for m in parsed.mapping} == dict(
        zip(header, ["study", *columns[1:]], strict=True)
    )
    sizes = engine_sizes(measure, parsed)
    direct = effects.escalc(measure, {c: [r[c] for r in case["rows"]] for c in columns[1:]})
    np.testing.assert_array_equal(sizes.yi, direct.yi)
    np.testing.assert_array_equal(sizes.vi, direct.vi)
    expected = case["expected"]["effect_sizes"]
    np.testing.assert_allclose(sizes.yi, expected["yi"], rtol=1e-6)
    np.testing.assert_allclose(sizes.vi, expected["vi"], rtol=1e-6)


@pytest.mark.parametrize(
    ("measure", "header", "target"),
    [
        ("SMCR", "post mean", "m1i"),
        ("SMCR", "Mean post-test", "m1i"),
        ("SMCR", "pre mean", "m2i"),
        ("SMCR", "baseline mean", "m2i"),
        ("SMCR", "pre sd", "sd1i"),
        ("SMCR", "SD baseline", "sd1i"),
        ("SMCC", "post sd", "sd2i"),
        ("SMCC", "pre-post correlation", "ri"),
        ("SMCC", "r", "ri"),
        ("MC", "n", "ni"),
        ("MC", "sample size", "ni"),
        ("MN", "mean", "mi"),
        ("MN", "average", "mi"),
        ("MN", "sd", "sdi"),
        ("MN", "n", "ni"),
        ("MN", "standard error", "sei"),
        ("SMD", "Cohen's d", "di"),
        ("SMD", "d", "di"),
        ("SMD", "t", "ti"),
        ("SMD", "t value", "ti"),
        ("SMD", "SE", "sei"),
        ("SMD", "sampling variance", "vi"),
        ("OR", "standard error", "sei"),
    ],
)
def test_alias(measure: str, header: str, target: str) -> None:
    res = resolve_columns([header], [True], spec(measure), header_row=1)
    assert [(c.target, c.kind) for c in res.columns] == [(target, "statistic")]


@pytest.mark.parametrize(
    ("measure", "header"),
    [
        ("SMCR", "m1"),  # numbered spellings would read "1" as the first measurement
        ("SMCR", "sd2"),
        ("SMD", "effect size"),  # a given effect size is "yi" outside GEN
        ("OR", "logOR"),
        ("SMD", "var"),  # may be an SD squared
        ("SMD", "sem"),  # may be a group mean's standard error
        ("MD", "d"),  # MD takes no Cohen's d
        ("PR", "mi"),  # an upload gives a proportion's sample size, never its non-events
    ],
)
def test_names_that_could_mislead_are_not_aliases(measure: str, header: str) -> None:
    res = resolve_columns([header], [True], spec(measure), header_row=1)
    assert [c.kind for c in res.columns] == ["extra"]


def test_change_score_statistics_are_named_for_what_they_are() -> None:
    measure = MEASURES["SMCC"]
    assert [measure.statistic(n).label for n in ("m1i", "m2i", "sd1i", "sd2i", "ri")] == [
        "post-test mean",
        "pre-test mean",
        "pre-test standard deviation",
        "post-test standard deviation",
        "pre-post correlation",
    ]
    errors = rejection(b"study,m1i,m2i,sd1i,sd2i,ni,ri\nA,38.5,30.6,abc,14,20,0.47\n", "SMCC").errors
    assert errors[0].message == (
        "Row 2, column 'sd1i': the pre-test standard deviation must be a number, but it is 'abc'."
    )


def test_change_score_domain_errors_name_row_and_column() -> None:
    content = csv_bytes(
        ["study", "post mean", "pre mean", "pre sd", "n", "r"],
        [["A", 38.5, 30.6, 15, 20, 1.2], ["B", 26.8, 23.5, 3.1, 2, 0.64], ["C", 0.7, 0.5, 0, 9, -1]],
    )
    errors = rejection(content, "SMCR").errors
    assert [(e.row, e.column, e.code) for e in errors] == [
        (2, "r", "correlation_out_of_range"),
        (3, "n", "n_too_small"),
        (4, "pre sd", "sd_not_positive"),
        (4, "r", "correlation_out_of_range"),
    ]
    assert errors[0].message == (
        "Row 2, column 'r' (ri): a correlation must lie strictly between -1 and 1, but it is 1.2."
    )
    assert "at least 3 for the standardised mean change" in errors[1].message


def test_a_one_group_mean_with_a_blank_sd_is_reported_at_its_cell() -> None:
    errors = rejection(b"study,mean,sd,n\nA,0.2,1.4,200\nB,0.1,,45\n", "MN").errors
    assert [(e.row, e.column, e.code) for e in errors] == [(3, "sd", "missing_value")]
    assert errors[0].message == (
        "Row 3, column 'sd' (sdi): the standard deviation is empty, but the raw mean (MN) needs it."
    )


# --------------------------------------------------------------------------------------------
# Templates


def test_the_smd_template_shows_every_form_and_says_a_row_needs_one() -> None:
    s = spec("SMD")
    assert template_columns(s)[5:] == ["m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "di", "ti", "yi", "sei"]
    workbook = openpyxl.load_workbook(io.BytesIO(template_for(s, fmt="xlsx")))
    text = " ".join(str(v) for row in workbook["Instructions"].iter_rows(values_only=True) for v in row if v)
    assert "Each row needs one complete set of statistics" in text
    assert "Cohen's d with the sample sizes of both groups (di, n1i, n2i)" in text
    assert "EXAMPLE ROWS" in text


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_the_smd_templates_example_rows_give_one_form_each(fmt: str) -> None:
    s = spec("SMD")
    columns = template_columns(s)
    examples = [[None if e[c] in ("", None) else e[c] for c in columns] for e in example_rows(s)]
    content = csv_bytes(columns, examples) if fmt == "csv" else xlsx_bytes(columns, examples)
    parsed = parse_upload(content, filename=f"examples.{fmt}", spec=s)
    assert parsed.forms == ("raw", "di", "ti", "yi_sei")


def test_templates_of_the_new_measures() -> None:
    assert template_columns(spec("SMCR"))[5:] == ["m1i", "m2i", "sd1i", "ni", "ri"]
    assert template_columns(spec("SMCC"))[5:] == ["m1i", "m2i", "sd1i", "sd2i", "ni", "ri"]
    assert template_columns(spec("MC"))[5:] == ["m1i", "m2i", "sd1i", "sd2i", "ni", "ri"]
    assert template_columns(spec("MN"))[5:] == ["mi", "sdi", "ni"]
    workbook = openpyxl.load_workbook(io.BytesIO(template_for(spec("SMCR"), fmt="xlsx")))
    notes = {r[0]: r[2] for r in workbook["Instructions"].iter_rows(values_only=True) if r and r[0]}
    assert notes["m1i"] == "Post-test mean." and notes["sd1i"] == "Pre-test standard deviation."


# --------------------------------------------------------------------------------------------
# Through the API: the note in the response, nothing stored for a refused file


@pytest.mark.django_db
def test_the_upload_response_counts_the_forms_and_a_refused_file_stores_nothing(
    cast: Any, tmp_media: Path
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.datasets.models import Dataset, DatasetVersion, Study
    from tests.conftest import api_client_for

    client = api_client_for(cast, "dm_a")

    def post(content: bytes) -> Any:
        upload = SimpleUploadedFile("mixed.csv", content, content_type="text/csv")
        return client.post(
            "/api/v1/datasets/upload/",
            {"centre": "alpha", "outcome": "rf", "file": upload},
            format="multipart",
        )

    refused = post(mixed_upload("csv", with_empty=True))
    assert refused.status_code == 400
    assert [(e["row"], e["column"], e["code"]) for e in refused.json()["errors"]] == [
        (EMPTY_ROW + 2, "di", "missing_value")
    ]
    assert (Dataset.objects.count(), DatasetVersion.objects.count(), Study.objects.count()) == (0, 0, 0)

    accepted = post(mixed_upload("csv"))
    assert accepted.status_code == 201, accepted.content[:500]
    notes = [w for w in accepted.json()["warnings"] if w["code"] == "input_forms"]
    assert [n["message"] for n in notes] == [
        "27 rows: 7 from means and SDs, 6 from Cohen's d, 7 from an independent-samples t statistic, "
        "7 from a given effect size and standard error."
    ]
    version = DatasetVersion.objects.get()
    assert version.row_count == 27
