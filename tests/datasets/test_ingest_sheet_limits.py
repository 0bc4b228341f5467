"""Shape limits: rows, columns and cells, checked before a file's content is parsed.

The oversized workbook of bench/payloads.py (10,000 rows of 250 numbers, 2.5 million cells in 3 MiB)
passes the byte limits; it must be refused from its declared dimension, or from its first row
when the dimension is missing or lies. That the reading stopped early is shown by what is
reported (the row where it stopped) and by sheets that are damaged after that point, which would
be reported as unreadable had they been read to the end.
"""

from __future__ import annotations

import json

import pytest

from apps.datasets.ingest import UploadRejected, UploadSpec, parse_json_rows, parse_upload
from apps.datasets.ingest.spec import SHEET_EXTRA_ROWS
from bench.payloads import COLUMNS, ROWS, sheet_xml, true_ref, wide_workbook, workbook_from_sheet

from .malformed import SMD_HEADER, SMD_ROWS, csv_bytes, smd_xlsx_rows, xlsx_bytes

SPEC = UploadSpec(outcome_code="dep", measure="SMD")


def refusal(content: bytes, filename: str = "x.xlsx", spec: UploadSpec = SPEC) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        parse_upload(content, filename=filename, spec=spec)
    return info.value


def only_error(
    content: bytes, filename: str = "x.xlsx", spec: UploadSpec = SPEC
) -> tuple[str, int | None, str]:
    errors = refusal(content, filename, spec).errors
    assert len(errors) == 1, [e.message for e in errors]
    return errors[0].code, errors[0].row, errors[0].message


def numbers_row(number: int, width: int) -> str:
    return f'<row r="{number}">' + "".join(f"<c><v>{i}</v></c>" for i in range(width)) + "</row>"


HEADER_ROW = (
    '<row r="1">' + "".join(f'<c t="inlineStr"><is><t>{h}</t></is></c>' for h in SMD_HEADER) + "</row>"
)


# --------------------------------------------------------------------------------------------
# The spec


def test_the_cell_budget_follows_from_rows_and_columns() -> None:
    assert (SPEC.max_rows, SPEC.max_columns) == (10_000, 100)
    assert SPEC.max_cells == (10_000 + SHEET_EXTRA_ROWS) * 100
    small = UploadSpec(outcome_code="dep", measure="SMD", max_rows=10, max_columns=20)
    assert small.max_cells == (10 + SHEET_EXTRA_ROWS) * 20
    with pytest.raises(ValueError, match="max_columns"):
        UploadSpec(outcome_code="dep", measure="SMD", max_columns=0)


# --------------------------------------------------------------------------------------------
# The 2.5-million-cell workbook


def test_the_oversized_workbook_passes_the_byte_limits() -> None:
    content = wide_workbook()
    assert len(content) < SPEC.max_bytes
    assert true_ref() == "A1:IP10001" and (ROWS, COLUMNS) == (10_000, 250)


def test_oversized_workbook_is_refused_from_its_declared_dimension() -> None:
    code, row, message = only_error(wide_workbook())
    assert (code, row) == ("too_many_columns", None)
    assert "A1:IP10001" in message and "250 columns" in message and "limit of 100" in message
    assert "Delete the columns" in message


def test_oversized_workbook_without_a_dimension_is_refused_at_its_first_row() -> None:
    code, row, message = only_error(wide_workbook(declare=False))
    assert (code, row) == ("too_many_columns", 1)
    assert message.startswith("Row 1 has a value in column CW (column 101), beyond the limit of 100 columns")


def test_oversized_workbook_with_a_lying_dimension_is_refused_at_its_first_row() -> None:
    code, row, _ = only_error(wide_workbook(declared_ref="A1:I4"))
    assert (code, row) == ("too_many_columns", 1)


def test_declared_dimension_alone_refuses_a_sheet_whose_data_is_tiny() -> None:
    tiny = "".join([HEADER_ROW, numbers_row(2, 9)])
    code, row, message = only_error(workbook_from_sheet(sheet_xml(tiny, dimension="A1:XFD1048576")))
    assert (code, row) == ("too_many_columns", None)
    assert "A1:XFD1048576" in message and "16,384 columns" in message
    code, _, message = only_error(workbook_from_sheet(sheet_xml(tiny, dimension="A1:I1048576")))
    assert code == "too_many_rows" and "1,048,576 rows" in message and "limit of 10,000 data rows" in message


def test_declared_dimension_is_read_before_the_data_which_is_never_parsed() -> None:
    # everything after the dimension is damaged: read to the end, it would be "unreadable_file"
    damaged = sheet_xml("", dimension="A1:IP10001").replace(
        b"<sheetData></sheetData></worksheet>", b"<sheetDa"
    )
    assert only_error(workbook_from_sheet(damaged))[0] == "too_many_columns"


def test_reading_without_a_dimension_stops_at_the_first_row_beyond_the_limit() -> None:
    # a first row of 250 values, then damaged XML: the refusal comes before the damage is reached
    sheet = sheet_xml(numbers_row(1, 250) + '<row r="2"><c><v>1</v></c>')
    sheet = sheet.replace(b"</sheetData></worksheet>", b"")
    code, row, _ = only_error(workbook_from_sheet(sheet))
    assert (code, row) == ("too_many_columns", 1)


def test_a_truthful_dimension_within_the_limits_is_read() -> None:
    content = xlsx_bytes(SMD_HEADER, smd_xlsx_rows())  # openpyxl declares A1:I4
    assert len(parse_upload(content, filename="x.xlsx", spec=SPEC).rows) == 3


# --------------------------------------------------------------------------------------------
# Rows and cells while streaming


def test_rows_are_counted_as_they_are_read_and_reading_stops_at_the_limit() -> None:
    fifty = UploadSpec(outcome_code="dep", measure="SMD", max_rows=50)
    for dimension in (None, "A1:I4"):  # missing, or lying
        rows = HEADER_ROW + "".join(numbers_row(n, 9) for n in range(2, 500))
        code, row, message = only_error(workbook_from_sheet(sheet_xml(rows, dimension=dimension)), spec=fifty)
        assert (code, row) == ("too_many_rows", None)
        # rows 2 to 51 are the 50 data rows allowed: row 52 is where reading stopped
        assert "more than 50 data rows" in message and "stopped at row 52" in message


def test_the_cell_budget_stops_a_sheet_of_empty_formatted_cells() -> None:
    # 20,000 rows of formatted but empty cells: no data row, no value beyond the columns, yet a
    # sheet far beyond (10 + 100) rows x 10 columns; reading stops long before its end
    small = UploadSpec(outcome_code="dep", measure="SMD", max_rows=10, max_columns=10)
    rows = HEADER_ROW + "".join(
        f'<row r="{n}"><c r="A{n}" s="1"/><c r="B{n}" s="1"/></row>' for n in range(2, 20_002)
    )
    code, row, message = only_error(workbook_from_sheet(sheet_xml(rows)), spec=small)
    assert (code, row) == ("sheet_too_large", None)
    assert "holds more than 1,100 cells" in message
    stopped = int(message.split("reading stopped at row ")[1].split(".")[0].replace(",", ""))
    assert 1_000 < stopped < 2_000


def test_a_row_wider_than_any_spreadsheet_row_is_refused_while_it_streams() -> None:
    # 70,000 empty cells in one row: a spreadsheet row has at most 16,384
    wide = '<row r="2">' + "<c/>" * 70_000 + "</row>"
    code, row, message = only_error(workbook_from_sheet(sheet_xml(HEADER_ROW + wide)))
    assert (code, row) == ("too_many_columns", 2)
    assert "Row 2" in message and "16,384" in message


def test_empty_formatted_cells_beyond_the_column_limit_do_not_refuse_a_sheet() -> None:
    def row(n: int) -> str:
        texts = "".join(
            f'<c r="{c}{n}" t="inlineStr"><is><t>{t}</t></is></c>'
            for c, t in zip("ABC", [f"Study {n}", "PHQ-9", "post"], strict=True)
        )
        numbers = "".join(
            f'<c r="{c}{n}"><v>{v}</v></c>' for c, v in zip("DEFGHI", [10, 3, 20, 11, 3, 22], strict=True)
        )
        return f'<row r="{n}">{texts}{numbers}<c r="XFD{n}" s="1"/></row>'

    rows = HEADER_ROW + "".join(row(n) for n in range(2, 5))
    parsed = parse_upload(workbook_from_sheet(sheet_xml(rows)), filename="x.xlsx", spec=SPEC)
    assert [r["study"] for r in parsed.rows] == ["Study 2", "Study 3", "Study 4"]


def test_the_column_limit_is_inclusive() -> None:
    nine = UploadSpec(outcome_code="dep", measure="SMD", max_columns=9)
    assert len(parse_upload(xlsx_bytes(SMD_HEADER, smd_xlsx_rows()), filename="x.xlsx", spec=nine).rows) == 3
    eight = UploadSpec(outcome_code="dep", measure="SMD", max_columns=8)
    code, _, message = only_error(xlsx_bytes(SMD_HEADER, smd_xlsx_rows()), spec=eight)
    assert code == "too_many_columns" and "A1:I4" in message


def test_the_shared_text_table_is_bounded_like_a_sheet() -> None:
    small = UploadSpec(outcome_code="dep", measure="SMD", max_rows=10, max_columns=10)
    strings = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + b"".join(f"<si><t>text {i}</t></si>".encode() for i in range(5_000))
        + b"</sst>"
    )
    content = workbook_from_sheet(sheet_xml(HEADER_ROW + numbers_row(2, 9)), shared_strings=strings)
    code, _, message = only_error(content, spec=small)
    assert code == "sheet_too_large" and "table of texts" in message


def test_a_document_type_in_a_sheet_is_refused() -> None:
    sheet = sheet_xml(HEADER_ROW).replace(b"<worksheet", b'<!DOCTYPE w [<!ENTITY x "y">]><worksheet', 1)
    code, _, message = only_error(workbook_from_sheet(sheet))
    assert code == "unreadable_file" and "document type" in message


# --------------------------------------------------------------------------------------------
# CSV and JSON rows hold the same limits


def test_csv_rows_beyond_the_column_limit_are_refused_where_they_occur() -> None:
    ten = UploadSpec(outcome_code="dep", measure="SMD", max_columns=10)
    rows = [list(r) for r in SMD_ROWS]
    rows[1] += ["", "note"]  # column K, the 11th
    code, row, message = only_error(csv_bytes(SMD_HEADER, rows), "x.csv", ten)
    assert (code, row) == ("too_many_columns", 3)
    assert message.startswith("Row 3 has a value in column K (column 11), beyond the limit of 10 columns")


def test_csv_trailing_empty_values_do_not_count_as_columns() -> None:
    ten = UploadSpec(outcome_code="dep", measure="SMD", max_columns=10)
    rows = [[*r, *[""] * 50] for r in SMD_ROWS]
    assert len(parse_upload(csv_bytes([*SMD_HEADER, *[""] * 50], rows), filename="x.csv", spec=ten).rows) == 3


def test_csv_rows_are_counted() -> None:
    two = UploadSpec(outcome_code="dep", measure="SMD", max_rows=2)
    code, _, message = only_error(csv_bytes(SMD_HEADER, SMD_ROWS), "x.csv", two)
    assert code == "too_many_rows" and "stopped at row 4" in message


def test_json_rows_beyond_the_column_limit_are_refused_naming_the_item() -> None:
    ten = UploadSpec(outcome_code="dep", measure="SMD", max_columns=10)
    rows = [dict(zip(SMD_HEADER, r, strict=True)) for r in SMD_ROWS]
    rows[2].update({"a": 1, "b": 2})  # the 10th and 11th field names
    with pytest.raises(UploadRejected) as info:
        parse_json_rows(rows, spec=ten)
    (error,) = info.value.errors
    assert (error.code, error.row) == ("too_many_columns", 3)
    assert error.message.startswith("Item 3 brings the number of different field names to more than 10")
    assert parse_upload(json.dumps(rows[:2]).encode(), filename="r.json", spec=ten).rows
