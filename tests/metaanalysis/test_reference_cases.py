"""Every reference case (metafor 3.8-1 results) through run_analysis, every field of every block.

Parametrised over ``tests/metaanalysis/cases/*.json``, so new case files are picked up.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.metaanalysis.conftest import case_files
from workers.metaanalysis.analysis import run_analysis
from workers.metaanalysis.validate import compare_block, load_case, spec_for

CASES = case_files()


def test_cases_are_present() -> None:
    assert len(CASES) >= 25


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_reference_case(path: Path) -> None:
    case = load_case(path)
    report = run_analysis(spec_for(case), case["rows"]).to_dict()
    diffs: list[str] = []
    for name, expected in case["expected"].items():
        diffs += compare_block(name, report["blocks"].get(name), expected)
    assert not diffs, "\n".join(diffs)
