"""Each measure's input domain is written once, in ``workers/metaanalysis/domains.py``.

Two checks. The behaviour: at every bound of every column of every measure in the registry (the
bound itself and a step to each side), the engine's ``escalc`` refuses exactly what metafor's
limit says, and the upload validator and the engine's check of rows to be stored
(``effects.check_rows``) refuse the same values, those outside the platform's limit. The layout:
no module of ``apps/`` or ``workers/`` but the home compares an input column (``sd1i``, ``ri``,
``n1i``, ...), or a value tested for a kind of input (``kind == "sd"``), with 0, ±1 or a measure's
``min_n``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apps.datasets.ingest import UploadRejected, UploadSpec, parse_json_rows
from apps.datasets.ingest.measures import MEASURES as UPLOAD_MEASURES
from workers.metaanalysis import domains, effects, measures
from workers.metaanalysis.effect_sizes import InvalidStudyDataError, compute_effect_sizes

ROOT = Path(__file__).resolve().parents[2]
HOME = "workers/metaanalysis/domains.py"

#: Every column some measure's domain bounds.
COLUMNS = frozenset(
    name
    for code in measures.REGISTRY
    for name, column in domains.of(code).columns.items()
    if column.escalc is not None or column.accepted is not None or column.whole
)
#: The kinds of input some measure bounds.
KINDS = frozenset(
    column.kind
    for code in measures.REGISTRY
    for column in domains.of(code).columns.values()
    if column.escalc is not None or column.accepted is not None or column.whole
)
#: metafor names the effect size and sampling variance it computes as it names the ones given: a
#: bare ``vi`` is the computed one (``vi >= 0`` before a square root), ``cols["vi"]`` the input.
_COMPUTED = frozenset({"yi", "vi"})
_LIMITS = (0, 1, -1)
_ORDERING = (ast.Lt, ast.LtE, ast.Gt, ast.GtE)


# ---------------------------------------------------------------------------------------------
# The layout: no second definition


def _python_files() -> Iterator[Path]:
    for top in ("apps", "workers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            if "migrations" not in path.parts:
                yield path


def _is_limit(node: ast.expr) -> bool:
    """0, 1 or -1, or a measure's minimum sample size (``m.min_n``)."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        node = node.operand
    if isinstance(node, ast.Name | ast.Attribute):
        return (node.id if isinstance(node, ast.Name) else node.attr) == "min_n"
    return (
        isinstance(node, ast.Constant)
        and isinstance(node.value, int | float)
        and not isinstance(node.value, bool)
        and abs(node.value) in _LIMITS
    )


def _loop_names(tree: ast.AST) -> dict[str, set[str]]:
    """Names bound by a loop or comprehension over written-out column names (``for name in
    ("sd1i", "sd2i")``), with the names they take."""
    bound: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.For | ast.comprehension) and isinstance(
            node.iter, ast.Tuple | ast.List | ast.Set
        ):
            texts = {
                e.value for e in node.iter.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)
            }
            if texts & COLUMNS and isinstance(node.target, ast.Name):
                bound.setdefault(node.target.id, set()).update(texts)
    return bound


def _is_column(node: ast.expr, loops: dict[str, set[str]]) -> bool:
    """``sd1i``, ``row.sd1i``, ``cols["sd1i"]``, ``cols[name]`` for a loop over column names, and
    ``abs()`` / ``np.abs()`` of any of them (a bare ``vi`` is the computed variance)."""
    if isinstance(node, ast.Name):
        return node.id in COLUMNS - _COMPUTED
    if isinstance(node, ast.Attribute):
        return node.attr in COLUMNS
    if isinstance(node, ast.Subscript):
        key = node.slice
        if isinstance(key, ast.Constant):
            return key.value in COLUMNS
        return isinstance(key, ast.Name) and key.id in loops
    if isinstance(node, ast.Call) and len(node.args) == 1:
        func = node.func
        name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        return name in ("abs", "fabs") and _is_column(node.args[0], loops)
    return False


def _bounds(node: ast.Compare) -> list[ast.expr]:
    """The operands compared with a bound (:func:`_is_limit`) by <, <=, > or >=."""
    parts = [node.left, *node.comparators]
    found = []
    for op, left, right in zip(node.ops, parts, parts[1:], strict=False):
        if isinstance(op, _ORDERING):
            if _is_limit(right):
                found.append(left)
            elif _is_limit(left):
                found.append(right)
    return found


def _names_a_kind(node: ast.AST) -> bool:
    """``kind == "sd"``, ``stat.kind in ("sd", "se")``."""
    if not isinstance(node, ast.Compare):
        return False
    for part in (node.left, *node.comparators):
        texts = part.elts if isinstance(part, ast.Tuple | ast.List | ast.Set) else [part]
        if any(isinstance(t, ast.Constant) and t.value in KINDS for t in texts):
            return True
    return False


def domain_rules(path: Path) -> list[int]:
    """The lines where ``path`` writes an input's bound: an input column compared with 0, ±1 or
    ``min_n``, or any value compared with them where a kind of input is named beside (in the same
    ``and`` or under an ``if`` that tests the kind)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    loops = _loop_names(tree)
    found: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare) and any(_is_column(o, loops) for o in _bounds(node)):
            found.add(node.lineno)
        guarded: list[ast.AST] = []
        if isinstance(node, ast.BoolOp) and any(_names_a_kind(v) for v in node.values):
            guarded = list(node.values)
        elif isinstance(node, ast.If) and any(_names_a_kind(n) for n in ast.walk(node.test)):
            guarded = [node.test, *node.body]
        for part in guarded:
            for inner in ast.walk(part):
                if isinstance(inner, ast.Compare) and _bounds(inner):
                    found.add(inner.lineno)
    return sorted(found)


def test_no_module_but_the_home_writes_a_domain() -> None:
    offenders = {}
    for path in _python_files():
        rel = path.relative_to(ROOT).as_posix()
        if rel != HOME and (lines := domain_rules(path)):
            offenders[rel] = lines
    assert not offenders, f"an input's bound written outside {HOME}: {offenders}"


def test_the_scan_sees_a_second_definition(tmp_path: Path) -> None:
    sample = tmp_path / "sample.py"
    sample.write_text(
        "def check(cols, kind, value, ri):\n"
        '    bad = cols["sd1i"] <= 0\n'
        '    for name in ("x1i", "x2i"):\n'
        "        bad |= cols[name] < 0\n"
        "    if np.abs(ri) >= 1 or 0 > row.sei:\n"
        "        pass\n"
        '    if kind == "sd" and value <= 0:\n'
        "        pass\n"
        '    if stat.kind in ("variance", "se"):\n'
        "        return value <= 0\n"
        '    if kind == "total_n" and value < measure.min_n:\n'
        "        pass\n"
        '    return cols["ni"] <= 3, kind == "effect" and value < 0\n'
    )
    assert domain_rules(sample) == [2, 4, 5, 7, 10, 11]


# ---------------------------------------------------------------------------------------------
# The behaviour: the engine and the upload agree at every bound

#: A valid row of each family's own inputs, far from every bound but the one tried.
_ROWS: dict[str, dict[str, float]] = {
    "table": {"ai": 5, "bi": 15, "ci": 3, "di": 17},
    "person_time": {"x1i": 5, "t1i": 100.0, "x2i": 3, "t2i": 120.0},
    "means": {"m1i": 10.0, "sd1i": 3.0, "n1i": 20, "m2i": 9.0, "sd2i": 3.5, "n2i": 22},
    "change": {"m1i": 12.0, "m2i": 10.0, "sd1i": 4.0, "sd2i": 5.0, "ni": 30, "ri": 0.6},
    "mean": {"mi": 1.2, "sdi": 1.0, "ni": 30},
    "correlation": {"ri": 0.3, "ni": 40},
    "proportion": {"xi": 10, "ni": 40},
}
#: Rows for the columns the family's own row does not give (a total tried with no events, so that
#: the events never exceed it; a given effect size for vi and sei).
_OTHER_ROWS: dict[str, dict[str, float]] = {
    "n1i": {"ai": 0, "n1i": 20, "ci": 3, "n2i": 20},
    "n2i": {"ai": 5, "n1i": 20, "ci": 0, "n2i": 20},
    "mi": {"xi": 10, "mi": 30},
    "vi": {"yi": 0.2, "vi": 0.04},
    "sei": {"yi": 0.2, "sei": 0.2},
}
_TOTALS = {"proportion": {"ni": {"xi": 0, "ni": 40}}}


def _row(measure: measures.Measure, column: str) -> dict[str, float]:
    special = _TOTALS.get(measure.family, {}).get(column)
    if special is not None:
        return dict(special)
    own = _ROWS.get(measure.family, {})
    return dict(own) if column in own else dict(_OTHER_ROWS[column])


def _values(column: domains.ColumnDomain) -> list[float]:
    """The bounds of the column and a step to each side; a fraction inside for whole numbers."""
    values: set[float] = set()
    for limit in (column.escalc, column.accepted):
        if limit is None:
            continue
        step = 1.0 if column.whole else 1e-6
        sides = (1.0, -1.0) if limit.absolute else (1.0,)
        values.update(side * (limit.bound + shift) for side in sides for shift in (-step, 0.0, step))
        if column.whole:
            values.add(limit.bound + 1.5)
    return sorted(values)


def _cases() -> Iterator[tuple[str, str, float]]:
    for code in measures.REGISTRY:
        for name, column in domains.of(code).columns.items():
            for value in _values(column):
                yield code, name, value


def _refused_by_escalc(code: str, row: dict[str, Any], column: str) -> bool:
    try:
        compute_effect_sizes(code, {k: [v] for k, v in row.items()})
    except InvalidStudyDataError as exc:
        return any(p.column == column for p in exc.problems)
    return False


def _refused_by_check_rows(code: str, row: dict[str, Any], column: str) -> bool:
    return any(p.column == column for p in effects.check_rows(code, {k: [v] for k, v in row.items()}))


def _refused_by_upload(code: str, row: dict[str, Any], column: str) -> bool:
    try:
        parse_json_rows([{"study": "A", **row}], spec=UploadSpec(outcome_code="o", measure=code))
    except UploadRejected as exc:
        return any(e.column == column for e in exc.errors)
    return False


@pytest.mark.parametrize(("code", "column", "value"), list(_cases()))
def test_the_engine_and_the_upload_refuse_the_same_values(code: str, column: str, value: float) -> None:
    domain = domains.of(code).columns[column]
    row = {**_row(measures.get(code), column), column: value}
    outside_metafor = domain.escalc is not None and bool(domain.escalc.breaks(value))
    outside_platform = (
        outside_metafor
        or (domain.whole and bool(domains.not_whole(value)))
        or (domain.accepted is not None and bool(domain.accepted.breaks(value)))
    )

    assert _refused_by_escalc(code, row, column) == outside_metafor
    assert _refused_by_check_rows(code, row, column) == outside_platform
    if code in UPLOAD_MEASURES and column in UPLOAD_MEASURES[code].meanings:
        assert _refused_by_upload(code, row, column) == outside_platform


def test_metafors_bounds_are_the_engines() -> None:
    """metafor 3.8-1 ``escalc()`` (R/escalc.r) stops on a negative SD ("One or more standard
    deviations are negative."), a correlation beyond [-1, 1], a sample size or person-time <= 0
    and a negative count; an SD of 0 and |r| = 1 pass."""
    for code, column in (("SMD", "sd1i"), ("MN", "sdi"), ("SMCR", "sd1i")):
        assert domains.of(code).columns[column].escalc == domains.Limit(0, strict=False)
    for code in ("COR", "ZCOR", "SMCC"):
        assert domains.of(code).columns["ri"].escalc == domains.Limit(1, strict=False, absolute=True)
    for code, column in (("SMD", "n1i"), ("COR", "ni"), ("IRR", "t1i"), ("PR", "ni")):
        assert domains.of(code).columns[column].escalc == domains.Limit(0, strict=True)
    for code, column in (("OR", "ai"), ("PLO", "xi"), ("IRR", "x2i")):
        assert domains.of(code).columns[column].escalc == domains.Limit(0, strict=False)


def test_the_platform_bounds_the_upload_states() -> None:
    """What docs/uploads.md promises: SDs, variances and standard errors above 0, correlations
    strictly between -1 and 1, sample sizes of at least the measure's minimum."""
    assert domains.of("SMD").columns["sd2i"].refusal(0, "sd") == (
        "sd_not_positive",
        "the standard deviation must be greater than 0",
    )
    assert domains.of("COR").columns["ri"].refusal(-1, "correlation") == (
        "correlation_out_of_range",
        "a correlation must lie strictly between -1 and 1",
    )
    assert domains.of("COR").columns["ni"].refusal(3, "sample size") == (
        "n_too_small",
        "the sample size must be at least 4 for the correlation (COR)",
    )
    assert domains.of("GEN").columns["sei"].refusal(0.1, "standard error") is None
