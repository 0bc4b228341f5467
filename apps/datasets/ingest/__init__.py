"""Upload ingestion: turning partner centres' CSV, XLSX and JSON files into canonical study rows.

Pure Python (no Django), so the rules can be tested alone and reused by the portal, the API and
the demo loader. The public API:

- :func:`parse_upload` reads an uploaded file; :func:`parse_json_rows` reads rows posted as JSON.
  Both return a :class:`ParsedUpload` or raise :class:`UploadRejected` listing *every* problem
  (all-or-nothing: nothing in a rejected file is used).
- :func:`export_rows` writes rows as CSV or XLSX with spreadsheet formulas neutralised.
- :func:`template_for` gives a blank template for an outcome.

A row may give its effect size in any input form of the outcome's measure, mixed in one file (the
measure's own inputs, SMD's Cohen's d or t with both group sizes, a given effect size with its
standard error or variance; see :mod:`.measures`): each row uses the first it has complete, as the
engine does, and :attr:`ParsedUpload.forms` records which.

Row numbers in errors are those a data manager sees: in a spreadsheet or CSV the header is row 1
and the first data row is row 2 (blank lines count, as the spreadsheet shows them); for JSON rows
they are the 1-based position of the object in the list (messages then say "Item").
"""

from __future__ import annotations

from .errors import ERROR_CODES, WARNING_CODES, UploadError, UploadRejected
from .export import export_rows, neutralise
from .measures import MEASURES
from .readers import read_rows_object, read_upload
from .spec import ColumnMapping, ModeratorSpec, ParsedUpload, UploadSpec
from .templates import template_for
from .validation import validate_table

__all__ = [
    "ERROR_CODES",
    "MEASURES",
    "WARNING_CODES",
    "ColumnMapping",
    "ModeratorSpec",
    "ParsedUpload",
    "UploadError",
    "UploadRejected",
    "UploadSpec",
    "export_rows",
    "neutralise",
    "parse_json_rows",
    "parse_upload",
    "template_for",
]


def parse_upload(
    content: bytes, *, filename: str, spec: UploadSpec, content_type: str | None = None
) -> ParsedUpload:
    """Parse and validate an uploaded file (CSV, XLSX or JSON, told apart by content and name).

    Raises :class:`UploadRejected` with every problem found; on success nothing was changed
    anywhere (the caller stores the returned rows).
    """
    table = read_upload(content, filename=filename, spec=spec, content_type=content_type)
    return validate_table(table, spec)


def parse_json_rows(rows: object, *, spec: UploadSpec) -> ParsedUpload:
    """Parse and validate rows posted as JSON: a list of objects, one per row.

    Errors refer to rows by their 1-based position in the list.
    """
    return validate_table(read_rows_object(rows, spec=spec), spec)
