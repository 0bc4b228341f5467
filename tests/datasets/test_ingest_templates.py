"""Templates: complete headers that parse back as valid empty files, for every measure."""

from __future__ import annotations

import io

import openpyxl
import pytest

from apps.datasets.ingest import (
    MEASURES,
    ModeratorSpec,
    UploadRejected,
    UploadSpec,
    parse_upload,
    template_for,
)
from apps.datasets.ingest.templates import example_row, template_columns

MEASURE_CODES = sorted(MEASURES)


def spec(measure: str) -> UploadSpec:
    return UploadSpec(
        outcome_code="depression",
        measure=measure,
        instruments={"PHQ-9", "BDI-II"},
        timepoints={"post", "6 months"},
        moderators=(
            ModeratorSpec("age_mean", "numeric"),
            ModeratorSpec("setting", "categorical"),
            ModeratorSpec("year", "numeric"),
        ),
    )


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("measure", MEASURE_CODES)
def test_unchanged_template_is_a_valid_empty_file(measure: str, fmt: str) -> None:
    # The header alone is complete and clean: the only complaint is that no row was entered.
    with pytest.raises(UploadRejected) as info:
        parse_upload(template_for(spec(measure), fmt=fmt), filename=f"template.{fmt}", spec=spec(measure))
    assert [e.code for e in info.value.errors] == ["no_data_rows"]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
@pytest.mark.parametrize("measure", MEASURE_CODES)
def test_template_with_the_example_row_filled_in_parses_cleanly(measure: str, fmt: str) -> None:
    s = spec(measure)
    example = example_row(s)
    content = template_for(s, fmt=fmt)
    if fmt == "csv":
        values = ["" if example[c] is None else str(example[c]) for c in template_columns(s)]
        content += (",".join(values) + "\r\n").encode()
    else:
        workbook = openpyxl.load_workbook(io.BytesIO(content))
        workbook["data"].append([example[c] if example[c] != "" else None for c in template_columns(s)])
        buffer = io.BytesIO()
        workbook.save(buffer)
        content = buffer.getvalue()
    parsed = parse_upload(content, filename=f"filled.{fmt}", spec=s)
    assert parsed.warnings == ()
    assert {m.kind for m in parsed.mapping} <= {"identity", "statistic", "moderator"}
    (row,) = parsed.rows
    for group in MEASURES[measure].groups:
        assert row[group[0]] == pytest.approx(example[group[0]])
    assert row["study"] == "Smith 2019" and row["year"] == 2019


def test_template_columns() -> None:
    assert template_columns(spec("OR")) == [
        "study",
        "comparison",
        "instrument",
        "timepoint",
        "year",
        "ai",
        "bi",
        "ci",
        "di",
        "age_mean",
        "setting",
    ]
    assert template_columns(spec("GEN"))[5:7] == ["yi", "vi"]


def test_xlsx_template_explains_every_column_and_marks_the_example() -> None:
    s = spec("SMD")
    workbook = openpyxl.load_workbook(io.BytesIO(template_for(s, fmt="xlsx")))
    assert workbook.sheetnames == ["data", "Instructions"]
    data = workbook["data"]
    assert [c.value for c in data[1]] == template_columns(s)
    assert data.max_row == 1
    text = [[c.value for c in r] for r in workbook["Instructions"].iter_rows()]
    flat = " ".join(str(v) for r in text for v in r if v is not None)
    explained = {r[0] for r in text if r and r[0] is not None}
    assert set(template_columns(s)) <= explained
    assert "BDI-II, PHQ-9" in flat and "6 months, post" in flat
    assert "EXAMPLE ROW" in flat
    assert "standardised mean difference (SMD)" in flat
    validations = {dv.formula1 for dv in data.data_validations.dataValidation}
    assert validations == {'"BDI-II,PHQ-9"', '"6 months,post"'}


def test_drop_down_lists_are_skipped_when_excel_cannot_hold_them() -> None:
    s = UploadSpec(outcome_code="o", measure="SMD", instruments={"Scale, short form", "Other"})
    workbook = openpyxl.load_workbook(io.BytesIO(template_for(s, fmt="xlsx")))
    assert not workbook["data"].data_validations.dataValidation


def test_unknown_template_format_is_an_error() -> None:
    with pytest.raises(ValueError):
        template_for(spec("SMD"), fmt="ods")  # type: ignore[arg-type]
