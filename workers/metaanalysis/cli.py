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

This module holds the options and the exit codes; reading the CSV into rows is
:mod:`workers.metaanalysis.cli_csv`'s job, the text report :mod:`workers.metaanalysis.report`'s
(imported only for ``--format text``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any, NoReturn, TextIO

from . import ENGINE_VERSION
from .cli_csv import CliInputError, join_problems, read_table, rows_from_frame
from .errors import EngineError, InvalidInputError
from .estimators import METHODS, TESTS
from .jsonable import to_jsonable
from .measures import OUTCOME_MEASURES
from .spec import DEPENDENCE_MODELS, check_level
from .text import row_label

__all__ = ["build_parser", "describe_engine_error", "main", "read_table", "rows_from_frame"]

#: Exit status for input the tool cannot use (argparse uses the same).
EXIT_BAD_INPUT = 2
#: Exit status for valid input the engine cannot analyse.
EXIT_ENGINE_ERROR = 1

PROG = "metaengine"


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
    try:
        return check_level(value)
    except InvalidInputError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None


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
        return f"[{exc.code}] " + join_problems("invalid values", items)
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
        table = read_table(
            args.csv,
            sep=args.sep,
            encoding=args.encoding,
            stdin=stdin,
            measure=args.measure,
            extra=[*mods, *(c for c in (args.subgroup, args.order) if c)],
        )
        rows = rows_from_frame(table, args.measure, mods=mods, subgroup=args.subgroup, order=args.order)
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
        from .report import format_report

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
