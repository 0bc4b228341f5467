"""From uploaded bytes (or posted JSON rows) to a raw table of cells.

Nothing here interprets values: the reader finds the format, decodes text, splits CSV, unpacks
XLSX safely and records where each row came from. File-level problems (too large, empty, not a
spreadsheet, a zip bomb...) are raised at once as :class:`UploadRejected` with a single error,
since nothing inside such a file can be checked; problems of single rows (an unclosed quote, a
row with more values than the header) are collected in ``RawTable.errors`` with the rest.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import io
import itertools
import json
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from .columns import known_header_keys
from .errors import UploadError, UploadRejected
from .naming import column_letter, header_key
from .numbers import DecimalMark
from .spec import SourceFormat, UploadSpec

MIB = 1024 * 1024

#: Delimiters tried on CSV files, in order of preference when they score the same.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

#: A member of an XLSX archive bigger than this must not be compressed more than _MAX_RATIO times;
#: real sheets compress 5-30x, a zip bomb about 1000x.
_RATIO_MIN_SIZE = 1 * MIB
_MAX_RATIO = 100
#: Cells materialised from a sheet (padding included) before giving up: bounds the work a
#: crafted sheet with cells far to the right (column XFD) on every row can cause.
_MAX_XLSX_CELLS = 5_000_000
_MAX_COLUMNS = 1024

_OLE2_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_KNOWN_BINARY = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
)
_CSV_EXTENSIONS = {".csv", ".tsv", ".txt", ".tab"}
_EXCEL_EXTENSIONS = {".xlsx", ".xlsm", ".xltx", ".xltm", ".xls", ".xlsb"}
_CSV_TYPES = {
    "text/csv",
    "application/csv",
    "text/plain",
    "text/tab-separated-values",
    "application/vnd.ms-excel",
    "text/comma-separated-values",
}
_XLSX_TYPES = {"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
_JSON_TYPES = {"application/json", "text/json"}

# C0 controls other than tab, LF, VT, FF, CR, plus DEL and the C1 block: text files do not hold
# them, binary files and wrongly decoded ones do.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SEP_LINE = re.compile(r"sep=(.)[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)


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


def _reject(code: str, message: str, *, row: int | None = None, column: str | None = None) -> UploadRejected:
    return UploadRejected([UploadError(row=row, column=column, value=None, code=code, message=message)])


# --------------------------------------------------------------------------------------------
# Entry points


def read_upload(
    content: bytes, *, filename: str, spec: UploadSpec, content_type: str | None = None
) -> RawTable:
    """Read an uploaded file into a :class:`RawTable`, raising on file-level problems."""
    if len(content) > spec.max_bytes:
        size, limit = _size(len(content)), _size(spec.max_bytes)
        if size == limit:  # "5.0 MiB, larger than 5.0 MiB" would read as nonsense
            size, limit = f"{len(content):,} bytes", f"{spec.max_bytes:,} bytes"
        raise _reject(
            "file_too_large",
            f"The file is {size}, larger than the limit of {limit}. "
            "Split it into several uploads or remove unused sheets and columns.",
        )
    if not content.strip(b" \t\r\n"):
        raise _reject(
            "empty_file", "The file is empty. Upload a file with a header row and one row per comparison."
        )
    ext = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    ctype = (content_type or "").split(";")[0].strip().lower()

    if content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return _read_xlsx(content, ext=ext, spec=spec)
    if content.startswith(_OLE2_MAGIC):
        raise _ole2_rejection(content)
    for magic, what in _KNOWN_BINARY:
        if content.startswith(magic):
            raise _reject(
                "unsupported_format",
                f"The file is {what}, not a spreadsheet. Upload a CSV, XLSX or JSON file.",
            )
    if ext in _EXCEL_EXTENSIONS or (not ext and ctype in _XLSX_TYPES):
        raise _reject(
            "unreadable_file",
            f"The file is named '{_short(filename)}' but is not an Excel workbook (it may be damaged, or "
            "be another kind of file renamed). Open it in Excel and save it again as .xlsx or CSV.",
        )
    if ext == ".json" or (ext not in _CSV_EXTENSIONS and ctype in _JSON_TYPES):
        return _read_json_bytes(content, spec=spec)
    if ext in _CSV_EXTENSIONS or (not ext and ctype in _CSV_TYPES):
        return _read_csv(content, spec=spec)
    shown = f"'{ext}' files" if ext else "files without an extension"
    raise _reject(
        "unsupported_format",
        f"{shown[0].upper()}{shown[1:]} are not accepted. Upload a CSV (.csv), Excel (.xlsx) or JSON "
        "(.json) file.",
    )


def read_rows_object(rows: object, *, spec: UploadSpec) -> RawTable:
    """Read rows posted as JSON (already decoded): a list of objects, one per row.

    Rows are numbered by their 1-based position in the list; an object's keys are its headers,
    and a key absent from an object is a blank cell.
    """
    if not isinstance(rows, list):
        kinds: dict[type, str] = {dict: "an object", str: "a string"}
        kind = kinds.get(type(rows), type(rows).__name__)
        raise _reject(
            "invalid_json",
            f'The JSON must be a list of objects, one per row (e.g. [{{"study": "Smith 2020", ...}}]), '
            f"but it is {kind}.",
        )
    if not rows:
        raise _reject("no_data_rows", "The list of rows is empty.")
    if len(rows) > spec.max_rows:
        raise _reject(
            "too_many_rows",
            f"There are {len(rows):,} rows, more than the limit of {spec.max_rows:,}. Split the upload.",
        )
    errors = [
        UploadError(
            row=i,
            column=None,
            value=_short(json.dumps(item, default=str)),
            code="invalid_json",
            message=f"Item {i} of the list is not an object with column names as keys.",
        )
        for i, item in enumerate(rows, start=1)
        if not isinstance(item, dict)
    ]
    if errors:
        raise UploadRejected(errors)
    header: dict[str, None] = {}
    for item in rows:
        for key in item:
            header.setdefault(str(key), None)
    names = list(header)
    table_rows = []
    for i, item in enumerate(rows, start=1):
        by_name = {str(k): v for k, v in item.items()}
        cells = [by_name.get(name) for name in names]
        if all(is_blank(c) for c in cells):
            continue
        table_rows.append(RawRow(number=i, cells=cells))
    if not table_rows:
        raise _reject("no_data_rows", "Every object in the list is empty.")
    return RawTable(
        header=list(names),
        header_row=None,
        rows=table_rows,
        source_format="json",
        default_decimal=".",
        item="Item",
    )


# --------------------------------------------------------------------------------------------
# Helpers shared by the formats


def _size(n: int) -> str:
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _short(text: str, limit: int = 100) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: How many non-empty rows may precede the header (titles, notes) and still be recognised as such.
_HEADER_SEARCH = 10


@dataclass
class _Collected:
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
            UploadError(
                row=None,
                column=None,
                value=None,
                code="rows_above_header",
                message=f"{rows} above the header (row {self.header_row}) {'was' if one else 'were'} not "
                "read as data.",
            )
        ]


def _header_index(known_counts: Sequence[int]) -> int:
    """Which of the first rows is the header, given how many known column names each holds.

    The first row, unless a later one holds more known names, and at least two: a data row may
    hold a value that happens to be a one-letter alias ("a", "n", "x"), a real header rarely
    holds fewer than two known names.
    """
    best = max(range(len(known_counts)), key=lambda i: (known_counts[i], -i))
    return best if known_counts[best] >= 2 and known_counts[best] > known_counts[0] else 0


def _collect(records: Iterable[tuple[int, list[Any]]], spec: UploadSpec) -> _Collected:
    """Header and data rows (blank rows dropped), with the row limit.

    The header is the first non-empty row, unless one of the next few rows holds clearly more
    known column names: spreadsheets often start with a title line ("Centre X, depression
    data, v3") above the real header.
    """
    non_empty = ((n, cells) for n, cells in records if not all(is_blank(c) for c in cells))
    lead = list(itertools.islice(non_empty, _HEADER_SEARCH))
    if not lead:
        raise _reject("empty_file", "The file has no header row and no data.")
    known = known_header_keys(spec)
    chosen = _header_index(
        [sum(1 for c in cells if isinstance(c, str) and header_key(c) in known) for _, cells in lead]
    )
    header_row, header = lead[chosen]
    rows: list[RawRow] = []
    for number, cells in itertools.chain(lead[chosen + 1 :], non_empty):
        if len(rows) >= spec.max_rows:
            raise _reject(
                "too_many_rows",
                f"The file has more than {spec.max_rows:,} data rows, the upload limit. Split it into "
                "several uploads.",
            )
        rows.append(RawRow(number=number, cells=cells))
    if not rows:
        raise _reject(
            "no_data_rows", f"The file has a header row (row {header_row}) but no data rows below it."
        )
    return _Collected(header, header_row, rows, [n for n, _ in lead[:chosen]])


# --------------------------------------------------------------------------------------------
# CSV


def decode_text(content: bytes) -> tuple[str, str]:
    """Decode text bytes: BOM first, then UTF-8, then Windows-1252. Returns ``(text, encoding)``."""
    boms = (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF8, "utf-8-sig"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    )
    for bom, encoding in boms:
        if content.startswith(bom):
            try:
                text = content.decode(encoding)
            except UnicodeDecodeError:
                raise _reject(
                    "unreadable_file",
                    f"The file starts with a {encoding.upper()} byte-order mark but is not valid "
                    f"{encoding.upper()} text (it may be truncated or damaged). Save it again as "
                    "CSV UTF-8.",
                ) from None
            return _check_text(text), encoding
    if b"\x00" in content:
        odd = content[1::2]
        looks_utf16 = len(content) > 3 and odd.count(0) > 0.4 * len(odd)
        even = content[0::2]
        looks_utf16 = looks_utf16 or (len(content) > 3 and even.count(0) > 0.4 * len(even))
        hint = (
            "It looks like UTF-16 text without a byte-order mark; save it again as CSV UTF-8."
            if looks_utf16
            else "It looks like a binary file, not a text CSV."
        )
        raise _reject("unreadable_file", f"The file contains NUL bytes and cannot be read as text. {hint}")
    try:
        return _check_text(content.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return _check_text(content.decode("cp1252")), "cp1252"
    except UnicodeDecodeError:
        raise _reject(
            "unreadable_file",
            "The file is neither UTF-8 nor Windows-1252 (Western European) text. Save it again as CSV UTF-8.",
        ) from None


def _check_text(text: str) -> str:
    text = text.rstrip("\x1a")  # DOS end-of-file marker written by some old exporters
    if _CONTROL.search(text):
        raise _reject(
            "unreadable_file",
            "The file contains control characters that do not occur in text; it is binary or in an "
            "unexpected encoding. Save it again as CSV UTF-8.",
        )
    return text


def _parse_records(
    text: str, delimiter: str, limit: int | None = None
) -> Iterator[tuple[int, list[str] | None]]:
    """CSV records numbered from 1 as a spreadsheet shows them (a quoted line break stays in its row).

    ``None`` stands for a record the csv module could not read (a field beyond its size limit,
    which in practice means a quote that was never closed); reading stops there, since where the
    following rows begin can no longer be known.
    """
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
    number = 0
    while limit is None or number < limit:
        number += 1
        try:
            record = next(reader)
        except StopIteration:
            return
        except csv.Error:
            yield number, None
            return
        yield number, record


def _ends_inside_quotes(text: str, delimiter: str) -> bool:
    """True when the text ends inside a quoted field (a quote opened and never closed)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    while True:
        try:
            next(reader)
        except StopIteration:
            return False
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return True


def detect_delimiter(text: str, spec: UploadSpec | None = None) -> str:
    """The delimiter that gives the most recognised header names, then the most regular rows.

    csv.Sniffer guesses from character frequencies and is easily fooled by decimal commas; the
    header is a far better witness, since the platform knows which column names to expect.
    """
    sample = text[: 256 * 1024]
    known = known_header_keys(spec)
    best: tuple[tuple[float, ...], str] | None = None
    for rank, delimiter in enumerate(DELIMITERS):
        records = [
            r for _, r in _parse_records(sample, delimiter, limit=60) if r and any(c.strip() for c in r)
        ]
        if not records:
            continue
        # the header is the first record, or a later one with more known names (below a title)
        counts = [sum(1 for h in r if header_key(h) in known) for r in records[:_HEADER_SEARCH]]
        at = _header_index(counts)
        header, data = records[at], records[at + 1 :]
        width = len(header)
        recognised = counts[at]
        fits = sum(1 for r in data if len(r) <= width or not any(c.strip() for c in r[width:]))
        exact = sum(1 for r in data if len(r) == width)
        n = max(len(data), 1)
        score = (
            float(recognised),
            fits / n if data else 1.0,
            float(width > 1),
            exact / n,
            float(width),
            -rank,
        )
        if best is None or score > best[0]:
            best = (score, delimiter)
    return best[1] if best else ","


def _read_csv(content: bytes, *, spec: UploadSpec) -> RawTable:
    text, encoding = decode_text(content)
    if not text.strip():
        raise _reject(
            "empty_file", "The file is empty. Upload a file with a header row and one row per comparison."
        )
    warnings_: list[UploadError] = []
    if encoding == "cp1252":
        warnings_.append(
            UploadError(
                row=None,
                column=None,
                value=None,
                code="encoding_fallback",
                message="The file is not UTF-8; it was read as Windows-1252 (Western European). Check that "
                "accented letters in study names look right, or save the file as CSV UTF-8.",
            )
        )
    # Excel writes and hides a first line "sep=;" naming the delimiter; honour it and skip it.
    declared = _SEP_LINE.match(text)
    if declared and declared.group(1) not in ('"', "\r", "\n"):
        delimiter = declared.group(1)
        text = text[declared.end() :]
    else:
        delimiter = detect_delimiter(text, spec)

    parsed = list(_parse_records(text, delimiter))
    errors: list[UploadError] = []
    unclosed = _ends_inside_quotes(text, delimiter)
    broken: set[int] = set()
    for number, record in parsed:
        if record is None:
            broken.add(number)
    if unclosed and parsed:
        broken.add(parsed[-1][0])
    records = [(number, record if record is not None else ["<unreadable>"]) for number, record in parsed]
    collected = _collect(records, spec)
    header, header_row, rows = collected.header, collected.header_row, collected.rows
    warnings_ += collected.warnings()
    width = len(header)
    for row in rows:
        if row.number in broken:
            row.readable = False
            errors.append(
                UploadError(
                    row=row.number,
                    column=None,
                    value=None,
                    code="malformed_csv",
                    message=f"Row {row.number}: a quoted value starts here but its closing quote is "
                    "missing, so the rest of the file cannot be read as rows. The file may be truncated; "
                    "check the quotes in this row.",
                )
            )
        elif len(row.cells) > width and any(not is_blank(c) for c in row.cells[width:]):
            row.readable = False
            extra = sum(1 for c in row.cells[width:] if not is_blank(c))
            hint = (
                " Numbers with a decimal comma must be quoted in a comma-separated file, or use a "
                "semicolon as delimiter."
                if delimiter == ","
                else ""
            )
            errors.append(
                UploadError(
                    row=row.number,
                    column=None,
                    value=None,
                    code="extra_values",
                    message=f"Row {row.number} has {len(row.cells)} values but the header has {width} "
                    f"columns ({extra} value{'s' if extra != 1 else ''} beyond column "
                    f"{column_letter(width - 1)}).{hint}",
                )
            )
    one_column_hint: str | None = None
    named = [h for h in header if h.strip()]
    if len(named) == 1:
        one_column_hint = (
            f"Only one column was found ('{_short(named[0].strip(), 60)}'): the file may use a delimiter "
            "other than comma, semicolon, tab or pipe."
        )
    return RawTable(
        header=list(header),
        header_row=header_row,
        rows=rows,
        source_format="csv",
        encoding=encoding,
        delimiter=delimiter,
        default_decimal="." if delimiter == "," else None,
        errors=errors,
        warnings=warnings_,
        single_column_hint=one_column_hint,
    )


# --------------------------------------------------------------------------------------------
# JSON


def _read_json_bytes(content: bytes, *, spec: UploadSpec) -> RawTable:
    text, encoding = decode_text(content)
    if not text.strip():
        raise _reject("empty_file", "The file is empty.")
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as exc:
        raise _reject(
            "invalid_json", f"The file is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        ) from None
    except (RecursionError, ValueError) as exc:
        raise _reject("invalid_json", f"The file is not valid JSON ({_short(str(exc), 80)}).") from None
    table = read_rows_object(rows, spec=spec)
    table.encoding = encoding
    return table


# --------------------------------------------------------------------------------------------
# XLSX and other containers


def _ole2_rejection(content: bytes) -> UploadRejected:
    # Password-protected OOXML workbooks are stored as OLE2 containers with these streams.
    if "EncryptedPackage".encode("utf-16-le") in content or "EncryptionInfo".encode("utf-16-le") in content:
        return _reject(
            "encrypted_file",
            "The workbook is password-protected. Remove the password (File > Info > Protect Workbook) "
            "and upload it again.",
        )
    return _reject(
        "legacy_xls",
        "The file is an old Excel 97-2003 workbook (.xls). Open it in Excel and save it as .xlsx "
        "(Excel Workbook) or CSV UTF-8.",
    )


def _check_zip(content: bytes, *, ext: str, spec: UploadSpec) -> None:
    """Inspect the archive's directory before anything is decompressed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise _reject(
            "unreadable_file",
            "The file is a damaged or incomplete Excel workbook (the upload may have been cut off). "
            "Open it in Excel, save it again and upload it again.",
        ) from None
    with archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if total > spec.max_xlsx_uncompressed_bytes:
            raise _reject(
                "xlsx_too_large_uncompressed",
                f"The workbook unpacks to {_size(total)}, more than the limit of "
                f"{_size(spec.max_xlsx_uncompressed_bytes)}. Remove unused sheets, images and formatting, "
                "or upload the data as CSV.",
            )
        for info in infos:
            if info.file_size > _RATIO_MIN_SIZE and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
                raise _reject(
                    "xlsx_too_large_uncompressed",
                    f"The workbook's part '{_short(info.filename, 60)}' is compressed "
                    f"{info.file_size // max(info.compress_size, 1):,} times, which real spreadsheets "
                    "never are; the file was refused as a possible zip bomb.",
                )
        if any(i.flag_bits & 0x1 for i in infos):
            raise _reject(
                "encrypted_file", "The archive is encrypted. Remove the password and upload it again."
            )
        names = {i.filename for i in infos}
        if "xl/workbook.xml" not in names:
            raise _reject("unsupported_format", _container_description(archive, names))
        content_types = ""
        if "[Content_Types].xml" in names:
            content_types = archive.read("[Content_Types].xml").decode("utf-8", "replace")
        if (
            "xl/vbaProject.bin" in names
            or "macroenabled" in content_types.lower()
            or ext in (".xlsm", ".xltm")
        ):
            raise _reject(
                "macro_enabled",
                "The workbook is macro-enabled (.xlsm). Macros are not accepted: save it as a plain "
                "Excel Workbook (.xlsx) and upload that.",
            )


def _container_description(archive: zipfile.ZipFile, names: set[str]) -> str:
    if "word/document.xml" in names:
        what = "a Word document"
    elif "ppt/presentation.xml" in names:
        what = "a PowerPoint presentation"
    elif "xl/workbook.bin" in names:
        what = "an Excel binary workbook (.xlsb)"
    elif "mimetype" in names and b"spreadsheet" in archive.read("mimetype")[:100]:
        what = "an OpenDocument spreadsheet (.ods)"
    else:
        what = "a zip archive"
    return f"The file is {what}, not an Excel workbook. Save the data as .xlsx or CSV and upload that."


def _cell_value(cell: Any) -> Any:
    value = cell.value
    if value is None:
        return None
    kind = getattr(cell, "data_type", None)
    if kind == "f":
        text = getattr(value, "text", None)  # ArrayFormula / DataTableFormula objects
        return FormulaCell(str(text if text is not None else value))
    if kind == "e":
        return ErrorCell(str(value))
    return value


def _xlsx_records(ws: Any) -> Iterator[tuple[int, list[Any]]]:
    """Rows of a read-only sheet as (spreadsheet row number, cell values)."""
    budget = _MAX_XLSX_CELLS
    number = 0
    for cells in ws.iter_rows():
        number += 1
        for cell in cells:
            row = getattr(cell, "row", None)
            if row is not None:  # empty rows carry no number; every other row does
                number = row
                break
        budget -= len(cells)
        if budget < 0:
            raise _reject(
                "xlsx_too_large_uncompressed",
                "The sheet holds more cells than can be processed (including empty formatted cells). "
                "Copy only the data into a new workbook, or upload it as CSV.",
            )
        values = [_cell_value(c) for c in cells]
        while values and values[-1] is None:
            values.pop()
        if len(values) > _MAX_COLUMNS:
            raise _reject(
                "too_many_columns",
                f"Row {number} has values in more than {_MAX_COLUMNS} columns; the sheet cannot be "
                "processed. Copy only the data into a new workbook.",
                row=number,
            )
        yield number, values


def _read_xlsx(content: bytes, *, ext: str, spec: UploadSpec) -> RawTable:
    _check_zip(content, ext=ext, spec=spec)
    import openpyxl  # imported here: CSV and JSON uploads do not need it

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it ignores
            workbook = openpyxl.load_workbook(
                io.BytesIO(content), read_only=True, data_only=False, keep_links=False
            )
    except Exception:  # openpyxl raises many types for damaged parts; all mean the same to the user
        raise _reject(
            "unreadable_file",
            "The Excel workbook cannot be read (a part of it is damaged or missing). Open it in Excel, "
            "save it again and upload it again.",
        ) from None
    try:
        sheets = workbook.worksheets
        if not sheets:
            raise _reject("empty_file", "The workbook has no worksheet.")
        sheet = next((s for s in sheets if s.title.strip().casefold() == "data"), sheets[0])
        sheet.reset_dimensions()  # the stored dimensions may be wrong or huge; read what is there
        try:
            collected = _collect(_xlsx_records(sheet), spec)
        except UploadRejected:
            raise
        except Exception:
            raise _reject(
                "unreadable_file",
                f"The sheet '{sheet.title}' cannot be read (its data is damaged). Open the workbook in "
                "Excel, save it again and upload it again.",
            ) from None
    finally:
        workbook.close()

    header, header_row, rows = collected.header, collected.header_row, collected.rows
    width = max([len(header), *(len(r.cells) for r in rows)])
    header_texts: list[str | None] = []
    errors: list[UploadError] = []
    for index in range(width):
        cell = header[index] if index < len(header) else None
        if isinstance(cell, FormulaCell):
            errors.append(
                UploadError(
                    row=header_row,
                    column=cell.text,
                    value=_short(cell.text),
                    code="formula_cell",
                    message=f"Row {header_row}, column {column_letter(index)}: the header is a formula "
                    f"('{_short(cell.text, 60)}'); write the column name as plain text.",
                )
            )
            header_texts.append(None)
        else:
            header_texts.append(_header_text(cell))
    return RawTable(
        header=header_texts,
        header_row=header_row,
        rows=rows,
        source_format="xlsx",
        default_decimal=".",
        errors=errors,
        warnings=collected.warnings(),
    )


def _header_text(cell: Any) -> str:
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    if isinstance(cell, dt.datetime):
        return cell.date().isoformat() if cell.time() == dt.time() else cell.isoformat(sep=" ")
    return str(cell)
