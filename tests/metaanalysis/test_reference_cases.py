"""Every reference case (metafor 3.8-1 results) through the validator, every field of every block.

Parametrised over ``tests/metaanalysis/cases/*.json`` (one model per case, as in
shared/reference) and ``tests/metaanalysis/combined_cases/*.json`` (keys that call for several
models at once, computed with ``combined_cases/make_cases.R``), so new case files are picked up.
This is the one test of the numbers; ``test_validate.py`` tests the validator's own behaviour.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metaanalysis.conftest import case_files
from workers.metaanalysis.validate import load_case, run_case

COMBINED_DIR = Path(__file__).parent / "combined_cases"
CASES = case_files()
COMBINED = sorted(COMBINED_DIR.glob("*.json"))


def test_cases_are_present() -> None:
    assert len(CASES) >= 25
    assert len(COMBINED) >= 3


@pytest.mark.parametrize("path", CASES + COMBINED, ids=[p.stem for p in CASES + COMBINED])
def test_reference_case(path: Path) -> None:
    diffs = run_case(load_case(path))
    assert not diffs, "\n".join(diffs)
