"""Reading CSV and other delimited text: decoding the bytes, finding the delimiter, splitting records.

Text is decoded by its byte-order mark, else as UTF-8, else as Windows-1252 (with a warning);
control characters that text never holds refuse the file. The delimiter is the one a first
``sep=`` line declares (Excel writes it), else the one giving the most recognised header names.
Rows that cannot be read as the header's columns (an unclosed quote, more values than the
header) are reported in ``RawTable.errors`` and not checked further.
"""

from __future__ import annotations

import codecs
import csv
import io
import re

from workers.metaanalysis import tables
from workers.metaanalysis.tables import parse_records

from ..columns import known_header_keys
from ..errors import UploadError
from ..naming import column_letter
from ..spec import UploadSpec
from .raw_table import RawTable, collect_rows, is_blank, reject, shortened, within_columns

# C0 controls other than tab, LF, VT, FF, CR, plus DEL and the C1 block: text files do not hold
# them, binary files and wrongly decoded ones do.
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_SEP_LINE = re.compile(r"sep=(.)[ \t]*(?:\r\n|\r|\n)", re.IGNORECASE)


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
                raise reject(
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
        raise reject("unreadable_file", f"The file contains NUL bytes and cannot be read as text. {hint}")
    try:
        return _check_text(content.decode("utf-8")), "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        return _check_text(content.decode("cp1252")), "cp1252"
    except UnicodeDecodeError:
        raise reject(
            "unreadable_file",
            "The file is neither UTF-8 nor Windows-1252 (Western European) text. Save it again as CSV UTF-8.",
        ) from None


def _check_text(text: str) -> str:
    text = text.rstrip("\x1a")  # DOS end-of-file marker written by some old exporters
    if _CONTROL.search(text):
        raise reject(
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


def read_csv(content: bytes, *, spec: UploadSpec) -> RawTable:
    text, encoding = decode_text(content)
    if not text.strip():
        raise reject(
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
    collected = collect_rows(within_columns(records, spec), spec)
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
            f"Only one column was found ('{shortened(named[0].strip(), 60)}'): the file may use a delimiter "
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
