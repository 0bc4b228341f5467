"""The raw table every reader produces, and what the readers share to build it.

A :class:`RawTable` holds the cells of an upload before interpretation, each row with the
number a data manager sees. The helpers here are the readers' common steps: refusing a file with
one error (:func:`reject`), finding the header among the first non-empty rows and counting the
data rows against the limit (:func:`collect_rows`), and refusing a row with a value beyond the
column limit (:func:`within_columns`).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from workers.metaanalysis.tables import HEADER_SEARCH, header_index

from ..columns import known_header_keys
from ..errors import UploadError, UploadRejected
from ..naming import column_letter, header_key
from ..numbers import DecimalMark
from ..spec import SourceFormat, UploadSpec

MIB = 1024 * 1024


@dataclass(frozen=True)
class FormulaCell:
    """An XLSX cell holding a formula (its text, e.g. ``=B2*2``): data must be values."""

    text: str


@dataclass(frozen=True)
class ErrorCell:
    """An XLSX cell holding an Excel error value such as ``#DIV/0!`` or ``#N/A``."""

    text: str


@dataclass
class RawRow:
    """One non-empty row below the header. ``readable`` is False when a structural error was
    already reported for it (its values are shifted or cut, so checking them would mislead)."""

    number: int
    cells: list[Any]
    readable: bool = True


@dataclass
class RawTable:
    """The cells of an upload before interpretation.

    ``header`` holds the header texts, ``None`` for a header cell holding a formula (reported in
    ``errors``). ``default_decimal`` is the decimal mark assumed when the numbers give no
    evidence (``.`` except in CSV files delimited by something other than a comma, where a
    comma is as likely). ``item`` is the word messages use for a row ("Row", or "Item" for
    JSON, whose rows are list items).
    """

    header: list[str | None]
    header_row: int | None
    rows: list[RawRow]
    source_format: SourceFormat
    encoding: str | None = None
    delimiter: str | None = None
    default_decimal: DecimalMark | None = "."
    errors: list[UploadError] = field(default_factory=list)
    warnings: list[UploadError] = field(default_factory=list)
    item: str = "Row"
    single_column_hint: str | None = None

    def has_data(self) -> list[bool]:
        """Per column: does any row hold a non-blank value there?"""
        width = max([len(self.header), *(len(r.cells) for r in self.rows)])
        seen = [False] * width
        for row in self.rows:
            for i, cell in enumerate(row.cells):
                if not seen[i] and not is_blank(cell):
                    seen[i] = True
        return seen


def is_blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


def reject(code: str, message: str, *, row: int | None = None, column: str | None = None) -> UploadRejected:
    return UploadRejected([UploadError(row=row, column=column, value=None, code=code, message=message)])


def size_text(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def shortened(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: How many non-empty rows may precede the header (titles, notes) and still be recognised as such.


@dataclass
class Collected:
    header: list[Any]
    header_row: int
    rows: list[RawRow]
    skipped: list[int]

    def warnings(self) -> list[UploadError]:
        if not self.skipped:
            return []
        one = len(self.skipped) == 1
        rows = f"Row {self.skipped[0]}" if one else "Rows " + ", ".join(map(str, self.skipped))
        return [
            UploadError.about(
                "rows_above_header",
                f"{rows} above the header (row {self.header_row}) {'was' if one else 'were'} not "
                "read as data.",
            )
        ]


def collect_rows(records: Iterable[tuple[int, list[Any]]], spec: UploadSpec) -> Collected:
    """Header and data rows (blank rows dropped), with the row limit.

    The header is the first non-empty row, unless one of the next few rows holds clearly more
    known column names: spreadsheets often start with a title line ("Centre X, depression
    data, v3") above the real header.
    """
    non_empty = ((n, cells) for n, cells in records if not all(is_blank(c) for c in cells))
    lead = list(itertools.islice(non_empty, HEADER_SEARCH))
    if not lead:
        raise reject("empty_file", "The file has no header row and no data.")
    known = known_header_keys(spec)
    chosen = header_index(
        [sum(1 for c in cells if isinstance(c, str) and header_key(c) in known) for _, cells in lead]
    )
    header_row, header = lead[chosen]
    rows: list[RawRow] = []
    for number, cells in itertools.chain(lead[chosen + 1 :], non_empty):
        if len(rows) >= spec.max_rows:
            raise reject(
                "too_many_rows",
                f"The file has more than {spec.max_rows:,} data rows, the upload limit; reading stopped "
                f"at row {number:,}. Split it into several uploads.",
            )
        rows.append(RawRow(number=number, cells=cells))
    if not rows:
        raise reject(
            "no_data_rows", f"The file has a header row (row {header_row}) but no data rows below it."
        )
    return Collected(header, header_row, rows, [n for n, _ in lead[:chosen]])


def too_wide(row: int, column: int, spec: UploadSpec) -> UploadRejected:
    """The refusal of a row with a value in ``column`` (1-based), beyond ``spec.max_columns``."""
    return reject(
        "too_many_columns",
        f"Row {row} has a value in column {column_letter(column - 1)} (column {column:,}), beyond the "
        f"limit of {spec.max_columns:,} columns; reading stopped there. Delete the columns the outcome does "
        f"not use (from column {column_letter(spec.max_columns)} on), or move the data into fewer "
        "columns, and upload it again.",
        row=row,
    )


def within_columns(
    records: Iterable[tuple[int, list[str]]], spec: UploadSpec
) -> Iterator[tuple[int, list[str]]]:
    """The records, refusing the first one with a value beyond ``spec.max_columns`` (trailing
    empty values, which spreadsheets often write, do not count)."""
    for number, cells in records:
        width = len(cells)
        while width > spec.max_columns and is_blank(cells[width - 1]):
            width -= 1
        if width > spec.max_columns:
            raise too_wide(number, width, spec)
        yield number, cells
