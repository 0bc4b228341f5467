"""Command-line tool: run the meta-analysis engine on a CSV file, without the platform.

Usage (also installed as ``metaengine``)::

    python -m workers.metaanalysis.cli data.csv --measure SMD --method REML --test knha \\
        --mods year,setting --subgroup setting --order year --format text

The CSV uses metafor's column names (``m1i sd1i n1i m2i sd2i n2i``, ``ai bi ci di``, ``ri ni``,
``xi ni``, ``x1i t1i x2i t2i``, ``m1i m2i sd1i sd2i ni ri``, ``mi sdi ni``, ``yi vi``); any
measure also reads ``yi`` with ``vi`` or ``sei`` per row, and SMD Cohen's ``di`` or a t
statistic ``ti`` with ``n1i n2i`` (each row uses the first complete one). A ``study`` column is
optional (studies are then labelled "Study 1".."Study k"). ``-`` reads the CSV from standard
input. The delimiter (comma, semicolon, tab or bar) is detected unless ``--sep`` is given.

The output is a readable report in the style of metafor's ``print()`` (``--format text``, the
default) or the JSON of the engine's report (``--format json``).

Exit status: 0 on success; 2 for unusable input (unreadable file, unknown measure or option,
missing column, values that are not numbers or outside their domain), with a one-line message on
standard error; 1 when the engine cannot analyse valid input (too few studies, a singular
moderator matrix, an estimator that did not converge), with the engine's message and code.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import ENGINE_VERSION, input_forms, tables
from .effect_sizes import MEASURE_COLUMNS
from .errors import EngineError, InvalidInputError
from .estimators import METHODS, TESTS
from .measures import OUTCOME_MEASURES, REGISTRY
from .report import format_report
from .results import to_jsonable
from .spec import DEPENDENCE_MODELS
from .text import row_label

#: Exit status for input the tool cannot use (argparse uses the same).
EXIT_BAD_INPUT = 2
#: Exit status for valid input the engine cannot analyse.
EXIT_ENGINE_ERROR = 1

#: Problems listed in the one-line message before "and N more".
MAX_LISTED_PROBLEMS = 10

PROG = "metaengine"


class CliInputError(Exception):
    """Input the tool cannot use; ``main`` prints the message and exits with status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser that raises instead of exiting, so that ``main`` returns the status."""

    def error(self, message: str) -> NoReturn:
        raise CliInputError(message)


# ----------------------------------------------------------------------------------------------
# arguments
# ----------------------------------------------------------------------------------------------


def _column_list(text: str) -> list[str]:
    return [name.strip() for name in text.split(",") if name.strip()]


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (math.isfinite(value) and 0 < value < 100):
        raise argparse.ArgumentTypeError(f"must be a percentage between 0 and 100, got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``metaengine``.

    Returns
    -------
    argparse.ArgumentParser
        Choices for ``--measure``, ``--method`` and ``--test`` come from the engine.
    """
    parser = _Parser(
        prog=PROG,
        description="Run the meta-analysis engine (metafor 3.8-1 definitions) on a CSV file.",
        epilog="Exit status: 0 success, 2 unusable input, 1 the engine cannot analyse the data.",
    )
    parser.add_argument("csv", help="CSV file with metafor's column names, or - for standard input")
    parser.add_argument(
        "--measure",
        required=True,
        type=str.upper,
        choices=OUTCOME_MEASURES,
        help="effect-size measure (metafor's codes; GEN: yi and vi given)",
    )
    # One add_argument call per option, as argparse reads best: --method and --test look alike
    # (a choice folded to one case) but a helper for two calls would hide what each accepts.
    parser.add_argument(
        "--method",
        default="REML",
        type=str.upper,
        choices=METHODS,
        help="tau^2 estimator (default REML; EE: equal-effects model)",
    )
    parser.add_argument(
        "--test",
        default="z",
        type=str.lower,
        choices=TESTS,
        help="test of the coefficients: z, knha (Knapp-Hartung) or t (default z)",
    )
    parser.add_argument("--level", default=95.0, type=_level, help="confidence level in percent (default 95)")
    parser.add_argument(
        "--mods",
        action="append",
        type=_column_list,
        default=[],
        metavar="COL[,COL...]",
        help="moderator columns of a meta-regression (text columns are categorical)",
    )
    parser.add_argument("--subgroup", metavar="COL", help="column defining subgroups to pool separately")
    parser.add_argument("--order", metavar="COL", help="column ordering the cumulative meta-analysis")
    parser.add_argument(
        "--format", default="text", choices=("text", "json"), help="output format (default text)"
    )
    parser.add_argument(
        "--no-sensitivity",
        dest="sensitivity",
        action="store_false",
        help="skip leave-one-out, cumulative and influence analyses",
    )
    parser.add_argument(
        "--no-bias",
        dest="bias",
        action="store_false",
        help="skip the publication-bias analyses (Egger, rank test, trim-and-fill, fail-safe N)",
    )
    parser.add_argument(
        "--dependence",
        default="auto",
        choices=DEPENDENCE_MODELS,
        help="several rows of one study (column study): auto (CHE with CR2 where a study has several "
        "rows), none, aggregate, multilevel or che (default auto)",
    )
    parser.add_argument(
        "--rho", default=0.6, type=float, help="assumed within-study correlation for aggregate and che (0.6)"
    )
    parser.add_argument(
        "--no-robust", dest="robust", action="store_false", help="model-based instead of CR2 tests"
    )
    parser.add_argument("--timepoint", help='rows of one time point (column timepoint), or "latest"')
    parser.add_argument(
        "--timepoints", type=_column_list, default=[], metavar="T[,T...]", help="time points in order"
    )
    parser.add_argument(
        "--instruments",
        type=_column_list,
        default=[],
        metavar="I[,I...]",
        help="preferred instruments (column instrument), first choice first",
    )
    parser.add_argument("--sep", help="field delimiter (default: detected among , ; tab |)")
    parser.add_argument(
        "--encoding",
        default="utf-8-sig",
        help="text encoding of the file (default UTF-8, with or without BOM)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s (engine {ENGINE_VERSION})")
    return parser


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
        names += _numeric_names(measure)
    return tables.detect_delimiter(text, {tables.header_key(n) for n in names})


def read_table(
    source: str,
    *,
    sep: str | None = None,
    encoding: str = "utf-8-sig",
    stdin: TextIO | None = None,
    measure: str | None = None,
    extra: Iterable[str] = (),
) -> Any:
    """Read the study table of a CSV file with pandas.

    Parameters
    ----------
    source : str
        Path of the file, or ``"-"`` for standard input.
    sep : str, optional
        Field delimiter; detected with :func:`detect_delimiter` when not given.
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
    pandas.DataFrame
        One row per study, header names stripped of surrounding blanks. Empty cells and ``NA``
        are missing values.

    Raises
    ------
    CliInputError
        The file cannot be read or parsed, or holds no rows.
    """
    import pandas as pd  # the engine itself does not need pandas; only the CLI reads files

    text = _read_text(source, encoding, stdin)
    name = "standard input" if source == "-" else source
    if not text.strip():
        raise CliInputError(f"{name} is empty")
    extra = list(extra)
    delimiter = sep if sep is not None else detect_delimiter(text, measure, extra)
    if delimiter in ("\\t", "tab"):
        delimiter = "\t"
    as_text = dict.fromkeys(_numeric_names(measure), str) if measure is not None else None
    try:
        frame = pd.read_csv(
            io.StringIO(text), sep=delimiter, engine="python", skipinitialspace=True, dtype=as_text
        )
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CliInputError(f"cannot parse {name} as CSV: {detail}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame) == 0:
        raise CliInputError(f"{name} has a header but no rows")
    # as an upload: a comma-separated file is taken to use decimal points unless its numbers prove
    # otherwise; any other file must prove its decimal mark before "1,234" or "1.234" is read
    frame.attrs["default_decimal"] = "." if delimiter == "," else None
    return frame


# ----------------------------------------------------------------------------------------------
# building the engine's rows
# ----------------------------------------------------------------------------------------------


def measure_columns(measure: str) -> list[str | tuple[str, ...]]:
    """The columns ``measure`` reads: a name, or a tuple of alternatives (one must be present)."""
    cols: list[str | tuple[str, ...]] = list(MEASURE_COLUMNS[measure])
    if REGISTRY[measure].family == "generic":
        cols.append("ni")  # optional sample sizes, used by the fail-safe N and funnel
    return cols


def _numeric_names(measure: str) -> list[str]:
    """Every column the measure's input forms read (raw inputs first), as numbers."""
    names: list[str] = []
    for spec in measure_columns(measure):
        names.extend(spec if isinstance(spec, tuple) else (spec,))
    names += [c for form in REGISTRY[measure].forms for c in form.columns if c not in names]
    return names


def _check_columns(frame: Any, measure: str, extra: Iterable[tuple[str, str]]) -> None:
    present = set(frame.columns)
    have = ", ".join(map(str, frame.columns))
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
    """A pandas cell as a plain Python value; missing values become ``None``."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()  # numpy scalar
    if isinstance(value, float) and math.isnan(value):
        return None
    if type(value).__name__ in ("NAType", "NaTType"):
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


def _decimal_mark(frame: Any, names: Iterable[str]) -> str | None:
    texts = (str(v).strip() for name in names for v in frame[name].tolist() if isinstance(v, str))
    return tables.detect_decimal_mark(texts, frame.attrs.get("default_decimal", "."))


def rows_from_frame(
    frame: Any,
    measure: str,
    *,
    mods: Sequence[str] = (),
    subgroup: str | None = None,
    order: str | None = None,
) -> list[dict[str, Any]]:
    """Turn the CSV table into the row mappings :func:`run_analysis` takes.

    Parameters
    ----------
    frame : pandas.DataFrame
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
    import pandas as pd

    extra = [("--mods", m) for m in mods]
    if subgroup:
        extra.append(("--subgroup", subgroup))
    if order:
        extra.append(("--order", order))
    _check_columns(frame, measure, extra)

    labels = None
    if "study" in frame.columns:
        labels = [
            str(v).strip() if _to_python(v) is not None else f"Study {i + 1}"
            for i, v in enumerate(frame["study"].tolist())
        ]
    problems: list[str] = []
    frame = frame.copy()
    numeric = [n for n in _numeric_names(measure) if n in frame.columns and frame[n].dtype.kind not in "iuf"]
    others = [n for n in {*mods, *(c for c in (subgroup, order) if c)} if frame[n].dtype.kind == "O"]
    mark = _decimal_mark(frame, [*numeric, *others])
    for name in numeric:
        values = [_number(v, mark) for v in frame[name].tolist()]
        for i, v in enumerate(values):
            if isinstance(v, str):
                problems.append(
                    f"{row_label(i, labels)}, column {name}: {str(frame[name].iloc[i]).strip()!r} {v}"
                )
        frame[name] = pd.Series([v if isinstance(v, float | int) else None for v in values], dtype=float)
    for name in others:
        # a moderator whose every value is a number written as text (decimal commas) is numeric,
        # not a factor
        values = [_number(v, mark) for v in frame[name].tolist()]
        texts = [v for v in frame[name].tolist() if isinstance(v, str)]
        if texts and not any(isinstance(v, str) for v in values):
            frame[name] = pd.Series(values, dtype=float)
    if problems:
        raise CliInputError(_join_problems("values that are not numbers", problems))

    rows: list[dict[str, Any]] = []
    names = list(frame.columns)
    for i, values in enumerate(frame.itertuples(index=False, name=None)):
        row = {name: _to_python(v) for name, v in zip(names, values, strict=True)}
        row["study"] = labels[i] if labels is not None else f"Study {i + 1}"
        rows.append(row)
    return rows


def _join_problems(what: str, problems: Sequence[str]) -> str:
    shown = "; ".join(problems[:MAX_LISTED_PROBLEMS])
    more = len(problems) - MAX_LISTED_PROBLEMS
    return f"{what}: {shown}" + (f"; and {more} more" if more > 0 else "")


def describe_engine_error(exc: EngineError, labels: Sequence[str] | None = None) -> str:
    """One line for an engine error: code, message, and every problem with row and column.

    Parameters
    ----------
    exc : EngineError
        The error the engine raised.
    labels : sequence of str, optional
        Study labels, to name the rows a problem is in.

    Returns
    -------
    str
        ``"[code] message"`` or, for an error listing several problems, ``"[code] invalid
        values: row 3 (Study 3), column vi: ...; ..."``.
    """
    problems = getattr(exc, "problems", None)
    if problems:
        items = []
        for p in problems:
            where = []
            if p.row is not None:
                where.append(row_label(p.row, labels))
            if p.column is not None:
                where.append(f"column {p.column}")
            items.append((", ".join(where) + ": " if where else "") + p.message)
        return f"[{exc.code}] " + _join_problems("invalid values", items)
    place = ""
    if exc.row is not None:
        place = f" ({row_label(exc.row, labels)}" + (f", column {exc.column})" if exc.column else ")")
    return f"[{exc.code}] {exc.message}{place}"


def _error(stderr: TextIO, message: str) -> None:
    print(f"{PROG}: error: {message}", file=stderr)


def main(
    argv: list[str] | None = None,
    *,
    stdin: TextIO | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """Run the command-line tool.

    Parameters
    ----------
    argv : list of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).
    stdin, stdout, stderr : file-like, optional
        Streams (default the process's).

    Returns
    -------
    int
        0 on success, 2 for unusable input, 1 when the engine cannot analyse the data.
    """
    from .analysis import AnalysisSpec, run_analysis

    out = stdout if stdout is not None else sys.stdout
    err = stderr if stderr is not None else sys.stderr
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except CliInputError as exc:
        _error(err, f"{exc} (see {PROG} --help)")
        return EXIT_BAD_INPUT
    except SystemExit as exc:  # --help and --version print and exit 0
        return int(exc.code or 0)
    mods = tuple(name for group in args.mods for name in group)
    rows: list[dict[str, Any]] = []
    try:
        frame = read_table(
            args.csv,
            sep=args.sep,
            encoding=args.encoding,
            stdin=stdin,
            measure=args.measure,
            extra=[*mods, *(c for c in (args.subgroup, args.order) if c)],
        )
        rows = rows_from_frame(frame, args.measure, mods=mods, subgroup=args.subgroup, order=args.order)
        spec = AnalysisSpec(
            measure=args.measure,
            method=args.method,
            test=args.test,
            level=args.level,
            mods=mods,
            subgroup=args.subgroup,
            cumulative_order=args.order,
            sensitivity=args.sensitivity,
            bias=args.bias,
            # the dependence options, one keyword each as AnalysisSpec names them
            dependence=args.dependence,
            rho=args.rho,
            robust=args.robust,
            timepoint=args.timepoint,
            timepoints=tuple(args.timepoints),
            instruments=tuple(args.instruments),
        )
        report = run_analysis(spec, rows).to_dict()
    except CliInputError as exc:
        _error(err, str(exc))
        return EXIT_BAD_INPUT
    except InvalidInputError as exc:
        _error(err, describe_engine_error(exc, [str(r.get("study")) for r in rows]))
        return EXIT_BAD_INPUT
    except EngineError as exc:
        _error(err, describe_engine_error(exc, [str(r.get("study")) for r in rows]))
        return EXIT_ENGINE_ERROR
    if args.format == "json":
        out.write(json.dumps(to_jsonable(report), indent=2, allow_nan=False) + "\n")
    else:
        out.write(format_report(report, rows))
    if "summary" not in (report.get("blocks") or {}):
        # the engine reports a model it cannot fit as a note, not an exception; the output above
        # still shows the effect sizes and notes, and the status tells a script the model failed
        reason = next(
            (
                n
                for n in report.get("notes", [])
                if n.get("block") in ("fit", "model") or "fit" in n.get("block", "")
            ),
            None,
        )
        if reason is None:
            reason = {"code": "no_model", "message": "the model could not be fitted"}
        _error(err, f"[{reason.get('code')}] {reason.get('message')}")
        return EXIT_ENGINE_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
