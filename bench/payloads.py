"""Oversized upload payloads, built in memory for the tests and for timing the upload limits.

:func:`wide_workbook` builds the spreadsheet that passes the byte limits but not the shape limits:
10,000 data rows of 250 numbers (2.5 million cells) under a header row, about 3 MiB as a file and
43 MiB of sheet XML compressed about 14 times: inside the 5 MiB upload limit, the 50 MiB unpacked
limit and the zip-bomb ratio. The archive is written directly (zipfile and raw SpreadsheetML):
openpyxl takes about 15 s to write so many cells, this under half a second. The XML is what
Excel reads (cells without a reference take the next column, as the standard allows).

Usage::

    from bench.payloads import wide_workbook
    declared = wide_workbook()                          # <dimension ref="A1:IP10001"/>
    undeclared = wide_workbook(declare=False)           # no <dimension> element
    lying = wide_workbook(declared_ref="A1:I4")         # a dimension far smaller than the data

Timing a refusal (the reader stops at the declared dimension or at the first row)::

    python -m bench.payloads
"""

from __future__ import annotations

import contextlib
import functools
import io
import random
import statistics
import time
import zipfile
from typing import Any

from apps.datasets.ingest.naming import column_letter

#: The shape of the reproduced workbook: 10,000 data rows of 250 columns, plus a header row.
ROWS = 10_000
COLUMNS = 250

_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
_REL_NS = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
_PKG_REL_NS = "http://schemas.openxmlformats.org/package/2006/relationships"

_CONTENT_TYPES = (
    b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    b'<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    b'<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    b'<Default Extension="xml" ContentType="application/xml"/>'
    b'<Override PartName="/xl/workbook.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    b'<Override PartName="/xl/worksheets/sheet1.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    b"</Types>"
)
_PACKAGE_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<Relationships xmlns="{_PKG_REL_NS}">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
    'Target="xl/workbook.xml"/></Relationships>'
).encode()
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<workbook xmlns="{_NS}" xmlns:r="{_REL_NS}">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
).encode()
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    f'<Relationships xmlns="{_PKG_REL_NS}">'
    '<Relationship Id="rId1" '
    'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
    'Target="worksheets/sheet1.xml"/></Relationships>'
).encode()

_SHARED_STRINGS_TYPE = (
    b'<Override PartName="/xl/sharedStrings.xml" '
    b'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)

#: The first header names are real columns, so that the header is recognised as one.
_HEADER_START = ("study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")


def wide_workbook(
    rows: int = ROWS,
    columns: int = COLUMNS,
    *,
    declare: bool = True,
    declared_ref: str | None = None,
    seed: int = 0,
) -> bytes:
    """An XLSX workbook with one sheet: a header row, then ``rows`` rows of ``columns`` numbers.

    ``declare=False`` leaves out the ``<dimension>`` element; ``declared_ref`` writes that range
    instead of the true one (``A1:IP10001`` for the default shape), to lie about the size.
    """
    sheet = _sheet_head(rows, columns, declare=declare, declared_ref=declared_ref) + _sheet_body(
        rows, columns, seed
    )
    return workbook_from_sheet(sheet)


def workbook_from_sheet(sheet: bytes, *, shared_strings: bytes | None = None) -> bytes:
    """An XLSX workbook whose one sheet, ``Sheet1``, is the SpreadsheetML ``sheet`` given as is
    (and ``shared_strings`` its table of shared texts, if given): for sheets no spreadsheet
    program would write."""
    content_types = _CONTENT_TYPES
    members = [
        ("_rels/.rels", _PACKAGE_RELS),
        ("xl/workbook.xml", _WORKBOOK),
        ("xl/_rels/workbook.xml.rels", _WORKBOOK_RELS),
        ("xl/worksheets/sheet1.xml", sheet),
    ]
    if shared_strings is not None:
        content_types = content_types.replace(b"</Types>", _SHARED_STRINGS_TYPE + b"</Types>")
        members.append(("xl/sharedStrings.xml", shared_strings))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in [("[Content_Types].xml", content_types), *members]:
            archive.writestr(name, data, compress_type=zipfile.ZIP_DEFLATED)
    return buffer.getvalue()


def sheet_xml(rows_xml: str, *, dimension: str | None = None) -> bytes:
    """A worksheet whose ``<sheetData>`` holds ``rows_xml`` (``<row>`` elements, as text),
    after a ``<dimension>`` declaring ``dimension`` if given."""
    declared = f'<dimension ref="{dimension}"/>' if dimension else ""
    return (
        f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{_NS}">{declared}'
        f"<sheetData>{rows_xml}</sheetData></worksheet>"
    ).encode()


def true_ref(rows: int = ROWS, columns: int = COLUMNS) -> str:
    """The range a truthful ``<dimension>`` declares for this shape (header row included)."""
    return f"A1:{column_letter(columns - 1)}{rows + 1}"


def _sheet_head(rows: int, columns: int, *, declare: bool, declared_ref: str | None) -> bytes:
    ref = declared_ref or true_ref(rows, columns)
    dimension = f'<dimension ref="{ref}"/>' if declare else ""
    return f'<?xml version="1.0" encoding="UTF-8" standalone="yes"?><worksheet xmlns="{_NS}">{dimension}'.encode()


@functools.lru_cache(maxsize=2)
def _sheet_body(rows: int, columns: int, seed: int) -> bytes:
    """``<sheetData>`` and the end of the sheet; cached, since only the head differs between variants."""
    names = [*_HEADER_START, *(f"x{i + 1}" for i in range(len(_HEADER_START), columns))][:columns]
    header = "".join(f'<c t="inlineStr"><is><t>{n}</t></is></c>' for n in names)
    # Numbers as pairs of cells drawn at random from 300 pairs: about the variety of real data, so
    # that the sheet compresses about 14 times (real sheets 5-30 times), not like a zip bomb.
    generator = random.Random(seed)
    cells = [f"<c><v>{generator.randrange(1, 1000) / 10}</v></c>" for _ in range(1000)]
    pairs = ["".join(generator.choices(cells, k=2)) for _ in range(300)]
    parts = [f'<sheetData><row r="1">{header}</row>']
    for number in range(2, rows + 2):
        row = "".join(generator.choices(pairs, k=(columns + 1) // 2))
        if columns % 2:
            row = row[: row.rindex("<c>")]  # an odd width: drop the last cell of the last pair
        parts.append(f'<row r="{number}">{row}</row>')
    parts.append("</sheetData></worksheet>")
    return "".join(parts).encode()


def _time_refusals(repeat: int = 5) -> None:
    from apps.datasets.ingest import UploadRejected, UploadSpec, parse_upload

    spec = UploadSpec(outcome_code="bench", measure="SMD")
    variants: dict[str, dict[str, Any]] = {
        "declared dimension": {},
        "no dimension": {"declare": False},
        "lying dimension A1:I4": {"declared_ref": "A1:I4"},
    }
    # a first small upload loads the modules the reader imports on first use
    with contextlib.suppress(UploadRejected):
        parse_upload(wide_workbook(rows=3, columns=7), filename="small.xlsx", spec=spec)
    for label, options in variants.items():
        started = time.perf_counter()
        content = wide_workbook(**options)
        built = time.perf_counter() - started
        times, outcome = [], "accepted"
        for _ in range(repeat):
            started = time.perf_counter()
            try:
                parse_upload(content, filename="wide.xlsx", spec=spec)
            except UploadRejected as exc:
                outcome = ", ".join(sorted(exc.codes))
            times.append(time.perf_counter() - started)
        print(
            f"{label:24} {len(content) / 2**20:4.1f} MiB  built in {built:4.2f} s  "
            f"read in {statistics.median(times) * 1000:7.2f} ms (median of {repeat})  -> {outcome}"
        )


if __name__ == "__main__":
    _time_refusals()
