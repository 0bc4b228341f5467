"""Check the engine against metafor's reference results: ``python -m workers.metaanalysis.validate [DIR]``.

Every ``*.json`` case in DIR (default ``tests/metaanalysis/cases``; format in
``/work/shared/reference/README.md``) is run through :func:`run_analysis` with the case's
measure, method, test, level and moderators, and EVERY field of EVERY expected block is compared
(rtol 1e-6, atol 1e-9; ``null`` must match None/NaN; lists elementwise). Each failing case is
printed with ``block.field`` and both values; the last line is ``N passed, M failed`` (cases), and
the exit status is 1 if any case failed. A block the engine does not compute counts as a failure.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .analysis import AnalysisSpec, run_analysis
from .errors import EngineError

__all__ = ["ATOL", "RTOL", "compare_block", "load_case", "main", "run_case", "values_match"]

RTOL = 1e-6
ATOL = 1e-9
DEFAULT_DIR = Path("tests/metaanalysis/cases")


def _unwrap(value: Any) -> Any:
    # R's jsonlite writes an NA inside a list column as [null]: a one-element list is its element
    if isinstance(value, list) and len(value) == 1:
        return value[0]
    return value


def load_case(path: Path) -> dict[str, Any]:
    """Read one case file; row cells written as one-element lists (``[null]``) are unwrapped."""
    with Path(path).open(encoding="utf-8") as fh:
        case = json.load(fh)
    case["rows"] = [{key: _unwrap(val) for key, val in row.items()} for row in case["rows"]]
    return case


def dependence_of(case: dict[str, Any]) -> str:
    """The dependence model a case describes: ``model: multilevel`` is the three-level model; a
    ``rho`` with ``struct: CS`` aggregates; a ``rho`` alone is the vcalc (CHE) model; otherwise
    the rows are independent (with cluster-robust tests where a ``cluster`` is given)."""
    if case.get("model") == "multilevel":
        return "multilevel"
    if case.get("rho") is not None:
        return "aggregate" if case.get("struct") == "CS" else "che"
    return "none"


def spec_for(case: dict[str, Any]) -> AnalysisSpec:
    """The analysis spec a case describes."""
    return AnalysisSpec(
        measure=case["measure"],
        method=case.get("method", "REML"),
        test=case.get("test", "z"),
        level=float(case.get("level", 95)),
        mods=tuple(case.get("mods") or ()),
        dependence=dependence_of(case),
        rho=float(case.get("rho") or 0.6),
    )


def values_match(actual: Any, expected: Any) -> bool:
    """Equality within rtol/atol; None matches None or NaN; lists compare elementwise."""
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, list):
        if not isinstance(actual, list | tuple) or len(actual) != len(expected):
            return False
        return all(values_match(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, str | bool):
        return actual == expected
    if isinstance(actual, bool) or not isinstance(actual, int | float):
        return False
    a, e = float(actual), float(expected)
    if not math.isfinite(a):
        return False
    return abs(a - e) <= ATOL + RTOL * abs(e)


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 200 else text[:197] + "..."


def _first_difference(actual: Any, expected: Any) -> str:
    if isinstance(expected, list) and isinstance(actual, list | tuple) and len(actual) == len(expected):
        for i, (a, e) in enumerate(zip(actual, expected, strict=True)):
            if not values_match(a, e):
                return f"[{i}]: expected {_show(e)}, got {_show(a)}"
    return f": expected {_show(expected)}, got {_show(actual)}"


def compare_block(name: str, actual: dict[str, Any] | None, expected: dict[str, Any]) -> list[str]:
    """Differences between an engine block and the expected one, as ``block.field: ...`` lines."""
    if actual is None:
        return [f"{name}: block not computed"]
    out = []
    for field, exp in expected.items():
        if field not in actual:
            out.append(f"{name}.{field}: field missing (expected {_show(exp)})")
        elif not values_match(actual[field], exp):
            out.append(f"{name}.{field}{_first_difference(actual[field], exp)}")
    return out


def run_case(case: dict[str, Any]) -> list[str]:
    """Run one case and return its differences (empty when it passes)."""
    try:
        report = run_analysis(spec_for(case), case["rows"]).to_dict()
    except EngineError as exc:
        return [f"run_analysis raised {type(exc).__name__}: {exc.message}"]
    blocks = report["blocks"]
    why = {n["block"]: n["message"] for n in report["notes"]}
    out: list[str] = []
    for name, expected in case["expected"].items():
        diffs = compare_block(name, blocks.get(name), expected)
        if blocks.get(name) is None and name in why:
            diffs = [f"{name}: block not computed ({why[name]})"]
        out.extend(diffs)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m workers.metaanalysis.validate", description=__doc__.split("\n")[0]
    )
    parser.add_argument("directory", nargs="?", default=str(DEFAULT_DIR), help="directory with *.json cases")
    args = parser.parse_args(argv)
    files = sorted(Path(args.directory).glob("*.json"))
    if not files:
        print(f"no *.json cases in {args.directory}", file=sys.stderr)
        print("0 passed, 0 failed")
        return 1
    passed = failed = 0
    for path in files:
        try:
            case = load_case(path)
            diffs = run_case(case)
            name = case.get("id", path.stem)
        except (OSError, ValueError, KeyError) as exc:
            diffs, name = [f"cannot read case: {exc}"], path.stem
        if diffs:
            failed += 1
            print(f"FAIL {name}")
            for line in diffs:
                print(f"  {line}")
        else:
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
