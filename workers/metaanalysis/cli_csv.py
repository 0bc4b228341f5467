"""The command line's input: a CSV file read into the rows :func:`run_analysis` takes.

:func:`read_table` reads the file (its delimiter detected as an upload detects it, cells typed as
pandas' ``read_csv`` types them, which the tool used before and no longer imports: it took longer
to import than most analyses take to run); :func:`rows_from_frame` checks the columns the analysis
needs and reads the measure's numbers as an upload does (:mod:`workers.metaanalysis.tables`).
Input the tool cannot use raises :class:`CliInputError` with a message for the user.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import re
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO

from . import input_forms, tables
from .effect_sizes import MEASURE_COLUMNS
from .measures import REGISTRY
from .text import row_label

__all__ = [
    "CliInputError",
    "Table",
    "detect_delimiter",
    "join_problems",
    "measure_columns",
    "numeric_columns",
    "read_table",
    "rows_from_frame",
]

#: Problems listed in the one-line message before "and N more".
MAX_LISTED_PROBLEMS = 10


class CliInputError(Exception):
    """Input the tool cannot use; the command line prints the message and exits with status 2."""


# ----------------------------------------------------------------------------------------------
# reading the CSV
# ----------------------------------------------------------------------------------------------


def _read_text(source: str, encoding: str, stdin: TextIO | None) -> str:
    if source == "-":
        stream = stdin if stdin is not None else sys.stdin
        text = stream.read()
        return text.removeprefix("\ufeff")
    try:
        return Path(source).read_text(encoding=encoding)
    except FileNotFoundError:
        raise CliInputError(f"cannot read {source}: no such file") from None
    except IsADirectoryError:
        raise CliInputError(f"cannot read {source}: it is a directory") from None
    except UnicodeDecodeError as exc:
        raise CliInputError(
            f"cannot read {source}: not valid {encoding} text ({exc.reason} at byte {exc.start}); "
            "try --encoding latin-1"
        ) from None
    except LookupError:
        raise CliInputError(f"unknown encoding {encoding!r}") from None
    except OSError as exc:
        raise CliInputError(f"cannot read {source}: {exc.strerror or exc}") from None


def detect_delimiter(text: str, measure: str | None = None, extra: Iterable[str] = ()) -> str:
    """Guess the field delimiter of CSV text as an upload does.

    The delimiter giving the most recognised header names (the measure's columns, ``study`` and
    the ``extra`` columns the analysis names), then the most regular rows
    (:func:`tables.detect_delimiter`): unlike character frequencies, decimal commas cannot fool it.
    """
    names = ["study", *extra]
    if measure is not None:
        names += numeric_columns(measure)
    return tables.detect_delimiter(text, {tables.header_key(n) for n in names})


#: Cells read as missing values: pandas' read_csv defaults, which this tool has always used.
MISSING_CELLS = frozenset(
    [
        "",
        "#N/A",
        "#N/A N/A",
        "#NA",
        "-1.#IND",
        "-1.#QNAN",
        "-NaN",
        "-nan",
        "1.#IND",
        "1.#QNAN",
        "<NA>",
        "N/A",
        "NA",
        "NULL",
        "NaN",
        "None",
        "n/a",
        "nan",
        "null",
    ]
)
_BOOLEANS = {"True": True, "TRUE": True, "true": True, "False": False, "FALSE": False, "false": False}
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")
_DECIMAL = re.compile(r"\s*[+-]?(?:(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|inf|infinity)\s*", re.I)


@dataclasses.dataclass(frozen=True)
class Table:
    """A CSV file's study table: header names (stripped of blanks), one list of cells per column
    (None where missing), and the decimal mark its numbers are read with when they do not prove
    one (``default_decimal``)."""

    columns: list[str]
    cells: dict[str, list[Any]]
    default_decimal: tables.DecimalMark | None

    def __len__(self) -> int:
        return len(self.cells[self.columns[0]]) if self.columns else 0


def _typed(column: list[str | None]) -> list[Any]:
    """A column's cells as pandas' read_csv types them: integers (floats when a cell is missing),
    decimals, booleans, or the text as written."""
    present = [c for c in column if c is not None]
    if not present:
        return column
    if all(_INTEGER.fullmatch(c) for c in present):
        whole = len(present) == len(column)
        return [None if c is None else (int(c) if whole else float(int(c))) for c in column]
    if all(_DECIMAL.fullmatch(c) for c in present):
        return [None if c is None else float(c) for c in column]
    if all(c in _BOOLEANS for c in present):
        return [None if c is None else _BOOLEANS[c] for c in column]
    return column


def _header_names(record: list[str]) -> list[str]:
    """Header names as pandas gives them: an empty name is ``Unnamed: i``, a repeated one ``a.1``."""
    names: list[str] = []
    for i, raw in enumerate(record):
        name = raw.strip() or f"Unnamed: {i}"
        base, n = name, 0
        while name in names:
            n += 1
            name = f"{base}.{n}"
        names.append(name)
    return names


def _parse(text: str, delimiter: str, as_text: set[str]) -> Table:
    """The header and cells of CSV text; the columns in ``as_text`` keep their text."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, skipinitialspace=True)
    header: list[str] | None = None
    rows: list[list[str | None]] = []
    for record in reader:
        cells = [c.lstrip(" ") for c in record]
        if len(cells) <= 1 and not any(cells):  # a blank line (a line of delimiters is a row)
            continue
        if header is None:
            header = _header_names(cells)
            continue
        if len(cells) > len(header) and any(cells[len(header) :]):
            raise ValueError(f"Expected {len(header)} fields in line {reader.line_num}, saw {len(cells)}")
        cells += [""] * (len(header) - len(cells))
        rows.append([None if c in MISSING_CELLS else c for c in cells[: len(header)]])
    columns = header or []
    by_column = {name: [row[j] for row in rows] for j, name in enumerate(columns)}
    cells_of = {name: col if name in as_text else _typed(col) for name, col in by_column.items()}
    return Table(columns, cells_of, None)


def read_table(
    source: str,
    *,
    sep: str | None = None,
    encoding: str = "utf-8-sig",
    stdin: TextIO | None = None,
    measure: str | None = None,
    extra: Iterable[str] = (),
) -> Table:
    """Read the study table of a CSV file.

    Parameters
    ----------
    source : str
        Path of the file, or ``"-"`` for standard input.
    sep : str, optional
        Field delimiter (one character, or ``tab``); detected with :func:`detect_delimiter` when
        not given.
    encoding : str, default "utf-8-sig"
        Text encoding (UTF-8 with or without a byte-order mark).
    stdin : file-like, optional
        Stream read for ``"-"`` (default ``sys.stdin``).
    measure : str, optional
        Effect-size measure: its columns are read as text, for :func:`rows_from_frame` to read
        their numbers as an upload does, and they help detect the delimiter.
    extra : iterable of str
        Further column names the analysis uses (moderators), which help detect the delimiter.

    Returns
    -------
    Table
        One row per study. Blank lines are skipped; leading spaces of a cell are dropped; the
        cells of :data:`MISSING_CELLS` are missing; other columns are typed as pandas'
        ``read_csv`` types them (the tool read files with pandas before, and reads them alike).

    Raises
    ------
    CliInputError
        The file cannot be read or parsed, or holds no rows.
    """
    text = _read_text(source, encoding, stdin)
    name = "standard input" if source == "-" else source
    if not text.strip():
        raise CliInputError(f"{name} is empty")
    extra = list(extra)
    delimiter = sep if sep is not None else detect_delimiter(text, measure, extra)
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    if len(delimiter) != 1:
        raise CliInputError(f"--sep must be one character or tab, got {delimiter!r}")
    as_text = set(numeric_columns(measure)) if measure is not None else set()
    try:
        table = _parse(text, delimiter, as_text)
    except (csv.Error, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliInputError(f"cannot parse {name} as CSV: {detail}") from None
    if len(table) == 0:
        raise CliInputError(f"{name} has a header but no rows")
    # as an upload: a comma-separated file is taken to use decimal points unless its numbers prove
    # otherwise; any other file must prove its decimal mark before "1,234" or "1.234" is read
    return dataclasses.replace(table, default_decimal="." if delimiter == "," else None)


# ----------------------------------------------------------------------------------------------
# building the engine's rows
# ----------------------------------------------------------------------------------------------


def measure_columns(measure: str) -> list[str | tuple[str, ...]]:
    """The columns ``measure`` reads: a name, or a tuple of alternatives (one must be present)."""
    cols: list[str | tuple[str, ...]] = list(MEASURE_COLUMNS[measure])
    if REGISTRY[measure].family == "generic":
        cols.append("ni")  # optional sample sizes, used by the fail-safe N and funnel
    return cols


def numeric_columns(measure: str) -> list[str]:
    """Every column the measure's input forms read (raw inputs first), as numbers."""
    names: list[str] = []
    for spec in measure_columns(measure):
        names.extend(spec if isinstance(spec, tuple) else (spec,))
    names += [c for form in REGISTRY[measure].forms for c in form.columns if c not in names]
    return names


def _check_columns(table: Table, measure: str, extra: Iterable[tuple[str, str]]) -> None:
    present = set(table.columns)
    have = ", ".join(table.columns)
    if not input_forms.offered_forms(REGISTRY[measure], present):
        # no input form is complete: name the first raw column the file lacks, and the other forms
        for spec in MEASURE_COLUMNS[measure]:
            options = spec if isinstance(spec, tuple) else (spec,)
            if not any(o in present for o in options):
                need = " or ".join(repr(o) for o in options)
                others = [f for f in REGISTRY[measure].forms if f.code != "raw"]
                if others and REGISTRY[measure].family != "generic":
                    need += f" (or {input_forms.describe_forms(others)})"
                raise CliInputError(f"measure {measure} needs column {need}; the file has: {have}")
    for option, column in extra:
        if column not in present:
            raise CliInputError(f"{option} column {column!r} is not in the file; the file has: {have}")


def _to_python(value: Any) -> Any:
    """A cell as the engine takes it: text stripped of blanks; missing values (and blank text)
    become ``None``."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        value = value.strip()
        return value if value else None
    return value


def _number(value: Any, decimal_mark: str | None) -> float | str | None:
    """A cell as a number read as an upload reads it; the reason as text when it is not one."""
    value = _to_python(value)
    if value is None or isinstance(value, int | float):
        return value
    number = tables.classify(str(value))
    if number.kind == "invalid":
        return "is not a number"
    resolved = tables.resolve(number, decimal_mark)
    if resolved is None:
        return (
            f"is ambiguous ({number.value:g} or {number.alternative:g}) and no other number in the "
            "file shows which decimal mark it uses"
        )
    return resolved


def _decimal_mark(table: Table, names: Iterable[str]) -> str | None:
    texts = (v.strip() for name in names for v in table.cells[name] if isinstance(v, str))
    return tables.detect_decimal_mark(texts, table.default_decimal)


def _holds_text(cells: list[Any]) -> bool:
    return any(isinstance(v, str) for v in cells)


def rows_from_frame(
    table: Table,
    measure: str,
    *,
    mods: Sequence[str] = (),
    subgroup: str | None = None,
    order: str | None = None,
) -> list[dict[str, Any]]:
    """Turn the CSV table into the row mappings :func:`run_analysis` takes.

    Parameters
    ----------
    table : Table
        The table from :func:`read_table`.
    measure : str
        Effect-size measure; its columns must be present and hold numbers.
    mods, subgroup, order : column names
        Further columns the analysis uses; they must be present.

    Returns
    -------
    list of dict
        One mapping per row with every column of the file (missing cells ``None``) and a
        ``study`` label ("Study i" where the file has no ``study`` column or the cell is empty).

    Raises
    ------
    CliInputError
        A column is missing, or a cell of a measure column is not a number (all such cells are
        listed, up to :data:`MAX_LISTED_PROBLEMS`).
    """
    extra = [("--mods", m) for m in mods]
    if subgroup:
        extra.append(("--subgroup", subgroup))
    if order:
        extra.append(("--order", order))
    _check_columns(table, measure, extra)

    labels = None
    if "study" in table.columns:
        labels = [
            str(v).strip() if _to_python(v) is not None else f"Study {i + 1}"
            for i, v in enumerate(table.cells["study"])
        ]
    problems: list[str] = []
    cells = dict(table.cells)
    numeric = [n for n in numeric_columns(measure) if n in cells and _holds_text(cells[n])]
    others = [n for n in {*mods, *(c for c in (subgroup, order) if c)} if _holds_text(cells[n])]
    mark = _decimal_mark(table, [*numeric, *others])
    for name in numeric:
        values = [_number(v, mark) for v in cells[name]]
        for i, v in enumerate(values):
            if isinstance(v, str):
                problems.append(f"{row_label(i, labels)}, column {name}: {str(cells[name][i]).strip()!r} {v}")
        cells[name] = [float(v) if isinstance(v, float | int) else None for v in values]
    for name in others:
        # a moderator whose every value is a number written as text (decimal commas) is numeric,
        # not a factor
        values = [_number(v, mark) for v in cells[name]]
        if not _holds_text(values):
            cells[name] = [None if v is None else float(v) for v in values]
    if problems:
        raise CliInputError(join_problems("values that are not numbers", problems))

    rows: list[dict[str, Any]] = []
    for i in range(len(table)):
        row = {name: _to_python(cells[name][i]) for name in table.columns}
        row["study"] = labels[i] if labels is not None else f"Study {i + 1}"
        rows.append(row)
    return rows


def join_problems(what: str, problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    return f"{what}: {shown}" + (f"; and {more} more" if more > 0 else "")
