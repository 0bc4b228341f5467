"""The validation command: python -m workers.metaanalysis.validate [DIR]."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.metaanalysis.conftest import CASES_DIR, case_files
from workers.metaanalysis.validate import compare_block, load_case, main, values_match


def test_all_reference_cases_pass(capsys) -> None:
    assert main([str(CASES_DIR)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1] == f"{len(case_files())} passed, 0 failed"


def test_a_wrong_expectation_fails_with_block_field_and_values(tmp_path: Path, capsys) -> None:
    shutil.copy(CASES_DIR / "bcg-RR-REML.json", tmp_path / "good.json")
    case = json.loads((CASES_DIR / "bcg-RR-DL.json").read_text())
    case["expected"]["fit"]["tau2"] = 0.5
    case["expected"]["leave1out"]["estimate"][3] = 1.0
    case["expected"]["trimfill"]["side"] = "left"
    (tmp_path / "bad.json").write_text(json.dumps(case))
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL bcg-RR-DL" in out
    assert "fit.tau2: expected 0.5, got 0.308760262862" in out
    assert "leave1out.estimate[3]: expected 1.0" in out
    assert "trimfill.side" in out
    assert out.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_a_block_the_engine_cannot_compute_counts_as_failed(tmp_path: Path, capsys) -> None:
    case = json.loads((CASES_DIR / "bcg-RR-EE.json").read_text())
    case["expected"]["confint"] = {"tau2": [0, 0, 0]}
    (tmp_path / "c.json").write_text(json.dumps(case))
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "confint: block not computed" in out


def test_empty_directory_is_an_error(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip().endswith("0 passed, 0 failed")


@pytest.mark.parametrize(
    ("actual", "expected", "ok"),
    [
        (None, None, True),
        (float("nan"), None, True),
        (0.0, None, False),
        (1.0 + 5e-7, 1.0, True),
        (1.0 + 5e-6, 1.0, False),
        (5e-10, 0.0, True),
        ([1, None], [1, None], True),
        ([1, 2], [1], False),
        ([], [], True),
        ("left", "left", True),
        ("left", "right", False),
        (None, 0.3, False),
        (float("inf"), 1.0, False),
    ],
)
def test_values_match(actual, expected, ok) -> None:
    assert values_match(actual, expected) is ok


def test_compare_block_reports_missing_fields() -> None:
    assert compare_block("fit", {"k": 3}, {"k": 3, "tau2": 0.1}) == ["fit.tau2: field missing (expected 0.1)"]


def test_load_case_unwraps_r_na_lists() -> None:
    case = load_case(CASES_DIR / "bangertdrowns2004-GEN-REML-mods-missing.json")
    assert case["rows"][17]["meta"] is None


def test_module_entry_point() -> None:
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-m", "workers.metaanalysis.validate"],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1].endswith("passed, 0 failed")
