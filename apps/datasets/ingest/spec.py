"""What an upload must satisfy (:class:`UploadSpec`) and what a valid one becomes (:class:`ParsedUpload`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from .errors import UploadError
from .measures import MEASURES
from .naming import header_key

MIB = 1024 * 1024

#: Rows a sheet may hold besides its data rows: the header, title lines above it and blank lines
#: between blocks of rows. Only a sheet's shape is checked against it (its declared dimension and
#: its cell budget); data rows themselves are counted exactly against ``max_rows``.
SHEET_EXTRA_ROWS = 100

ModeratorKind = Literal["numeric", "categorical"]
MappingKind = Literal["identity", "statistic", "moderator", "extra"]
SourceFormat = Literal["csv", "xlsx", "json"]


@dataclass(frozen=True)
class ModeratorSpec:
    """A moderator column the consortium's data dictionary knows, with its type."""

    name: str
    kind: ModeratorKind

    def __post_init__(self) -> None:
        if self.kind not in ("numeric", "categorical"):
            raise ValueError(f"moderator kind must be 'numeric' or 'categorical', not {self.kind!r}")
        if not self.name or not self.name.strip():
            raise ValueError("a moderator needs a name")


@dataclass(frozen=True)
class UploadSpec:
    """The rules an upload for one outcome must satisfy.

    ``instruments`` and ``timepoints`` list the allowed values; empty means any value is allowed.
    Iterables are accepted and frozen, so ``UploadSpec(..., instruments=["PHQ-9"])`` works too.
    ``instrument_ranges`` gives, per instrument, the lowest and highest score its scale has (either
    may be None): a mean outside them is refused.

    The limits bound the work one upload can cause, whatever its format:

    - ``max_bytes``: the file as uploaded; ``max_xlsx_uncompressed_bytes``: a workbook unpacked.
    - ``max_rows``: data rows (the header, titles and blank lines not counted).
    - ``max_columns``: the columns a row may use. A consortium row holds five identity columns
      (study, comparison, instrument, time point, year), the outcome, at most six statistics
      and the moderators of the data dictionary (a dozen or two in practice), with a few notes:
      well under 40 columns. 100 leaves room for more than twice that, and bounds the largest
      table at a million cells.
    - :attr:`max_cells`, which follows from the two: the cells a sheet may hold, empty formatted
      cells included, before reading stops (see :data:`SHEET_EXTRA_ROWS`).
    """

    outcome_code: str
    measure: str
    instruments: frozenset[str] = field(default_factory=frozenset)
    timepoints: frozenset[str] = field(default_factory=frozenset)
    moderators: tuple[ModeratorSpec, ...] = ()
    instrument_ranges: tuple[tuple[str, float | None, float | None], ...] = ()
    max_bytes: int = 5 * MIB
    max_rows: int = 10_000
    max_xlsx_uncompressed_bytes: int = 50 * MIB
    max_columns: int = 100

    def __post_init__(self) -> None:
        # A wrong spec is a programming or configuration error, not a data manager's: fail loudly.
        if self.measure not in MEASURES:
            raise ValueError(f"unknown effect measure {self.measure!r}; known: {', '.join(MEASURES)}")
        object.__setattr__(self, "instruments", _frozen(self.instruments))
        object.__setattr__(self, "timepoints", _frozen(self.timepoints))
        object.__setattr__(self, "moderators", tuple(self.moderators))
        object.__setattr__(self, "instrument_ranges", tuple(tuple(r) for r in self.instrument_ranges))
        # headers are matched by key, so "Age mean" and "age_mean" would be the same column
        names = [header_key(m.name) for m in self.moderators]
        if len(names) != len(set(names)):
            raise ValueError("moderator names must be unique (ignoring case, spaces and punctuation)")
        for limit in ("max_bytes", "max_rows", "max_xlsx_uncompressed_bytes", "max_columns"):
            if getattr(self, limit) < 1:
                raise ValueError(f"{limit} must be positive")

    @property
    def max_sheet_rows(self) -> int:
        """Rows a sheet may span: the data rows allowed plus :data:`SHEET_EXTRA_ROWS`."""
        return self.max_rows + SHEET_EXTRA_ROWS

    @property
    def max_cells(self) -> int:
        """Cells a sheet may hold: the largest table the row and column limits allow
        (1,010,000 with the default limits)."""
        return self.max_sheet_rows * self.max_columns


def _frozen(values: Iterable[str] | None) -> frozenset[str]:
    return frozenset(v.strip() for v in (values or ()) if v and v.strip())


@dataclass(frozen=True)
class ColumnMapping:
    """How one column of the upload was understood: the user's ``source`` header became ``target``."""

    source: str
    target: str
    kind: MappingKind

    def to_dict(self) -> dict[str, str]:
        return {"source": self.source, "target": self.target, "kind": self.kind}


@dataclass(frozen=True)
class ParsedUpload:
    """A valid upload in canonical form.

    Attributes
    ----------
    rows : tuple of dict
        One dict per data row, in file order, with exactly the keys in ``columns``. Statistics use
        metafor's names (counts and sample sizes as ``int``, other statistics as ``float``);
        ``study``, ``comparison``, ``instrument``, ``timepoint`` are text or ``None``; ``year`` is
        an ``int`` or ``None``; numeric moderators are ``float``, categorical ones text; blanks
        are ``None``.
    columns : tuple of str
        The canonical columns: the five identity columns (always), the statistics, the known
        moderators present in the file, then extra columns.
    mapping : tuple of ColumnMapping
        For every column of the file that was used: the user's header and what it became.
    warnings : tuple of UploadError
        Notes for the data manager that do not block the upload (see ``WARNING_CODES``).
    source_format : {"csv", "xlsx", "json"}
    encoding : str or None
        The text encoding a CSV or JSON file was read with (``utf-8``, ``utf-8-sig``, ``utf-16``,
        ``cp1252``); ``None`` for XLSX and for rows posted as JSON.
    delimiter : str or None
        The CSV delimiter detected; ``None`` otherwise.
    forms : tuple of str
        Per row, the input form its effect size is computed from, by the code the engine uses
        (:attr:`InputForm.code <workers.metaanalysis.measures.InputForm.code>`): ``raw`` for the
        measure's own inputs (means and SDs, a 2x2 table...), ``di`` and ``ti`` for SMD's Cohen's
        d and t statistic, ``yi_vi`` and ``yi_sei`` for a given effect size with its variance or
        standard error. Empty for a ParsedUpload built by hand (rows stored directly).
    """

    rows: tuple[dict[str, object], ...]
    columns: tuple[str, ...]
    mapping: tuple[ColumnMapping, ...]
    warnings: tuple[UploadError, ...]
    source_format: SourceFormat
    encoding: str | None
    delimiter: str | None
    forms: tuple[str, ...] = ()

    @property
    def form_counts(self) -> dict[str, int]:
        """How many rows use each input form, in order of first use (``{"raw": 7, "di": 7}``)."""
        counts: dict[str, int] = {}
        for form in self.forms:
            counts[form] = counts.get(form, 0) + 1
        return counts
