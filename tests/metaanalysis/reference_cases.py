"""Load the metafor reference cases (format: tests/metaanalysis/cases, README in shared/reference)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CASES_DIR = Path(__file__).parent / "cases"
RTOL = 1e-6
ATOL = 1e-9


def load_cases(block: str) -> list[Any]:
    """All cases holding the ``expected`` block ``block``, as pytest params with the case id."""
    import pytest

    cases = []
    for path in sorted(CASES_DIR.glob("*.json")):
        case = json.loads(path.read_text(encoding="utf-8"))
        if block in case["expected"]:
            cases.append(pytest.param(case, id=case["id"]))
    if not cases:
        raise LookupError(f"no reference case has a {block!r} block in {CASES_DIR}")
    return cases


def columns_of(case: dict[str, Any]) -> dict[str, list[Any]]:
    """The study table of a case as columns (``None`` where a cell is missing)."""
    return {name: [row.get(name) for row in case["rows"]] for name in case["columns"]}


def as_float(values: Any) -> np.ndarray:
    """Reference values as floats, ``null`` (metafor's NA) as NaN."""
    if np.isscalar(values) or values is None:
        values = [values]
    return np.array([np.nan if v is None else v for v in values], dtype=float)


def assert_matches(actual: Any, expected: Any, what: str) -> None:
    """Compare with the reference at the agreed tolerance; NA must be NaN in the same places."""
    np.testing.assert_allclose(
        np.atleast_1d(np.asarray(actual, dtype=float)),
        as_float(expected),
        rtol=RTOL,
        atol=ATOL,
        equal_nan=True,
        err_msg=what,
    )
