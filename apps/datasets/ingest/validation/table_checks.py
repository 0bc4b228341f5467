"""The checks across the rows of a table, and the warnings of an accepted upload.

Extra columns (kept as moderators, read as numbers or text), rows given twice (labels that only
look alike count as the same), and finally the platform's effect-size engine computing every clean
row, so that no value which passes the checks of each row can still fail in the analysis. The
warnings say what the reading did: columns derived (``bi = n1i - ai``), the input forms the rows
used.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .. import labels
from ..cells import read_number, read_text
from ..columns import ResolvedColumn, header_key
from ..errors import UploadError
from ..measures import STATISTIC_NAMES
from ..readers import RawRow
from .reading import RowReader, RowState


class TableChecks(RowReader):
    """The checks across rows and the warnings (see the module docstring)."""

    def _sorted(self, errors: Iterable[UploadError]) -> list[UploadError]:
        order = {c.source: c.index for c in self.columns}
        indexed = list(enumerate(errors))
        indexed.sort(
            key=lambda p: (p[1].row is not None, p[1].row or 0, order.get(p[1].column or "", 10**6), p[0])
        )
        return [e for _, e in indexed]

    def _derivation_warnings(self) -> None:
        """Say which columns were derived in how many rows: a total's part (``bi`` as ``n1i − ai``)
        or GEN's variance (``sei²``)."""
        how_derived = {t.part: f"{t.total} − {t.events}" for t in self.measure.domain.totals}
        for name, count in self.derived.items():
            how = how_derived.get(name, "sei²")
            self.warnings.append(
                UploadError.about(
                    "derived_column",
                    f"The {self.measure.statistic(name).label} ({name}) was computed as {how} in {count} "
                    f"row{'s' if count != 1 else ''}.",
                    column=name,
                )
            )

    def _extras(self, states: list[tuple[RawRow, RowState]]) -> None:
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

    def _duplicates(self, states: list[tuple[RawRow, RowState]]) -> None:
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

    def _engine_check(self, states: list[tuple[RawRow, RowState]], forms: tuple[str | None, ...]) -> None:
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
