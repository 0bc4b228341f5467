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

This module tells the formats apart (:func:`read_upload`); each format has its reader:
:mod:`.delimited` (CSV and other delimited text), :mod:`.json_rows`, :mod:`.xlsx` with the
safety checks of :mod:`.xlsx_guard`; :mod:`.raw_table` holds the table they all produce.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from ..spec import UploadSpec
from .delimited import decode_text, detect_delimiter, read_csv
from .json_rows import read_json_bytes, read_rows_object
from .raw_table import ErrorCell, FormulaCell, RawRow, RawTable, is_blank, reject, shortened, size_text
from .xlsx import read_xlsx
from .xlsx_guard import ole2_rejection

__all__ = [
    "ErrorCell",
    "FormulaCell",
    "RawRow",
    "RawTable",
    "decode_text",
    "detect_delimiter",
    "is_blank",
    "read_rows_object",
    "read_upload",
]

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


def read_upload(
    content: bytes, *, filename: str, spec: UploadSpec, content_type: str | None = None
) -> RawTable:
    """Read an uploaded file into a :class:`RawTable`, raising on file-level problems."""
    if len(content) > spec.max_bytes:
        size, limit = size_text(len(content)), size_text(spec.max_bytes)
        if size == limit:  # "5.0 MiB, larger than 5.0 MiB" would read as nonsense
            size, limit = f"{len(content):,} bytes", f"{spec.max_bytes:,} bytes"
        raise reject(
            "file_too_large",
            f"The file is {size}, larger than the limit of {limit}. "
            "Split it into several uploads or remove unused sheets and columns.",
        )
    if not content.strip(b" \t\r\n"):
        raise reject(
            "empty_file", "The file is empty. Upload a file with a header row and one row per comparison."
        )
    ext = PurePosixPath(filename.replace("\\", "/")).suffix.lower()
    ctype = (content_type or "").split(";")[0].strip().lower()

    if content.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return read_xlsx(content, ext=ext, spec=spec)
    if content.startswith(_OLE2_MAGIC):
        raise ole2_rejection(content)
    for magic, what in _KNOWN_BINARY:
        if content.startswith(magic):
            raise reject(
                "unsupported_format",
                f"The file is {what}, not a spreadsheet. Upload a CSV, XLSX or JSON file.",
            )
    if ext in _EXCEL_EXTENSIONS or (not ext and ctype in _XLSX_TYPES):
        raise reject(
            "unreadable_file",
            f"The file is named '{shortened(filename)}' but is not an Excel workbook (it may be damaged, or "
            "be another kind of file renamed). Open it in Excel and save it again as .xlsx or CSV.",
        )
    if ext == ".json" or (ext not in _CSV_EXTENSIONS and ctype in _JSON_TYPES):
        return read_json_bytes(content, spec=spec)
    if ext in _CSV_EXTENSIONS or (not ext and ctype in _CSV_TYPES):
        return read_csv(content, spec=spec)
    shown = f"'{ext}' files" if ext else "files without an extension"
    raise reject(
        "unsupported_format",
        f"{shown[0].upper()}{shown[1:]} are not accepted. Upload a CSV (.csv), Excel (.xlsx) or JSON "
        "(.json) file.",
    )
