"""The command-line tool: CSV in, the engine's report out (text or JSON), clear errors with exit codes."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.metaanalysis.reference_cases import CASES_DIR, assert_matches
from workers.metaanalysis import cli
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis


def load_case(name: str) -> dict[str, Any]:
    return json.loads((CASES_DIR / f"{name}.json").read_text(encoding="utf-8"))


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]], sep: str = ",") -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=columns, delimiter=sep, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def run(argv: list[str], stdin: str | None = None) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = cli.main(argv, stdin=io.StringIO(stdin) if stdin is not None else None, stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def run_json(argv: list[str], stdin: str | None = None) -> dict[str, Any]:
    code, out, err = run([*argv, "--format", "json"], stdin)
    assert code == 0, err
    assert err == ""
    return json.loads(out)


@pytest.fixture
def bcg(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    case = load_case("bcg-RR-REML")
    return case, write_csv(tmp_path / "bcg.csv", case["columns"], case["rows"])


@pytest.fixture
def bcg_mods(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    case = load_case("bcg-RR-REML-mods")
    return case, write_csv(tmp_path / "bcg_mods.csv", case["columns"], case["rows"])


# ---------------------------------------------------------------------------------------------
# JSON output


def test_json_output_is_run_analysis_report(bcg: tuple[dict[str, Any], Path]) -> None:
    case, path = bcg
    report = run_json([str(path), "--measure", "RR", "--method", "REML"])
    expected = run_analysis(AnalysisSpec(measure="RR", method="REML"), case["rows"]).to_dict()
    assert report == json.loads(json.dumps(expected))
    # and those are metafor's numbers
    fit = report["blocks"]["fit"]
    for key in ("beta", "se", "ci_lb", "ci_ub", "tau2", "I2", "QE"):
        assert_matches(fit[key], case["expected"]["fit"][key], key)


def test_json_passes_every_option_to_the_spec(bcg_mods: tuple[dict[str, Any], Path]) -> None:
    _, path = bcg_mods
    argv = [str(path), "--measure", "RR", "--method", "DL", "--test", "knha", "--level", "90"]
    argv += ["--mods", "ablat", "--order", "year", "--no-sensitivity", "--no-bias"]
    report = run_json(argv)
    assert (
        report["spec"]
        == AnalysisSpec(
            measure="RR",
            method="DL",
            test="knha",
            level=90.0,
            mods=("ablat",),
            cumulative_order="year",
            sensitivity=False,
            bias=False,
        ).to_dict()
    )
    assert report["blocks"]["fit"]["coef_names"] == ["intrcpt", "ablat"]


def test_mods_fit_a_meta_regression(bcg_mods: tuple[dict[str, Any], Path]) -> None:
    case, path = bcg_mods
    report = run_json([str(path), "--measure", "RR", "--mods", "ablat,year"])
    fit = report["blocks"]["fit"]
    expected = case["expected"]["fit"]
    assert fit["coef_names"] == expected["coef_names"]
    for key in ("beta", "se", "pval", "tau2", "QM", "QMp", "R2"):
        assert_matches(fit[key], expected[key], key)
    # --mods may also be repeated
    assert run_json([str(path), "--measure", "RR", "--mods", "ablat", "--mods", "year"]) == report


def test_study_column_is_optional(tmp_path: Path) -> None:
    case = load_case("bcg-RR-REML")
    columns = [c for c in case["columns"] if c != "study"]
    path = write_csv(tmp_path / "nostudy.csv", columns, case["rows"])
    report = run_json([str(path), "--measure", "RR"])
    k = len(case["rows"])
    assert report["blocks"]["effect_sizes"]["study"] == [f"Study {i}" for i in range(1, k + 1)]
    assert_matches(report["blocks"]["fit"]["beta"], case["expected"]["fit"]["beta"], "beta")


def test_stdin_semicolons_and_decimal_commas(tmp_path: Path) -> None:
    case = load_case("hackshaw1998-GEN-REML")
    plain = write_csv(tmp_path / "plain.csv", case["columns"], case["rows"])
    reference = run_json([str(plain), "--measure", "GEN"])
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";")
    writer.writerow(case["columns"])
    for row in case["rows"]:
        writer.writerow([row[c] if c == "study" else str(row[c]).replace(".", ",") for c in case["columns"]])
    assert run_json(["-", "--measure", "GEN"], stdin=buf.getvalue()) == reference
    # an explicit separator works as well
    assert run_json(["-", "--measure", "GEN", "--sep", ";"], stdin=buf.getvalue()) == reference


# ---------------------------------------------------------------------------------------------
# text report


def test_text_report_shows_the_pooled_estimate(bcg: tuple[dict[str, Any], Path]) -> None:
    case, path = bcg
    code, out, err = run([str(path), "--measure", "RR"])
    assert code == 0, err
    fit = case["expected"]["fit"]
    lines = out.splitlines()
    assert "Random-Effects Model (k = 13; tau^2 estimator: REML)" in lines
    row = [line.split() for line in lines if line.split()[:1] == [f"{fit['beta'][0]:.4f}"]]
    assert row, out
    assert fit["pval"][0] < 1e-4
    assert row[0][:6] == [
        f"{fit['beta'][0]:.4f}",
        f"{fit['se'][0]:.4f}",
        f"{fit['stat'][0]:.4f}",
        "<.0001",
        f"{fit['ci_lb'][0]:.4f}",
        f"{fit['ci_ub'][0]:.4f}",
    ]
    assert f"{fit['tau2']:.4f} (SE = {fit['se_tau2']:.4f})" in out
    assert f"{np.sqrt(fit['tau2']):.4f}" in out
    assert f"{fit['I2']:.2f}%" in out
    assert f"Q(df = 12) = {fit['QE']:.4f}, p-val < .0001" in out
    pred = case["expected"]["predict"]
    assert f"{pred['pi_lb']:.4f}" in out and f"{pred['pi_ub']:.4f}" in out
    assert f"exp(pred) = {np.exp(pred['pred']):.4f}" in out
    loo = out.split("Leave-One-Out Analysis")[1].splitlines()
    for study, estimate in zip(
        [r["study"] for r in case["rows"]], case["expected"]["leave1out"]["estimate"], strict=True
    ):
        assert any(line.startswith(study + " ") and f" {estimate:.4f} " in line for line in loo), study
    egger = case["expected"]["egger"]
    assert f"z = {egger['stat']:.4f}, p = {egger['pval']:.4f}" in out
    assert f"Fail-safe N: {case['expected']['fsn']['fsnum']}" in out


def test_text_report_of_a_meta_regression(bcg_mods: tuple[dict[str, Any], Path]) -> None:
    _, path = bcg_mods
    code, out, err = run([str(path), "--measure", "RR", "--mods", "ablat,year", "--test", "knha"])
    assert code == 0, err
    assert "Mixed-Effects Model (k = 13; tau^2 estimator: REML)" in out
    assert "Test of Moderators (coefficients 2:3):" in out
    assert "F(df1 = 2, df2 = 10) = " in out
    report = run_json([str(path), "--measure", "RR", "--mods", "ablat,year", "--test", "knha"])
    fit = report["blocks"]["fit"]
    assert "R^2 (amount of heterogeneity accounted for):" in out and f"{fit['R2']:.2f}%" in out
    for name, beta in zip(fit["coef_names"], fit["beta"], strict=True):
        assert any(line.split()[:2] == [name, f"{beta:.4f}"] for line in out.splitlines()), name
    assert "tval" in out and "zval" not in out.split("Model Results")[1].split("---")[0]


def test_text_report_lists_omitted_rows_with_reasons(tmp_path: Path) -> None:
    case = load_case("hackshaw1998-GEN-REML")
    rows = [dict(r) for r in case["rows"]]
    rows[2]["vi"] = ""
    path = write_csv(tmp_path / "missing.csv", case["columns"], rows)
    code, out, err = run([str(path), "--measure", "GEN"])
    assert code == 0, err
    assert f"row 3 ({rows[2]['study']}): missing value in vi" in out
    assert f"(k = {len(rows) - 1}; " in out


# ---------------------------------------------------------------------------------------------
# errors


def test_unreadable_file_exits_2(tmp_path: Path) -> None:
    code, out, err = run([str(tmp_path / "absent.csv"), "--measure", "RR"])
    assert (code, out) == (2, "")
    assert "absent.csv" in err and "no such file" in err
    assert len(err.strip().splitlines()) == 1


def test_empty_file_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("", encoding="utf-8")
    code, _, err = run([str(path), "--measure", "RR"])
    assert code == 2 and "empty" in err


def test_unknown_measure_exits_2(bcg: tuple[dict[str, Any], Path]) -> None:
    _, path = bcg
    code, out, err = run([str(path), "--measure", "XYZ"])
    assert (code, out) == (2, "")
    assert "--measure" in err and "XYZ" in err


def test_missing_column_exits_2(tmp_path: Path) -> None:
    case = load_case("bcg-RR-REML")
    path = write_csv(tmp_path / "nodi.csv", ["study", "ai", "bi", "ci"], case["rows"])
    code, out, err = run([str(path), "--measure", "RR"])
    assert (code, out) == (2, "")
    assert "'di'" in err and "needs column" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_moderator_column_exits_2(bcg: tuple[dict[str, Any], Path]) -> None:
    _, path = bcg
    code, _, err = run([str(path), "--measure", "RR", "--mods", "latitude"])
    assert code == 2 and "'latitude'" in err


def test_text_in_a_numeric_column_exits_2(tmp_path: Path) -> None:
    case = load_case("bcg-RR-REML")
    rows = [dict(r) for r in case["rows"]]
    rows[4]["ai"] = "twelve"
    path = write_csv(tmp_path / "text.csv", case["columns"], rows)
    code, out, err = run([str(path), "--measure", "RR"])
    assert (code, out) == (2, "")
    assert f"row 5 ({rows[4]['study']}), column ai: 'twelve' is not a number" in err


def test_values_the_engine_rejects_exit_2(tmp_path: Path) -> None:
    case = load_case("hackshaw1998-GEN-REML")
    rows = [dict(r) for r in case["rows"]]
    rows[1]["vi"] = -0.5
    rows[3]["vi"] = -0.1
    path = write_csv(tmp_path / "negative.csv", case["columns"], rows)
    code, out, err = run([str(path), "--measure", "GEN"])
    assert (code, out) == (2, "")
    assert "[invalid_input]" in err
    assert f"row 2 ({rows[1]['study']}), column vi" in err and f"row 4 ({rows[3]['study']}), column vi" in err
    assert len(err.strip().splitlines()) == 1


def test_bad_level_exits_2(bcg: tuple[dict[str, Any], Path]) -> None:
    _, path = bcg
    code, _, err = run([str(path), "--measure", "RR", "--level", "120"])
    assert code == 2 and "--level" in err


def test_model_the_engine_cannot_fit_exits_1(tmp_path: Path) -> None:
    case = load_case("bcg-RR-REML-mods")
    rows = [{**r, "latitude": r["ablat"]} for r in case["rows"]]
    path = write_csv(tmp_path / "aliased.csv", [*case["columns"], "latitude"], rows)
    code, out, err = run([str(path), "--measure", "RR", "--mods", "ablat,latitude"])
    assert code == 1
    assert "[singular_model]" in err and "latitude" in err
    assert "Rows left out" not in out and "Notes:" in out  # the report still shows why


def test_help_exits_0(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["--help"]) == 0
    assert "--measure" in capsys.readouterr().out


def test_subgroups_in_json_and_text(tmp_path: Path) -> None:
    case = load_case("bcg-RR-REML")
    levels = ["random", "alternate", "systematic"]
    rows = [{**r, "alloc": levels[i % len(levels)]} for i, r in enumerate(case["rows"])]
    path = write_csv(tmp_path / "alloc.csv", [*case["columns"], "alloc"], rows)
    report = run_json([str(path), "--measure", "RR", "--subgroup", "alloc"])
    assert report == json.loads(
        json.dumps(run_analysis(AnalysisSpec(measure="RR", subgroup="alloc"), rows).to_dict())
    )
    groups = report["blocks"]["subgroups"]["groups"]
    assert sorted(g["level"] for g in groups) == sorted(levels)
    code, out, err = run([str(path), "--measure", "RR", "--subgroup", "alloc"])
    assert code == 0, err
    section = out.split("Subgroups by alloc:")[1]
    for g in groups:
        assert any(
            line.split()[:3] == [g["level"], str(g["k"]), f"{g['beta']:.4f}"] for line in section.splitlines()
        )
    between = report["blocks"]["subgroups"]["between_test"]
    assert f"Q(df = {between['df']}) = {between['Q']:.4f}" in section


def test_no_sensitivity_and_no_bias_leave_those_blocks_out(bcg: tuple[dict[str, Any], Path]) -> None:
    _, path = bcg
    sensitivity = {"leave1out", "cumulative", "influence"}
    bias = {"egger", "rank", "fsn", "trimfill"}
    full = set(run_json([str(path), "--measure", "RR"])["blocks"])
    assert sensitivity | bias <= full
    assert not (sensitivity & set(run_json([str(path), "--measure", "RR", "--no-sensitivity"])["blocks"]))
    assert not (bias & set(run_json([str(path), "--measure", "RR", "--no-bias"])["blocks"]))
    code, out, _ = run([str(path), "--measure", "RR", "--no-sensitivity", "--no-bias"])
    assert code == 0
    assert "Leave-One-Out" not in out and "Trim-and-Fill" not in out and "Model Results" in out


# ---------------------------------------------------------------------------------------------
# dependent effects


@pytest.fixture
def assink(tmp_path: Path) -> tuple[dict[str, Any], Path]:
    case = load_case("assink2016-GEN-ML-REML-mods")
    return case, write_csv(tmp_path / "assink.csv", case["columns"], case["rows"])


def test_multilevel_model_from_the_command_line_matches_metafor(assink: tuple[dict[str, Any], Path]) -> None:
    case, path = assink
    report = run_json(
        [str(path), "--measure", "GEN", "--dependence", "multilevel", "--mods", "pubstatus,year"]
    )
    for block in ("multilevel_fit", "robust_cr2"):
        for field in ("beta", "se", "pval"):
            assert_matches(report["blocks"][block][field], case["expected"][block][field], f"{block}.{field}")
    code, text, err = run(
        [str(path), "--measure", "GEN", "--dependence", "multilevel", "--mods", "pubstatus,year"]
    )
    assert code == 0, err
    assert "effects in the model: 100 in 17 studies" in text
    assert "sigma^2.1  study" in text and "Cluster-robust tests (CR2" in text
    assert "HTZ test of moderators: F(df1 = 2, df2 = 2.31)" in text


def test_by_default_several_rows_per_study_are_pooled_with_che(assink: tuple[dict[str, Any], Path]) -> None:
    _, path = assink
    report = run_json([str(path), "--measure", "GEN", "--rho", "0.4"])
    assert report["blocks"]["summary"]["dependence"] == "che"
    assert report["blocks"]["multilevel_fit_vcalc"]["rho"] == 0.4


def test_independent_rows_are_refused_when_studies_repeat(assink: tuple[dict[str, Any], Path]) -> None:
    _, path = assink
    code, _, err = run([str(path), "--measure", "GEN", "--dependence", "none", "--no-robust"])
    assert code == 1
    assert "[several_rows_per_study]" in err and "choose aggregate, multilevel or che" in err
