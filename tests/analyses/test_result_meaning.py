"""A result means what it says: never "done" without an estimate, settings the data cannot support
refused when saved, releases that never carry an empty result, one result per distinct input.

Each test first reproduces the case a steering group met (PostgreSQL; the recompute runs in the
test's process through the worker's own service)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db.models import F

from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.analyses.releases import release_publish
from apps.analyses.selectors import analysis_results_shown
from apps.analyses.services import analysis_recompute, analysis_update
from apps.audit.models import AuditEvent
from apps.consortium.models import Outcome
from tests.conftest import SMD_ROWS, api_client_for, dependent_trial_rows, make_unfittable, store_rows

pytestmark = pytest.mark.django_db


def _dependent(cast: dict[str, Any]) -> Analysis:
    """The first outcome, with trials that report several instruments and time points, and its
    default analysis (every time point, so that studies have several rows) computed."""
    outcome = cast["outcome"]
    Outcome.objects.filter(pk=outcome.pk).update(timepoints=["post", "6m"], instruments=["PRFQ", "RFS"])
    store_rows(centre=cast["centre_a"], outcome=outcome, rows=dependent_trial_rows(), submit=True)
    analysis = Analysis.objects.get(outcome=outcome, is_default=True)
    Analysis.objects.filter(pk=analysis.pk).update(timepoint="")
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done" and result.pooled["dependence"] == "che"
    return Analysis.objects.get(pk=analysis.pk)


def test_a_model_the_engine_refuses_is_failed_with_its_reason_and_the_last_estimate_stays(
    cast: dict[str, Any],
) -> None:
    analysis = _dependent(cast)
    good = analysis.current_result
    # settings saved before the data had several effects per study (the service refuses them now)
    Analysis.objects.filter(pk=analysis.pk).update(method="PM", requested_seq=F("requested_seq") + 1)
    failed = analysis_recompute(analysis_id=analysis.pk)
    assert failed is not None and failed.status == AnalysisResult.Status.FAILED
    assert failed.pooled is None and failed.error["code"] == "no_estimate"
    assert "multilevel models use ML or REML, not 'PM'" in failed.error["message"]
    assert failed.blocks["effect_sizes"]["yi"]  # what happened to each row is kept
    # the pages show the last estimate, with the failure beside it
    analysis.refresh_from_db()
    shown, beside = analysis_results_shown(user=cast["users"]["steering"], analysis=analysis)
    assert shown == good and beside == failed
    body = api_client_for(cast, "steering").get(f"/api/v1/analyses/{analysis.pk}/").json()
    assert body["state"] == "failed" and body["current_result"]["status"] == "failed"
    result = api_client_for(cast, "steering").get(f"/api/v1/results/{failed.pk}/").json()
    assert result["status"] == "failed" and "ML or REML" in result["error"]["message"]


def test_rows_all_left_out_give_a_failed_result_naming_why(cast: dict[str, Any]) -> None:
    outcome = cast["outcome"]
    Outcome.objects.filter(pk=outcome.pk).update(timepoints=["post", "6m"])
    analysis = Analysis.objects.get(outcome=outcome, is_default=True)
    Analysis.objects.filter(pk=analysis.pk).update(timepoint="post")
    store_rows(centre=cast["centre_a"], outcome=outcome, rows=SMD_ROWS, submit=True)  # no timepoint
    failed = analysis_recompute(analysis_id=analysis.pk)
    assert failed is not None and failed.status == "failed" and failed.k == 0
    n = len(SMD_ROWS)
    assert failed.error["message"] == (
        f"No row enters the model; all {n} rows are left out "
        f"({n} rows: no time point: the analysis uses time point post only)."
    )


def test_an_outcome_without_data_waits_for_data(cast: dict[str, Any]) -> None:
    created = api_client_for(cast, "steering").post(
        "/api/v1/outcomes/",
        {"code": "sleep", "name": "Infant sleep", "measure": "SMD", "direction": "higher"},
        format="json",
    )
    assert created.status_code == 201, created.content
    analysis = Analysis.objects.get(outcome__code="sleep", is_default=True)
    empty = analysis_recompute(analysis_id=analysis.pk)
    assert empty is not None and empty.status == AnalysisResult.Status.EMPTY
    assert empty.error == {
        "code": "no_data",
        "message": "No centre has submitted data for this outcome yet: waiting for data.",
    }
    body = api_client_for(cast, "steering").get(f"/api/v1/analyses/{analysis.pk}/").json()
    assert body["state"] == "waiting"


def test_settings_the_data_cannot_support_are_refused_when_saved(cast: dict[str, Any]) -> None:
    analysis = _dependent(cast)
    requested, events = analysis.requested_seq, AuditEvent.objects.count()
    steering = api_client_for(cast, "steering")
    for method in ("PM", "DL"):
        refused = steering.patch(f"/api/v1/analyses/{analysis.pk}/", {"method": method}, format="json")
        assert refused.status_code == 400, refused.content
        message = refused.json()["method"][0]
        assert "studies have more than one row" in message and "ML or REML" in message
        assert "aggregate" in message  # the way to use it anyway
    refused = steering.patch(f"/api/v1/analyses/{analysis.pk}/", {"test": "knha"}, format="json")
    assert refused.status_code == 400 and "Knapp-Hartung" in refused.json()["test"][0]
    analysis.refresh_from_db()
    assert (analysis.method, analysis.test, analysis.requested_seq) == ("REML", "z", requested)
    assert AuditEvent.objects.count() == events


def test_a_selection_that_leaves_no_row_is_refused_naming_the_field(cast: dict[str, Any]) -> None:
    outcome = cast["outcome"]
    Outcome.objects.filter(pk=outcome.pk).update(timepoints=["post", "6m"])
    store_rows(centre=cast["centre_a"], outcome=outcome, rows=SMD_ROWS, submit=True)  # no timepoint
    analysis = Analysis.objects.get(outcome=outcome, is_default=True)
    refused = api_client_for(cast, "steering").patch(
        f"/api/v1/analyses/{analysis.pk}/", {"timepoint": "post"}, format="json"
    )
    assert refused.status_code == 400
    assert refused.json()["timepoint"][0].startswith("With these settings: No row enters the model;")


def test_pooling_each_study_first_lets_any_estimator_fit(cast: dict[str, Any]) -> None:
    analysis = _dependent(cast)
    updated = analysis_update(
        actor=cast["users"]["steering"],
        analysis=analysis,
        changes={"dependence": "aggregate", "method": "PM"},
        reason="one effect per study",
    )
    assert updated.method == "PM"
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done" and result.pooled["dependence"] == "aggregate"


def test_a_release_never_holds_a_result_without_an_estimate(cast: dict[str, Any]) -> None:
    steering = cast["users"]["steering"]
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    good = analysis_recompute(analysis_id=analysis.pk)
    first, _ = release_publish(actor=steering, name="2026.1")
    failed = make_unfittable(cast, analysis)
    second, skipped = release_publish(actor=steering, name="2026.2")
    entry = second.entries.get(analysis=analysis)
    # the analysis keeps its last released estimate, and the release says why
    assert entry.result == good and entry.result != failed
    assert entry.note.startswith(f"Its current result ({failed.pk}) has no estimate.")
    assert entry.note.endswith(f"The release keeps result {good.pk} from release 2026.1.")
    # the other outcome was never computed: left out, with the reason
    assert [(s.analysis.outcome.code, s.reason) for s in skipped] == [("dep", "It has no result yet.")]
    # a member still reads the estimate
    shown, beside = analysis_results_shown(user=cast["users"]["member_a"], analysis=analysis)
    assert shown == good and beside is None
    api = api_client_for(cast, "steering").get("/api/v1/releases/2026.2/").json()
    assert [r["note"] for r in api["results"] if r["analysis"] == analysis.pk] == [entry.note]
    assert first.entries.get(analysis=analysis).note == ""


def test_a_release_is_refused_when_results_changed_since_the_review(cast: dict[str, Any]) -> None:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    reviewed = analysis_recompute(analysis_id=analysis.pk)
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=SMD_ROWS[:4], submit=True)
    newer = analysis_recompute(analysis_id=analysis.pk)
    assert newer is not None and newer != reviewed
    other = Analysis.objects.get(outcome=cast["outcome2"]).pk
    with pytest.raises(ValidationError, match="changed since you reviewed"):
        release_publish(
            actor=cast["users"]["steering"], name="x", expected={analysis.pk: reviewed.pk, other: None}
        )
    assert not Release.objects.exists()


def test_a_recompute_of_unchanged_inputs_stores_no_new_result(cast: dict[str, Any]) -> None:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    first = analysis_recompute(analysis_id=analysis.pk)
    assert first is not None
    # a request counted before its data committed, or a change and its undoing: same input
    Analysis.objects.filter(pk=analysis.pk).update(requested_seq=F("requested_seq") + 2)
    assert analysis_recompute(analysis_id=analysis.pk) is None
    analysis.refresh_from_db()
    assert analysis.computed_seq == analysis.requested_seq and analysis.current_result == first
    assert analysis.results.count() == 1 and analysis.state == "current"
    # a name is no input of the computation: renaming stores nothing new either
    analysis_update(actor=None, analysis=analysis, changes={"name": "Main"}, reason="clearer")
    assert analysis_recompute(analysis_id=analysis.pk) is None
    assert analysis.results.count() == 1
    # a real change does
    analysis_update(actor=None, analysis=analysis, changes={"level": 90.0}, reason="protocol")
    second = analysis_recompute(analysis_id=analysis.pk)
    assert second is not None and second.input_fingerprint != first.input_fingerprint


def test_rows_no_analysis_uses_are_flagged_before_they_are_stored(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    outcome = cast["outcome"]
    Outcome.objects.filter(pk=outcome.pk).update(timepoints=["post", "6m"])
    Analysis.objects.filter(outcome=outcome, is_default=True).update(timepoint="post")
    rows = [dict(r) for r in SMD_ROWS]  # no timepoint column
    rows[0]["timepoint"] = "post"
    dm = api_client_for(cast, "dm_a")
    upload = {"centre": "alpha", "outcome": "rf", "rows": rows}
    preview = dm.post("/api/v1/datasets/upload/", {**upload, "preview": True}, format="json")
    assert preview.status_code == 200, preview.content
    unused = [w for w in preview.json()["warnings"] if w["code"] == "unused_rows"]
    n = len(rows) - 1
    assert len(unused) == 1 and unused[0]["column"] == "timepoint"
    message = unused[0]["message"]
    assert message.startswith(
        f"{n} rows that no analysis uses (no time point: the analysis uses time point post only)"
    )
    assert all(r["study"] in message for r in rows[1:]) and rows[0]["study"] not in message
    # the upload itself answers the same, and stores the rows (an analysis may come to read them)
    stored = dm.post("/api/v1/datasets/upload/", upload, format="json")
    assert stored.status_code == 201, stored.content
    assert [w["message"] for w in stored.json()["warnings"] if w["code"] == "unused_rows"] == [message]


def test_a_data_dictionary_edit_that_would_break_an_analysis_is_refused_naming_it(
    cast: dict[str, Any],
) -> None:
    outcome = cast["outcome"]
    Outcome.objects.filter(pk=outcome.pk).update(timepoints=["post", "6m"], instruments=["PRFQ", "RFS"])
    analysis = Analysis.objects.get(outcome=outcome, is_default=True)
    Analysis.objects.filter(pk=analysis.pk).update(timepoint="post", instruments=["RFS"])
    steering = api_client_for(cast, "steering")
    url = "/api/v1/outcomes/rf/"
    refused = steering.patch(url, {"timepoints": []}, format="json")
    assert refused.status_code == 400
    assert refused.json()["timepoints"] == [
        f"Analysis {analysis.name!r} of Reflective functioning uses time point 'post': change the analysis first."
    ]
    refused = steering.patch(url, {"instruments": ["PRFQ"]}, format="json")
    assert refused.status_code == 400 and "uses instrument 'RFS'" in refused.json()["instruments"][0]
    assert Outcome.objects.get(pk=outcome.pk).timepoints == ["post", "6m"]
    # "latest" needs the time points in order
    Analysis.objects.filter(pk=analysis.pk).update(timepoint="latest")
    refused = steering.patch(url, {"timepoints": []}, format="json")
    assert refused.status_code == 400 and "latest time point" in refused.json()["timepoints"][0]
    # adding is always fine
    assert steering.patch(url, {"timepoints": ["post", "6m", "12m"]}, format="json").status_code == 200


def test_an_instrument_where_higher_is_worse_is_sign_aligned_before_pooling(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    from workers.metaanalysis.analysis import AnalysisSpec, run_analysis

    outcome = cast["outcome"]  # higher is better
    steering = api_client_for(cast, "steering")
    scales = {
        "PRFQ": {"direction": "higher", "min": 1, "max": 7},
        "PROB": {"direction": "lower", "min": 0, "max": 60},
    }
    changed = steering.patch(
        "/api/v1/outcomes/rf/", {"instruments": ["PRFQ", "PROB"], "instrument_scales": scales}, format="json"
    )
    assert changed.status_code == 200, changed.content
    assert Outcome.objects.get(pk=outcome.pk).reversed_instruments() == ["PROB"]
    # the intervention helps on both: PRFQ up, problems (PROB) down
    rows = [
        {
            "study": "A 2019",
            "instrument": "PRFQ",
            "m1i": 4.9,
            "sd1i": 0.9,
            "n1i": 30,
            "m2i": 4.4,
            "sd2i": 0.9,
            "n2i": 30,
        },
        {
            "study": "B 2020",
            "instrument": "PROB",
            "m1i": 20.0,
            "sd1i": 8.0,
            "n1i": 40,
            "m2i": 26.0,
            "sd2i": 8.0,
            "n2i": 38,
        },
        {
            "study": "C 2021",
            "instrument": "PROB",
            "m1i": 18.0,
            "sd1i": 7.0,
            "n1i": 25,
            "m2i": 21.0,
            "sd2i": 7.5,
            "n2i": 27,
        },
    ]
    store_rows(centre=cast["centre_a"], outcome=outcome, rows=rows, submit=True)
    analysis = Analysis.objects.get(outcome=outcome, is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done"
    es = result.blocks["effect_sizes"]
    assert es["aligned"] == [False, True, True] and all(y > 0 for y in es["yi"])
    assert result.spec["reverse_instruments"] == ["PROB"]
    assert any(n["code"] == "sign_aligned" for n in result.notes)
    unaligned = run_analysis(AnalysisSpec(measure="SMD", sensitivity=False, bias=False), rows).to_dict()
    assert [round(y, 12) for y in unaligned["blocks"]["effect_sizes"]["yi"]] == [
        round(y * (-1 if a else 1), 12) for y, a in zip(es["yi"], es["aligned"], strict=True)
    ]
    assert result.pooled["estimate"] > unaligned["blocks"]["summary"]["estimate"]


def test_a_mean_outside_its_instruments_range_is_refused_naming_row_column_and_range(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    steering = api_client_for(cast, "steering")
    scales = {"EPDS": {"direction": "lower", "min": 0, "max": 30}}
    assert (
        steering.patch(
            "/api/v1/outcomes/dep/", {"instruments": ["EPDS"], "instrument_scales": scales}, format="json"
        ).status_code
        == 200
    )
    rows = [{**r, "instrument": "EPDS"} for r in SMD_ROWS]
    rows[1]["m1i"] = 38.5
    refused = api_client_for(cast, "dm_a").post(
        "/api/v1/datasets/upload/", {"centre": "alpha", "outcome": "dep", "rows": rows}, format="json"
    )
    assert refused.status_code == 400
    [error] = refused.json()["errors"]
    assert (error["row"], error["code"]) == (2, "out_of_scale_range")
    assert "the mean 38.5 is outside the EPDS scale's range (0 to 30)" in error["message"]
    # the data dictionary's own rules for a scale
    for bad, message in (
        ({"PHQ-9": {"direction": "lower"}}, "not one of the outcome's instruments"),
        ({"EPDS": {"direction": "lower", "min": 30, "max": 0}}, "min must be below max"),
        ({"EPDS": {"direction": "worse"}}, "direction"),
    ):
        answer = steering.patch("/api/v1/outcomes/dep/", {"instrument_scales": bad}, format="json")
        assert answer.status_code == 400 and message in str(answer.json()), answer.content
