"""Export: formula neutralisation in CSV and XLSX, numbers kept as numbers, round trips."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from apps.datasets.ingest import export_rows, neutralise, parse_upload

from .malformed import SMD_HEADER, SMD_ROWS, corpus_spec, csv_bytes

DANGEROUS = [
    '=HYPERLINK("http://x","y")',
    "+cmd|' /C calc'!A0",
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(A1:A2)",
    "\t=1+1",
    "\r=1+1",
]
COLUMNS = ["study", "note", "m1i", "n1i", "flag", "missing"]


def rows() -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {"study": text, "note": f"row {i}", "m1i": -1.5, "n1i": 40, "flag": True, "missing": None}
        for i, text in enumerate(DANGEROUS)
    ]
    out.append({"study": "Smith 2010", "note": "-5 mg", "m1i": float("nan"), "n1i": -3, "flag": False})
    return out


@pytest.mark.parametrize("text", DANGEROUS)
def test_neutralise_prefixes_formula_starts(text: str) -> None:
    assert neutralise(text) == "'" + text


@pytest.mark.parametrize("text", ["Smith 2010", "", "a=b", "'quoted", " =x"])
def test_neutralise_leaves_other_text(text: str) -> None:
    assert neutralise(text) == text


def test_csv_export_neutralises_text_and_keeps_numbers() -> None:
    content = export_rows(rows(), COLUMNS, fmt="csv")
    assert content.startswith(b"\xef\xbb\xbf")
    table = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    assert table[0] == COLUMNS
    for line, text in zip(table[1:], DANGEROUS, strict=False):
        assert line[0] == "'" + text
        assert line[2:6] == ["-1.5", "40", "TRUE", ""]
    assert table[-1] == ["Smith 2010", "'-5 mg", "", "-3", "FALSE", ""]


def test_xlsx_export_neutralises_text_and_keeps_numbers() -> None:
    content = export_rows(rows(), COLUMNS, fmt="xlsx")
    workbook = openpyxl.load_workbook(io.BytesIO(content))
    sheet = workbook["data"]
    values = [[c.value for c in r] for r in sheet.iter_rows()]
    assert values[0] == COLUMNS
    for r, line in enumerate(values[1:7], start=2):
        assert line[0] == ("'" + DANGEROUS[r - 2]).replace("\r", "\n")  # XML normalises line ends
        assert sheet.cell(row=r, column=1).data_type == "s"  # text, never a formula
        assert line[2:6] == [-1.5, 40, True, None]
        assert sheet.cell(row=r, column=3).data_type == "n"
    assert values[7] == ["Smith 2010", "'-5 mg", None, -3, False, None]
    assert all(c.data_type != "f" for r in sheet.iter_rows() for c in r)


def test_header_is_neutralised_too() -> None:
    content = export_rows([{"=x": 1}], ["=x"], fmt="csv")
    assert content.decode("utf-8-sig").splitlines()[0] == "'=x"


def test_control_characters_do_not_break_xlsx() -> None:
    content = export_rows([{"study": "A\x07B"}], ["study"], fmt="xlsx")
    assert openpyxl.load_workbook(io.BytesIO(content))["data"]["A2"].value == "AB"


def test_unknown_format_is_an_error() -> None:
    with pytest.raises(ValueError):
        export_rows([], ["study"], fmt="ods")  # type: ignore[arg-type]


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_export_of_a_parsed_upload_parses_back_to_the_same_rows(fmt: str) -> None:
    header = [*SMD_HEADER, "comparison", "region", "age_mean"]
    source = [
        [*SMD_ROWS[0], "-5 mg vs placebo", "Süd", "34.5"],
        [*SMD_ROWS[1], "", "", ""],
        [*SMD_ROWS[2], "- booster", "north", "41"],
    ]
    spec = corpus_spec("SMD")
    parsed = parse_upload(csv_bytes(header, source), filename="x.csv", spec=spec)
    again = parse_upload(
        export_rows(parsed.rows, parsed.columns, fmt=fmt), filename=f"export.{fmt}", spec=spec
    )
    assert again.rows == parsed.rows
    assert again.columns == parsed.columns
