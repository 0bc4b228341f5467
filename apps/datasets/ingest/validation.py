"""Checking every cell of a raw table and building the canonical rows.

All problems are collected before anything is decided: a data manager fixes a file in one pass
only if the platform reports every problem at once. The checks are, per row and column:

- identity: a study label in every row; instrument and time point among the outcome's allowed
  values (compared ignoring case, spaces and punctuation, and stored in the data dictionary's
  spelling); an ``outcome`` column, if present, naming the outcome uploaded to; a plausible year;
- statistics: numbers, whole numbers for counts and sample sizes, and within their domain (SDs,
  person-times, variances and standard errors above 0, counts at least 0, correlations strictly
  between -1 and 1, sample sizes at least the measure's minimum, positive means for ROM), every
  value given whichever input form its row uses, with cross-checks (events not above the group
  size, events plus non-events equal to a given group size, no empty groups in 2x2 tables);
- input forms: every row has one complete input form of the measure (its own inputs, SMD's
  Cohen's d or t with both group sizes, or a given effect size with its standard error or
  variance; see :mod:`.measures`), and uses the first it has complete, chosen by the engine's
  own rule. When the file's columns make up the measure's own inputs only (GEN's: the effect size
  with its variance or standard error), a blank value is reported at its cell; otherwise a row
  with no complete form is refused with every form it could give and what its nearest one lacks.
  :attr:`ParsedUpload.forms` records each row's form, and a note counts them;
- labels (study, comparison, instrument, time point, categorical moderators): stored in NFC, and
  refused when they hold an invisible character (zero-width, text-direction or formatting
  characters; see :mod:`.labels`);
- moderators: numbers in numeric moderators;
- the file: no row twice (same study, instrument, time point and comparison), where labels that
  only look alike (another script's letter, fullwidth forms, another case) count as the same;
- finally the platform's effect-size engine computes every clean row, so that no value which
  passes the checks above can still fail in the analysis.
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from workers.metaanalysis.measures import InputForm

from . import labels
from .cells import Problem, display, format_number, read_number, read_text
from .columns import ResolvedColumn, header_key, resolve_columns
from .errors import UploadError, UploadRejected
from .measures import (
    IDENTITY_COLUMNS,
    MAX_TEXT_LENGTH,
    MEASURES,
    STATISTIC_NAMES,
    Statistic,
    describe_forms,
    form_name,
    with_article,
)
from .numbers import classify, detect_decimal_mark
from .readers import RawRow, RawTable, is_blank
from .spec import ColumnMapping, ParsedUpload, UploadSpec

YEAR_RANGE = (1800, 2100)
#: the statistics that are means on an instrument's scale (its range applies to them)
_MEANS = ("m1i", "m2i", "mi")


@dataclass
class _RowState:
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


def validate_table(table: RawTable, spec: UploadSpec) -> ParsedUpload:
    """Validate ``table`` against ``spec``; return the canonical upload or raise :class:`UploadRejected`."""
    return _Validator(table, spec).run()


class _Validator:
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
        state: _RowState | None,
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
        self, state: _RowState, raw: RawRow, col: ResolvedColumn, cell: Any, problem: str, *, label: bool
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

    def _text(self, state: _RowState, raw: RawRow, target: str) -> str | None:
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
        self, state: _RowState, raw: RawRow, target: str, allowed: frozenset[str], code: str, noun: str
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
    # rows

    def run(self) -> ParsedUpload:
        columns = self.canonical_columns()
        states: list[tuple[RawRow, _RowState]] = []
        for raw in self.table.rows:
            if not raw.readable:
                continue
            state = _RowState(values=dict.fromkeys(columns))
            self._identity(state, raw)
            self._statistics(state, raw)
            self._scale_range(state, raw)
            self._moderators(state, raw)
            states.append((raw, state))
        self._extras(states)
        self._duplicates(states)
        forms = self._forms(states)
        self._engine_check(states, forms)
        self._derivation_warnings()
        if self.errors:
            raise UploadRejected(self._sorted(self.errors))
        self._forms_note(forms)
        return ParsedUpload(
            rows=tuple(state.values for _, state in states),
            columns=columns,
            mapping=tuple(ColumnMapping(source=c.source, target=c.target, kind=c.kind) for c in self.columns),
            warnings=tuple(self.warnings),
            source_format=self.table.source_format,
            encoding=self.table.encoding,
            delimiter=self.table.delimiter,
            forms=tuple(form for form in forms if form is not None),
        )

    def _sorted(self, errors: Iterable[UploadError]) -> list[UploadError]:
        order = {c.source: c.index for c in self.columns}
        indexed = list(enumerate(errors))
        indexed.sort(
            key=lambda p: (p[1].row is not None, p[1].row or 0, order.get(p[1].column or "", 10**6), p[0])
        )
        return [e for _, e in indexed]

    def _identity(self, state: _RowState, raw: RawRow) -> None:
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

    def _year(self, state: _RowState, raw: RawRow) -> int | None:
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

    def _domain_problem(self, stat: Statistic, value: float, shown: str) -> tuple[str, str] | None:
        """The first rule of ``stat``'s kind that ``value`` breaks, as (code, sentence)."""
        m = self.measure
        kind = stat.kind
        if stat.integer and not value.is_integer():
            return "not_integer", f"the {stat.label} must be a whole number, but it is {shown}."
        if kind == "sd" and value <= 0:
            return "sd_not_positive", f"the standard deviation must be greater than 0, but it is {shown}."
        if kind in ("group_n", "total_n") and value < m.min_n:
            return (
                "n_too_small",
                f"the sample size must be at least {m.min_n} for the {m.label}, but it is {shown}.",
            )
        if kind == "count" and value < 0:
            return "negative_count", f"the {stat.label} cannot be negative, but it is {shown}."
        if kind == "time" and value <= 0:
            return "time_not_positive", f"the person-time must be greater than 0, but it is {shown}."
        if kind == "correlation" and abs(value) >= 1:
            return (
                "correlation_out_of_range",
                f"a correlation must lie strictly between -1 and 1, but it is {shown}.",
            )
        if kind == "variance" and value <= 0:
            return (
                "variance_not_positive",
                f"the sampling variance must be greater than 0, but it is {shown}.",
            )
        if kind == "se" and value <= 0:
            return "variance_not_positive", f"the standard error must be greater than 0, but it is {shown}."
        if kind == "mean" and m.positive_means and value <= 0:
            return "mean_not_positive_for_ratio", (
                f"the {m.label} needs means greater than 0, but it is {shown}."
            )
        return None

    def _scale_range(self, state: _RowState, raw: RawRow) -> None:
        """Means within the range of the row's instrument, as the data dictionary declares it (an
        EPDS mean of 38 on a 0-30 scale is a typo or another instrument)."""
        ranges = {name: (low, high) for name, low, high in self.spec.instrument_ranges}
        instrument = state.values.get("instrument")
        if instrument not in ranges:
            return
        low, high = ranges[instrument]
        for name in _MEANS:
            value = state.stats.get(name)
            if value is None or ((low is None or value >= low) and (high is None or value <= high)):
                continue
            col = self.by_target[name]
            span = f"{format_number(low) if low is not None else 'any'} to {format_number(high) if high is not None else 'any'}"
            self._error(
                state,
                "out_of_scale_range",
                raw.number,
                col,
                self._cell(raw, col),
                f"the mean {format_number(value)} is outside the {instrument} scale's range ({span}) in the "
                "data dictionary; check the value and the instrument column.",
            )

    def _statistics(self, state: _RowState, raw: RawRow) -> None:
        blank: set[str] = set()
        for name in self.measure.statistics:
            col = self.by_target.get(name)
            if col is None or col.kind != "statistic":
                continue
            stat = self.measure.statistic(name)
            cell = self._cell(raw, col)
            value, problem = read_number(cell, self.decimal)
            if problem is None and value is None:
                blank.add(name)
                continue
            state.given.add(name)
            if problem is not None:
                code, text = self._number_problem(problem, cell, stat.label)
                self._error(state, code, raw.number, col, cell, text)
                continue
            assert value is not None
            issue = self._domain_problem(stat, value, display(cell))
            if issue is not None:
                self._error(state, issue[0], raw.number, col, cell, issue[1])
                continue
            state.stats[name] = value
        if self.by_cell:
            self._blank_cells(state, raw, blank)
        self._cross_checks(state, raw)
        for name, value in state.stats.items():
            if name in state.values:
                state.values[name] = int(value) if self.measure.statistic(name).integer else float(value)

    def _blank_cells(self, state: _RowState, raw: RawRow, blank: set[str]) -> None:
        """A blank value of the measure's own inputs, at its cell (the file gives no other form)."""
        for group in self.measure.groups:
            given = [n for n in group if n in self.by_target]
            if given and all(n in blank for n in given):
                stat = self.measure.statistic(given[0])
                others = "".join(
                    f" Give it, or the {self.measure.statistic(a).label} ({a}), in this row."
                    for a in given[1:]
                )
                self._error(
                    state,
                    "missing_value",
                    raw.number,
                    self.by_target[given[0]],
                    None,
                    f"{with_article(stat.label)} is empty, but the {self.measure.label} needs it.{others}",
                )

    def _missing_words(self, group: tuple[str, ...]) -> str:
        """A blank requirement group in words: "the sample size of the control group (n2i)"; a
        column the file does not have is said to be missing from it."""
        words = " or ".join(f"{with_article(self.measure.statistic(n).label)} ({n})" for n in group)
        if not any(n in self.by_target for n in group):
            words += ", for which the file has no column"
        return words

    def _forms(self, states: list[tuple[RawRow, _RowState]]) -> tuple[str | None, ...]:
        """Each row's input form (the engine's choice: the first complete one); when the file
        offers several, a row with none is refused here, naming every form and what its nearest
        one lacks (with a single form, its blank cells were reported one by one)."""
        import numpy as np

        from workers.metaanalysis import input_forms

        given = {
            name: np.array([name in state.given for _, state in states], dtype=bool)
            for name in self.measure.statistics
            if name in self.by_target
        }
        forms = input_forms.select_forms(self.offered, given, len(states))
        if not self.by_cell:
            every_form = describe_forms(self.measure)  # worded once: many rows may lack a form
            for (raw, state), form in zip(states, forms, strict=True):
                if form is None:
                    self._no_complete_form(state, raw, every_form)
        return forms

    def _no_complete_form(self, state: _RowState, raw: RawRow, every_form: str) -> None:
        """Refuse a row with no complete form: every form it could give, and what the form it
        comes nearest to lacks. The error stands at the first cell that would help."""
        m = self.measure
        offered = {f.code for f in self.offered}
        text = f"no effect size can be computed from this row: give {every_form}."
        begun: list[tuple[tuple[int, bool, bool, int], InputForm, list[tuple[str, ...]]]] = []
        for index, form in enumerate(m.forms_for_people):
            gaps = [g for g in form.groups if not any(n in state.given for n in g)]
            if len(gaps) == len(form.groups):
                continue  # the row gives none of its inputs
            # nearest: fewest inputs missing; then a form whose lead the row gives (a row with the
            # group sizes only has begun neither Cohen's d nor t); then one the file has columns for
            unnamed = form.code != "raw" and form.groups[0] in gaps
            begun.append(((len(gaps), unnamed, form.code not in offered, index), form, gaps))
        cells: list[str] = []
        if begun:
            (fewest, unnamed, _, _), nearest, gaps = min(begun, key=lambda b: b[0])
            cells = [n for group in gaps for n in group]
            if not unnamed:
                # forms with the same lead missing one column each are one choice ("vi or sei"),
                # of the file's columns when it has one
                ways = [
                    g[0] for key, f, g in begun if fewest == key[0] == 1 and f.groups[0] == nearest.groups[0]
                ]
                ways = [g for g in ways if any(c in self.by_target for c in g)] or ways
                if len(ways) > 1:
                    lacking = [" or ".join(self._missing_words(g) for g in ways)]
                else:
                    lacking = [self._missing_words(g) for g in gaps]
                listed = lacking[0] if len(lacking) == 1 else ", ".join(lacking[:-1]) + " and " + lacking[-1]
                text += f" For {form_name(m, nearest)}, it lacks {listed}."
        cells += next(f for f in m.forms_for_people if f.code in offered).columns
        col = next(self.by_target[n] for n in cells if n in self.by_target)
        self._error(state, "missing_value", raw.number, col, None, text)

    def _events_exceed(self, state: _RowState, raw: RawRow, events: str, total: str, size: str) -> None:
        """Report more events than participants, at the events cell (where the typo usually is)."""
        col = self.by_target[events]
        self._error(
            state,
            "events_exceed_n",
            raw.number,
            col,
            self._cell(raw, col),
            f"the number of events ({format_number(state.stats[events])}) is larger than the "
            f"{size} ({format_number(state.stats[total])}).",
        )

    def _cross_checks(self, state: _RowState, raw: RawRow) -> None:
        s = state.stats
        family = self.measure.groups
        if ("bi", "n1i") in family:  # 2x2 tables
            arms = (("ai", "bi", "n1i", "intervention"), ("ci", "di", "n2i", "control"))
            empty_arms = []
            for events, non_events, total, arm in arms:
                if events in s and total in s:
                    if s[events] > s[total]:
                        self._events_exceed(state, raw, events, total, f"{arm} group's size {total}")
                    elif non_events in s and s[events] + s[non_events] != s[total]:
                        col = self.by_target[total]
                        self._error(
                            state,
                            "counts_inconsistent",
                            raw.number,
                            col,
                            self._cell(raw, col),
                            f"events ({events} = {format_number(s[events])}) plus non-events "
                            f"({non_events} = {format_number(s[non_events])}) make "
                            f"{format_number(s[events] + s[non_events])}, but the {arm} group's size "
                            f"is {format_number(s[total])}.",
                        )
                    elif non_events not in s and is_blank(self._cell(raw, self.by_target.get(non_events))):
                        s[non_events] = s[total] - s[events]
                        self.derived[non_events] = self.derived.get(non_events, 0) + 1
                if events in s and non_events in s and s[events] + s[non_events] == 0:
                    empty_arms.append(arm)
            if empty_arms:
                which = "both groups have" if len(empty_arms) == 2 else f"the {empty_arms[0]} group has"
                arm_col = self.by_target.get("ai") or self.by_target.get("ci")
                self._error(
                    state,
                    "effect_not_computable",
                    raw.number,
                    arm_col,
                    None,
                    f"{which} no participants (events and non-events are all 0), so no effect size can "
                    "be computed. Check the counts.",
                )
        elif self.measure.family == "proportion":
            if "xi" in s and "ni" in s and s["xi"] > s["ni"]:
                self._events_exceed(state, raw, "xi", "ni", "sample size")
        elif (
            self.measure.family == "generic"
            and "sei" in s
            and "vi" not in s
            and is_blank(self._cell(raw, self.by_target.get("vi")))
        ):
            # metafor takes vi = sei**2; doing it here gives every row the same (yi, vi) columns
            s["vi"] = s["sei"] ** 2
            self.derived["vi"] = self.derived.get("vi", 0) + 1

    def _derivation_warnings(self) -> None:
        sources = {"bi": ("n1i", "ai"), "di": ("n2i", "ci"), "vi": ("sei", None)}
        for name, count in self.derived.items():
            total, minus = sources[name]
            how = f"{total} − {minus}" if minus else f"{total}²"
            self.warnings.append(
                UploadError.about(
                    "derived_column",
                    f"The {self.measure.statistic(name).label} ({name}) was computed as {how} in {count} "
                    f"row{'s' if count != 1 else ''}.",
                    column=name,
                )
            )

    def _moderators(self, state: _RowState, raw: RawRow) -> None:
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

    def _extras(self, states: list[tuple[RawRow, _RowState]]) -> None:
        """Keep unknown columns, as numbers when every value is one, else as text."""
        other_stats = {header_key(n) for n in STATISTIC_NAMES} - {
            header_key(n) for n in self.measure.statistics
        }
        for col in self.extras:
            texts: list[str | None] = []
            numbers: list[float | None] = []
            numeric = True
            for raw, state in states:
                cell = self._cell(raw, col)
                text, problem = read_text(cell)
                if problem is not None:
                    self._unreadable_text(state, raw, col, cell, problem, label=False)
                texts.append(text)
                value, number_problem = (
                    read_number(cell, self.decimal) if problem is None else (None, problem)
                )
                numeric = numeric and number_problem is None
                numbers.append(value)
            for (_, state), text, number in zip(states, texts, numbers, strict=True):
                state.values[col.target] = number if numeric else text
            read_as = "numbers" if numeric else "text"
            if all(t is None for t in texts):
                read_as = "an empty column"
            note = ""
            if header_key(col.source) in other_stats:
                note = (
                    f" Note that '{col.source}' is a statistic of other effect measures; this outcome uses "
                    f"the {self.measure.label}."
                )
            self.warnings.append(
                UploadError.about(
                    "extra_column",
                    f"Column '{col.source}' is not in the data dictionary for this outcome; it was "
                    f"kept as an extra moderator, read as {read_as}.{note}",
                    column=col.source,
                )
            )

    def _duplicates(self, states: list[tuple[RawRow, _RowState]]) -> None:
        """Rows whose identity (study, instrument, time point, comparison) was given before.

        Labels are compared by :func:`labels.comparison_key`, so that a label written with
        lookalike characters (a Cyrillic letter, fullwidth forms) or in another case is the same
        label; when the labels are not written identically, the message shows both.
        """
        keys = (
            ("study", "study"),
            ("instrument", "instrument"),
            ("timepoint", "time point"),
            ("comparison", "comparison"),
        )
        first_seen: dict[tuple[str, ...], tuple[int, dict[str, Any]]] = {}
        study_col = self.by_target.get("study")
        for raw, state in states:
            v = state.values
            if not v.get("study"):
                continue
            key = tuple(labels.comparison_key(str(v.get(k) or "")) for k, _ in keys)
            if key not in first_seen:
                first_seen[key] = (raw.number, v)
                continue
            first_row, first = first_seen[key]
            item = self.table.item.lower()
            parts = ", ".join(f"{label} '{v[k]}'" for k, label in keys if v.get(k))
            differ = [
                (label, str(v[k]), str(first[k]))
                for k, label in keys
                if v.get(k) and str(v[k]).casefold() != str(first.get(k) or "").casefold()
            ]
            if not differ:
                text = (
                    f"the row repeats {item} {first_row} ({parts}). Remove the repeated row, or tell the "
                    "comparisons apart in a 'comparison' column."
                )
            else:
                shown = "; ".join(
                    f"{label} '{mine}' here, '{theirs}' in {item} {first_row}"
                    + self._lookalikes(mine, theirs)
                    for label, mine, theirs in differ
                )
                text = (
                    f"the row repeats {item} {first_row} ({parts}): the labels look alike but are written "
                    f"with different characters ({shown}). If it is the same study, write its label the "
                    "same way in both rows and remove the repeated row or tell the comparisons apart in a "
                    "'comparison' column; if they are different studies, give them clearly different labels."
                )
            self._error(state, "duplicate_row", raw.number, study_col, v["study"], text)

    @staticmethod
    def _lookalikes(mine: str, theirs: str) -> str:
        """``: here U+0435 CYRILLIC SMALL LETTER IE`` — the characters only this row's label has."""
        chars = labels.lookalike_characters(mine, theirs)
        if not chars or all(ch.casefold() in theirs.casefold() for ch in chars):
            return ""  # letters in another case only: nothing to point at
        named = ", ".join(labels.describe(ch) for ch in chars[:3])
        return f": here {named}{', ...' if len(chars) > 3 else ''}"

    def _engine_check(self, states: list[tuple[RawRow, _RowState]], forms: tuple[str | None, ...]) -> None:
        """Compute every clean row with the analysis engine; a row it cannot use is an error here.

        The checks above are meant to catch everything first, with better sentences; this is the
        guarantee that a row which passes them gives an effect size in the analysis. The error
        stands at the column the engine names, else at the first column of the row's form.
        """
        clean = [(index, raw, state) for index, (raw, state) in enumerate(states) if state.clean]
        if not clean or not self.offered:
            return
        from workers.metaanalysis import effects  # numpy/scipy: loaded only when needed

        names = self._statistic_columns()
        data = {n: [state.values[n] for _, _, state in clean] for n in names}
        problems = [(p.row, p.column, p.message) for p in effects.check_rows(self.measure.code, data)]
        if not problems:
            sizes = effects.escalc(self.measure.code, data)
            problems = [(row, None, reason) for row, reason in sorted(sizes.na_reasons.items())]
        for row, column, reason in problems:
            if row is None:
                continue
            index, raw, state = clean[row]
            col = self.by_target.get(column or "") or self._form_column(forms[index])
            self._error(
                state,
                "effect_not_computable",
                raw.number,
                col,
                None,
                f"no effect size can be computed from this row's values ({reason}). Check them.",
            )

    def _form_column(self, code: str | None) -> ResolvedColumn | None:
        """The first column of the file that the form ``code`` reads (any statistic's for ``None``)."""
        form = next((f for f in self.measure.forms if f.code == code), None)
        names = form.columns if form is not None else self.measure.statistics
        return next((self.by_target[n] for n in names if n in self.by_target), None)

    def _forms_note(self, forms: tuple[str | None, ...]) -> None:
        """Say how many rows gave their effect size in each form, when not all gave the measure's
        own inputs (GEN has no inputs but a given effect size: its note is ``derived_column``)."""
        if self.measure.raw_form is None or all(form == "raw" for form in forms):
            return
        counts = {f.code: forms.count(f.code) for f in self.measure.forms_for_people}
        parts = [
            f"{count} from {f.label}" for f in self.measure.forms_for_people if (count := counts[f.code])
        ]
        n = len(forms)
        self.warnings.append(
            UploadError.about(
                "input_forms",
                f"{n} row{'s' if n != 1 else ''}: " + ", ".join(parts) + ".",
            )
        )
