"""Reading files: formats, encodings, delimiters, row numbers, XLSX safety checks."""

from __future__ import annotations

import codecs
import re

import openpyxl
import pytest

from apps.datasets.ingest import UploadRejected, UploadSpec, parse_upload
from apps.datasets.ingest.readers import decode_text, detect_delimiter

from .malformed import SMD_HEADER, SMD_ROWS, csv_bytes, raw_lines, smd_xlsx_rows, xlsx_bytes, zip_bytes

SPEC = UploadSpec(outcome_code="dep", measure="SMD")


def rejected(
    content: bytes, filename: str = "data.csv", spec: UploadSpec = SPEC, **kw: object
) -> UploadRejected:
    with pytest.raises(UploadRejected) as info:
        parse_upload(content, filename=filename, spec=spec, **kw)  # type: ignore[arg-type]
    return info.value


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_each_delimiter_is_detected(delimiter: str) -> None:
    parsed = parse_upload(csv_bytes(SMD_HEADER, SMD_ROWS, delimiter=delimiter), filename="d.csv", spec=SPEC)
    assert parsed.delimiter == delimiter
    assert [r["study"] for r in parsed.rows] == ["Smith 2010", "Jones 2012", "Lee 2015"]


def test_delimiter_detection_is_not_fooled_by_decimal_commas() -> None:
    # Every data line has more commas than semicolons; the header decides.
    text = "study;m1i;sd1i\nA;1,25;0,5\nB;2,75;1,5\n"
    assert detect_delimiter(text) == ";"


def test_delimiter_detection_with_unknown_headers_uses_row_regularity() -> None:
    assert detect_delimiter("alpha;beta;gamma\n1,5;2,5;3\n4;5,5;6\n") == ";"
    assert detect_delimiter("alpha|beta\nx;y|z\n") == "|"


def test_excel_sep_line_sets_the_delimiter_and_is_not_a_row() -> None:
    content = raw_lines(["sep=;", ";".join(SMD_HEADER), "Smith 2010;PHQ-9;post;10,2;-3;40;12,5;3,3;38"])
    error = rejected(content).errors[0]
    assert (error.row, error.column, error.code) == (2, "sd1i", "sd_not_positive")


def test_row_numbers_count_blank_lines_and_quoted_line_breaks_like_a_spreadsheet() -> None:
    content = raw_lines(
        [
            ",".join(SMD_HEADER),
            "",
            '"Smith\n2010",PHQ-9,post,10.2,3.1,40,12.5,3.3,38',
            "Jones 2012,BDI-II,post,15.0,-4.2,25,17.1,4.0,27",
        ]
    )
    error = rejected(content).errors[0]
    assert (error.row, error.column) == (4, "sd1i")


@pytest.mark.parametrize(
    ("content", "encoding"),
    [
        ("study,m1i\nMüller,1\n".encode(), "utf-8"),
        (codecs.BOM_UTF8 + "study,m1i\nMüller,1\n".encode(), "utf-8-sig"),
        ("study,m1i\nMüller,1\n".encode("utf-16"), "utf-16"),
        ("study,m1i\nMüller,1\n".encode("utf-32"), "utf-32"),
        ("study,m1i\nMüller,1\n".encode("cp1252"), "cp1252"),
        ("study,m1i\nMüller – “x”,1\n".encode("cp1252"), "cp1252"),
    ],
)
def test_encodings(content: bytes, encoding: str) -> None:
    text, found = decode_text(content)
    assert found == encoding
    assert "Müller" in text


def test_bom_claiming_utf8_but_invalid_is_unreadable() -> None:
    assert rejected(codecs.BOM_UTF8 + b"study\r\nM\xfcller\r\n").codes == {"unreadable_file"}


def test_control_characters_make_a_file_unreadable() -> None:
    assert rejected(b"study,m1i\r\nSmith\x07,1\r\n").codes == {"unreadable_file"}


def test_xlsx_content_is_recognised_whatever_the_name() -> None:
    content = xlsx_bytes(SMD_HEADER, smd_xlsx_rows())
    parsed = parse_upload(content, filename="exported.csv", spec=SPEC)
    assert parsed.source_format == "xlsx"
    assert len(parsed.rows) == 3


def test_file_type_from_content_type_when_the_name_has_no_extension() -> None:
    content = b'[{"study": "A", "m1i": 1, "sd1i": 1, "n1i": 5, "m2i": 2, "sd2i": 1, "n2i": 5}]'
    assert (
        parse_upload(content, filename="blob", spec=SPEC, content_type="application/json").source_format
        == "json"
    )
    assert rejected(content, filename="blob").codes == {"unsupported_format"}


def test_text_named_xlsx_is_unreadable() -> None:
    assert rejected(csv_bytes(SMD_HEADER, SMD_ROWS), filename="data.xlsx").codes == {"unreadable_file"}


def test_xlsx_rows_keep_their_sheet_numbers_across_blank_rows() -> None:
    rows = smd_xlsx_rows()
    rows[2][4] = -1.0  # Lee 2015's sd1i
    content = xlsx_bytes(SMD_HEADER, [rows[0], [None] * 9, [None] * 9, rows[1], rows[2]])
    error = rejected(content, filename="x.xlsx").errors[0]
    assert (error.row, error.column, error.code) == (6, "sd1i", "sd_not_positive")


def test_xlsx_prefers_a_sheet_named_data() -> None:
    content = xlsx_bytes(SMD_HEADER, smd_xlsx_rows(), title=" DATA ", before=[("Cover", [["hello"]])])
    assert len(parse_upload(content, filename="x.xlsx", spec=SPEC).rows) == 3


def test_title_rows_above_the_header_are_skipped_with_a_warning() -> None:
    content = xlsx_bytes(["Depression data, centre North (v3)"], [[], SMD_HEADER, *smd_xlsx_rows()])
    parsed = parse_upload(content, filename="x.xlsx", spec=SPEC)
    assert len(parsed.rows) == 3
    assert [w.code for w in parsed.warnings] == ["rows_above_header"]
    assert "Row 1 above the header (row 3)" in parsed.warnings[0].message
    csv_content = raw_lines(["Exported 2024-05-01", *[",".join(r) for r in (SMD_HEADER, *SMD_ROWS)]])
    assert len(parse_upload(csv_content, filename="x.csv", spec=SPEC).rows) == 3


def test_xlsx_with_values_far_to_the_right_is_refused() -> None:
    def far(ws: openpyxl.worksheet.worksheet.Worksheet) -> None:
        ws.cell(row=2, column=1100, value="x")

    content = xlsx_bytes(SMD_HEADER, smd_xlsx_rows(), edit=far)
    error = rejected(content, filename="x.xlsx").errors[0]
    # openpyxl declares the sheet's true range, A1:APH4: refused from it, before any row is read
    assert (error.code, error.row) == ("too_many_columns", None)
    assert "A1:APH4" in error.message
    # without the declaration, refused at the row that holds the value
    undeclared = zip_bytes(
        [
            (name, re.sub(rb"<dimension [^>]*/>", b"", data) if name.endswith("sheet1.xml") else data)
            for name, data in _members(content)
        ]
    )
    error = rejected(undeclared, filename="x.xlsx").errors[0]
    assert (error.code, error.row) == ("too_many_columns", 2)


def _members(content: bytes) -> list[tuple[str, bytes]]:
    import io
    import zipfile

    archive = zipfile.ZipFile(io.BytesIO(content))
    return [(name, archive.read(name)) for name in archive.namelist()]


def test_limits_come_from_the_spec() -> None:
    content = csv_bytes(SMD_HEADER, SMD_ROWS)
    small = UploadSpec(outcome_code="dep", measure="SMD", max_bytes=len(content) - 1)
    assert rejected(content, spec=small).codes == {"file_too_large"}
    assert "bytes" in rejected(content, spec=small).errors[0].message
    two_rows = UploadSpec(outcome_code="dep", measure="SMD", max_rows=2)
    assert rejected(content, spec=two_rows).codes == {"too_many_rows"}
    assert (
        len(
            parse_upload(
                content, filename="d.csv", spec=UploadSpec(outcome_code="d", measure="SMD", max_rows=3)
            ).rows
        )
        == 3
    )
    xlsx = xlsx_bytes(SMD_HEADER, smd_xlsx_rows())
    tight = UploadSpec(outcome_code="dep", measure="SMD", max_xlsx_uncompressed_bytes=2000)
    assert rejected(xlsx, filename="x.xlsx", spec=tight).codes == {"xlsx_too_large_uncompressed"}


def test_json_rows_missing_keys_are_blank_and_rows_are_numbered_by_position() -> None:
    content = (
        b'[{"study": "A", "m1i": 1, "sd1i": 1, "n1i": 5, "m2i": 2, "sd2i": 1, "n2i": 5},'
        b' {}, {"study": "B", "m1i": 1, "sd1i": 1, "n1i": 5, "m2i": 2, "sd2i": 1}]'
    )
    error = rejected(content, filename="rows.json").errors[0]
    assert (error.row, error.column, error.code) == (3, "n2i", "missing_value")
    assert error.message.startswith("Item 3, field 'n2i'")


def test_deeply_nested_json_is_invalid_not_a_crash() -> None:
    assert rejected(b"[" * 100_000 + b"]" * 100_000, filename="rows.json").codes == {"invalid_json"}


def test_xlsx_array_formula_is_a_formula_cell() -> None:
    from openpyxl.worksheet.formula import ArrayFormula

    def array(ws: openpyxl.worksheet.worksheet.Worksheet) -> None:
        ws["G3"] = ArrayFormula("G3", "=SUM(D2:D4)")

    error = rejected(xlsx_bytes(SMD_HEADER, smd_xlsx_rows(), edit=array), filename="x.xlsx").errors[0]
    assert (error.row, error.column, error.code, error.value) == (3, "m2i", "formula_cell", "=SUM(D2:D4)")


def test_old_mac_line_endings() -> None:
    content = b"sep=;\rstudy;m1i;sd1i;n1i;m2i;sd2i;n2i\rA;1;1;5;2;1;5\rB;1;1;5;2;1;-5\r"
    error = rejected(content).errors[0]
    assert (error.row, error.column, error.code) == (3, "n2i", "n_too_small")


def test_unclosed_quote_before_a_long_tail_stops_reading_there() -> None:
    # The csv module gives up on a field beyond 128 KiB; the rows after it are not guessed at.
    content = csv_bytes(SMD_HEADER, SMD_ROWS) + b'"Kim 2018,PHQ-9,post,10.1,3' + b"\r\nx,y,z" * 40_000
    assert [(e.row, e.code) for e in rejected(content).errors] == [(5, "malformed_csv")]


def test_json_rows_limits_and_empty_objects() -> None:
    row = {"study": "A", "m1i": 1, "sd1i": 1, "n1i": 5, "m2i": 2, "sd2i": 1, "n2i": 5}
    two = UploadSpec(outcome_code="dep", measure="SMD", max_rows=2)
    assert rejected(json_bytes([row, row, row]), filename="r.json", spec=two).codes == {"too_many_rows"}
    assert rejected(json_bytes([{}, {"study": None}]), filename="r.json").codes == {"no_data_rows"}


@pytest.mark.parametrize(
    ("member", "data", "what"),
    [
        ("ppt/presentation.xml", b"<p/>", "PowerPoint"),
        ("xl/workbook.bin", b"\x00", ".xlsb"),
        ("mimetype", b"application/vnd.oasis.opendocument.spreadsheet", ".ods"),
        ("readme.txt", b"hello", "zip archive"),
    ],
)
def test_other_zip_containers_are_named(member: str, data: bytes, what: str) -> None:
    error = rejected(zip_bytes([(member, data)]), filename="data.xlsx").errors[0]
    assert error.code == "unsupported_format" and what in error.message


def test_encrypted_zip_member_is_refused() -> None:
    # zipfile cannot write encrypted members; set the "encrypted" flag bit in both headers by hand
    content = bytearray(zip_bytes([("xl/workbook.xml", b"<workbook/>")]))
    local, central = content.find(b"PK\x03\x04"), content.find(b"PK\x01\x02")
    content[local + 6] |= 0x1
    content[central + 8] |= 0x1
    assert rejected(bytes(content), filename="x.xlsx").codes == {"encrypted_file"}


def test_xlsx_header_cells_that_are_numbers_or_dates_become_text() -> None:
    import datetime as dt

    content = xlsx_bytes([*SMD_HEADER, 2019, dt.datetime(2020, 1, 31)], [[*r, 1, 2] for r in smd_xlsx_rows()])
    parsed = parse_upload(content, filename="x.xlsx", spec=SPEC)
    assert parsed.columns[-2:] == ("2019", "2020-01-31")


def json_bytes(rows: object) -> bytes:
    import json

    return json.dumps(rows).encode()
