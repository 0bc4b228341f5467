"""run_analysis and AnalysisSpec: blocks, notes, omitted rows, moderators, subgroups, serialisation."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from tests.metaanalysis.conftest import CASES_DIR, load_case
from workers.metaanalysis import ENGINE_VERSION
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis
from workers.metaanalysis.errors import InvalidInputError
from workers.metaanalysis.rma import rma


@pytest.fixture(scope="module")
def bcg_rows() -> list[dict]:
    case = load_case(CASES_DIR / "bcg-RR-REML.json")
    ablat = [44, 55, 42, 52, 13, 44, 19, 13, 27, 42, 18, 33, 33]
    alloc = [
        "random",
        "random",
        "random",
        "random",
        "alternate",
        "alternate",
        "random",
        "random",
        "systematic",
        "systematic",
        "systematic",
        "systematic",
        "systematic",
    ]
    rows = []
    for r, a, al in zip(case["rows"], ablat, alloc, strict=True):
        rows.append({**r, "ablat": a, "alloc": al, "year": 2000 - a})
    return rows


def _notes(report: dict, block: str) -> list[dict]:
    return [n for n in report["notes"] if n["block"] == block]


def test_spec_validation() -> None:
    for bad in (
        {"measure": "XYZ"},
        {"measure": "OR", "method": "BAD"},
        {"measure": "OR", "test": "F"},
        {"measure": "OR", "level": 0},
        {"measure": "OR", "level": 100},
        {"measure": "OR", "level": True},
        {"measure": "OR", "mods": "ablat"},
        {"measure": "OR", "mods": ("a", "a")},
        {"measure": "OR", "subgroup": ""},
        {"measure": "OR", "sensitivity": "yes"},
    ):
        with pytest.raises(InvalidInputError):
            AnalysisSpec(**bad)


def test_spec_hash_is_stable_and_canonical() -> None:
    a = AnalysisSpec(measure="RR", level=95, mods=["ablat", "year"])  # type: ignore[arg-type]
    b = AnalysisSpec(measure="RR", level=95.0, mods=("ablat", "year"))
    assert a == b and a.spec_hash() == b.spec_hash()
    assert len(a.spec_hash()) == 64
    assert a.spec_hash() != AnalysisSpec(measure="RR", mods=("year", "ablat")).spec_hash()
    assert AnalysisSpec.from_dict(a.to_dict()) == a
    # the hash is of the canonical JSON, so it is reproducible outside the engine
    import hashlib

    canon = json.dumps(a.to_dict(), sort_keys=True, separators=(",", ":"))
    assert a.spec_hash() == hashlib.sha256(canon.encode()).hexdigest()
    with pytest.raises(InvalidInputError):
        AnalysisSpec.from_dict({"measure": "RR", "colour": "red"})


def test_report_structure(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="RR"), bcg_rows).to_dict()
    assert set(report) == {"engine_version", "spec", "k", "blocks", "omitted", "notes"}
    assert report["engine_version"] == ENGINE_VERSION and report["k"] == 13
    expected = {
        "effect_sizes",
        "fit",
        "predict",
        "confint",
        "egger",
        "rank",
        "fsn",
        "trimfill",
        "leave1out",
        "cumulative",
        "influence",
        "mantel_haenszel",
        "funnel",
    }
    assert expected <= set(report["blocks"])
    assert "peto" not in report["blocks"]  # Peto's method is for odds ratios
    json.dumps(report, allow_nan=False)  # strictly JSON: no NaN anywhere
    assert report["blocks"]["leave1out"]["study"][0] == "Aronson"


def test_or_adds_peto_and_flags(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="OR", sensitivity=False, bias=False), bcg_rows).to_dict()
    assert {"mantel_haenszel", "peto"} <= set(report["blocks"])
    for block in ("leave1out", "egger", "trimfill"):
        assert block not in report["blocks"]


def test_meta_regression_blocks_absent_with_notes(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="RR", mods=("ablat",)), bcg_rows).to_dict()
    blocks = report["blocks"]
    assert blocks["fit"]["coef_names"] == ["intrcpt", "ablat"]
    for absent in ("predict", "leave1out", "cumulative", "trimfill", "funnel"):
        assert absent not in blocks
        assert _notes(report, absent), absent
    assert "influence" in blocks and "egger" in blocks


def test_categorical_moderator_is_dummy_coded_like_model_matrix(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="RR", mods=("alloc",)), bcg_rows).to_dict()
    fit = report["blocks"]["fit"]
    assert fit["coef_names"] == ["intrcpt", "allocrandom", "allocsystematic"]
    es = report["blocks"]["effect_sizes"]
    lab = [r["alloc"] for r in bcg_rows]
    X = np.column_stack([[a == "random" for a in lab], [a == "systematic" for a in lab]]).astype(float)
    ref = rma(es["yi"], es["vi"], X=X)
    np.testing.assert_allclose(fit["beta"], ref.beta, rtol=1e-12)
    assert fit["QMdf"] == [2, None]


def test_missing_moderator_rows_are_omitted_with_reason(bcg_rows) -> None:
    rows = [dict(r) for r in bcg_rows]
    rows[2]["ablat"] = None
    rows[5]["ablat"] = "NA"
    report = run_analysis(AnalysisSpec(measure="RR", mods=("ablat",)), rows).to_dict()
    assert report["k"] == 11
    om = {o["row"]: o for o in report["omitted"]}
    assert set(om) == {2, 5} and om[2]["code"] == "missing_moderator" and om[2]["study"] == "Rosenthal et al"
    assert report["blocks"]["effect_sizes"]["yi"][2] is not None  # the effect size itself is still listed


def test_unknown_moderator_column_is_an_input_error(bcg_rows) -> None:
    with pytest.raises(InvalidInputError):
        run_analysis(AnalysisSpec(measure="RR", mods=("latitude",)), bcg_rows)


def test_zero_cells_get_metafor_correction_and_missing_rows_are_listed() -> None:
    rows = [
        {"study": "A", "ai": 0, "bi": 50, "ci": 4, "di": 46},
        {"study": "B", "ai": 2, "bi": 48, "ci": 0, "di": 50},
        {"study": "C", "ai": 0, "bi": 30, "ci": 0, "di": 30},
        {"study": "D", "ai": 5, "bi": 45, "ci": 9, "di": 41},
        {"study": "E", "ai": None, "bi": 45, "ci": 9, "di": 41},
        {"study": "F", "ai": 3, "bi": 60, "ci": 8, "di": 55},
    ]
    report = run_analysis(AnalysisSpec(measure="OR"), rows).to_dict()
    es = report["blocks"]["effect_sizes"]
    a, b, c, d = 0.5, 50.5, 4.5, 46.5
    assert es["yi"][0] == pytest.approx(math.log(a * d / (b * c)))
    assert es["vi"][0] == pytest.approx(1 / a + 1 / b + 1 / c + 1 / d)
    assert es["yi"][4] is None
    assert [o["row"] for o in report["omitted"]] == [4]
    assert report["k"] == 5
    assert "mantel_haenszel" in report["blocks"] and "fit" in report["blocks"]


def test_model_failure_keeps_effect_sizes_and_explains() -> None:
    rows = [{"study": "A", "yi": 0.2, "vi": 0.01, "x": 1.0}, {"study": "B", "yi": 0.4, "vi": 0.02, "x": 2.0}]
    report = run_analysis(AnalysisSpec(measure="GEN", mods=("x",)), rows).to_dict()
    assert "fit" not in report["blocks"] and "effect_sizes" in report["blocks"]
    assert _notes(report, "fit")[0]["code"] == "too_few_studies"


def test_single_study() -> None:
    rows = [{"study": "only", "yi": 0.3, "vi": 0.04}]
    report = run_analysis(AnalysisSpec(measure="GEN", test="knha"), rows).to_dict()
    assert report["blocks"]["fit"]["tau2"] == 0.0
    assert report["blocks"]["fit"]["test"] == "z"
    for absent in ("confint", "leave1out", "influence", "rank", "egger", "trimfill"):
        assert absent not in report["blocks"]
        assert _notes(report, absent), absent


def test_ee_model_notes_the_absent_confint(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="RR", method="EE"), bcg_rows).to_dict()
    assert "confint" not in report["blocks"]
    assert _notes(report, "confint")[0]["code"] == "not_applicable"
    assert report["blocks"]["leave1out"]["tau2"] == []  # metafor drops tau² for EE models
    assert report["blocks"]["predict"]["pi_lb"] is None


def test_cumulative_order_column(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="RR", cumulative_order="year"), bcg_rows).to_dict()
    cum = report["blocks"]["cumulative"]
    years = [r["year"] for r in bcg_rows]
    assert cum["study"][0] == bcg_rows[int(np.argmin(years))]["study"]
    assert len(cum["estimate"]) == 13


def test_subgroups(bcg_rows) -> None:
    report = run_analysis(AnalysisSpec(measure="RR", subgroup="alloc"), bcg_rows).to_dict()
    sg = report["blocks"]["subgroups"]
    assert sg["levels"] == ["alternate", "random", "systematic"]
    assert [g["k"] for g in sg["groups"]] == [2, 6, 5]
    es = report["blocks"]["effect_sizes"]
    yi, vi = np.array(es["yi"]), np.array(es["vi"])
    lab = np.array([r["alloc"] for r in bcg_rows])
    fits = [rma(yi[lab == lev], vi[lab == lev]) for lev in sg["levels"]]
    for g, f in zip(sg["groups"], fits, strict=True):
        assert g["beta"] == pytest.approx(f.beta[0], rel=1e-10)
    b = np.array([f.beta[0] for f in fits])
    w = 1 / np.array([f.se[0] for f in fits]) ** 2
    q = np.sum(w * (b - np.sum(w * b) / np.sum(w)) ** 2)
    assert sg["between_test"]["Q"] == pytest.approx(q, rel=1e-10) and sg["between_test"]["df"] == 2
    X = np.column_stack([(lab == "random"), (lab == "systematic")]).astype(float)
    assert sg["moderator_test"]["QM"] == pytest.approx(rma(yi, vi, X=X).QM, rel=1e-10)


def test_run_analysis_rejects_bad_spec_and_bad_data(bcg_rows) -> None:
    with pytest.raises(InvalidInputError):
        run_analysis({"measure": "RR"}, bcg_rows)  # type: ignore[arg-type]
    rows = [dict(r) for r in bcg_rows]
    rows[0]["ai"] = -1
    with pytest.raises(InvalidInputError):
        run_analysis(AnalysisSpec(measure="RR"), rows)


def test_singular_moderators_leave_the_model_out_with_the_columns_named(bcg_rows) -> None:
    rows = [{**r, "ablat2": 2 * r["ablat"]} for r in bcg_rows]
    report = run_analysis(AnalysisSpec(measure="RR", mods=("ablat", "ablat2")), rows).to_dict()
    assert "fit" not in report["blocks"]
    note = _notes(report, "fit")[0]
    assert note["code"] == "singular_model" and "ablat2" in note["message"]


def test_report_is_deterministic(bcg_rows) -> None:
    spec = AnalysisSpec(measure="RR", subgroup="alloc", cumulative_order="year")
    a = json.dumps(run_analysis(spec, bcg_rows).to_dict(), sort_keys=True)
    b = json.dumps(run_analysis(spec, bcg_rows).to_dict(), sort_keys=True)
    assert a == b


def test_tables_given_with_group_sizes(bcg_rows) -> None:
    rows = [
        {
            "study": r["study"],
            "ai": r["ai"],
            "n1i": r["ai"] + r["bi"],
            "ci": r["ci"],
            "n2i": r["ci"] + r["di"],
        }
        for r in bcg_rows
    ]
    a = run_analysis(AnalysisSpec(measure="OR", sensitivity=False, bias=False), rows).to_dict()["blocks"]
    b = run_analysis(AnalysisSpec(measure="OR", sensitivity=False, bias=False), bcg_rows).to_dict()["blocks"]
    assert a["mantel_haenszel"]["beta"] == b["mantel_haenszel"]["beta"]
    assert a["peto"]["beta"] == b["peto"]["beta"]
    assert a["fit"]["beta"] == b["fit"]["beta"]
