"""Checking every cell of a raw table and building the canonical rows.

All problems are collected before anything is decided: a data manager fixes a file in one pass
only if the platform reports every problem at once. The checks are, per row and column:

- identity: a study label in every row; instrument and time point among the outcome's allowed
  values (compared ignoring case, spaces and punctuation, and stored in the data dictionary's
  spelling); an ``outcome`` column, if present, naming the outcome uploaded to; a plausible year;
- statistics: numbers within their domain, the engine's (:mod:`workers.metaanalysis.domains`:
  whole numbers for counts and sample sizes, SDs above 0, correlations strictly between -1 and 1,
  sample sizes of at least the measure's minimum...), every value given whichever input form its
  row uses, with cross-checks (events not above the group size, events plus non-events equal to a
  given group size, no empty groups in 2x2 tables);
- input forms: every row has one complete input form of the measure (its own inputs, SMD's
  Cohen's d or t with both group sizes, or a given effect size with its standard error or
  variance; see :mod:`..measures`), and uses the first it has complete, chosen by the engine's
  own rule. When the file's columns make up the measure's own inputs only (GEN's: the effect size
  with its variance or standard error), a blank value is reported at its cell; otherwise a row
  with no complete form is refused with every form it could give and what its nearest one lacks.
  :attr:`ParsedUpload.forms` records each row's form, and a note counts them;
- labels (study, comparison, instrument, time point, categorical moderators): stored in NFC, and
  refused when they hold an invisible character (zero-width, text-direction or formatting
  characters; see :mod:`..labels`);
- moderators: numbers in numeric moderators;
- the file: no row twice (same study, instrument, time point and comparison), where labels that
  only look alike (another script's letter, fullwidth forms, another case) count as the same;
- finally the platform's effect-size engine computes every clean row, so that no value which
  passes the checks above can still fail in the analysis.

The validator is built in layers: :mod:`.reading` reads a row's cells and words each error at its
row and column, :mod:`.measure_checks` checks each row's statistics and input form, and
:mod:`.table_checks` checks across rows and writes the warnings.
"""

from __future__ import annotations

from ..errors import UploadRejected
from ..readers import RawRow, RawTable
from ..spec import ColumnMapping, ParsedUpload, UploadSpec
from .measure_checks import MeasureChecks
from .reading import RowState
from .table_checks import TableChecks

__all__ = ["validate_table"]


def validate_table(table: RawTable, spec: UploadSpec) -> ParsedUpload:
    """Validate ``table`` against ``spec``; return the canonical upload or raise :class:`UploadRejected`."""
    return _Validator(table, spec).run()


class _Validator(MeasureChecks, TableChecks):
    """Reads every row, then checks the table; raises with every problem, or returns the rows."""

    def run(self) -> ParsedUpload:
        columns = self.canonical_columns()
        states: list[tuple[RawRow, RowState]] = []
        for raw in self.table.rows:
            if not raw.readable:
                continue
            state = RowState(values=dict.fromkeys(columns))
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
