"""Reading one row's cells for the validator, and saying where a problem is.

:class:`RowReader` is the validator's ground floor: the table's columns resolved against the
outcome's specification, the decimal mark its numbers use, and the canonical columns of the parsed
rows; each cell read as a label (plain text, no invisible characters, among the outcome's allowed
values where it has them) or as a number; the identity columns (study, comparison, instrument,
time point, outcome, year) and the moderators of a row; and every error worded at its row and
column ("Row 4, column 'SD control' (sd2i): ..."). The checks of the statistics
(:mod:`.measure_checks`) and of the table as a whole (:mod:`.table_checks`) build on it.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass, field
from typing import Any

from .. import labels
from ..cells import Problem, display, format_number, read_number, read_text
from ..columns import ResolvedColumn, header_key, resolve_columns
from ..errors import UploadError
from ..measures import IDENTITY_COLUMNS, MAX_TEXT_LENGTH, MEASURES, with_article
from ..numbers import classify, detect_decimal_mark
from ..readers import RawRow, RawTable, is_blank
from ..spec import UploadSpec

YEAR_RANGE = (1800, 2100)


@dataclass
class RowState:
    """What one row produced: canonical values, valid statistics, and whether it is clean."""

    values: dict[str, Any]
    stats: dict[str, float] = field(default_factory=dict)
    clean: bool = True
    #: the statistics with a value in the row (valid or not): input forms are chosen on these
    given: set[str] = field(default_factory=set)


@functools.lru_cache(maxsize=64)
def _lookups(allowed: frozenset[str]) -> tuple[dict[str, str], dict[str, str]]:
    """Allowed values by case-folded text and by header key ("PHQ 9" finds "PHQ-9").

    A key shared by two allowed values (say "BDI-1" and "BDI 1") matches neither: only an exact
    spelling can choose between them.
    """

    def unique(pairs: list[tuple[str, str]]) -> dict[str, str]:
        counts: dict[str, int] = {}
        for k, _ in pairs:
            counts[k] = counts.get(k, 0) + 1
        return {k: v for k, v in pairs if counts[k] == 1}

    return unique([(a.casefold(), a) for a in allowed]), unique([(header_key(a), a) for a in allowed])


class RowReader:
    """The table being validated, its columns, and the errors and warnings found so far."""

    def __init__(self, table: RawTable, spec: UploadSpec) -> None:
        self.table = table
        self.spec = spec
        self.measure = MEASURES[spec.measure]
        resolution = resolve_columns(
            table.header,
            table.has_data(),
            spec,
            header_row=table.header_row,
            single_column_hint=table.single_column_hint,
        )
        self.columns = resolution.columns
        self.by_target = resolution.by_target
        self.errors: list[UploadError] = [*table.errors, *resolution.errors]
        self.warnings: list[UploadError] = list(table.warnings)
        from workers.metaanalysis import input_forms  # numpy: loaded only when needed
        from workers.metaanalysis import measures as registry

        present = {c.target for c in self.columns if c.kind == "statistic"}
        # the forms the file's columns can give, in the engine's order of precedence
        self.offered = input_forms.offered_forms(registry.get(self.measure.code), present)
        own = {name for group in self.measure.groups for name in group}
        # blanks are reported cell by cell when the columns are the measure's own inputs only
        self.by_cell = all(set(f.columns) & present <= own for f in self.offered)
        self.moderators = {
            m.name: m
            for m in spec.moderators
            if m.name in self.by_target and self.by_target[m.name].kind == "moderator"
        }
        self.extras = [c for c in self.columns if c.kind == "extra"]
        self.derived: dict[str, int] = {}
        self.decimal = self._detect_decimal_mark()

    # ---------------------------------------------------------------------------------------
    # set-up

    def _numeric_columns(self) -> list[ResolvedColumn]:
        cols = [c for c in self.columns if c.kind == "statistic" or c.target == "year"]
        cols += [self.by_target[n] for n, m in self.moderators.items() if m.kind == "numeric"]
        return cols

    def _detect_decimal_mark(self) -> str | None:
        numeric = self._numeric_columns()
        texts = (
            row.cells[c.index].strip()
            for row in self.table.rows
            if row.readable
            for c in numeric
            if c.index < len(row.cells) and isinstance(row.cells[c.index], str)
        )
        mark = detect_decimal_mark(texts, self.table.default_decimal)
        if mark == ",":
            self.warnings.append(
                UploadError.about(
                    "decimal_comma",
                    "Numbers were written with decimal commas (e.g. 0,45) and were read as such.",
                )
            )
        return mark

    def _statistic_columns(self) -> list[str]:
        """Statistics in the canonical rows: the first column of each requirement group of every
        form that the file has a column for (derived when not given, e.g. ``bi`` from ``n1i``),
        plus every other statistic given."""
        wanted: set[str] = set()
        for group in (*self.measure.groups, *(g for f in self.measure.forms for g in f.groups)):
            given = [n for n in group if n in self.by_target]
            if given:
                wanted.update([group[0], *given])
        return [n for n in self.measure.statistics if n in wanted]

    def canonical_columns(self) -> tuple[str, ...]:
        return (
            *IDENTITY_COLUMNS,
            *self._statistic_columns(),
            *self.moderators,
            *(c.target for c in self.extras),
        )

    # ---------------------------------------------------------------------------------------
    # reporting

    def _where(self, row: int, col: ResolvedColumn | None) -> str:
        if col is None:
            return f"{self.table.item} {row}"
        noun = "field" if self.table.item == "Item" else "column"
        alias = f" ({col.target})" if col.is_alias else ""
        return f"{self.table.item} {row}, {noun} '{col.source}'{alias}"

    def _error(
        self,
        state: RowState | None,
        code: str,
        row: int,
        col: ResolvedColumn | None,
        cell: Any,
        text: str,
        *,
        value: str | None = None,
    ) -> None:
        """Record an error; ``value`` replaces the cell as shown when the cell itself would mislead."""
        if state is not None:
            state.clean = False
        self.errors.append(
            UploadError(
                row=row,
                column=col.source if col else None,
                value=value if value is not None else (None if is_blank(cell) else display(cell)),
                code=code,
                message=f"{self._where(row, col)}: {text}",
            )
        )

    def _number_problem(
        self, problem: Problem, cell: Any, what: str, *, moderator: bool = False
    ) -> tuple[str, str]:
        shown = display(cell)
        if problem == "formula":
            return "formula_cell", (
                f"the cell holds a formula ('{shown}'); enter the value itself, not a calculation."
            )
        if problem == "ambiguous":
            number = classify(str(cell))
            return "ambiguous_number", (
                f"'{shown}' could mean {format_number(number.value or 0.0)} or "
                f"{format_number(number.alternative or 0.0)}; write it without a thousands separator so that "
                "it cannot be misread."
            )
        code = "invalid_moderator" if moderator else "non_numeric"
        what = with_article(what)
        if problem == "date":
            return code, (
                f"{what} must be a number, but the cell holds a date ({shown}); Excel may have "
                "turned the value into a date. Format the column as Number and type the value again."
            )
        if problem == "excel_error":
            return code, f"the cell holds the Excel error {shown}; {what} must be a number."
        if problem == "not_finite":
            return code, f"{what} must be a finite number, but it is {shown}."
        return code, f"{what} must be a number, but it is '{shown}'."

    # ---------------------------------------------------------------------------------------
    # reading cells

    @staticmethod
    def _cell(raw: RawRow, col: ResolvedColumn | None) -> Any:
        if col is None or col.index >= len(raw.cells):
            return None
        return raw.cells[col.index]

    def _unreadable_text(
        self, state: RowState, raw: RawRow, col: ResolvedColumn, cell: Any, problem: str, *, label: bool
    ) -> None:
        """A cell that cannot be read as text: a formula (enter its value) or anything else; for a
        ``label`` (study, instrument...) the data manager is asked for plain text, for an extra
        column for text or a number."""
        if problem == "formula":
            hint = " as text" if label else ""
            message = f"the cell holds a formula ('{display(cell)}'); enter the value itself{hint}."
            self._error(state, "formula_cell", raw.number, col, cell, message)
        elif label:
            message = f"'{display(cell)}' is not a valid label; enter plain text."
            self._error(state, "invalid_value", raw.number, col, cell, message)
        else:
            message = f"'{display(cell)}' cannot be stored in a cell; enter plain text or a number."
            self._error(state, "invalid_value", raw.number, col, cell, message)

    def _text(self, state: RowState, raw: RawRow, target: str) -> str | None:
        col = self.by_target.get(target)
        cell = self._cell(raw, col)
        text, problem = read_text(cell)
        if problem is not None:
            assert col is not None
            self._unreadable_text(state, raw, col, cell, problem, label=True)
            return None
        if text is None:
            return None
        hidden = labels.invisible_characters(text)
        if hidden:
            assert col is not None
            position, ch = hidden[0]
            more = f" (and {len(hidden) - 1} more)" if len(hidden) > 1 else ""
            self._error(
                state,
                "invisible_character",
                raw.number,
                col,
                cell,
                f"the text holds {labels.kind_of(ch)}, {labels.describe(ch)}, at character {position}"
                f"{more}: '{labels.shown(text)}'. {labels.why_refused(ch)} Delete it (retype the text) "
                "and upload again.",
                value=labels.shown(display(cell)),
            )
            return None
        text = labels.canonical(text)
        if len(text) > MAX_TEXT_LENGTH:
            assert col is not None
            self._error(
                state,
                "text_too_long",
                raw.number,
                col,
                cell,
                f"the text is {len(text)} characters long; at most {MAX_TEXT_LENGTH} are stored. Shorten it.",
            )
            return None
        return text

    def _allowed(
        self, state: RowState, raw: RawRow, target: str, allowed: frozenset[str], code: str, noun: str
    ) -> str | None:
        """A text checked against the data dictionary's allowed values, in the dictionary's spelling."""
        text = self._text(state, raw, target)
        if text is None or not allowed:
            return text
        col = self.by_target[target]
        by_case, by_key = _lookups(allowed)
        match = by_case.get(text.casefold()) or by_key.get(header_key(text))
        if match:
            return match
        listed = ", ".join(f"'{a}'" for a in sorted(allowed))
        close = difflib.get_close_matches(text, sorted(allowed), n=1, cutoff=0.6)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        self._error(
            state,
            code,
            raw.number,
            col,
            self._cell(raw, col),
            f"'{text}' is not {noun} this outcome allows (allowed: {listed}).{hint}",
        )
        return None

    # ---------------------------------------------------------------------------------------
    # a row's identity and moderators

    def _identity(self, state: RowState, raw: RawRow) -> None:
        v = state.values
        study_col = self.by_target.get("study")
        if study_col is not None:
            v["study"] = self._text(state, raw, "study")
            if v["study"] is None and is_blank(self._cell(raw, study_col)):
                self._error(
                    state,
                    "missing_study",
                    raw.number,
                    study_col,
                    None,
                    "the study label is empty; every row needs the study it comes from.",
                )
        if "comparison" in self.by_target:
            v["comparison"] = self._text(state, raw, "comparison")
        if "instrument" in self.by_target:
            v["instrument"] = self._allowed(
                state, raw, "instrument", self.spec.instruments, "unknown_instrument", "an instrument"
            )
            col = self.by_target["instrument"]
            if self.spec.instruments and is_blank(self._cell(raw, col)):
                listed = ", ".join(sorted(self.spec.instruments))
                self._error(
                    state,
                    "missing_value",
                    raw.number,
                    col,
                    None,
                    f"the instrument is empty; this outcome needs it (one of: {listed}).",
                )
        if "timepoint" in self.by_target:
            v["timepoint"] = self._allowed(
                state, raw, "timepoint", self.spec.timepoints, "unknown_timepoint", "a time point"
            )
        if "outcome" in self.by_target:
            text = self._text(state, raw, "outcome")
            if text is not None and text.casefold() != self.spec.outcome_code.strip().casefold():
                self._error(
                    state,
                    "unknown_outcome",
                    raw.number,
                    self.by_target["outcome"],
                    text,
                    f"this file is for the outcome '{self.spec.outcome_code}', but the row says "
                    f"'{text}'. Upload each outcome's rows separately.",
                )
        if "year" in self.by_target:
            v["year"] = self._year(state, raw)

    def _year(self, state: RowState, raw: RawRow) -> int | None:
        col = self.by_target["year"]
        cell = self._cell(raw, col)
        value, problem = read_number(cell, self.decimal)
        if problem is not None:
            code, text = self._number_problem(problem, cell, "year")
            self._error(state, code, raw.number, col, cell, text)
            return None
        if value is None:
            return None
        if not value.is_integer():
            self._error(
                state,
                "not_integer",
                raw.number,
                col,
                cell,
                f"the year must be a whole number, but it is {display(cell)}.",
            )
            return None
        if not YEAR_RANGE[0] <= value <= YEAR_RANGE[1]:
            self._error(
                state,
                "invalid_year",
                raw.number,
                col,
                cell,
                f"{display(cell)} is not a plausible year (expected {YEAR_RANGE[0]}-{YEAR_RANGE[1]}).",
            )
            return None
        return int(value)

    def _moderators(self, state: RowState, raw: RawRow) -> None:
        for name, mod in self.moderators.items():
            col = self.by_target[name]
            if mod.kind == "categorical":
                state.values[name] = self._text(state, raw, name)
                continue
            cell = self._cell(raw, col)
            value, problem = read_number(cell, self.decimal)
            if problem is not None:
                code, text = self._number_problem(problem, cell, f"moderator '{name}'", moderator=True)
                self._error(state, code, raw.number, col, cell, text)
                continue
            state.values[name] = value
