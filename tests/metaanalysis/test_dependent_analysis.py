"""run_analysis on dependent data: which rows enter, which dependence model, and what the report says.

Every number is checked against the engine's model functions called directly on the rows the
specification should select (those are checked against metafor and a dense oracle elsewhere), so
these tests pin the pipeline: selection, the choice of model, the blocks and the headline.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from workers.metaanalysis.analysis import run_analysis
from workers.metaanalysis.errors import InvalidInputError
from workers.metaanalysis.multilevel.fit import rma_mv
from workers.metaanalysis.multilevel.robust import robust
from workers.metaanalysis.rma import rma
from workers.metaanalysis.spec import RHO_SENSITIVITY, AnalysisSpec

TIMEPOINTS = ("post", "6m", "12m")


def trial_rows(seed: int = 0, n_studies: int = 12) -> list[dict[str, object]]:
    """Studies reporting one or two instruments at one to three time points (GEN: yi, vi)."""
    rng = np.random.default_rng(seed)
    rows = []
    for j in range(n_studies):
        instruments = ["BDI", "PHQ9"][: 1 + (j % 2)]
        times = TIMEPOINTS[: 1 + (j % 3)]
        effect = rng.normal(0.4, 0.2)
        for t in times:
            for ins in instruments:
                vi = float(rng.uniform(0.02, 0.12))
                rows.append(
                    {
                        "study": f"Trial {j:02d}",
                        "timepoint": t,
                        "instrument": ins,
                        "yi": float(effect + rng.normal(0, math.sqrt(vi))),
                        "vi": vi,
                        "year": 2000 + j,
                    }
                )
    return rows


def run(rows, **spec):
    return run_analysis(AnalysisSpec(measure="GEN", **spec), rows).to_dict()


def direct_che(rows, rho=0.6, method="REML"):
    yi = np.array([r["yi"] for r in rows])
    vi = np.array([r["vi"] for r in rows])
    return rma_mv(yi, vi, [r["study"] for r in rows], method=method, rho=rho)


def test_one_row_per_study_keeps_the_one_level_model():
    rows = [r for r in trial_rows() if r["timepoint"] == "post" and r["instrument"] == "BDI"]
    report = run(rows)
    blocks = report["blocks"]
    assert blocks["model"]["dependence"] == "none"
    assert "fit" in blocks and "multilevel_fit" not in blocks and "robust_cr2" not in blocks
    fit = rma(np.array([r["yi"] for r in rows]), np.array([r["vi"] for r in rows]), method="REML")
    summary = blocks["summary"]
    assert summary["inference"] == "model"
    assert summary["estimate"] == pytest.approx(fit.beta[0])
    assert summary["tau2"] == pytest.approx(fit.tau2)
    assert summary["k"] == summary["n_studies"] == len(rows)


def test_several_rows_per_study_default_to_che_with_cr2():
    rows = trial_rows()
    report = run(rows)
    blocks = report["blocks"]
    assert blocks["model"]["dependence"] == "che"
    assert "more than one row" in blocks["model"]["reason"]
    fit = direct_che(rows)
    cr2 = robust(fit, "CR2")
    summary = blocks["summary"]
    assert summary["inference"] == "CR2" and summary["inference_block"] == "robust_cr2_vcalc"
    assert summary["estimate"] == pytest.approx(cr2.beta[0], rel=1e-10)
    assert summary["ci_lb"] == pytest.approx(cr2.ci_lb[0], rel=1e-10)
    assert summary["dfs"] == pytest.approx(cr2.dfs[0], rel=1e-10)
    assert summary["sigma2"] == pytest.approx(fit.sigma2.tolist(), rel=1e-10)
    assert summary["k"] == len(rows) and summary["n_studies"] == 12
    # without robust tests the headline is the model's own
    plain = run(rows, robust=False)["blocks"]["summary"]
    assert plain["inference"] == "model" and plain["se"] == pytest.approx(fit.se[0], rel=1e-10)


def test_a_time_point_selects_its_rows_and_reports_the_others():
    rows = trial_rows()
    report = run(rows, timepoint="6m")
    chosen = [r for r in rows if r["timepoint"] == "6m"]
    assert report["k"] == len(chosen)
    not_selected = [o for o in report["omitted"] if o["code"] == "not_selected"]
    assert len(not_selected) == len(rows) - len(chosen)
    assert all("time point 6m only" in o["reason"] for o in not_selected)
    # effect sizes are still listed for every row
    assert len(report["blocks"]["effect_sizes"]["yi"]) == len(rows)
    assert report["blocks"]["summary"]["estimate"] == pytest.approx(robust(direct_che(chosen), "CR2").beta[0])


def test_latest_keeps_each_studys_last_time_point():
    rows = trial_rows()
    report = run(rows, timepoint="latest", timepoints=TIMEPOINTS)
    latest = {}
    for r in rows:
        latest[r["study"]] = max(latest.get(r["study"], -1), TIMEPOINTS.index(r["timepoint"]))
    chosen = [r for r in rows if TIMEPOINTS.index(r["timepoint"]) == latest[r["study"]]]
    assert report["k"] == len(chosen)
    reasons = {o["reason"] for o in report["omitted"]}
    assert any("earlier time point" in why for why in reasons)


def test_preferred_instruments_keep_one_instrument_per_study():
    rows = trial_rows()
    report = run(rows, timepoint="post", instruments=("PHQ9", "BDI"))
    chosen = [r for r in rows if r["timepoint"] == "post"]
    by_study = {}
    for r in chosen:
        by_study.setdefault(r["study"], set()).add(r["instrument"])
    kept = [r for r in chosen if r["instrument"] == ("PHQ9" if "PHQ9" in by_study[r["study"]] else "BDI")]
    assert report["k"] == len(kept) == len(by_study)
    # one row per study after the selection: the one-level model
    assert report["blocks"]["model"]["dependence"] == "none"
    assert any("prefers" in o["reason"] for o in report["omitted"])


def test_none_refuses_several_rows_per_study_without_robust_tests():
    report = run(trial_rows(), dependence="none", robust=False)
    assert "summary" not in report["blocks"] and "fit" not in report["blocks"]
    note = next(n for n in report["notes"] if n["code"] == "several_rows_per_study")
    assert "choose aggregate, multilevel or che" in note["message"]


def test_none_with_robust_tests_reports_the_working_independence_model():
    rows = trial_rows()
    blocks = run(rows, dependence="none")["blocks"]
    assert {"fit", "robust_cr1", "robust_cr2"} <= set(blocks)
    assert blocks["summary"]["inference_block"] == "robust_cr2"
    assert "mantel_haenszel" not in blocks


def test_multilevel_blocks_and_study_level_diagnostics():
    rows = trial_rows(3)
    blocks = run(rows, dependence="multilevel")["blocks"]
    assert {"multilevel_fit", "multilevel_confint", "predict", "robust_cr1", "robust_cr2"} <= set(blocks)
    assert "rho_sensitivity" not in blocks  # rho plays no part in the multilevel model
    loo = blocks["leave1out_study"]
    assert loo["study"] == list(dict.fromkeys(r["study"] for r in rows))
    # leaving out a study removes all its rows
    first = loo["study"][0]
    rest = [r for r in rows if r["study"] != first]
    refit = robust(direct_che(rest, rho=0.0), "CR2")
    assert loo["k"][0] == len(rest)
    assert loo["estimate"][0] == pytest.approx(refit.beta[0], rel=1e-9)
    assert loo["ci_ub"][0] == pytest.approx(refit.ci_ub[0], rel=1e-9)
    egger = blocks["egger_multilevel"]
    yi = np.array([r["yi"] for r in rows])
    vi = np.array([r["vi"] for r in rows])
    X = np.column_stack([np.ones(len(rows)), np.sqrt(vi)])
    ref = robust(rma_mv(yi, vi, [r["study"] for r in rows], X=X), "CR2")
    assert egger["slope"][0] == pytest.approx(ref.beta[1], rel=1e-9)
    assert egger["pval"][0] == pytest.approx(ref.pval[1], rel=1e-9)
    assert egger["limit_estimate"][0] == pytest.approx(ref.beta[0], rel=1e-9)
    agg = blocks["aggregated"]
    assert sum(agg["ki"]) == len(rows)


def test_aggregated_members_are_the_uploaded_row_numbers():
    rows = trial_rows(3)
    report = run(rows, timepoint="12m")
    agg = report["blocks"]["aggregated"]
    es = report["blocks"]["effect_sizes"]
    for study, members in zip(agg["study"], agg["members"], strict=True):
        assert members, study
        for i in members:
            assert rows[i]["study"] == study and rows[i]["timepoint"] == "12m"
            assert es["timepoint"][i] == "12m" and es["instrument"][i] == rows[i]["instrument"]


def test_che_reports_the_estimate_at_each_rho():
    rows = trial_rows(4)
    blocks = run(rows, dependence="che", rho=0.4)["blocks"]
    sens = blocks["rho_sensitivity"]
    assert sens["rho"] == list(RHO_SENSITIVITY)
    for rho, est in zip(sens["rho"], sens["estimate"], strict=True):
        assert est == pytest.approx(robust(direct_che(rows, rho=rho), "CR2").beta[0], rel=1e-9)
    assert blocks["summary"]["rho"] == 0.4
    assert blocks["summary"]["estimate"] == pytest.approx(sens["estimate"][1], rel=1e-12)


def test_aggregate_pools_each_study_then_runs_the_one_level_model():
    rows = trial_rows(5)
    report = run(rows, dependence="aggregate", rho=0.5)
    blocks = report["blocks"]
    agg = blocks["aggregated"]
    fit = rma(np.array(agg["yi"]), np.array(agg["vi"]), method="REML")
    assert blocks["aggregated_fit"]["beta"][0] == pytest.approx(fit.beta[0])
    assert blocks["summary"]["fit_block"] == "aggregated_fit"
    assert blocks["summary"]["n_studies"] == len(agg["study"]) == 12
    # the one-level diagnostics run on the studies
    assert blocks["leave1out"]["study"] == agg["study"]


def test_aggregate_refuses_a_moderator_that_varies_within_a_study():
    rows = trial_rows(6)
    for i, r in enumerate(rows):
        r["dose"] = float(i)
    report = run(rows, dependence="aggregate", mods=("dose",))
    assert "summary" not in report["blocks"]
    note = next(n for n in report["notes"] if n["code"] == "varies_within_study")
    assert "dose varies within study" in note["message"]


def test_study_level_moderator_in_a_che_model():
    rows = trial_rows(7)
    blocks = run(rows, mods=("year",))["blocks"]
    fit = blocks["multilevel_fit_vcalc"]
    assert fit["coef_names"] == ["intrcpt", "year"]
    assert blocks["robust_cr2_vcalc"]["QMdf"][0] == 1
    assert "predict_vcalc" not in blocks


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dependence": "random"}, "unknown dependence model"),
        ({"rho": 1.0}, "rho must be a correlation"),
        ({"rho": "0.6"}, "rho must be a correlation"),
        ({"dependence": "che", "method": "DL"}, "use ML or REML"),
        ({"dependence": "multilevel", "test": "knha"}, "z or t test"),
        ({"timepoint": "latest"}, "needs the time points in order"),
        ({"instruments": "BDI"}, "must be a list"),
        ({"robust": "yes"}, "true or false"),
    ],
)
def test_bad_dependence_settings_are_refused(options, message):
    with pytest.raises(InvalidInputError, match=message):
        AnalysisSpec(measure="GEN", **options)


def test_spec_round_trip_keeps_the_dependence_settings():
    spec = AnalysisSpec(
        measure="SMD",
        dependence="che",
        rho=0.8,
        robust=False,
        timepoint="latest",
        timepoints=TIMEPOINTS,
        instruments=("PHQ9",),
    )
    again = AnalysisSpec.from_dict(spec.to_dict())
    assert again == spec
    assert again.spec_hash() == spec.spec_hash()


def test_mantel_haenszel_pools_only_the_selected_rows():
    rows = []
    for j, (a, c) in enumerate(((12, 20), (8, 15), (15, 22), (9, 18))):
        for t, shift in (("post", 0), ("6m", 6)):
            rows.append({"study": f"T{j}", "timepoint": t, "ai": a + shift, "n1i": 50, "ci": c, "n2i": 50})
    post = [r for r in rows if r["timepoint"] == "post"]
    selected = run_analysis(AnalysisSpec(measure="OR", timepoint="post"), rows).to_dict()["blocks"]
    alone = run_analysis(AnalysisSpec(measure="OR"), post).to_dict()["blocks"]
    assert selected["mantel_haenszel"]["beta"] == pytest.approx(alone["mantel_haenszel"]["beta"], rel=1e-12)
    assert selected["peto"]["beta"] == pytest.approx(alone["peto"]["beta"], rel=1e-12)


#: metafor 4.x and clubSandwich (this platform's CI packages), on the rows of two reference cases:
#: predict(robust(rma.mv(yi, V, random = ~ 1 | study/es_id), cluster = study, clubSandwich = TRUE),
#: level = L) with V = vi (three-level) or vcalc(vi, study, obs = es_id, rho = 0.6) (CHE).
#: Columns: case, dependence, level, pred, ci.lb, ci.ub, pi.lb, pi.ub.
ROBUST_PREDICT_IN_R = [
    ("konstantopoulos2011-GEN-ML-REML", "multilevel", 95, 0.184713163673, -0.003825483517, 0.373251810863, -0.538410867159, 0.907837194505),
    ("assink2016-GEN-CHE-rho0.6", "che", 95, 0.367754885745, 0.160484372037, 0.575025399453, -0.689525361763, 1.425035133253),
    ("assink2016-GEN-CHE-rho0.6", "che", 90, 0.367754885745, None, None, -0.501225634598, 1.236735406088),
]  # fmt: skip


@pytest.mark.parametrize(
    ("case", "dependence", "level", "pred", "ci_lb", "ci_ub", "pi_lb", "pi_ub"), ROBUST_PREDICT_IN_R
)
def test_the_prediction_interval_follows_the_robust_inference_as_predict_robust_in_r(
    case: str, dependence: str, level: float, pred: float, ci_lb: Any, ci_ub: Any, pi_lb: float, pi_ub: float
) -> None:
    """The headline's PI uses the CR2 SE and t with the robust df, like the CI beside it (a
    model-based PI with z beside a CR2 CI mixes two inferences)."""
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "cases" / f"{case}.json").read_text())
    rows = [
        dict(zip(data["columns"], r, strict=True)) if not isinstance(r, dict) else r for r in data["rows"]
    ]
    spec = AnalysisSpec(measure="GEN", dependence=dependence, level=level, sensitivity=False, bias=False)
    summary = run_analysis(spec, rows).to_dict()["blocks"]["summary"]
    assert summary["inference"] == "CR2" and summary["pi_inference"] == "CR2"
    expected = {"estimate": pred, "ci_lb": ci_lb, "ci_ub": ci_ub, "pi_lb": pi_lb, "pi_ub": pi_ub}
    for key, value in expected.items():
        if value is not None:
            assert summary[key] == pytest.approx(value, rel=1e-6), key
