"""Reading an XLSX workbook: its data sheet's rows, once the sheet has passed the safety checks.

The sheet read is the one named ``data``, else the first worksheet. It is measured by
:mod:`.xlsx_guard` before openpyxl parses it; openpyxl then streams its rows, and only the cells
present are placed. A cell holding a formula or an Excel error is kept as such
(:class:`FormulaCell`, :class:`ErrorCell`) for the validator to report.
"""

from __future__ import annotations

import datetime as dt
import io
import posixpath
import warnings
import zipfile
from collections.abc import Iterator
from typing import Any

from ..errors import UploadError, UploadRejected
from ..naming import column_letter
from ..spec import UploadSpec
from .raw_table import ErrorCell, FormulaCell, RawTable, collect_rows, reject, shortened
from .xlsx_guard import GuardedSource, Sheet, SheetGuard, check_zip, local_name, shared_strings_guard


def data_sheet(archive: zipfile.ZipFile) -> Sheet:
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
        raise reject(
            "unreadable_file",
            "The Excel workbook cannot be read (a part of it is damaged or missing). Open it in Excel, "
            "save it again and upload it again.",
        ) from None
    targets: dict[str, str] = {}
    for rel in relationships.iter():
        if local_name(rel.tag) == "Relationship" and rel.get("Type", "").endswith("/worksheet"):
            target = rel.get("Target", "")
            # targets are relative to the workbook's folder unless they start with a slash
            path = target[1:] if target.startswith("/") else posixpath.normpath(f"xl/{target}")
            targets[rel.get("Id", "")] = path
    present = set(archive.namelist())
    sheets = []
    for element in workbook.iter():
        if local_name(element.tag) == "sheet":
            rel_id = next(
                (v for k, v in element.attrib.items() if k.startswith("{") and local_name(k) == "id"), ""
            )
            part = targets.get(rel_id)
            if part in present:
                sheets.append(Sheet(element.get("name", ""), part))
    if not sheets:
        raise reject("empty_file", "The workbook has no worksheet.")
    return next((s for s in sheets if s.title.strip().casefold() == "data"), sheets[0])


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
            guard = shared_strings_guard(spec)
            with reader.archive.open(strings.PartName[1:]) as source:
                reader.shared_strings = read_string_table(GuardedSource(source, guard))
        reader.read_workbook()
        apply_stylesheet(reader.archive, reader.wb)
    except UploadRejected:
        reader.archive.close()
        raise
    except Exception:  # openpyxl raises many types for damaged parts; all mean the same to the user
        reader.archive.close()
        raise reject(
            "unreadable_file",
            "The Excel workbook cannot be read (a part of it is damaged or missing). Open it in Excel, "
            "save it again and upload it again.",
        ) from None
    return reader


def read_xlsx(content: bytes, *, ext: str, spec: UploadSpec) -> RawTable:
    check_zip(content, ext=ext, spec=spec)
    with zipfile.ZipFile(io.BytesIO(content)) as archive:
        sheet = data_sheet(archive)
        with archive.open(sheet.part) as source:
            SheetGuard(sheet, spec).measure(source)

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
                collected = collect_rows(_xlsx_records(parser), spec)
        except UploadRejected:
            raise
        except Exception:
            raise reject(
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
                    f"('{shortened(cell.text, 60)}'); write the column name as plain text.",
                    row=header_row,
                    column=cell.text,
                    value=shortened(cell.text),
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
