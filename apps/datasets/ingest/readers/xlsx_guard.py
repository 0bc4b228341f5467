"""The safety checks of an XLSX upload, made before openpyxl parses anything.

An XLSX file is a zip archive of XML parts, and each layer can be made hostile: a zip bomb (a
part compressed a thousand times), an encrypted or macro-enabled workbook, another Office
document renamed, a document type declaration hiding entity expansion (the "billion laughs"), or
a sheet declaring or holding far more rows, columns or cells than the upload allows. Here the
archive's directory is inspected before anything is decompressed (:func:`check_zip`), and each
XML part is measured with expat as its bytes stream out of the archive, element by element,
stopping at the first limit passed (:class:`XmlGuard`, :class:`SheetGuard`).
"""

from __future__ import annotations

import functools
import io
import re
import zipfile
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

from ..errors import UploadRejected
from ..naming import column_letter
from ..spec import SHEET_EXTRA_ROWS, UploadSpec
from .raw_table import MIB, reject, shortened, size_text, too_wide

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


def ole2_rejection(content: bytes) -> UploadRejected:
    # Password-protected OOXML workbooks are stored as OLE2 containers with these streams.
    if "EncryptedPackage".encode("utf-16-le") in content or "EncryptionInfo".encode("utf-16-le") in content:
        return reject(
            "encrypted_file",
            "The workbook is password-protected. Remove the password (File > Info > Protect Workbook) "
            "and upload it again.",
        )
    return reject(
        "legacy_xls",
        "The file is an old Excel 97-2003 workbook (.xls). Open it in Excel and save it as .xlsx "
        "(Excel Workbook) or CSV UTF-8.",
    )


def check_zip(content: bytes, *, ext: str, spec: UploadSpec) -> None:
    """Inspect the archive's directory before anything is decompressed."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(content))
    except (zipfile.BadZipFile, OSError, ValueError):
        raise reject(
            "unreadable_file",
            "The file is a damaged or incomplete Excel workbook (the upload may have been cut off). "
            "Open it in Excel, save it again and upload it again.",
        ) from None
    with archive:
        infos = archive.infolist()
        total = sum(i.file_size for i in infos)
        if total > spec.max_xlsx_uncompressed_bytes:
            raise reject(
                "xlsx_too_large_uncompressed",
                f"The workbook unpacks to {size_text(total)}, more than the limit of "
                f"{size_text(spec.max_xlsx_uncompressed_bytes)}. Remove unused sheets, images and formatting, "
                "or upload the data as CSV.",
            )
        for info in infos:
            if info.file_size > _RATIO_MIN_SIZE and info.file_size > _MAX_RATIO * max(info.compress_size, 1):
                raise reject(
                    "xlsx_too_large_uncompressed",
                    f"The workbook's part '{shortened(info.filename, 60)}' is compressed "
                    f"{info.file_size // max(info.compress_size, 1):,} times, which real spreadsheets "
                    "never are; the file was refused as a possible zip bomb.",
                )
        if any(i.flag_bits & 0x1 for i in infos):
            raise reject(
                "encrypted_file", "The archive is encrypted. Remove the password and upload it again."
            )
        names = {i.filename for i in infos}
        if "xl/workbook.xml" not in names:
            raise reject("unsupported_format", _container_description(archive, names))
        content_types = ""
        if "[Content_Types].xml" in names:
            content_types = archive.read("[Content_Types].xml").decode("utf-8", "replace")
        if (
            "xl/vbaProject.bin" in names
            or "macroenabled" in content_types.lower()
            or ext in (".xlsm", ".xltm")
        ):
            raise reject(
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
class Sheet:
    """The worksheet an upload is read from: its title and the path of its XML in the archive."""

    title: str
    part: str


def local_name(name: str) -> str:
    """An XML name without its namespace (``{ns}sheet`` and expat's ``ns sheet`` give ``sheet``)."""
    return name.rpartition("}")[2].rpartition(" ")[2]


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


class XmlGuard:
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
            raise reject(
                "unreadable_file",
                f"{self.describe} cannot be read (its data is damaged). Open the workbook in Excel, "
                "save it again and upload it again.",
            ) from None

    def _doctype(self, *_: Any) -> None:
        raise reject(
            "unreadable_file",
            f"{self.describe} declares a document type, which spreadsheets never do; the file was "
            "refused as possibly hostile. Open the workbook in Excel, save it again and upload it again.",
        )

    def _count(self, name: str, attrs: dict[str, str]) -> None:
        self.elements += 1
        if self.elements > self.limit:
            raise self.too_large()

    def too_large(self) -> UploadRejected:
        return reject(
            "sheet_too_large",
            f"{self.describe} holds more than can be processed; reading stopped there. Copy only the "
            "data into a new workbook, or upload it as CSV.",
        )


def shared_strings_guard(spec: UploadSpec) -> XmlGuard:
    """The guard of the workbook's table of texts the sheets share: no bigger than a sheet may be."""
    return XmlGuard(spec.max_cells * _ELEMENTS_PER_CELL, "The workbook's table of texts")


class SheetGuard(XmlGuard):
    """Measures a worksheet against the spec's shape limits as its XML streams past.

    First the ``<dimension ref="A1:IP10001"/>`` Excel writes before the data, if the sheet has
    one: a sheet that declares more columns or rows than allowed is refused from its first
    bytes. Then every row and cell, since a dimension can be absent or wrong: a value beyond
    ``max_columns``, a row wider than any spreadsheet's, or more elements than ``max_cells``
    cells take (empty formatted cells included) stop the reading where they occur.
    """

    def __init__(self, sheet: Sheet, spec: UploadSpec) -> None:
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
            local = self.local_names[name] = local_name(name)
        if local == "v" or local == "f" or local == "is":
            if self.column > self.spec.max_columns:
                raise too_wide(self.row, self.column, self.spec)
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
        return reject(
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
            raise reject(
                "too_many_columns",
                f"The sheet '{title}' declares its cells to span {ref}, {column:,} columns (to column "
                f"{column_letter(column - 1)}), more than the limit of {spec.max_columns:,}. Delete the "
                "columns it does not need (select them, right-click, Delete: clearing them is not "
                "enough), or copy only the data into a new workbook, and upload it again.",
            )
        if row > spec.max_sheet_rows:
            raise reject(
                "too_many_rows",
                f"The sheet '{title}' declares its cells to span {ref}, {row:,} rows, more than the limit "
                f"of {spec.max_rows:,} data rows (and {SHEET_EXTRA_ROWS} for the header, titles and "
                "blank lines). Split the data into several uploads, or delete the rows below it that it "
                "does not need (select them, right-click, Delete), and upload it again.",
            )

    def too_large(self) -> UploadRejected:
        spec = self.spec
        return reject(
            "sheet_too_large",
            f"The sheet '{self.sheet.title}' holds more than {spec.max_cells:,} cells (empty formatted "
            f"cells and rows included); reading stopped at row {self.row:,}. The limit is "
            f"{spec.max_rows:,} data rows of {spec.max_columns:,} columns. Copy only the data into a new "
            "workbook, or upload it as CSV.",
        )


class GuardedSource:
    """A part of the archive that a guard reads along with the parser it is handed to, a chunk
    ahead of it: the guard refuses a part before the parser has built what lies past a limit."""

    def __init__(self, raw: Any, guard: XmlGuard) -> None:
        self.raw = raw
        self.guard = guard

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size)
        self.guard.feed(data)
        return data

    def close(self) -> None:
        self.raw.close()
