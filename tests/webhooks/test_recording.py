"""Deliveries are recorded by the analyses app's signals, in the change's own transaction, with the
events each new result fires and only for owners who may read it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from django.db import transaction
from django.utils import timezone

from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.analyses.releases import release_publish, releases_announce
from apps.analyses.services import analysis_create, analysis_recompute
from apps.analyses.signals import result_stored
from apps.audit.models import AuditEvent
from apps.consortium.models import ConsortiumRole
from apps.webhooks import events
from apps.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import SMD_ROWS, make_cast, make_unfittable, publish, store_rows
from tests.webhooks.conftest import subscribe

pytestmark = pytest.mark.django_db

HOOK = "https://hooks.example.invalid/evidence"
ALL = list(events.EVENTS)
# Three versions of one centre's data: the first result's interval excludes 0 (I² 0); shifted, it
# includes 0 and I² is 4.4; swapped, the estimate changes sign and the interval excludes 0 again.
SHIFTED = [dict(r, m1i=r["m1i"] - 1.2) for r in SMD_ROWS]
SWAPPED = [dict(r, m1i=r["m2i"], m2i=r["m1i"]) for r in SMD_ROWS]


@pytest.fixture
def world(tmp_media: Any) -> dict[str, Any]:
    cast = make_cast()
    cast["analysis"] = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    return cast


def recompute(world: dict[str, Any], rows: list[dict[str, Any]]) -> AnalysisResult:
    store_rows(centre=world["centre_a"], outcome=world["outcome"], rows=rows, submit=True)
    result = analysis_recompute(analysis_id=world["analysis"].pk)
    assert result is not None
    return result


def events_of(webhook: Webhook, result: AnalysisResult | None = None) -> list[str]:
    deliveries = webhook.deliveries.order_by("id")
    if result is not None:
        deliveries = deliveries.filter(payload__data__result__id=result.pk)
    return list(deliveries.values_list("event", flat=True))


def test_each_result_fires_result_changed_and_its_conditions(world: dict[str, Any]) -> None:
    steering, _ = subscribe(world["users"]["steering"], HOOK, ALL, i2_threshold=2, estimate_threshold=0.1)
    first = recompute(world, SMD_ROWS)
    assert events_of(steering, first) == [events.RESULT_CHANGED, events.CI_EXCLUDES_NULL]
    second = recompute(world, SHIFTED)
    assert events_of(steering, second) == [
        events.RESULT_CHANGED,
        events.CI_INCLUDES_NULL,
        events.I2_CROSSED,
        events.ESTIMATE_MOVED,
    ]
    third = recompute(world, SWAPPED)
    assert events_of(steering, third) == [
        events.RESULT_CHANGED,
        events.CI_EXCLUDES_NULL,
        events.I2_CROSSED,
        events.ESTIMATE_MOVED,
        events.DIRECTION_CHANGED,
    ]

    # the payloads: the result, the previous one, the analysis and what fired each condition
    moved = steering.deliveries.get(event=events.ESTIMATE_MOVED, payload__data__result__id=third.pk)
    payload = moved.payload
    assert payload["id"] == str(moved.uuid) and payload["event"] == "estimate.moved"
    assert payload["webhook"] == steering.pk
    data = payload["data"]
    assert data["analysis"] == {
        "id": world["analysis"].pk,
        "name": world["analysis"].name,
        "is_default": True,
        "outcome": "rf",
        "measure": "SMD",
    }
    assert (data["scale"], data["null"]) == ("identity", 0.0)
    assert data["result"]["id"] == third.pk and data["result"]["url"] == f"/api/v1/results/{third.pk}/"
    assert data["result"]["pooled"] == third.pooled
    assert data["previous"]["id"] == second.pk and data["previous"]["pooled"] == second.pooled
    assert data["condition"]["before"] == pytest.approx(second.pooled["estimate"])
    assert data["condition"]["after"] == pytest.approx(third.pooled["estimate"])
    assert data["condition"]["change"] == pytest.approx(third.pooled["estimate"] - second.pooled["estimate"])
    assert moved.result_ids == sorted([second.pk, third.pk])
    crossed = steering.deliveries.get(event=events.I2_CROSSED, payload__data__result__id=third.pk).payload
    assert crossed["data"]["condition"] == {
        "threshold": 2.0,
        "before": pytest.approx(second.pooled["I2"]),
        "after": pytest.approx(third.pooled["I2"]),
        "direction": "down",
    }
    direction = steering.deliveries.get(event=events.DIRECTION_CHANGED).payload["data"]["condition"]
    assert (direction["from"], direction["to"]) == ("positive", "negative")
    assert all(d.status == WebhookDelivery.Status.PENDING for d in steering.deliveries.all())


def test_a_webhook_gets_only_the_events_it_asked_for_with_its_own_thresholds(world: dict[str, Any]) -> None:
    owner = world["users"]["steering"]
    narrow, _ = subscribe(owner, HOOK, [events.ESTIMATE_MOVED], estimate_threshold=0.5)
    wide, _ = subscribe(owner, HOOK, [events.ESTIMATE_MOVED, events.I2_CROSSED], estimate_threshold=0.2)
    recompute(world, SMD_ROWS)
    recompute(world, SHIFTED)  # moves by 0.27; I² 0 -> 4.4 stays under 50
    assert events_of(narrow) == []
    assert events_of(wide) == [events.ESTIMATE_MOVED]


def test_members_and_api_clients_get_a_result_when_it_is_released(world: dict[str, Any]) -> None:
    users = world["users"]
    member, _ = subscribe(users["member_a"], HOOK, ALL)
    client, _ = subscribe(users["api_client"], HOOK, ALL)
    steering, _ = subscribe(users["steering"], HOOK, [events.RESULT_CHANGED])
    first = recompute(world, SMD_ROWS)
    assert events_of(steering) == [events.RESULT_CHANGED]
    assert events_of(member) == events_of(client) == []

    # released, the result is new to them (and not again to the steering group, who had it)
    publish(users["steering"], first)
    assert events_of(member, first) == [events.RESULT_CHANGED, events.CI_EXCLUDES_NULL]
    assert events_of(steering) == [events.RESULT_CHANGED]
    publish(users["steering"], first)  # releasing twice announces once
    assert events_of(member, first) == [events.RESULT_CHANGED, events.CI_EXCLUDES_NULL]

    # compared with the newest result they could read before, never with an unreleased one
    second = recompute(world, SHIFTED)
    third = recompute(world, SWAPPED)
    assert events_of(member, second) == events_of(member, third) == []
    publish(users["steering"], third)
    # both intervals exclude 0 (on opposite sides): the sign and the size changed
    assert events_of(member, third) == [
        events.RESULT_CHANGED,
        events.ESTIMATE_MOVED,
        events.DIRECTION_CHANGED,
    ]
    payload = member.deliveries.get(event=events.RESULT_CHANGED, payload__data__result__id=third.pk).payload[
        "data"
    ]
    assert payload["previous"]["id"] == first.pk  # not the unreleased second
    assert events_of(client) == events_of(member)
    assert events_of(steering) == [events.RESULT_CHANGED] * 3


def test_a_delivery_commits_or_rolls_back_with_the_change(world: dict[str, Any]) -> None:
    subscribe(world["users"]["steering"], HOOK, [events.RESULT_CHANGED, events.RELEASE_PUBLISHED])
    first = recompute(world, SMD_ROWS)
    before = (WebhookDelivery.objects.count(), Release.objects.count())
    with pytest.raises(RuntimeError), transaction.atomic():
        result_stored.send(sender=AnalysisResult, result=first, previous_id=None)
        publish(world["users"]["steering"], first)
        assert WebhookDelivery.objects.count() == before[0] + 2
        raise RuntimeError("the change failed")
    assert (WebhookDelivery.objects.count(), Release.objects.count()) == before


def test_a_published_release_is_announced_to_its_subscribers(world: dict[str, Any]) -> None:
    users = world["users"]
    member, _ = subscribe(users["member_a"], HOOK, [events.RELEASE_PUBLISHED])
    client, _ = subscribe(users["api_client"], HOOK, [events.RELEASE_PUBLISHED, events.RESULT_CHANGED])
    other, _ = subscribe(users["steering"], HOOK, [events.RESULT_CHANGED])
    first = recompute(world, SMD_ROWS)
    release, _ = release_publish(
        actor=users["steering"], name="2026.1", notes="Adds two trials.", analyses=[first.analysis_id]
    )
    for webhook in (member, client):
        delivery = webhook.deliveries.get(event=events.RELEASE_PUBLISHED)
        assert delivery.result_ids == [first.pk]
        assert delivery.payload["data"] == {
            "release": {
                "id": release.pk,
                "name": "2026.1",
                "url": "/api/v1/releases/2026.1/",
                "notes": "Adds two trials.",
                "published_at": release.published_at.isoformat().replace("+00:00", "Z"),
                "embargo_until": None,
                "results": [
                    {
                        "analysis": first.analysis_id,
                        "outcome": "rf",
                        "result": first.pk,
                        "url": f"/api/v1/results/{first.pk}/",
                    }
                ],
            }
        }
    # the API client also hears that the result is now readable to it; the member did not ask
    assert events_of(client) == [events.RESULT_CHANGED, events.RELEASE_PUBLISHED]
    assert events_of(other) == [events.RESULT_CHANGED]  # the steering group had it when it was stored


def test_an_embargoed_release_is_announced_when_the_embargo_ends(world: dict[str, Any]) -> None:
    users = world["users"]
    member, _ = subscribe(users["member_a"], HOOK, [events.RELEASE_PUBLISHED, events.RESULT_CHANGED])
    first = recompute(world, SMD_ROWS)
    ends = timezone.now() + timedelta(hours=1)
    release = publish(users["steering"], first, name="2026.2", embargo_until=ends)
    assert releases_announce() == 0 and not member.deliveries.exists()  # not yet
    assert not AnalysisResult.objects.visible_to(users["member_a"]).exists()
    with patch("django.utils.timezone.now", return_value=ends + timedelta(seconds=1)):
        assert AnalysisResult.objects.visible_to(users["member_a"]).get() == first
        assert releases_announce() == 1
        assert releases_announce() == 0  # announced once, however often the task runs
    assert events_of(member) == [events.RESULT_CHANGED, events.RELEASE_PUBLISHED]
    release.refresh_from_db()
    assert release.announced_at is not None


def test_paused_and_stopped_webhooks_record_nothing(world: dict[str, Any]) -> None:
    users = world["users"]
    paused, _ = subscribe(users["steering"], HOOK, ALL, active=False)
    admin, _ = subscribe(users["admin"], HOOK, ALL)
    users["admin"].is_active = False
    users["admin"].save()
    recompute(world, SMD_ROWS)
    assert not paused.deliveries.exists() and not admin.deliveries.exists()
    admin.refresh_from_db()
    assert not admin.active and "no longer has access" in admin.disabled_reason
    assert AuditEvent.objects.filter(action="webhook.disable", object_id=str(admin.pk)).exists()


def test_a_failed_result_and_a_meta_regression_fire_result_changed_only(world: dict[str, Any]) -> None:
    steering, _ = subscribe(world["users"]["steering"], HOOK, ALL)
    regression = analysis_create(
        actor=None, outcome=world["outcome"], data={"name": "By year", "mods": ["year"]}
    )
    store_rows(centre=world["centre_a"], outcome=world["outcome"], rows=SMD_ROWS, submit=True)
    result = analysis_recompute(analysis_id=regression.pk)
    assert result is not None and result.status == AnalysisResult.Status.DONE
    assert events_of(steering, result) == [events.RESULT_CHANGED]
    # an outcome with no submitted data: the analysis waits for data, and says so
    empty = analysis_recompute(
        analysis_id=Analysis.objects.get(outcome=world["outcome2"], is_default=True).pk
    )
    assert empty is not None and empty.status == AnalysisResult.Status.EMPTY
    assert events_of(steering, empty) == [events.RESULT_CHANGED]
    data = steering.deliveries.get(payload__data__result__id=empty.pk).payload["data"]
    assert data["result"]["status"] == "empty" and data["result"]["pooled"] is None
    assert data["result"]["error"]["message"].startswith("No centre has submitted data")
    # data the settings cannot fit: the result is failed, never done without an estimate
    failed = make_unfittable(world, Analysis.objects.get(outcome=world["outcome2"], is_default=True))
    assert events_of(steering, failed) == [events.RESULT_CHANGED]
    data = steering.deliveries.get(payload__data__result__id=failed.pk).payload["data"]
    assert data["result"]["status"] == "failed" and data["result"]["pooled"] is None
    assert "multilevel models use ML or REML" in data["result"]["error"]["message"]


def test_losing_the_steering_role_stops_result_events_for_unreleased_results(world: dict[str, Any]) -> None:
    steering, _ = subscribe(world["users"]["steering"], HOOK, [events.RESULT_CHANGED])
    ConsortiumRole.objects.filter(user=world["users"]["steering"]).delete()
    recompute(world, SMD_ROWS)
    steering.refresh_from_db()
    assert not steering.deliveries.exists() and steering.active  # still a person who reads released results
