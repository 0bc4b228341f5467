"""Shared fixtures for the meta-analysis engine tests: the reference cases and comparison helpers."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

CASES_DIR = Path(__file__).parent / "cases"
RTOL = 1e-6
ATOL = 1e-9


def case_files() -> list[Path]:
    """Every reference case file (new files are picked up automatically)."""
    return sorted(CASES_DIR.glob("*.json"))


def load_case(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as fh:
        return json.load(fh)


def close(actual: Any, expected: Any) -> bool:
    """Compare like the validator: None matches None/NaN, lists elementwise, rtol 1e-6, atol 1e-9."""
    if expected is None:
        return actual is None or (isinstance(actual, float) and math.isnan(actual))
    if isinstance(expected, list):
        if not isinstance(actual, list | tuple | np.ndarray) or len(actual) != len(expected):
            return False
        return all(close(a, e) for a, e in zip(actual, expected, strict=True))
    if isinstance(expected, str):
        return actual == expected
    if isinstance(expected, bool):
        return actual == expected
    if actual is None or isinstance(actual, str):
        return False
    a = float(actual)
    return math.isfinite(a) and abs(a - float(expected)) <= ATOL + RTOL * abs(float(expected))


@pytest.fixture(scope="session")
def bcg() -> dict[str, np.ndarray]:
    """BCG vaccine trials (log risk ratios, metadat::dat.bcg) from the reference case."""
    case = load_case(CASES_DIR / "bcg-RR-REML.json")
    es = case["expected"]["effect_sizes"]
    ablat = [44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33]
    year = [1948, 1949, 1960, 1977, 1973, 1953, 1973, 1980, 1968, 1961, 1974, 1969, 1976]
    return {
        "yi": np.array(es["yi"], dtype=float),
        "vi": np.array(es["vi"], dtype=float),
        "ablat": np.array(ablat, dtype=float),
        "year": np.array(year, dtype=float),
    }
