"""Blank upload templates for an outcome, as CSV or XLSX.

The data sheet (CSV: the whole file) holds only the header row, so that a template uploaded
unchanged is an empty upload (``no_data_rows``) rather than one with a made-up study in it. The
XLSX template adds an "Instructions" sheet: every column, whether it is required, what it means,
the allowed instruments and time points, and one example row clearly marked as an example.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from .export import export_rows, neutralise
from .measures import IDENTITY_COLUMNS, MEASURES, STATISTICS
from .spec import UploadSpec

TemplateFormat = Literal["csv", "xlsx"]

_EXAMPLE_STATISTICS: dict[str, float | int] = {
    "m1i": 24.5,
    "sd1i": 6.1,
    "n1i": 40,
    "m2i": 27.0,
    "sd2i": 6.4,
    "n2i": 38,
    "ai": 12,
    "bi": 28,
    "ci": 20,
    "di": 18,
    "ri": 0.32,
    "ni": 85,
    "xi": 14,
    "x1i": 8,
    "t1i": 1250.5,
    "x2i": 15,
    "t2i": 1198.0,
    "yi": -0.35,
    "vi": 0.042,
    "sei": 0.205,
}

_IDENTITY_MEANING = {
    "study": "Label of the study the row comes from (e.g. first author and year).",
    "comparison": "Optional label telling apart several comparisons from one study (e.g. 'CBT vs waitlist').",
    "instrument": "The instrument (questionnaire, scale) the outcome was measured with.",
    "timepoint": "When the outcome was measured.",
    "year": "Optional publication year (a whole number).",
}


def template_columns(spec: UploadSpec) -> list[str]:
    """The template's header: identity columns, the measure's statistics, then the moderators."""
    measure = MEASURES[spec.measure]
    columns = [*IDENTITY_COLUMNS, *(group[0] for group in measure.groups)]
    columns += [m.name for m in spec.moderators if m.name not in columns]
    return columns


def example_row(spec: UploadSpec) -> dict[str, Any]:
    """A plausible, valid row for ``spec`` (shown in the Instructions sheet; used by the tests)."""
    row: dict[str, Any] = {
        "study": "Smith 2019",
        "comparison": "",
        "instrument": sorted(spec.instruments)[0] if spec.instruments else "PHQ-9",
        "timepoint": sorted(spec.timepoints)[0] if spec.timepoints else "post-treatment",
        "year": 2019,
    }
    for name in (g[0] for g in MEASURES[spec.measure].groups):
        row[name] = _EXAMPLE_STATISTICS[name]
    for mod in spec.moderators:
        if mod.name not in row:
            row[mod.name] = 42.5 if mod.kind == "numeric" else "example"
    return row


def _column_notes(spec: UploadSpec) -> list[tuple[str, str, str, str]]:
    """(column, required, meaning, allowed values) for each template column."""
    measure = MEASURES[spec.measure]
    notes = []
    alternatives = {g[0]: g[1:] for g in measure.groups}
    for name in template_columns(spec):
        if name in STATISTICS:
            stat = STATISTICS[name]
            required = "required"
            alt = alternatives.get(name, ())
            meaning = stat.label[0].upper() + stat.label[1:] + "."
            if alt:
                required = f"required (or {', '.join(alt)})"
                meaning += "".join(
                    f" Instead, you may give the {STATISTICS[a].label} in a column '{a}'." for a in alt
                )
            allowed = _rule(name, spec)
        elif name in IDENTITY_COLUMNS:
            required = (
                "required" if name == "study" or (name == "instrument" and spec.instruments) else "optional"
            )
            meaning = _IDENTITY_MEANING[name]
            allowed = ""
            if name == "instrument" and spec.instruments:
                allowed = "One of: " + ", ".join(sorted(spec.instruments))
            elif name == "timepoint" and spec.timepoints:
                allowed = "One of: " + ", ".join(sorted(spec.timepoints))
            elif name == "year":
                allowed = "A year such as 2019"
            elif name == "study":
                allowed = "Text; each study, instrument, time point and comparison only once"
        else:
            mod = next(m for m in spec.moderators if m.name == name)
            required = "optional"
            meaning = f"Moderator from the consortium's data dictionary ({mod.kind})."
            allowed = "A number" if mod.kind == "numeric" else "Text"
        notes.append((name, required, meaning, allowed))
    return notes


def _rule(name: str, spec: UploadSpec) -> str:
    measure = MEASURES[spec.measure]
    kind = STATISTICS[name].kind
    return {
        "mean": "A number greater than 0" if measure.positive_means else "A number",
        "sd": "A number greater than 0",
        "group_n": f"A whole number, at least {measure.min_n}",
        "total_n": f"A whole number, at least {measure.min_n}",
        "count": "A whole number, 0 or more",
        "time": "A number greater than 0",
        "correlation": "A number between -1 and 1 (exclusive)",
        "effect": "A number",
        "variance": "A number greater than 0",
        "se": "A number greater than 0",
    }[kind]


def template_for(spec: UploadSpec, *, fmt: TemplateFormat) -> bytes:
    """A blank template for uploads under ``spec``: CSV (header only) or XLSX (data + Instructions)."""
    columns = template_columns(spec)
    if fmt == "csv":
        return export_rows([], columns, fmt="csv")
    if fmt == "xlsx":
        return _xlsx_template(spec, columns)
    raise ValueError(f"unknown template format {fmt!r}; use 'csv' or 'xlsx'")


def _inert(value: Any) -> Any:
    return neutralise(value) if isinstance(value, str) else value


def _xlsx_template(spec: UploadSpec, columns: list[str]) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font, PatternFill
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    measure = MEASURES[spec.measure]
    bold = Font(bold=True)
    workbook = Workbook()
    data = workbook.active
    data.title = "data"
    data.append(columns)
    for index, name in enumerate(columns, start=1):
        data.cell(row=1, column=index).font = bold
        data.column_dimensions[get_column_letter(index)].width = max(12, len(name) + 4)
    data.freeze_panes = "A2"
    # Drop-down lists help typing allowed values; skipped when Excel's list syntax cannot hold them.
    for name, allowed in (("instrument", spec.instruments), ("timepoint", spec.timepoints)):
        listed = ",".join(sorted(allowed))
        if (
            allowed
            and len(listed) < 250
            and not any(c in listed for c in '"')
            and all("," not in a for a in allowed)
        ):
            validation = DataValidation(type="list", formula1=f'"{listed}"', allow_blank=True)
            letter = get_column_letter(columns.index(name) + 1)
            validation.add(f"{letter}2:{letter}{spec.max_rows + 1}")
            data.add_data_validation(validation)

    sheet = workbook.create_sheet("Instructions")
    sheet.append([f"Upload template for outcome '{spec.outcome_code}' — effect measure: {measure.label}"])
    sheet["A1"].font = Font(bold=True, size=13)
    sheet.append(
        [
            "Enter one row per comparison on the 'data' sheet: one study, one outcome, one time point, "
            "one instrument. Leave a cell empty when a value is unknown. Do not use formulas."
        ]
    )
    sheet.append([])
    sheet.append(["Column", "Required", "Meaning", "Allowed values"])
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    for note in _column_notes(spec):
        sheet.append(list(note))
    sheet.append([])
    # Names come from the data dictionary: a name such as "=HYPERLINK(...)" must stay text.
    sheet.append(["Allowed instruments:", neutralise(", ".join(sorted(spec.instruments))) or "any"])
    sheet.append(["Allowed time points:", neutralise(", ".join(sorted(spec.timepoints))) or "any"])
    sheet.append([])
    sheet.append(["EXAMPLE ROW — for illustration only; do not copy it into the data sheet."])
    sheet[sheet.max_row][0].font = Font(bold=True, color="9C0006")
    example = example_row(spec)
    sheet.append(columns)
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    sheet.append([_inert(example.get(c)) if example.get(c) != "" else None for c in columns])
    fill = PatternFill("solid", fgColor="FFF2CC")
    for cell in sheet[sheet.max_row]:
        cell.fill = fill
    for letter, width in (("A", 22), ("B", 22), ("C", 70), ("D", 45)):
        sheet.column_dimensions[letter].width = width

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
