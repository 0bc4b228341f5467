"""From uploaded bytes (or posted JSON rows) to a raw table of cells.

Nothing here interprets values: the reader finds the format, decodes text, splits CSV, unpacks
XLSX safely and records where each row came from. File-level problems (too large, empty, not a
spreadsheet, a zip bomb, more rows, columns or cells than the spec allows...) are raised at once
as :class:`UploadRejected` with a single error, since nothing inside such a file can be checked;
problems of single rows (an unclosed quote, a row with more values than the header) are
collected in ``RawTable.errors`` with the rest.

The shape limits are checked before the work they bound: an XLSX sheet is measured as its XML
streams out of the archive (its declared dimension first, then every row and cell, stopping at
the first limit passed) before openpyxl parses any of it, and CSV records and JSON field names
are counted as they are collected.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import functools
import io
import itertools
import json
import posixpath
import re
import warnings
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any
from xml.parsers import expat

from workers.metaanalysis import tables
from workers.metaanalysis.tables import HEADER_SEARCH, header_index, parse_records

from .columns import known_header_keys
from .errors import UploadError, UploadRejected
from .naming import column_letter, header_key
from .numbers import DecimalMark
from .spec import SHEET_EXTRA_ROWS, SourceFormat, UploadSpec

MIB = 1024 * 1024

#: Delimiters tried on CSV files, in order of preference when they score the same.

#: A member of an XLSX archive bigger than this must not be compressed more than _MAX_RATIO times;
#: real sheets compress 5-30x, a zip bomb about 1000x.
_RATIO_MIN_SIZE = 1 * MIB
_MAX_RATIO = 100
#: The widest row a spreadsheet can hold (Excel's last column is XFD, the 16,384th). A row is
#: parsed whole before its first cell is seen, so a wider one is refused while it streams in.
_EXCEL_COLUMNS = 16_384
#: XML elements a sheet may hold per cell of ``spec.max_cells``: a cell is written as ``<c>`` with a
#: ``<v>`` or ``<f>``, or ``<is><t>`` for text typed in the cell; rows and formatting count too.
#: Counting elements rather than cells also bounds what hides inside one cell (thousands of
#: rich-text runs) or between cells.
_ELEMENTS_PER_CELL = 4
#: Bytes of a sheet measured at a time: a declared dimension is in the first chunk.
_XML_CHUNK = 64 * 1024

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
        UploadError.about(
            "invalid_json",
            f"Item {i} of the list is not an object with column names as keys.",
            row=i,
            value=_short(json.dumps(item, default=str)),
        )
        for i, item in enumerate(rows, start=1)
        if not isinstance(item, dict)
    ]
    if errors:
        raise UploadRejected(errors)
    header: dict[str, None] = {}
    for i, item in enumerate(rows, start=1):
        for key in item:
            if str(key) not in header:
                header[str(key)] = None
                if len(header) > spec.max_columns:
                    raise _reject(
                        "too_many_columns",
                        f"Item {i} brings the number of different field names to more than "
                        f"{spec.max_columns:,}, the limit of columns. Send only the fields the outcome "
                        "uses (the study's identity, the statistics and the moderators).",
                        row=i,
                    )
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
            UploadError.about(
                "rows_above_header",
                f"{rows} above the header (row {self.header_row}) {'was' if one else 'were'} not "
                "read as data.",
            )
        ]


def _collect(records: Iterable[tuple[int, list[Any]]], spec: UploadSpec) -> _Collected:
    """Header and data rows (blank rows dropped), with the row limit.

    The header is the first non-empty row, unless one of the next few rows holds clearly more
    known column names: spreadsheets often start with a title line ("Centre X, depression
    data, v3") above the real header.
    """
    non_empty = ((n, cells) for n, cells in records if not all(is_blank(c) for c in cells))
    lead = list(itertools.islice(non_empty, HEADER_SEARCH))
    if not lead:
        raise _reject("empty_file", "The file has no header row and no data.")
    known = known_header_keys(spec)
    chosen = header_index(
        [sum(1 for c in cells if isinstance(c, str) and header_key(c) in known) for _, cells in lead]
    )
    header_row, header = lead[chosen]
    rows: list[RawRow] = []
    for number, cells in itertools.chain(lead[chosen + 1 :], non_empty):
        if len(rows) >= spec.max_rows:
            raise _reject(
                "too_many_rows",
                f"The file has more than {spec.max_rows:,} data rows, the upload limit; reading stopped "
                f"at row {number:,}. Split it into several uploads.",
            )
        rows.append(RawRow(number=number, cells=cells))
    if not rows:
        raise _reject(
            "no_data_rows", f"The file has a header row (row {header_row}) but no data rows below it."
        )
    return _Collected(header, header_row, rows, [n for n, _ in lead[:chosen]])


def _too_wide(row: int, column: int, spec: UploadSpec) -> UploadRejected:
    """The refusal of a row with a value in ``column`` (1-based), beyond ``spec.max_columns``."""
    return _reject(
        "too_many_columns",
        f"Row {row} has a value in column {column_letter(column - 1)} (column {column:,}), beyond the "
        f"limit of {spec.max_columns:,} columns; reading stopped there. Delete the columns the outcome does "
        f"not use (from column {column_letter(spec.max_columns)} on), or move the data into fewer "
        "columns, and upload it again.",
        row=row,
    )


def _within_columns(
    records: Iterable[tuple[int, list[str]]], spec: UploadSpec
) -> Iterator[tuple[int, list[str]]]:
    """The records, refusing the first one with a value beyond ``spec.max_columns`` (trailing
    empty values, which spreadsheets often write, do not count)."""
    for number, cells in records:
        width = len(cells)
        while width > spec.max_columns and is_blank(cells[width - 1]):
            width -= 1
        if width > spec.max_columns:
            raise _too_wide(number, width, spec)
        yield number, cells


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
    """The delimiter giving the most recognised header names (see ``tables.detect_delimiter``)."""
    return tables.detect_delimiter(text, known_header_keys(spec))


def _read_csv(content: bytes, *, spec: UploadSpec) -> RawTable:
    text, encoding = decode_text(content)
    if not text.strip():
        raise _reject(
            "empty_file", "The file is empty. Upload a file with a header row and one row per comparison."
        )
    warnings_: list[UploadError] = []
    if encoding == "cp1252":
        warnings_.append(
            UploadError.about(
                "encoding_fallback",
                "The file is not UTF-8; it was read as Windows-1252 (Western European). Check that "
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

    parsed = list(parse_records(text, delimiter))
    errors: list[UploadError] = []
    unclosed = _ends_inside_quotes(text, delimiter)
    broken: set[int] = set()
    for number, record in parsed:
        if record is None:
            broken.add(number)
    if unclosed and parsed:
        broken.add(parsed[-1][0])
    records = [(number, record if record is not None else ["<unreadable>"]) for number, record in parsed]
    collected = _collect(_within_columns(records, spec), spec)
    header, header_row, rows = collected.header, collected.header_row, collected.rows
    warnings_ += collected.warnings()
    width = len(header)
    for row in rows:
        if row.number in broken:
            row.readable = False
            errors.append(
                UploadError.about(
                    "malformed_csv",
                    f"Row {row.number}: a quoted value starts here but its closing quote is "
                    "missing, so the rest of the file cannot be read as rows. The file may be truncated; "
                    "check the quotes in this row.",
                    row=row.number,
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
                UploadError.about(
                    "extra_values",
                    f"Row {row.number} has {len(row.cells)} values but the header has {width} "
                    f"columns ({extra} value{'s' if extra != 1 else ''} beyond column "
                    f"{column_letter(width - 1)}).{hint}",
                    row=row.number,
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


@dataclass(frozen=True)
class _Sheet:
    """The worksheet an upload is read from: its title and the path of its XML in the archive."""

    title: str
    part: str


def _local_name(name: str) -> str:
    """An XML name without its namespace (``{ns}sheet`` and expat's ``ns sheet`` give ``sheet``)."""
    return name.rpartition("}")[2].rpartition(" ")[2]


def _data_sheet(archive: zipfile.ZipFile) -> _Sheet:
    """The first worksheet, or the one named ``data``, from the workbook's list of sheets.

    Read here (with defusedxml, which refuses entity tricks) rather than by openpyxl, so that the
    sheet can be measured before openpyxl parses anything; chart sheets are skipped, as openpyxl
    skips them.
    """
    from defusedxml import ElementTree as SafeTree

    try:
        workbook = SafeTree.fromstring(archive.read("xl/workbook.xml"))
        relationships = SafeTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except Exception:  # missing part, damaged XML, a DTD: all mean the same to the user
        raise _reject(
            "unreadable_file",
            "The Excel workbook cannot be read (a part of it is damaged or missing). Open it in Excel, "
            "save it again and upload it again.",
        ) from None
    targets: dict[str, str] = {}
    for rel in relationships.iter():
        if _local_name(rel.tag) == "Relationship" and rel.get("Type", "").endswith("/worksheet"):
            target = rel.get("Target", "")
            # targets are relative to the workbook's folder unless they start with a slash
            path = target[1:] if target.startswith("/") else posixpath.normpath(f"xl/{target}")
            targets[rel.get("Id", "")] = path
    present = set(archive.namelist())
    sheets = []
    for element in workbook.iter():
        if _local_name(element.tag) == "sheet":
            rel_id = next(
                (v for k, v in element.attrib.items() if k.startswith("{") and _local_name(k) == "id"), ""
            )
            part = targets.get(rel_id)
            if part in present:
                sheets.append(_Sheet(element.get("name", ""), part))
    if not sheets:
        raise _reject("empty_file", "The workbook has no worksheet.")
    return next((s for s in sheets if s.title.strip().casefold() == "data"), sheets[0])


_CELL_REF = re.compile(r"\$?([A-Za-z]{1,3})\$?([0-9]{1,7})")


def _column_number(ref: str | None) -> int | None:
    """The 1-based column of a cell reference (``IP10001`` -> 250), or None if it is not one."""
    letters = (ref or "").rstrip("0123456789")
    return _letters_number(letters) if 0 < len(letters) <= 3 and letters.isalpha() else None


@functools.cache  # at most 18,278 keys (A to ZZZ): every cell of a sheet asks
def _letters_number(letters: str) -> int:
    number = 0
    for letter in letters.upper():
        number = number * 26 + ord(letter) - 64
    return number


class _XmlGuard:
    """Counts the elements of an XML part as its bytes stream past, refusing it at a limit.

    expat reports each element as it starts, without building a tree, so counting costs a
    fraction of parsing and stops at the first element past a limit, whatever follows.
    A document type declaration is refused: spreadsheet parts never have one, and entity
    definitions (the "billion laughs") can only hide in one.
    """

    def __init__(self, limit: int, describe: str) -> None:
        self.limit = limit
        self.describe = describe
        self.elements = 0
        self.done = False
        self.parser = expat.ParserCreate(namespace_separator=" ")
        self.parser.StartElementHandler = self._count
        self.parser.StartDoctypeDeclHandler = self._doctype

    def feed(self, data: bytes) -> None:
        if self.done:
            return
        self.done = not data
        try:
            self.parser.Parse(data, not data)
        except expat.ExpatError:
            raise _reject(
                "unreadable_file",
                f"{self.describe} cannot be read (its data is damaged). Open the workbook in Excel, "
                "save it again and upload it again.",
            ) from None

    def _doctype(self, *_: Any) -> None:
        raise _reject(
            "unreadable_file",
            f"{self.describe} declares a document type, which spreadsheets never do; the file was "
            "refused as possibly hostile. Open the workbook in Excel, save it again and upload it again.",
        )

    def _count(self, name: str, attrs: dict[str, str]) -> None:
        self.elements += 1
        if self.elements > self.limit:
            raise self.too_large()

    def too_large(self) -> UploadRejected:
        return _reject(
            "sheet_too_large",
            f"{self.describe} holds more than can be processed; reading stopped there. Copy only the "
            "data into a new workbook, or upload it as CSV.",
        )


class _SheetGuard(_XmlGuard):
    """Measures a worksheet against the spec's shape limits as its XML streams past.

    First the ``<dimension ref="A1:IP10001"/>`` Excel writes before the data, if the sheet has
    one: a sheet that declares more columns or rows than allowed is refused from its first
    bytes. Then every row and cell, since a dimension can be absent or wrong: a value beyond
    ``max_columns``, a row wider than any spreadsheet's, or more elements than ``max_cells``
    cells take (empty formatted cells included) stop the reading where they occur.
    """

    def __init__(self, sheet: _Sheet, spec: UploadSpec) -> None:
        super().__init__(spec.max_cells * _ELEMENTS_PER_CELL, f"The sheet '{sheet.title}'")
        self.sheet = sheet
        self.spec = spec
        self.local_names: dict[str, str] = {}
        self.row = 0
        self.row_elements = 0
        self.column = 0

    def measure(self, source: Any) -> None:
        """Read the whole sheet, a chunk at a time; a declared dimension is in the first chunk."""
        while not self.done:
            self.feed(source.read(_XML_CHUNK))

    def _count(self, name: str, attrs: dict[str, str]) -> None:
        # Called for every element of the sheet (two or three per cell): kept lean on purpose.
        self.elements += 1
        self.row_elements += 1
        if self.elements > self.limit:
            raise self.too_large()
        local = self.local_names.get(name)
        if local is None:
            local = self.local_names[name] = _local_name(name)
        if local == "v" or local == "f" or local == "is":
            if self.column > self.spec.max_columns:
                raise _too_wide(self.row, self.column, self.spec)
        elif local == "c":
            self.column = _column_number(attrs.get("r")) or self.column + 1
            if self.row_elements > _EXCEL_COLUMNS * _ELEMENTS_PER_CELL:
                raise self.too_wide_row()
        elif local == "row":
            number = attrs.get("r", "")
            self.row = int(number) if number.isdigit() else self.row + 1
            self.row_elements = 0
            self.column = 0
        elif local == "dimension":
            self._check_declared(attrs.get("ref", ""))

    def too_wide_row(self) -> UploadRejected:
        return _reject(
            "too_many_columns",
            f"Row {self.row} of the sheet '{self.sheet.title}' holds more cells than a spreadsheet row "
            f"can ({_EXCEL_COLUMNS:,}); the file was not written by a spreadsheet program, or is "
            "damaged. Open it in Excel, save it again and upload it again.",
            row=self.row,
        )

    def _check_declared(self, ref: str) -> None:
        match = _CELL_REF.fullmatch(ref.rpartition(":")[2])
        if match is None:
            return  # not a range: the rows and cells are counted as they are read instead
        column, row = _letters_number(match.group(1)), int(match.group(2))
        title, spec = self.sheet.title, self.spec
        if column > spec.max_columns:
            raise _reject(
                "too_many_columns",
                f"The sheet '{title}' declares its cells to span {ref}, {column:,} columns (to column "
                f"{column_letter(column - 1)}), more than the limit of {spec.max_columns:,}. Delete the "
                "columns it does not need (select them, right-click, Delete: clearing them is not "
                "enough), or copy only the data into a new workbook, and upload it again.",
            )
        if row > spec.max_sheet_rows:
            raise _reject(
                "too_many_rows",
                f"The sheet '{title}' declares its cells to span {ref}, {row:,} rows, more than the limit "
                f"of {spec.max_rows:,} data rows (and {SHEET_EXTRA_ROWS} for the header, titles and "
                "blank lines). Split the data into several uploads, or delete the rows below it that it "
                "does not need (select them, right-click, Delete), and upload it again.",
            )

    def too_large(self) -> UploadRejected:
        spec = self.spec
        return _reject(
            "sheet_too_large",
            f"The sheet '{self.sheet.title}' holds more than {spec.max_cells:,} cells (empty formatted "
            f"cells and rows included); reading stopped at row {self.row:,}. The limit is "
            f"{spec.max_rows:,} data rows of {spec.max_columns:,} columns. Copy only the data into a new "
            "workbook, or upload it as CSV.",
        )


class _GuardedSource:
    """A part of the archive that a guard reads along with the parser it is handed to, a chunk
    ahead of it: the guard refuses a part before the parser has built what lies past a limit."""

    def __init__(self, raw: Any, guard: _XmlGuard) -> None:
        self.raw = raw
        self.guard = guard

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.guard.feed(data)
        return data

    def close(self) -> None:
        self.raw.close()


def _cell_value(cell: dict[str, Any]) -> Any:
    value = cell["value"]
    if value is None:
        return None
    kind = cell["data_type"]
    if kind == "f":
        text = getattr(value, "text", None)  # ArrayFormula / DataTableFormula objects
        return FormulaCell(str(text if text is not None else value))
    if kind == "e":
        return ErrorCell(str(value))
    return value


def _xlsx_records(parser: Any) -> Iterator[tuple[int, list[Any]]]:
    """Rows of a sheet as (spreadsheet row number, cell values up to the last non-empty one).

    Only the cells present are placed: missing rows and cells are not made up (openpyxl's
    read-only sheets pad every row to the sheet's width, which a crafted sheet makes huge).
    """
    for number, cells in parser.parse():
        by_column: dict[int, Any] = {}
        for cell in cells:
            value = _cell_value(cell)
            if value is not None:
                by_column[cell["column"]] = value
        width = max(by_column, default=0)
        yield number, [by_column.get(column) for column in range(1, width + 1)]


def _open_workbook(content: bytes, spec: UploadSpec) -> Any:
    """openpyxl's reader of the workbook, with what reading a sheet needs: the table of texts the
    sheets share (no bigger than a sheet may be), the date system and the date formats.

    openpyxl's pieces are used rather than ``load_workbook``, which reads the size of every sheet
    (the whole sheet when its dimension is missing) before returning; here only the data sheet
    is read, and only once it has been measured.
    """
    from openpyxl.reader.excel import ExcelReader
    from openpyxl.reader.strings import read_string_table
    from openpyxl.styles.stylesheet import apply_stylesheet
    from openpyxl.xml.constants import SHARED_STRINGS

    reader = ExcelReader(io.BytesIO(content), read_only=True, data_only=False, keep_links=False)
    try:
        reader.read_manifest()
        strings = reader.package.find(SHARED_STRINGS)
        if strings is not None:
            guard = _XmlGuard(spec.max_cells * _ELEMENTS_PER_CELL, "The workbook's table of texts")
            with reader.archive.open(strings.PartName[1:]) as source:
                reader.shared_strings = read_string_table(_GuardedSource(source, guard))
        reader.read_workbook()
        apply_stylesheet(reader.archive, reader.wb)
    except UploadRejected:
        reader.archive.close()
        raise
    except Exception:  # openpyxl raises many types for damaged parts; all mean the same to the user
        reader.archive.close()
        raise _reject(
            "unreadable_file",
            "The Excel workbook cannot be read (a part of it is damaged or missing). Open it in Excel, "
            "save it again and upload it again.",
        ) from None
    return reader


def _read_xlsx(content: bytes, *, ext: str, spec: UploadSpec) -> RawTable:
    _check_zip(content, ext=ext, spec=spec)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet = _data_sheet(archive)
        with archive.open(sheet.part) as source:
            _SheetGuard(sheet, spec).measure(source)

    # imported here: CSV and JSON uploads do not need openpyxl
    from openpyxl.worksheet._reader import WorkSheetParser

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # openpyxl warns about styles and extensions it ignores
        reader = _open_workbook(content, spec)
        try:
            with reader.archive.open(sheet.part) as source:
                parser = WorkSheetParser(
                    source,
                    reader.shared_strings,
                    data_only=False,
                    epoch=reader.wb.epoch,
                    date_formats=reader.wb._date_formats,
                    timedelta_formats=reader.wb._timedelta_formats,
                )
                collected = _collect(_xlsx_records(parser), spec)
        except UploadRejected:
            raise
        except Exception:
            raise _reject(
                "unreadable_file",
                f"The sheet '{sheet.title}' cannot be read (its data is damaged). Open the workbook in "
                "Excel, save it again and upload it again.",
            ) from None
        finally:
            reader.archive.close()

    header, header_row, rows = collected.header, collected.header_row, collected.rows
    width = max([len(header), *(len(r.cells) for r in rows)])
    header_texts: list[str | None] = []
    errors: list[UploadError] = []
    for index in range(width):
        cell = header[index] if index < len(header) else None
        if isinstance(cell, FormulaCell):
            errors.append(
                UploadError.about(
                    "formula_cell",
                    f"Row {header_row}, column {column_letter(index)}: the header is a formula "
                    f"('{_short(cell.text, 60)}'); write the column name as plain text.",
                    row=header_row,
                    column=cell.text,
                    value=_short(cell.text),
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
