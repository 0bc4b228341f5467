"""Command-line tool: run the meta-analysis engine on a CSV file, without the platform.

Usage (also installed as ``metaengine``)::

    python -m workers.metaanalysis.cli data.csv --measure SMD --method REML --test knha \\
        --mods year,setting --subgroup setting --order year --format text

The CSV uses metafor's column names (``m1i sd1i n1i m2i sd2i n2i``, ``ai bi ci di``, ``ri ni``,
``xi ni``, ``x1i t1i x2i t2i``, ``yi vi``); a ``study`` column is optional (studies are then
labelled "Study 1".."Study k"). ``-`` reads the CSV from standard input. The delimiter (comma,
semicolon, tab or bar) is detected unless ``--sep`` is given.

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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn, TextIO

from . import ENGINE_VERSION, tables
from .effect_sizes import MEASURE_COLUMNS
from .errors import EngineError, InvalidInputError
from .estimators import METHODS, TESTS
from .measures import OUTCOME_MEASURES, REGISTRY, is_log_scale
from .results import to_jsonable

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
    names: list[str] = []
    for spec in measure_columns(measure):
        names.extend(spec if isinstance(spec, tuple) else (spec,))
    return names


def _check_columns(frame: Any, measure: str, extra: Iterable[tuple[str, str]]) -> None:
    present = set(frame.columns)
    have = ", ".join(map(str, frame.columns))
    for spec in MEASURE_COLUMNS[measure]:
        options = spec if isinstance(spec, tuple) else (spec,)
        if not any(o in present for o in options):
            need = " or ".join(repr(o) for o in options)
            raise CliInputError(f"measure {measure} needs column {need}; the file has: {have}")
    for option, column in extra:
        if column not in present:
            raise CliInputError(f"{option} column {column!r} is not in the file; the file has: {have}")


def _label(row: int, labels: Sequence[str] | None) -> str:
    where = f"row {row + 1}"
    if labels is not None and 0 <= row < len(labels):
        where += f" ({labels[row]})"
    return where


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
                    f"{_label(i, labels)}, column {name}: {str(frame[name].iloc[i]).strip()!r} {v}"
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
                where.append(_label(p.row, labels))
            if p.column is not None:
                where.append(f"column {p.column}")
            items.append((", ".join(where) + ": " if where else "") + p.message)
        return f"[{exc.code}] " + _join_problems("invalid values", items)
    place = ""
    if exc.row is not None:
        place = f" ({_label(exc.row, labels)}" + (f", column {exc.column})" if exc.column else ")")
    return f"[{exc.code}] {exc.message}{place}"


# ----------------------------------------------------------------------------------------------
# the text report
# ----------------------------------------------------------------------------------------------


def fmt(value: Any, digits: int = 4) -> str:
    """A number as metafor prints it (``digits`` decimals; ``NA`` for a missing value)."""
    if value is None:
        return "NA"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return "NA" if math.isnan(x) else ("Inf" if x > 0 else "-Inf")
    out = f"{x:.{digits}f}"
    return "0." + "0" * digits if out == "-0." + "0" * digits else out


def fmt_p(value: Any, digits: int = 4) -> str:
    """A p-value as metafor prints it: ``<.0001`` below 10^-digits, else ``digits`` decimals."""
    if value is None:
        return "NA"
    x = float(value)
    if math.isnan(x):
        return "NA"
    if x < 10.0**-digits:
        return "<." + "0" * (digits - 1) + "1"
    return f"{x:.{digits}f}"


def _p_clause(value: Any) -> str:
    text = fmt_p(value)
    return f"p-val < {text[1:]}" if text.startswith("<") else f"p-val = {text}"


def _stars(p: Any) -> str:
    if p is None or not isinstance(p, int | float) or math.isnan(p):
        return ""
    for cut, mark in ((0.001, "***"), (0.01, "**"), (0.05, "*"), (0.1, ".")):
        if p < cut:
            return mark
    return ""


def table(
    header: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    row_names: Sequence[str] | None = None,
    indent: int = 0,
) -> list[str]:
    """Right-aligned text table (row names left-aligned), as R prints a data frame.

    Parameters
    ----------
    header : sequence of str
        Column titles.
    rows : sequence of sequences of str
        Cells, already formatted.
    row_names : sequence of str, optional
        A left-aligned first column without a title.
    indent : int
        Spaces before every line.

    Returns
    -------
    list of str
        The lines of the table.
    """
    cols = (
        list(zip(*([list(header), *[list(r) for r in rows]]), strict=True)) if rows else [[h] for h in header]
    )
    widths = [max(len(c) for c in col) for col in cols]
    name_w = max((len(n) for n in row_names), default=0) if row_names else 0
    pad = " " * indent
    lines = []
    lead = (" " * name_w + "  ") if row_names else ""
    lines.append(pad + lead + "  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    for i, r in enumerate(rows):
        lead = (row_names[i].ljust(name_w) + "  ") if row_names else ""
        lines.append(pad + lead + "  ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)))
    return [line.rstrip() for line in lines]


def _as_list(value: Any) -> list[Any]:
    if isinstance(value, list | tuple):
        return list(value)
    return [value]


def _model_title(spec: Mapping[str, Any], fit: Mapping[str, Any]) -> str:
    method = fit.get("method") or spec.get("method", "")
    k = fit.get("k")
    mods = int(fit.get("p", 1) or 1) > 1
    if method in ("EE", "FE"):
        kind = "Equal-Effects Model" if not mods else "Equal-Effects with Moderators Model"
        return f"{kind} (k = {k})"
    kind = "Mixed-Effects Model" if mods else "Random-Effects Model"
    return f"{kind} (k = {k}; tau^2 estimator: {method})"


def _fit_section(spec: Mapping[str, Any], fit: Mapping[str, Any]) -> list[str]:
    mods = int(fit.get("p", 1) or 1) > 1
    method = fit.get("method") or spec.get("method")
    test = fit.get("test") or spec.get("test", "z")
    out = [_model_title(spec, fit), ""]
    if method not in ("EE", "FE"):
        which = "residual heterogeneity" if mods else "total heterogeneity"
        tau2 = fit.get("tau2")
        se = fit.get("se_tau2")
        tau = math.sqrt(tau2) if isinstance(tau2, int | float) and tau2 >= 0 else None
        tau2_text = fmt(tau2) + (f" (SE = {fmt(se)})" if se is not None else "")
        rows = [
            (f"tau^2 (estimated amount of {which}):", tau2_text),
            ("tau (square root of estimated tau^2 value):", fmt(tau)),
        ]
        if mods:
            rows.append(
                ("I^2 (residual heterogeneity / unaccounted variability):", fmt(fit.get("I2"), 2) + "%")
            )
            rows.append(("H^2 (unaccounted variability / sampling variability):", fmt(fit.get("H2"), 2)))
            if "R2" in fit:
                rows.append(("R^2 (amount of heterogeneity accounted for):", fmt(fit.get("R2"), 2) + "%"))
        else:
            rows.append(("I^2 (total heterogeneity / total variability):", fmt(fit.get("I2"), 2) + "%"))
            rows.append(("H^2 (total variability / sampling variability):", fmt(fit.get("H2"), 2)))
        width = max(len(label) for label, _ in rows)
        out += [f"{label.ljust(width)}  {value}" for label, value in rows]
    else:
        out.append(f"I^2 (total heterogeneity / total variability):   {fmt(fit.get('I2'), 2)}%")
        out.append(f"H^2 (total variability / sampling variability):  {fmt(fit.get('H2'), 2)}")
    k, p = fit.get("k"), fit.get("p", 1)
    df = (k - p) if isinstance(k, int) and isinstance(p, int) else "NA"
    title = "Test for Residual Heterogeneity:" if mods else "Test for Heterogeneity:"
    q = "QE" if mods else "Q"
    out += ["", title, f"{q}(df = {df}) = {fmt(fit.get('QE'))}, {_p_clause(fit.get('QEp'))}"]
    if mods and "QM" in fit:
        qmdf = _as_list(fit.get("QMdf"))
        df1 = qmdf[0] if qmdf else "NA"
        df2 = qmdf[1] if len(qmdf) > 1 else None
        coefs = f"2:{p}" if isinstance(p, int) and p > 2 else "2"
        out += ["", f"Test of Moderators (coefficient{'s' if p > 2 else ''} {coefs}):"]
        if df2 is not None:
            out.append(f"F(df1 = {df1}, df2 = {df2}) = {fmt(fit.get('QM'))}, {_p_clause(fit.get('QMp'))}")
        else:
            out.append(f"QM(df = {df1}) = {fmt(fit.get('QM'))}, {_p_clause(fit.get('QMp'))}")
    tdist = test in ("knha", "t")
    names = [str(n) for n in _as_list(fit.get("coef_names", ["intrcpt"]))]
    header = ["estimate", "se", "tval" if tdist else "zval"]
    if tdist:
        header.append("df")
    header += ["pval", "ci.lb", "ci.ub", ""]
    cells = []
    dfs = _as_list(fit.get("dfs")) if tdist else []
    for j in range(len(names)):

        def col(key: str, j: int = j) -> Any:
            values = _as_list(fit.get(key))
            return values[j] if j < len(values) else None

        row = [fmt(col("beta")), fmt(col("se")), fmt(col("stat"))]
        if tdist:
            row.append(fmt(dfs[0] if dfs else None, 0) if dfs and dfs[0] is not None else "NA")
        pval = col("pval")
        row += [fmt_p(pval), fmt(col("ci_lb")), fmt(col("ci_ub")), _stars(pval)]
        cells.append(row)
    level = fit.get("level", spec.get("level"))
    out += ["", f"Model Results ({fmt(level, 0) if level is not None else ''}% CI):", ""]
    out += table(header, cells, row_names=names if len(names) > 1 else None)
    out += ["", "---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    return out


def _predict_section(spec: Mapping[str, Any], pred: Mapping[str, Any], measure: str) -> list[str]:
    keys = ["pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"]
    keys = [key for key in keys if key in pred]
    if not keys:
        return []
    titles = {"ci_lb": "ci.lb", "ci_ub": "ci.ub", "pi_lb": "pi.lb", "pi_ub": "pi.ub"}
    header = [titles.get(key, key) for key in keys]
    values = {key: _as_list(pred[key]) for key in keys}
    n = max(len(v) for v in values.values())
    rows = [[fmt(values[key][i] if i < len(values[key]) else None) for key in keys] for i in range(n)]
    out = ["", "Pooled estimate with prediction interval:", ""]
    out += table(header, rows, row_names=[str(i + 1) for i in range(n)] if n > 1 else None)
    if is_log_scale(measure) and n == 1:

        def exp(key: str) -> str:
            v = values.get(key, [None])[0]
            return fmt(math.exp(v)) if isinstance(v, int | float) and math.isfinite(v) else "NA"

        out.append("")
        out.append(
            f"On the ratio scale: exp(pred) = {exp('pred')}, CI [{exp('ci_lb')}, {exp('ci_ub')}], "
            f"PI [{exp('pi_lb')}, {exp('pi_ub')}]"
        )
    return out


def _confint_section(ci: Mapping[str, Any]) -> list[str]:
    names = [("tau2", "tau^2"), ("tau", "tau"), ("I2", "I^2(%)"), ("H2", "H^2")]
    rows, labels = [], []
    for key, label in names:
        if key in ci:
            v = _as_list(ci[key]) + [None] * 3
            rows.append([fmt(v[0]), fmt(v[1]), fmt(v[2])])
            labels.append(label)
    if not rows:
        return []
    return [
        "",
        "Confidence intervals of the heterogeneity (Q-profile):",
        "",
        *table(["estimate", "ci.lb", "ci.ub"], rows, row_names=labels),
    ]


def _bias_section(blocks: Mapping[str, Any], fit: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    egger = blocks.get("egger")
    if isinstance(egger, Mapping):
        test = fit.get("test", "z")
        stat = "t" if test in ("knha", "t") else "z"
        out += [
            "",
            "Regression Test for Funnel Plot Asymmetry (Egger; predictor: standard error):",
            f"test for funnel plot asymmetry: {stat} = {fmt(egger.get('stat'))}, "
            f"{_p_clause(egger.get('pval')).replace('p-val', 'p')}",
        ]
        if "limit_estimate" in egger:
            out.append(f"limit estimate (as sei -> 0):   b = {fmt(egger.get('limit_estimate'))}")
    rank = blocks.get("rank")
    if isinstance(rank, Mapping):
        out += [
            "",
            "Rank Correlation Test for Funnel Plot Asymmetry:",
            f"Kendall's tau = {fmt(rank.get('tau'))}, {_p_clause(rank.get('pval')).replace('p-val', 'p')}",
        ]
    tf = blocks.get("trimfill")
    if isinstance(tf, Mapping):
        k0 = tf.get("k0")
        side = tf.get("side") or "NA"
        out += ["", "Trim-and-Fill:", f"Estimated number of missing studies on the {side} side: {fmt(k0)}"]
        cells = [[fmt(tf.get(key)) for key in ("beta", "se", "ci_lb", "ci_ub", "tau2")]]
        out += [
            "Model with the filled-in studies:",
            *table(["estimate", "se", "ci.lb", "ci.ub", "tau^2"], cells, indent=2),
        ]
    fsn = blocks.get("fsn")
    if isinstance(fsn, Mapping):
        kind = fsn.get("type") or "Rosenthal"
        out += [
            "",
            f"Fail-safe N Calculation Using the {kind} Approach:",
            f"Fail-safe N: {fmt(fsn.get('fsnum'), 0)} (target significance level {fmt(fsn.get('alpha'), 2)})",
        ]
    return out


def _pooled_tables_section(blocks: Mapping[str, Any]) -> list[str]:
    rows, labels = [], []
    for key, label in (("mantel_haenszel", "Mantel-Haenszel"), ("peto", "Peto")):
        block = blocks.get(key)
        if isinstance(block, Mapping):
            rows.append(
                [
                    fmt(block.get("beta")),
                    fmt(block.get("se")),
                    fmt(block.get("stat")),
                    fmt_p(block.get("pval")),
                    fmt(block.get("ci_lb")),
                    fmt(block.get("ci_ub")),
                    fmt(block.get("QE")),
                    fmt_p(block.get("QEp")),
                    fmt(block.get("I2"), 2),
                ]
            )
            labels.append(label)
    if not rows:
        return []
    return [
        "",
        "Equal-effects models for 2x2 tables:",
        "",
        *table(
            ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub", "Q", "Qp", "I^2"], rows, row_names=labels
        ),
    ]


def _subgroup_section(block: Any, spec: Mapping[str, Any]) -> list[str]:
    """The subgroup table (one random-effects model per level) and the tests of differences."""
    groups = block.get("groups") if isinstance(block, Mapping) else None
    if not isinstance(groups, list) or not groups:
        return []
    cols = [
        ("k", "k", 0),
        ("estimate", "beta", 4),
        ("se", "se", 4),
        ("pval", "pval", 4),
        ("ci.lb", "ci_lb", 4),
        ("ci.ub", "ci_ub", 4),
        ("tau^2", "tau2", 4),
        ("I^2", "I2", 2),
        ("Q", "QE", 4),
    ]
    rows, names = [], []
    for i, rec in enumerate(groups):
        if not isinstance(rec, Mapping):
            continue
        names.append(str(rec.get("level", i + 1)))
        cells = []
        for _title, key, digits in cols:
            v = rec.get(key)
            v = v[0] if isinstance(v, list) and v else v
            cells.append(fmt_p(v) if key == "pval" else fmt(v, digits))
        rows.append(cells)
    out = [
        "",
        f"Subgroups by {spec.get('subgroup')}:",
        "",
        *table([c[0] for c in cols], rows, row_names=names),
    ]
    between = block.get("between_test")
    if isinstance(between, Mapping):
        out += [
            "",
            "Test for subgroup differences (Q between the subgroup estimates):",
            f"Q(df = {fmt(between.get('df'), 0)}) = {fmt(between.get('Q'))}, "
            f"{_p_clause(between.get('pval'))}",
        ]
    mods = block.get("moderator_test")
    if isinstance(mods, Mapping):
        df = _as_list(mods.get("QMdf"))
        df1 = df[0] if df else None
        df2 = df[1] if len(df) > 1 else None
        stat = f"F(df1 = {df1}, df2 = {df2})" if df2 is not None else f"QM(df = {fmt(df1, 0)})"
        out += [
            "",
            f"Test of moderators (meta-regression on {spec.get('subgroup')}, common tau^2):",
            f"{stat} = {fmt(mods.get('QM'))}, {_p_clause(mods.get('QMp'))}",
        ]
    return out


def _per_study_section(
    title: str, block: Any, keys: Sequence[tuple[str, str, int]], labels: Sequence[str]
) -> list[str]:
    if not isinstance(block, Mapping):
        return []
    present = [(key, name, digits) for key, name, digits in keys if key in block]
    if not present:
        return []
    values = {key: _as_list(block[key]) for key, _, _ in present}
    n = max(len(v) for v in values.values())
    rows = []
    for i in range(n):
        row = []
        for key, _, digits in present:
            v = values[key][i] if i < len(values[key]) else None
            row.append(fmt_p(v) if key == "pval" else fmt(v, digits))
        rows.append(row)
    block_labels = block.get("study") or block.get("slab") or block.get("labels")
    names = (
        [str(s) for s in block_labels]
        if isinstance(block_labels, list) and len(block_labels) == n
        else [labels[i] if i < len(labels) else str(i + 1) for i in range(n)]
    )
    return ["", title, "", *table([name for _, name, _ in present], rows, row_names=names)]


def model_labels(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels of the studies in the model (rows not omitted, in row order).

    Parameters
    ----------
    report : mapping
        ``AnalysisReport.to_dict()``.
    rows : sequence of mappings
        The rows given to the engine, each with a ``study`` label.

    Returns
    -------
    list of str
    """
    omitted = {int(o["row"]) for o in report.get("omitted", []) if isinstance(o, Mapping) and "row" in o}
    return [str(r.get("study", i + 1)) for i, r in enumerate(rows) if i not in omitted]


def format_report(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] = ()) -> str:
    """The readable report of an analysis, in the style of metafor's ``print()`` output.

    Parameters
    ----------
    report : mapping
        ``AnalysisReport.to_dict()``.
    rows : sequence of mappings
        The rows the analysis ran on (for study labels in per-study tables and omitted rows).

    Returns
    -------
    str
        Model, k, tau² (SE), tau, I², H², the Q test, the coefficient table, the pooled estimate
        with its prediction interval, the moderator test and R² in a meta-regression, the
        Q-profile intervals, subgroups, Mantel-Haenszel and Peto estimates, bias tests,
        trim-and-fill, fail-safe N, leave-one-out and cumulative tables, omitted rows and notes.
        Blocks absent from the report are left out.
    """
    spec: Mapping[str, Any] = report.get("spec") or {}
    blocks: Mapping[str, Any] = report.get("blocks") or {}
    measure = str(spec.get("measure", ""))
    labels = [str(r.get("study", i + 1)) for i, r in enumerate(rows)]
    in_model = model_labels(report, rows)
    scale = " (log scale)" if is_log_scale(measure) else ""
    out = [
        f"Meta-analysis engine {report.get('engine_version', ENGINE_VERSION)} (metafor 3.8-1 definitions)",
        f"Measure: {measure}{scale}; rows: {len(rows) if rows else 'NA'}; studies in the model: "
        f"{report.get('k', 'NA')}",
        "",
    ]
    fit = blocks.get("fit")
    if isinstance(fit, Mapping):
        out += _fit_section(spec, fit)
    pred = blocks.get("predict")
    if isinstance(pred, Mapping):
        out += _predict_section(spec, pred, measure)
    ci = blocks.get("confint")
    if isinstance(ci, Mapping):
        out += _confint_section(ci)
    if blocks.get("subgroups"):
        out += _subgroup_section(blocks["subgroups"], spec)
    out += _pooled_tables_section(blocks)
    out += _bias_section(blocks, fit if isinstance(fit, Mapping) else {})
    out += _per_study_section(
        "Leave-One-Out Analysis (each row: the model without that study):",
        blocks.get("leave1out"),
        [
            ("estimate", "estimate", 4),
            ("se", "se", 4),
            ("zval", "zval", 4),
            ("pval", "pval", 4),
            ("ci_lb", "ci.lb", 4),
            ("ci_ub", "ci.ub", 4),
            ("Q", "Q", 4),
            ("tau2", "tau^2", 4),
            ("I2", "I^2", 2),
        ],
        in_model,
    )
    cumulative = blocks.get("cumulative")
    if isinstance(cumulative, Mapping):
        order = spec.get("cumulative_order")
        cum_labels = cumulative.get("study") or cumulative.get("slab")
        out += _per_study_section(
            f"Cumulative Meta-Analysis (studies added in {f'order of {order}' if order else 'row order'}):",
            cumulative,
            [
                ("estimate", "estimate", 4),
                ("se", "se", 4),
                ("ci_lb", "ci.lb", 4),
                ("ci_ub", "ci.ub", 4),
                ("Q", "Q", 4),
                ("tau2", "tau^2", 4),
                ("I2", "I^2", 2),
            ],
            in_model if not cum_labels else [str(s) for s in cum_labels],
        )
    omitted = [o for o in report.get("omitted", []) if isinstance(o, Mapping)]
    if omitted:
        out += ["", f"Rows left out of the model ({len(omitted)}):"]
        for o in omitted:
            row = o.get("row")
            where = _label(int(row), labels) if isinstance(row, int) else "row ?"
            reason = o.get("reason") or o.get("message") or ""
            code = o.get("code")
            out.append(f"  {where}: {reason}" + (f" [{code}]" if code else ""))
    notes = [n for n in report.get("notes", []) if isinstance(n, Mapping)]
    if notes:
        out += ["", "Notes:"]
        for n in notes:
            block = n.get("block")
            out.append(f"  {block + ': ' if block else ''}{n.get('message', '')} [{n.get('code', '')}]")
    lines = [line for i, line in enumerate(out) if line or (i > 0 and out[i - 1])]  # no double blank lines
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------


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
    if "fit" not in (report.get("blocks") or {}):
        # the engine reports a model it cannot fit as a note, not an exception; the output above
        # still shows the effect sizes and notes, and the status tells a script the model failed
        reason = next((n for n in report.get("notes", []) if n.get("block") == "fit"), None)
        if reason is None:
            reason = {"code": "no_model", "message": "the model could not be fitted"}
        _error(err, f"[{reason.get('code')}] {reason.get('message')}")
        return EXIT_ENGINE_ERROR
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
