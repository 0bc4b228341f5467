"""What a result means, through a real worker: an outcome without data waits, data the settings
cannot fit give a failed result with its reason (and the API says so), and a recompute of unchanged
inputs stores no second result."""

from __future__ import annotations

from typing import Any

from django.db.models import F

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.services import analysis_request_recompute_many
from tests.conftest import SMD_ROWS, api_client_for, make_cast, store_rows
from tests.integration.conftest import wait_until


def _state(client: Any, analysis: Analysis) -> dict[str, Any]:
    return client.get(f"/api/v1/analyses/{analysis.pk}/").json()  # type: ignore[no-any-return]


def test_a_worker_stores_waiting_failed_and_no_repeated_results(live_worker: Any, tmp_media: Any) -> None:
    from django.db import transaction

    cast = make_cast()
    steering = api_client_for(cast, "steering")
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    # the default analysis's first computation, before any data: waiting, not failed
    wait_until(lambda: _state(steering, analysis)["state"] == "waiting", timeout=60, what="waiting for data")
    assert AnalysisResult.objects.get(analysis=analysis).status == "empty"

    # data arrive: a result with an estimate
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    wait_until(lambda: _state(steering, analysis)["state"] == "current", timeout=60, what="a result")
    good = Analysis.objects.get(pk=analysis.pk).current_result
    assert good is not None and good.status == "done"

    # a request whose inputs are those of the stored result: answered, nothing new stored
    with transaction.atomic():
        analysis_request_recompute_many(analysis_ids=[analysis.pk])
    requested = Analysis.objects.get(pk=analysis.pk).requested_seq
    wait_until(
        lambda: Analysis.objects.filter(pk=analysis.pk, computed_seq__gte=requested).exists(),
        timeout=60,
        what="the repeated request answered",
    )
    assert AnalysisResult.objects.filter(analysis=analysis).count() == 2  # empty, then good

    # settings saved before the data called for a multilevel model, then such data: failed, with why
    Analysis.objects.filter(pk=analysis.pk).update(method="PM")
    rows = [{**r, "study": r["study"] + " two", "instrument": i} for r in SMD_ROWS for i in ("A", "B")]
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=rows, submit=True)
    wait_until(lambda: _state(steering, analysis)["state"] == "failed", timeout=60, what="the failed result")
    body = _state(steering, analysis)
    assert body["current_result"]["status"] == "failed" and body["current_result"]["pooled"] is None
    assert "multilevel models use ML or REML, not 'PM'" in body["current_result"]["error"]["message"]
    # the last estimate stays what the pages show
    from apps.analyses.selectors import analysis_results_shown

    shown, beside = analysis_results_shown(
        user=cast["users"]["steering"], analysis=Analysis.objects.get(pk=analysis.pk)
    )
    assert shown == good and beside is not None and beside.status == "failed"
    assert Analysis.objects.filter(pk=analysis.pk, requested_seq=F("computed_seq")).exists()
