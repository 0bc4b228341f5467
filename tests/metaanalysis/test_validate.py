"""The validation command's own behaviour: python -m workers.metaanalysis.validate [DIR].

Its reports, a mismatch found, the blocks of keys that call for several models, blocks and keys
the engine does not offer, and its exit status, on a few small cases. Whether the engine matches
every reference case is ``test_reference_cases.py``'s question.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.metaanalysis.conftest import CASES_DIR
from workers.metaanalysis import validate
from workers.metaanalysis.validate import (
    Model,
    compare_block,
    load_case,
    main,
    models_for,
    run_case,
    values_match,
)

ROOT = Path(__file__).resolve().parents[2]
COMBINED_DIR = Path(__file__).parent / "combined_cases"


def case_named(name: str, folder: Path = CASES_DIR) -> dict[str, Any]:
    return load_case(folder / f"{name}.json")


def write_case(folder: Path, case: dict[str, Any], name: str | None = None) -> Path:
    path = folder / f"{name or case['id']}.json"
    path.write_text(json.dumps(case), encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# reporting and exit status


def test_a_wrong_expectation_fails_with_block_field_and_values(tmp_path: Path, capsys) -> None:
    shutil.copy(CASES_DIR / "bcg-RR-REML.json", tmp_path / "good.json")
    case = case_named("bcg-RR-DL")
    case["expected"]["fit"]["tau2"] = 0.5
    case["expected"]["leave1out"]["estimate"][3] = 1.0
    case["expected"]["trimfill"]["side"] = "left"
    write_case(tmp_path, case, "bad")
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "FAIL bcg-RR-DL" in out
    assert "fit.tau2: expected 0.5, got 0.308760262862" in out
    assert "leave1out.estimate[3]: expected 1.0" in out
    assert "trimfill.side" in out
    assert out.strip().splitlines()[-1] == "1 passed, 1 failed"


def test_a_block_the_engine_cannot_compute_counts_as_failed(tmp_path: Path, capsys) -> None:
    case = case_named("bcg-RR-EE")
    case["expected"]["confint"] = {"tau2": [0, 0, 0]}
    write_case(tmp_path, case)
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "confint: block not computed (the equal-effects model has no tau²" in out


def test_empty_directory_is_an_error(tmp_path: Path, capsys) -> None:
    assert main([str(tmp_path)]) == 1
    assert capsys.readouterr().out.strip().endswith("0 passed, 0 failed")


def test_module_entry_point_exit_status(tmp_path: Path) -> None:
    shutil.copy(CASES_DIR / "bcg-RR-EE.json", tmp_path / "good.json")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "workers.metaanalysis.validate", str(tmp_path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )

    proc = run()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "1 passed, 0 failed"
    case = case_named("bcg-RR-EE")
    case["expected"]["fit"]["beta"] = [0.0]
    write_case(tmp_path, case, "bad")
    proc = run()
    assert proc.returncode == 1
    assert "fit.beta[0]: expected 0.0" in proc.stdout
    assert proc.stdout.strip().splitlines()[-1] == "1 passed, 1 failed"


# ---------------------------------------------------------------------------------------------
# keys that call for several models


def test_each_block_is_read_from_the_model_its_keys_call_for() -> None:
    case = case_named("assink2016-GEN-multilevel-CHE-aggregate-rho0.6", COMBINED_DIR)
    assert (case["model"], case["rho"], case["struct"]) == ("multilevel", 0.6, "CS")
    rma, multilevel = Model("none"), Model("multilevel")
    vcalc, aggregated = Model("che", 0.6), Model("aggregate", 0.6)
    assert models_for(case) == {
        "effect_sizes": None,
        "fit": rma,
        "multilevel_fit": multilevel,
        "multilevel_confint": multilevel,
        "predict": multilevel,
        "robust_cr1": multilevel,
        "robust_cr2": multilevel,
        "multilevel_fit_vcalc": vcalc,
        "predict_vcalc": vcalc,
        "robust_cr1_vcalc": vcalc,
        "robust_cr2_vcalc": vcalc,
        "aggregated": aggregated,
        "aggregated_fit": aggregated,
    }
    # with `model: rma` the prediction and the robust tests are the one-level model's
    rma_case = case_named("tannersmith2016-GEN-sei-rma-robust-aggregate-rho0.6", COMBINED_DIR)
    assert {block: models_for(rma_case)[block] for block in ("predict", "robust_cr2", "aggregated_fit")} == {
        "predict": rma,
        "robust_cr2": rma,
        "aggregated_fit": aggregated,
    }


def test_combined_keys_run_each_model_once_and_compare_every_block(monkeypatch) -> None:
    case = case_named("tannersmith2016-GEN-sei-rma-robust-aggregate-rho0.6", COMBINED_DIR)
    case["expected"]["aggregated_fit"]["tau2"] = 0.5
    case["expected"]["robust_cr2"]["dfs"] = [99.0]
    specs = []
    run_analysis = validate.run_analysis

    def counted(spec, rows):
        specs.append(spec)
        return run_analysis(spec, rows)

    monkeypatch.setattr(validate, "run_analysis", counted)
    diffs = run_case(case)
    assert [(s.dependence, s.rho) for s in specs] == [("none", 0.6), ("aggregate", 0.6)]
    # no sensitivity or bias analyses where no block asks for them
    assert not any(s.sensitivity or s.bias for s in specs)
    assert len(diffs) == 2, diffs
    assert diffs[0].startswith("robust_cr2.dfs[0]: expected 99.0, got 11.235")
    assert diffs[1].startswith("aggregated_fit.tau2: expected 0.5, got 0.00997")


def test_a_model_the_settings_refuse_fails_its_blocks_only() -> None:
    case = case_named("bcg-RR-EE")
    case["model"] = "multilevel"
    case["expected"] = {"fit": case["expected"]["fit"], "multilevel_fit": {"k": 13}}
    diffs = run_case(case)
    assert len(diffs) == 1 and "EE" in diffs[0]
    assert diffs[0].startswith(
        "multilevel_fit: block not computed (the multilevel model raised InvalidInputError: "
    )


def test_renamed_random_levels_and_cluster_are_the_study_and_estimate() -> None:
    case = case_named("tannersmith2016-GEN-sei-rma-robust-aggregate-rho0.6", COMBINED_DIR)
    case["cluster"] = "trial"
    case["rows"] = [{"trial": row.pop("study"), **row} for row in copy.deepcopy(case["rows"])]
    assert validate._rows(case)[0]["study"] == case["rows"][0]["trial"]
    case["expected"] = {"robust_cr1": case["expected"]["robust_cr1"]}
    assert run_case(case) == []


# ---------------------------------------------------------------------------------------------
# what the engine does not offer


def test_blocks_the_engine_does_not_offer_are_named_not_implemented() -> None:
    case = case_named("bcg-RR-EE")
    case["expected"] = {"fit": case["expected"]["fit"], "pet": {"beta": [0.1, 0.2]}, "wavelets": {"x": 1}}
    assert run_case(case) == [
        "pet: not implemented: PET, the meta-regression on the standard error",
        "wavelets: not implemented: the engine computes no 'wavelets' block",
    ]


def test_keys_the_engine_cannot_honour_fail_the_model_blocks_but_not_the_effect_sizes() -> None:
    case = case_named("assink2016-GEN-CHE-rho0.6")
    case.update(time="es_id", phi=0.9)
    diffs = run_case(case)
    assert [d.split(":")[0] for d in diffs] == [
        "multilevel_fit_vcalc",
        "predict_vcalc",
        "robust_cr1_vcalc",
        "robust_cr2_vcalc",
    ]
    assert all("not implemented: sampling errors autocorrelated over follow-up time" in d for d in diffs)


def test_a_sequential_design_without_rows_is_reported_not_crashed(tmp_path: Path, capsys) -> None:
    design = {
        "id": "design-asOF",
        "kind": "design",
        "alpha": 0.05,
        "sided": 2,
        "spending": "asOF",
        "information_rates": [0.5, 1],
        "expected": {"critical_values": [2.96, 1.97], "alpha_spent": [0.003, 0.05]},
    }
    write_case(tmp_path, design)
    assert main([str(tmp_path)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "FAIL design-asOF",
        "  critical_values: not implemented: group-sequential designs (rpact's getDesignGroupSequential)",
        "  alpha_spent: not implemented: group-sequential designs (rpact's getDesignGroupSequential)",
        "0 passed, 1 failed",
    ]


# ---------------------------------------------------------------------------------------------
# comparing values


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
