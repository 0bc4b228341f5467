"""One upload, end to end: API upload -> immutable version -> outbox -> Redis -> real worker ->
engine -> stored result with provenance -> API and outcome page."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from apps.analyses.models import Analysis
from tests.conftest import SMD_ROWS, api_client_for, dependent_trial_rows, make_cast
from tests.integration.conftest import wait_until
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis


def _csv(rows: list[dict[str, Any]]) -> bytes:
    cols = ["study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "year"]
    lines = [",".join(cols)] + [",".join(str(r[c]) for c in cols) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _current(client: Any, outcome: str) -> dict[str, Any] | None:
    data = client.get(f"/api/v1/analyses/?outcome__code={outcome}&is_default=true").json()["results"][0]
    if data["state"] == "current" and data["current_result"] is not None:
        return data
    return None


def _with_blocks(client: Any, result_id: int) -> dict[str, Any]:
    """A result's detail with every block fetched from the address its index gives."""
    result = client.get(f"/api/v1/results/{result_id}/").json()
    result["blocks"] = {name: client.get(block["url"]).json() for name, block in result["blocks"].items()}
    return result


def test_upload_flows_through_the_worker_to_the_api_and_the_outcome_page(
    live_worker: Any, tmp_media: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    cast = make_cast()
    dm = api_client_for(cast, "dm_a")
    steering = api_client_for(cast, "steering")

    # Given a data manager's CSV for one outcome
    upload = SimpleUploadedFile("alpha-rf.csv", _csv(SMD_ROWS), content_type="text/csv")
    resp = dm.post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "file": upload, "reason": "first upload"},
        format="multipart",
    )
    assert resp.status_code == 201, resp.content
    dataset_id = resp.json()["dataset"]["id"]
    version = resp.json()["version"]

    # When the dataset is submitted (its version enters the analyses)
    assert dm.post(f"/api/v1/datasets/{dataset_id}/submit/", {}).status_code == 200

    # Then the worker recomputes and the API returns the result with its provenance
    data = wait_until(lambda: _current(steering, "rf"), timeout=60, what="the recompute")
    result = _with_blocks(steering, data["current_result"]["id"])
    assert result["status"] == "done"
    assert result["k"] == 4
    assert [(v["version"], v["checksum"]) for v in result["dataset_versions"]] == [
        (version["id"], version["checksum"])
    ]
    assert result["spec"]["method"] == "REML"
    expected = run_analysis(AnalysisSpec(measure="SMD", method="REML"), SMD_ROWS).to_dict()["blocks"]["fit"]
    assert result["blocks"]["fit"]["beta"][0] == pytest.approx(expected["beta"][0], rel=1e-12)
    assert result["blocks"]["fit"]["tau2"] == pytest.approx(expected["tau2"], rel=1e-9, abs=1e-12)

    # And a correction creates version 2, and the result follows it
    corrected = [dict(r) for r in SMD_ROWS]
    corrected[0]["m1i"] = 14.0
    upload = SimpleUploadedFile("alpha-rf.csv", _csv(corrected), content_type="text/csv")
    resp = dm.post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "file": upload, "submit": "true"},
        format="multipart",
    )
    assert resp.status_code == 201
    v2 = resp.json()["version"]
    assert v2["number"] == 2

    def follows_v2() -> Any:
        d = _current(steering, "rf")
        return d if d and d["current_result"]["dataset_versions"][0]["version"] == v2["id"] else None

    data = wait_until(follows_v2, timeout=60, what="the recompute of version 2")
    assert data["current_result"]["pooled"]["estimate"] > expected["beta"][0]

    # And the outcome page shows the pooled estimate to the steering group
    from django.test import Client

    page = Client()
    page.force_login(cast["users"]["steering"])
    html = page.get("/outcomes/rf/").content.decode()
    assert f"{data['current_result']['pooled']['estimate']:.3f}" in html
    assert "Forest plot" in html
    # And the result shown is the stored current one, while the result of version 1 stays in the
    # history, unchanged (results are immutable snapshots)
    analysis = Analysis.objects.get(outcome__code="rf", is_default=True)
    assert analysis.current_result_id == data["current_result"]["id"]
    history = steering.get(f"/api/v1/analyses/{analysis.pk}/history/").json()["results"]
    assert history[0]["id"] == data["current_result"]["id"]
    of_v1 = [r for r in history if [v["version"] for v in r["dataset_versions"]] == [version["id"]]]
    assert of_v1, history
    assert of_v1[-1]["pooled"]["estimate"] == pytest.approx(expected["beta"][0], rel=1e-12)


def test_dependent_upload_is_pooled_with_che_and_cr2_as_the_engine_pools_it(
    live_worker: Any, tmp_media: Any
) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from apps.consortium.models import Outcome
    from workers.metaanalysis.multilevel.fit import rma_mv
    from workers.metaanalysis.multilevel.robust import robust

    cast = make_cast()
    Outcome.objects.filter(code="rf").update(instruments=["PRFQ", "RFS"], timepoints=["post", "6m"])
    Analysis.objects.filter(outcome__code="rf", is_default=True).update(timepoint="post")
    dm = api_client_for(cast, "dm_a")
    steering = api_client_for(cast, "steering")
    rows = dependent_trial_rows()  # some rows only as Cohen's d or t, as papers report them
    cols = [
        "study",
        "instrument",
        "timepoint",
        "m1i",
        "sd1i",
        "n1i",
        "m2i",
        "sd2i",
        "n2i",
        "di",
        "ti",
        "year",
    ]
    body = "\n".join([",".join(cols)] + [",".join(str(r.get(c, "")) for c in cols) for r in rows]) + "\n"
    upload = SimpleUploadedFile("alpha-rf.csv", body.encode(), content_type="text/csv")
    resp = dm.post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "file": upload, "reason": "two instruments, two time points"},
        format="multipart",
    )
    assert resp.status_code == 201, resp.content
    assert resp.json()["form_counts"] == {"raw": len(rows) - 3, "di": 2, "ti": 1}
    assert resp.json()["forms"][3] == "ti"
    assert dm.post(f"/api/v1/datasets/{resp.json()['dataset']['id']}/submit/", {}).status_code == 200

    data = wait_until(lambda: _current(steering, "rf"), timeout=60, what="the recompute")
    result = _with_blocks(steering, data["current_result"]["id"])
    summary = result["blocks"]["summary"]
    # each row's effect says how it was derived
    derivations = result["blocks"]["effect_sizes"]["derivation"]
    assert derivations[1].startswith("SMD from Cohen's d = ") and derivations[3].startswith("SMD from t = ")
    assert derivations[0] == "SMD from means and SDs"
    # the default analysis: post-treatment rows only, CHE (rho = 0.6) with CR2 tests
    post = [r for r in rows if r["timepoint"] == "post"]
    assert summary["dependence"] == "che" and summary["inference"] == "CR2"
    assert summary["k"] == result["k"] == len(post) and summary["n_studies"] == 6
    assert sum(o["code"] == "not_selected" for o in result["omitted"]) == len(rows) - len(post)

    # the stored numbers are the engine's, run directly on the same rows
    es = run_analysis(AnalysisSpec(measure="SMD", dependence="none"), post).to_dict()["blocks"][
        "effect_sizes"
    ]
    fit = rma_mv(
        np.asarray(es["yi"]), np.asarray(es["vi"]), [r["study"] for r in post], method="REML", rho=0.6
    )
    cr2 = robust(fit, "CR2")
    assert summary["estimate"] == pytest.approx(cr2.beta[0], rel=1e-10)
    assert summary["se"] == pytest.approx(cr2.se[0], rel=1e-8)
    assert summary["dfs"] == pytest.approx(cr2.dfs[0], rel=1e-8)
    assert summary["sigma2"] == pytest.approx(fit.sigma2.tolist(), rel=1e-8, abs=1e-12)
    stored_fit = result["blocks"]["multilevel_fit_vcalc"]
    assert stored_fit["s_nlevels"] == [6, len(post)]
    assert data["current_result"]["pooled"]["estimate"] == pytest.approx(cr2.beta[0], rel=1e-10)
