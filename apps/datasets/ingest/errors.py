"""Problems found in an upload, and the exception that carries all of them.

Every problem has a machine-readable ``code`` (stable: the API, the portal and the tests rely on
it) and a ``message`` written for a data manager, naming the row and the column as they appear
in the spreadsheet. :data:`ERROR_CODES` and :data:`WARNING_CODES` are the complete catalogues.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

#: Every code an :class:`UploadRejected` can carry, with a one-line meaning (for API docs).
ERROR_CODES: dict[str, str] = {
    # the request itself (API): a missing or malformed field, a body that is not JSON or too large
    "invalid_request": "The request is missing a field or has one of the wrong kind (the message names it).",
    "request_too_large": "The request body is larger than the limit; it was not read.",
    # the file as a whole: reported alone, nothing else is checked
    "file_too_large": "The file is larger than the upload limit.",
    "empty_file": "The file is empty (no header row).",
    "no_data_rows": "The file has a header row but no data rows.",
    "too_many_rows": "The file has more data rows than the upload limit (or the sheet declares them).",
    "too_many_columns": "A row has values in more columns than the upload limit (or the sheet declares them).",
    "sheet_too_large": "The sheet holds more cells than the row and column limits allow (empty ones included).",
    "unreadable_file": "The file is damaged, truncated, binary or not in a readable text encoding.",
    "unsupported_format": "The file is not CSV, XLSX or JSON (e.g. a Word document, an image, a PDF).",
    "legacy_xls": "The file is an old Excel 97-2003 workbook (.xls); save it as .xlsx or CSV.",
    "encrypted_file": "The workbook is password-protected.",
    "macro_enabled": "The workbook contains or allows macros (.xlsm); save it as a plain .xlsx.",
    "xlsx_too_large_uncompressed": "The workbook unpacks to more data than allowed (or is a zip bomb).",
    "invalid_json": "The JSON is not a list of objects, one object per row.",
    # structure of the file
    "malformed_csv": "A row of the CSV cannot be read (e.g. a quote that is never closed).",
    "extra_values": "A row has more values than the header has columns (often an unquoted decimal comma).",
    "unnamed_column": "A column has values but no header.",
    "missing_column": "A column the outcome's effect measure needs is absent from the header.",
    "duplicate_column": "Two columns in the header mean the same thing.",
    # values
    "missing_value": "A value the effect measure needs is blank.",
    "missing_study": "The study label is blank.",
    "non_numeric": "A statistic is not a number (text, a date, an Excel error...).",
    "ambiguous_number": "A number with a thousands separator that could be read two ways.",
    "not_integer": "A count or sample size is not a whole number.",
    "sd_not_positive": "A standard deviation is 0 or negative.",
    "n_too_small": "A sample size is below the minimum the effect measure needs.",
    "negative_count": "A count of events or non-events is negative.",
    "events_exceed_n": "More events than participants.",
    "counts_inconsistent": "Events plus non-events do not add up to the group size given.",
    "time_not_positive": "A person-time is 0 or negative.",
    "mean_not_positive_for_ratio": "A mean is 0 or negative, so a ratio of means cannot be taken.",
    "correlation_out_of_range": "A correlation is not strictly between -1 and 1.",
    "variance_not_positive": "A sampling variance or standard error is 0 or negative.",
    "effect_not_computable": "The values are valid one by one, but no effect size can be computed from them.",
    "unknown_outcome": "The outcome column names a different outcome than the one uploaded to.",
    "unknown_instrument": "The instrument is not one the outcome allows.",
    "unknown_timepoint": "The time point is not one the outcome allows.",
    "invalid_year": "The year is not a plausible publication year.",
    "invalid_moderator": "A numeric moderator holds something that is not a number.",
    "invalid_value": "A value has a type a cell cannot hold (a JSON list or object).",
    "text_too_long": "A label is longer than the platform stores.",
    "invisible_character": "A label holds an invisible character (zero-width, text direction, formatting).",
    "duplicate_row": "The same study, instrument, time point and comparison appear twice (or look alike).",
    "formula_cell": "A cell holds a spreadsheet formula instead of a value.",
    "out_of_scale_range": "A mean lies outside its instrument's range in the data dictionary.",
}

#: Codes of the notes returned in ``ParsedUpload.warnings`` (the upload is accepted).
WARNING_CODES: dict[str, str] = {
    "extra_column": "A column is not in the data dictionary; it was kept as an extra moderator.",
    "derived_column": "A column was computed from others (e.g. non-events from group size minus events).",
    "input_forms": "Rows give their effect sizes in different forms (e.g. means and SDs, Cohen's d); "
    "the note counts the rows of each.",
    "decimal_comma": "Numbers were written with decimal commas and were read accordingly.",
    "rows_above_header": "Rows above the header (a title, notes) were not read as data.",
    "encoding_fallback": "The file is not UTF-8; it was read as Windows-1252 (Western European).",
    "unused_rows": "Rows that no analysis of the outcome selects (their time point or instrument); "
    "they are stored but enter no result.",
}


@dataclass(frozen=True)
class UploadError:
    """One problem in an upload (or, in ``ParsedUpload.warnings``, one note about it).

    Attributes
    ----------
    row : int or None
        The row as the data manager sees it: in a spreadsheet or CSV the header is row 1 and the
        first data row is row 2; for JSON rows it is the 1-based position in the list. ``None``
        for problems of the file or of the header as a whole.
    column : str or None
        The column header exactly as the data manager wrote it (for a missing column: the
        canonical name the platform expected).
    value : str or None
        The offending value as text, shortened to 100 characters.
    code : str
        One of :data:`ERROR_CODES` (or :data:`WARNING_CODES`).
    message : str
        A full sentence for the data manager.
    """

    row: int | None
    column: str | None
    value: str | None
    code: str
    message: str

    @classmethod
    def about(
        cls,
        code: str,
        message: str,
        *,
        row: int | None = None,
        column: str | None = None,
        value: str | None = None,
    ) -> UploadError:
        """A problem by its code and sentence; row, column and value where it has them."""
        return cls(row=row, column=column, value=value, code=code, message=message)

    def to_dict(self) -> dict[str, object]:
        """The problem as JSON holds it: its fields by name, in their order."""
        return asdict(self)


class UploadRejected(Exception):  # noqa: N818 - the public name is part of the agreed API
    """The upload cannot be accepted; ``errors`` lists every problem found, in file order."""

    def __init__(self, errors: list[UploadError]) -> None:
        if not errors:
            raise ValueError("UploadRejected needs at least one error")
        self.errors: list[UploadError] = list(errors)
        n = len(self.errors)
        super().__init__(f"The upload was rejected: {n} problem{'s' if n != 1 else ''} found.")

    @property
    def codes(self) -> set[str]:
        """The distinct error codes (convenient in tests and logs)."""
        return {e.code for e in self.errors}
