"""Blank upload templates for an outcome, as CSV or XLSX.

The data sheet (CSV: the whole file) holds only the header row, so that a template uploaded
unchanged is an empty upload (``no_data_rows``) rather than one with a made-up study in it. The
XLSX template adds an "Instructions" sheet: every column, whether it is required, what it means,
the allowed instruments and time points, and example rows clearly marked as examples.

The statistics columns are the measure's own inputs. A measure that takes reported statistics
(SMD: Cohen's d, a t statistic) shows them too, after its own inputs, with a given effect size and
its standard error: such outcomes are often reported that way, and a row needs one complete set.
The other measures' templates show their own inputs only, and the Instructions say that a given
effect size with its standard error or variance may be added: a column of given effect sizes next
to 2x2 tables invites odds ratios where their logarithms belong.
"""

from __future__ import annotations

import io
from typing import Any, Literal

from workers.metaanalysis.measures import InputForm

from .export import export_rows, neutralise
from .measures import IDENTITY_COLUMNS, MEASURES, Measure, describe_forms, form_name, with_article
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
    "mi": 24.5,
    "sdi": 6.1,
    "xi": 14,
    "x1i": 8,
    "t1i": 1250.5,
    "x2i": 15,
    "t2i": 1198.0,
    "yi": -0.35,
    "vi": 0.042,
    "sei": 0.205,
}

#: Example values of the columns that mean something else in a reported-statistic form.
_EXAMPLE_REPORTED: dict[str, float | int] = {"di": -0.4, "ti": -1.8}

_IDENTITY_MEANING = {
    "study": "Label of the study the row comes from (e.g. first author and year).",
    "comparison": "Optional label telling apart several comparisons from one study (e.g. 'CBT vs waitlist').",
    "instrument": "The instrument (questionnaire, scale) the outcome was measured with.",
    "timepoint": "When the outcome was measured.",
    "year": "Optional publication year (a whole number).",
}


def template_forms(measure: Measure) -> tuple[InputForm, ...]:
    """The input forms whose columns a template shows (see the module docstring): the measure's
    own inputs, and for a measure with reported statistics those and a given effect size with its
    standard error."""
    people = measure.forms_for_people
    if measure.raw_form is None or not measure.reported_leads:
        return people[:1] if measure.raw_form is not None else people
    # a given effect size is shown with its standard error, as papers report it (a variance is
    # accepted too: the Instructions say so)
    return tuple(f for f in people if f.code == "raw" or "vi" not in f.columns)


def _template_statistics(measure: Measure) -> list[str]:
    """Each shown form's columns once; the measure's own inputs by their preferred columns."""
    columns: list[str] = []
    for form in template_forms(measure):
        if form is measure.raw_form or measure.raw_form is None:
            names = [group[0] for group in measure.groups]
        else:
            names = list(form.columns)
        columns += [n for n in names if n not in columns]
    return columns


def template_columns(spec: UploadSpec) -> list[str]:
    """The template's header: identity columns, the statistics shown, then the moderators."""
    columns = [*IDENTITY_COLUMNS, *_template_statistics(MEASURES[spec.measure])]
    columns += [m.name for m in spec.moderators if m.name not in columns]
    return columns


def _example_value(measure: Measure, name: str) -> float | int:
    if name in measure.reported_leads:
        return _EXAMPLE_REPORTED[name]
    return _EXAMPLE_STATISTICS[name]


def example_row(spec: UploadSpec) -> dict[str, Any]:
    """A plausible, valid row for ``spec`` from the measure's own inputs, other statistics blank
    (shown in the Instructions sheet; used by the tests)."""
    return example_rows(spec)[0]


def example_rows(spec: UploadSpec) -> list[dict[str, Any]]:
    """One plausible, valid row per input form the template shows, each giving that form only."""
    measure = MEASURES[spec.measure]
    shown = _template_statistics(measure)
    forms = template_forms(measure) if measure.raw_form is not None else measure.forms[:1]
    rows = []
    for number, form in enumerate(forms):
        row: dict[str, Any] = {
            "study": f"Smith 201{9 - number}",
            "comparison": "",
            "instrument": sorted(spec.instruments)[0] if spec.instruments else "PHQ-9",
            "timepoint": sorted(spec.timepoints)[0] if spec.timepoints else "post-treatment",
            "year": 2019 - number,
        }
        names = [g[0] for g in form.groups]
        if measure.raw_form is None:
            names = [g[0] for g in measure.groups]
        for name in shown:
            row[name] = _example_value(measure, name) if name in names else ""
        for mod in spec.moderators:
            if mod.name not in row:
                row[mod.name] = 42.5 if mod.kind == "numeric" else "example"
        rows.append(row)
    return rows


def _column_notes(spec: UploadSpec) -> list[tuple[str, str, str, str]]:
    """(column, required, meaning, allowed values) for each template column."""
    measure = MEASURES[spec.measure]
    forms = template_forms(measure)
    several = len(forms) > 1 and measure.raw_form is not None
    notes = []
    alternatives = {g[0]: g[1:] for g in measure.groups}
    for name in template_columns(spec):
        if name in measure.meanings:
            stat = measure.statistic(name)
            required = "required"
            if several:
                required = "for " + " / ".join(form_name(measure, f) for f in forms if name in f.columns)
            alt = alternatives.get(name, ())
            meaning = stat.label[0].upper() + stat.label[1:] + "."
            if name == "yi" and measure.raw_form is not None:
                scale = ", on the log scale" if measure.log_scale else ""
                meaning = f"The {measure.label} itself{scale}, with its standard error or sampling variance."
            if alt:
                required = f"{required} (or {', '.join(alt)})"
                meaning += "".join(
                    f" Instead, you may give {with_article(measure.statistic(a).label)} in a column '{a}'."
                    for a in alt
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


def forms_note(spec: UploadSpec) -> str:
    """What the Instructions say about the input forms: one complete set per row, and which one
    a row with several uses."""
    measure = MEASURES[spec.measure]
    forms = measure.forms_for_people
    if measure.raw_form is None:
        return f"Each row needs {describe_forms(measure)}."
    text = f"Each row needs one complete set of statistics: {describe_forms(measure)}."
    if template_forms(measure) == forms[:1]:
        text += " Add the columns of another set when your rows give it."
    order = ", ".join(dict.fromkeys(form_name(measure, f) for f in measure.forms))
    text += (
        " Fill in one set per row and leave the other cells empty: a row with several complete sets is "
        f"computed from the first of them in this order: {order}."
    )
    return text


def _rule(name: str, spec: UploadSpec) -> str:
    """The values a statistic may hold, in the words of the template's notes (the engine's domain)."""
    return MEASURES[spec.measure].domain.columns[name].allowed_values


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
    sheet.append([forms_note(spec)])
    sheet.append([])
    # Names come from the data dictionary: a name such as "=HYPERLINK(...)" must stay text.
    sheet.append(["Allowed instruments:", neutralise(", ".join(sorted(spec.instruments))) or "any"])
    sheet.append(["Allowed time points:", neutralise(", ".join(sorted(spec.timepoints))) or "any"])
    sheet.append([])
    examples = example_rows(spec)
    if len(examples) > 1:
        heading = "EXAMPLE ROWS — one per set of statistics, for illustration only; do not copy them"
    else:
        heading = "EXAMPLE ROW — for illustration only; do not copy it"
    sheet.append([f"{heading} into the data sheet."])
    sheet[sheet.max_row][0].font = Font(bold=True, color="9C0006")
    sheet.append(columns)
    for cell in sheet[sheet.max_row]:
        cell.font = bold
    fill = PatternFill("solid", fgColor="FFF2CC")
    for example in examples:
        sheet.append([_inert(example.get(c)) if example.get(c) != "" else None for c in columns])
        for cell in sheet[sheet.max_row]:
            cell.fill = fill
    for letter, width in (("A", 22), ("B", 22), ("C", 70), ("D", 45)):
        sheet.column_dimensions[letter].width = width

    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
