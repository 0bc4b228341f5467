"""The API's upload options: ``preview`` answers what an upload would change and stores nothing;
``submit`` stores and submits in one transaction."""

from __future__ import annotations

from typing import Any

import pytest

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute
from apps.audit.models import AuditEvent
from apps.consortium.models import ConsortiumRole
from apps.datasets.models import Dataset, DatasetVersion
from tests.conftest import SMD_ROWS, api_client_for, store_rows

pytestmark = pytest.mark.django_db


def _upload(client: Any, rows: list[dict[str, Any]], **options: Any) -> Any:
    return client.post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "rows": rows, **options},
        format="json",
    )


def test_a_preview_answers_what_would_change_and_stores_nothing(cast: dict[str, Any], tmp_media: Any) -> None:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_recompute(analysis_id=analysis.pk)
    requested = Analysis.objects.get(pk=analysis.pk).requested_seq
    events = AuditEvent.objects.count()
    rows = [dict(r) for r in SMD_ROWS[:3]]
    rows[0]["m1i"] = 13.1
    dm = api_client_for(cast, "dm_a")
    answer = _upload(dm, rows, preview=True)
    assert answer.status_code == 200, answer.content
    body = answer.json()
    assert body["preview"] is True and body["base_version"] == 1 and body["identical"] is False
    assert body["diff"]["summary"] == {"added": 0, "removed": 1, "changed": 1, "unchanged": 2}
    assert body["diff"]["removed"][0]["study"] == "Diaz 2020"
    assert body["diff"]["changed"][0]["cells"] == [{"column": "m1i", "old": 12.1, "new": 13.1}]
    assert [r["key"] for r in body["rows"]] == ["Adams 2015", "Baker 2017", "Chen 2019"]
    assert body["rows"][0]["change"] == "changed" and body["rows"][0]["ci_lb"] < body["rows"][0]["effect"]
    assert body["pooled"] == []  # a data manager is not shown pooled results of unreleased data
    assert DatasetVersion.objects.count() == 1 and AuditEvent.objects.count() == events
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested

    # the steering group's pooled preview (a data manager who also steers)
    ConsortiumRole.objects.create(user=cast["users"]["dm_a"], role=ConsortiumRole.Role.STEERING)
    pooled = _upload(api_client_for(cast, "dm_a"), rows, preview=True).json()["pooled"]
    default = next(p for p in pooled if p["analysis"] == analysis.pk)
    assert default["before"]["k"] == 4 and default["after"]["k"] == 3
    assert default["before"]["estimate"] != default["after"]["estimate"] and default["error"] is None


def test_a_preview_refuses_like_an_upload(cast: dict[str, Any], tmp_media: Any) -> None:
    bad = [dict(r) for r in SMD_ROWS]
    bad[1]["sd1i"] = -2
    answer = _upload(api_client_for(cast, "dm_a"), bad, preview=True)
    assert answer.status_code == 400
    assert {(e["row"], e["code"]) for e in answer.json()["errors"]} == {(2, "sd_not_positive")}
    assert _upload(api_client_for(cast, "member_a"), SMD_ROWS, preview=True).status_code == 403
    assert _upload(api_client_for(cast, "dm_b"), SMD_ROWS, preview=True).status_code == 404
    both = _upload(api_client_for(cast, "dm_a"), SMD_ROWS, preview=True, submit=True)
    assert both.status_code == 400 and "at most one" in both.content.decode()
    assert not Dataset.objects.exists()


def test_submit_stores_and_submits_in_one_go(cast: dict[str, Any], tmp_media: Any) -> None:
    dm = api_client_for(cast, "dm_a")
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    requested = analysis.requested_seq
    first = _upload(dm, SMD_ROWS, submit=True, reason="first data")
    assert first.status_code == 201
    assert first.json()["dataset"]["status"] == "submitted"
    assert first.json()["dataset"]["submitted_version"]["number"] == 1
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested + 1
    plain = _upload(dm, SMD_ROWS[:3]).json()
    assert plain["dataset"]["submitted_version"]["number"] == 1 and plain["version"]["number"] == 2
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested + 1
    submitted = _upload(dm, SMD_ROWS[:2], submit=True).json()
    assert submitted["dataset"]["submitted_version"]["number"] == 3
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested + 2
    actions = list(AuditEvent.objects.filter(centre=cast["centre_a"]).values_list("action", flat=True))
    assert actions.count("dataset.revision_submit") == 1 and actions.count("dataset.status") == 1
