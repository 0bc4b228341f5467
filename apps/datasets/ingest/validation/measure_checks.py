"""Checking one row's statistics against its effect measure.

Per row: every statistic given is a number within its domain (the engine's, from
:mod:`workers.metaanalysis.domains`: SDs above 0, correlations strictly between -1 and 1, sample
sizes of at least the measure's minimum...), whichever input form the row uses; means lie within
their instrument's range; the events and non-events of a 2x2 table add up to the group size (the
non-events are derived from it when not given) and the events are not above it; and the row gives
one complete input form of the measure, chosen by the engine's own rule. A row with none is refused
naming every form it could give and what its nearest one lacks.
"""

from __future__ import annotations

from workers.metaanalysis.measures import InputForm

from ..cells import display, format_number, read_number
from ..measures import describe_forms, form_name, with_article
from ..readers import RawRow, is_blank
from .reading import RowReader, RowState


class MeasureChecks(RowReader):
    """The checks of each row's statistics (see the module docstring)."""

    def _domain_problem(self, name: str, value: float, shown: str) -> tuple[str, str] | None:
        """The code and sentence for a value outside the statistic's domain (the engine's:
        :mod:`workers.metaanalysis.domains`), or ``None`` for a value a row may hold."""
        refusal = self.measure.domain.columns[name].refusal(value, self.measure.statistic(name).label)
        if refusal is None:
            return None
        code, sentence = refusal
        return code, f"{sentence}, but it is {shown}."

    @property
    def _means(self) -> list[str]:
        """The statistics that are means on an instrument's scale (its range applies to them)."""
        return [name for name, column in self.measure.domain.columns.items() if column.kind == "mean"]

    def _scale_range(self, state: RowState, raw: RawRow) -> None:
        """Means within the range of the row's instrument, as the data dictionary declares it (an
        EPDS mean of 38 on a 0-30 scale is a typo or another instrument)."""
        ranges = {name: (low, high) for name, low, high in self.spec.instrument_ranges}
        instrument = state.values.get("instrument")
        if instrument not in ranges:
            return
        low, high = ranges[instrument]
        for name in self._means:
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

    def _statistics(self, state: RowState, raw: RawRow) -> None:
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
            issue = self._domain_problem(name, value, display(cell))
            if issue is not None:
                self._error(state, issue[0], raw.number, col, cell, issue[1])
                continue
            state.stats[name] = value
        if self.by_cell:
            self._blank_cells(state, raw, blank)
        self._cross_checks(state, raw)
        for name, value in state.stats.items():
            if name in state.values:
                state.values[name] = int(value) if self.measure.domain.columns[name].whole else float(value)

    def _blank_cells(self, state: RowState, raw: RawRow, blank: set[str]) -> None:
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

    def _forms(self, states: list[tuple[RawRow, RowState]]) -> tuple[str | None, ...]:
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

    def _no_complete_form(self, state: RowState, raw: RawRow, every_form: str) -> None:
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

    def _events_exceed(self, state: RowState, raw: RawRow, events: str, total: str, size: str) -> None:
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

    def _cross_checks(self, state: RowState, raw: RawRow) -> None:
        """Events against the group size they add up to, as the engine's totals say (events not
        above it, events plus non-events equal to it, a blank part derived from it), groups that
        have participants; GEN's variance from its standard error."""
        s = state.stats
        domain = self.measure.domain
        empty_groups = []
        for t in domain.totals:
            size = f"{t.group} group's size" if t.group else "sample size"
            if t.events in s and t.total in s:
                if s[t.events] > s[t.total]:
                    self._events_exceed(
                        state, raw, t.events, t.total, f"{size} {t.total}" if t.group else size
                    )
                elif t.part in s and s[t.events] + s[t.part] != s[t.total]:
                    col = self.by_target[t.total]
                    self._error(
                        state,
                        "counts_inconsistent",
                        raw.number,
                        col,
                        self._cell(raw, col),
                        f"events ({t.events} = {format_number(s[t.events])}) plus non-events "
                        f"({t.part} = {format_number(s[t.part])}) make "
                        f"{format_number(s[t.events] + s[t.part])}, but the {size} "
                        f"is {format_number(s[t.total])}.",
                    )
                elif (
                    t.part in self.measure.meanings
                    and t.part not in s
                    and is_blank(self._cell(raw, self.by_target.get(t.part)))
                ):
                    s[t.part] = s[t.total] - s[t.events]
                    self.derived[t.part] = self.derived.get(t.part, 0) + 1
            if (
                t.group
                and t.events in s
                and t.part in s
                and domain.columns[t.total].refuses(s[t.events] + s[t.part])
            ):
                empty_groups.append(t.group)
        if empty_groups:
            which = "both groups have" if len(empty_groups) == 2 else f"the {empty_groups[0]} group has"
            events_col = next(
                (self.by_target[t.events] for t in domain.totals if t.events in self.by_target), None
            )
            self._error(
                state,
                "effect_not_computable",
                raw.number,
                events_col,
                None,
                f"{which} no participants (events and non-events are all 0), so no effect size can "
                "be computed. Check the counts.",
            )
        if (
            self.measure.family == "generic"
            and "sei" in s
            and "vi" not in s
            and is_blank(self._cell(raw, self.by_target.get("vi")))
        ):
            # metafor takes vi = sei**2; doing it here gives every row the same (yi, vi) columns
            s["vi"] = s["sei"] ** 2
            self.derived["vi"] = self.derived.get("vi", 0) + 1
