"""Writing rows back out as CSV or XLSX, safe to open in a spreadsheet.

A text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return can be run as a
formula by Excel or LibreOffice (CSV injection), so such text is prefixed with a single quote.
Numbers are written as numbers (``-1.5`` stays a number); only text is ever prefixed.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from .cells import format_number

#: What a spreadsheet may run as a formula when a text cell starts with it.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

ExportFormat = Literal["csv", "xlsx"]


def neutralise(text: str) -> str:
    """``text`` made inert for spreadsheets: prefixed with ``'`` if it could start a formula."""
    return "'" + text if text.startswith(FORMULA_START) else text


def _cell(value: Any) -> Any:
    """A value as it goes into a cell: numbers and booleans as such, everything else neutralised text."""
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dict, list)):
        return neutralise(json.dumps(value, default=str))
    return neutralise(str(value))


def export_rows(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, fmt: ExportFormat) -> bytes:
    """The rows, with ``columns`` as the header row, as CSV (UTF-8 with BOM, for Excel) or XLSX bytes."""
    header = [neutralise(str(c)) for c in columns]
    body = ([_cell(row.get(c)) for c in columns] for row in rows)
    if fmt == "csv":
        return _csv(header, body)
    if fmt == "xlsx":
        return _xlsx(header, body)
    raise ValueError(f"unknown export format {fmt!r}; use 'csv' or 'xlsx'")


def _csv(header: list[str], body: Iterable[list[Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for values in body:
        writer.writerow([_csv_text(v) for v in values])
    # The BOM makes Excel read the file as UTF-8 (accented study names stay intact).
    return buffer.getvalue().encode("utf-8-sig")


# Not the analysis export's cell rule: a dataset file must parse back to the same rows, so a
# number is written as the upload reader reads it (12, not 12.0); text comes neutralised by _cell.
def _csv_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return format_number(value)
    return str(value)


def _xlsx(header: list[str], body: Iterable[list[Any]]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("data")

    def clean(v: Any) -> Any:
        # Control characters cannot be stored in XLSX; openpyxl would refuse the whole file.
        return ILLEGAL_CHARACTERS_RE.sub("", v) if isinstance(v, str) else v

    sheet.append([clean(h) for h in header])
    for values in body:
        sheet.append([clean(v) for v in values])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
