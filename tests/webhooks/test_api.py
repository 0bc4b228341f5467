"""/api/v1/webhooks/: the owner's own webhooks only, strict input, the secret shown once, the log."""

from __future__ import annotations

from typing import Any

import pytest
from rest_framework.test import APIClient

from apps.audit.models import AuditEvent
from apps.consortium.models import ApiClient
from apps.webhooks.models import Webhook, WebhookDelivery
from tests.conftest import api_client_for, make_cast

pytestmark = pytest.mark.django_db

PUBLIC = "https://hooks.example.invalid/evidence"  # does not resolve: accepted, checked at every delivery


@pytest.fixture
def world(tmp_media: Any) -> dict[str, Any]:
    return make_cast()


def as_user(world: dict[str, Any], who: str) -> APIClient:
    """Signed in as ``who``; the API client is authenticated directly (its permission is what is
    tested here, not its token)."""
    if who == "api_client":
        from django.contrib.auth.models import User

        client = APIClient()
        client.force_authenticate(user=User.objects.get(pk=world["users"]["api_client"].pk))
        return client
    return api_client_for(world, who)


def create(client: APIClient, **fields: Any) -> Any:
    body = {"url": PUBLIC, "events": ["result.changed"], **fields}
    return client.post("/api/v1/webhooks/", body, format="json")


def test_a_new_webhook_shows_its_secret_once(world: dict[str, Any]) -> None:
    steering = as_user(world, "steering")
    resp = create(steering, events=["result.changed", "i2.crossed", "result.changed"], i2_threshold=75)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    assert len(body["secret"]) >= 40
    assert body["events"] == ["result.changed", "i2.crossed"]  # a repeat is ignored
    assert (body["i2_threshold"], body["estimate_threshold"], body["active"]) == (75.0, 0.1, True)
    webhook = Webhook.objects.get(pk=body["id"])
    assert webhook.owner == world["users"]["steering"] and webhook.secret == body["secret"]
    for resp in (steering.get(f"/api/v1/webhooks/{webhook.pk}/"), steering.get("/api/v1/webhooks/")):
        assert resp.status_code == 200
        assert "secret" not in str(resp.json()).replace("secret_rotated_at", "")
    event = AuditEvent.objects.get(action="webhook.create")
    assert event.object_id == str(webhook.pk) and body["secret"] not in str(event.after)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "http://127.0.0.1:8000/h"}, "url"),
        ({"url": "http://localhost:8000/h"}, "url"),
        ({"url": "http://10.0.0.8/h"}, "url"),
        ({"url": "http://[::1]/h"}, "url"),
        ({"url": "http://169.254.169.254/latest/meta-data"}, "url"),
        ({"url": "ftp://example.org/h"}, "url"),
        ({"url": "https://user:pw@hooks.example.invalid/h"}, "url"),
        ({"url": "not a url"}, "url"),
        ({"url": 5}, "url"),
        ({"events": []}, "events"),
        ({"events": ["result.changed", "everything"]}, "events"),
        ({"events": "result.changed"}, "events"),
        ({"events": ["ping"]}, "events"),
        ({"i2_threshold": 101}, "i2_threshold"),
        ({"i2_threshold": "50"}, "i2_threshold"),
        ({"i2_threshold": True}, "i2_threshold"),
        ({"estimate_threshold": -0.1}, "estimate_threshold"),
        ({"active": "yes"}, "active"),
        ({"description": "bell\x07"}, "description"),
    ],
)
def test_invalid_registrations_are_refused_with_the_field(
    world: dict[str, Any], body: Any, field: str
) -> None:
    resp = create(as_user(world, "steering"), **body)
    assert resp.status_code == 400, resp.content
    assert field in resp.json()
    assert not Webhook.objects.exists()


def test_a_name_resolving_to_a_private_address_is_refused(
    world: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.webhooks import delivery

    monkeypatch.setattr(delivery.socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("192.168.0.9", 443))])
    resp = create(as_user(world, "steering"), url="https://intranet.example.org/h")
    assert resp.status_code == 400 and "192.168.0.9" in str(resp.json()["url"])


def test_private_addresses_are_allowed_when_the_setting_says_so(world: dict[str, Any], settings: Any) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True
    assert create(as_user(world, "steering"), url="http://127.0.0.1:8000/h").status_code == 201


def test_production_takes_https_only_unless_allowed(world: dict[str, Any], settings: Any) -> None:
    steering = as_user(world, "steering")
    settings.PRODUCTION = True
    resp = create(steering, url="http://hooks.example.invalid/h")
    assert resp.status_code == 400 and "https" in str(resp.json()["url"])
    settings.WEBHOOKS_ALLOW_HTTP = True
    assert create(steering, url="http://hooks.example.invalid/h").status_code == 201


@pytest.mark.parametrize("who", ["dm_a", "member_a", "steering", "admin", "api_client"])
def test_people_and_results_read_clients_may_hold_webhooks(world: dict[str, Any], who: str) -> None:
    client = as_user(world, who)
    assert create(client).status_code == 201
    assert client.get("/api/v1/webhooks/").json()["count"] == 1


def test_an_api_client_without_results_read_may_not(world: dict[str, Any]) -> None:
    ApiClient.objects.filter(user=world["users"]["api_client"]).update(scopes=[ApiClient.Scope.DATASETS_READ])
    client = as_user(world, "api_client")
    assert client.get("/api/v1/webhooks/").status_code == 403
    assert create(client).status_code == 403
    assert APIClient().get("/api/v1/webhooks/").status_code == 401


def test_someone_elses_webhook_is_404_everywhere(world: dict[str, Any]) -> None:
    webhook_id = create(as_user(world, "steering")).json()["id"]
    for who in ("member_a", "dm_b", "api_client", "admin"):
        other = as_user(world, who)
        base = f"/api/v1/webhooks/{webhook_id}/"
        assert other.get(base).status_code == 404
        assert other.patch(base, {"active": False}, format="json").status_code == 404
        assert other.delete(base).status_code == 404
        assert other.post(base + "rotate-secret/").status_code == 404
        assert other.post(base + "ping/").status_code == 404
        assert other.get(base + "deliveries/").status_code == 404
        assert other.get("/api/v1/webhooks/").json()["count"] == 0
    webhook = Webhook.objects.get(pk=webhook_id)
    assert webhook.active and not webhook.deliveries.exists()
    assert as_user(world, "steering").get("/api/v1/webhooks/abc/").status_code == 404


def test_change_pause_rotate_ping_and_delete(world: dict[str, Any]) -> None:
    steering = as_user(world, "steering")
    created = create(steering).json()
    base = f"/api/v1/webhooks/{created['id']}/"
    changed = steering.patch(base, {"events": ["release.published"], "description": "Tool"}, format="json")
    assert changed.status_code == 200 and changed.json()["events"] == ["release.published"]
    refused = steering.patch(base, {"url": "http://127.0.0.1/h"}, format="json")
    assert refused.status_code == 400
    assert Webhook.objects.get(pk=created["id"]).url == PUBLIC
    assert steering.patch(base, {"active": False}, format="json").json()["active"] is False

    rotated = steering.post(base + "rotate-secret/")
    assert rotated.status_code == 200
    assert rotated.json()["secret"] != created["secret"]
    assert Webhook.objects.get(pk=created["id"]).secret == rotated.json()["secret"]

    pinged = steering.post(base + "ping/")
    assert pinged.status_code == 202
    assert pinged.json()["event"] == "ping" and pinged.json()["status"] == "pending"
    delivery = WebhookDelivery.objects.get(webhook_id=created["id"])
    assert str(delivery.uuid) == pinged.json()["id"] == delivery.payload["id"]

    assert steering.delete(base).status_code == 204
    assert not Webhook.objects.exists() and not WebhookDelivery.objects.exists()
    actions = list(AuditEvent.objects.filter(object_type="webhooks.webhook").values_list("action", flat=True))
    assert sorted(actions) == sorted(
        ["webhook.create", "webhook.update", "webhook.update", "webhook.rotate_secret", "webhook.delete"]
    )
    assert created["secret"] not in str(list(AuditEvent.objects.values_list("before", "after")))


def test_the_delivery_log_filters_by_status_and_event(world: dict[str, Any]) -> None:
    steering = as_user(world, "steering")
    webhook_id = create(steering).json()["id"]
    base = f"/api/v1/webhooks/{webhook_id}/"
    for finished in (WebhookDelivery.Status.FAILED, WebhookDelivery.Status.DELIVERED, None):
        assert steering.post(base + "ping/").status_code == 202
        if finished:
            WebhookDelivery.objects.filter(status=WebhookDelivery.Status.PENDING).update(status=finished)
    # one ping at a time: the platform does not POST as often as someone asks it to
    again = steering.post(base + "ping/")
    assert again.status_code == 409 and "still on its way" in again.json()["detail"]
    log = steering.get(base + "deliveries/").json()
    assert log["count"] == 3 and log["results"][0]["attempt_log"] == []
    assert [d["status"] for d in log["results"]] == ["pending", "delivered", "failed"]  # newest first
    assert steering.get(base + "deliveries/?status=pending").json()["count"] == 1
    assert steering.get(base + "deliveries/?status=failed&event=ping").json()["count"] == 1
    assert steering.get(base + "deliveries/?event=result.changed").json()["count"] == 0
    assert steering.get(base + "deliveries/?limit=1").json()["results"][0]["status"] == "pending"
    for bad in ("?status=lost", "?status=", "?event=everything", "?limit=0"):
        resp = steering.get(base + "deliveries/" + bad)
        assert resp.status_code == 400, bad


def test_the_number_of_webhooks_is_limited(world: dict[str, Any], settings: Any) -> None:
    settings.WEBHOOKS_MAX_PER_OWNER = 2
    member = as_user(world, "member_a")
    assert [create(member).status_code for _ in range(3)] == [201, 201, 400]
    assert create(as_user(world, "dm_a")).status_code == 201  # the limit is per owner


def test_restarting_a_webhook_the_platform_stopped(world: dict[str, Any]) -> None:
    steering = as_user(world, "steering")
    webhook_id = create(steering).json()["id"]
    Webhook.objects.filter(pk=webhook_id).update(active=False, disabled_reason="The owner lost access.")
    body = steering.get(f"/api/v1/webhooks/{webhook_id}/").json()
    assert body["active"] is False and body["disabled_reason"] == "The owner lost access."
    restarted = steering.patch(f"/api/v1/webhooks/{webhook_id}/", {"active": True}, format="json").json()
    assert restarted["active"] is True and restarted["disabled_reason"] == ""


def test_a_url_may_have_up_to_2000_characters(world: dict[str, Any]) -> None:
    """Whatever the schema calls a URI is accepted (a name longer than DNS allows simply never
    resolves, and every delivery resolves it again)."""
    steering = as_user(world, "steering")
    host = "a" * 63 + ("." + "b" * 63) * 30
    url = f"https://{host}/" + "p" * (2000 - len(host) - 9)
    assert len(url) == 2000
    assert create(steering, url=url).status_code == 201
    assert create(steering, url=url + "p").status_code == 400


def test_the_admin_shows_webhooks_and_the_log_read_only_never_the_secret(world: dict[str, Any]) -> None:
    from django.test import Client

    created = create(as_user(world, "steering")).json()
    as_user(world, "steering").post(f"/api/v1/webhooks/{created['id']}/ping/")
    delivery = WebhookDelivery.objects.get()
    admin = Client()
    admin.force_login(world["users"]["admin"])
    for path in (
        "/admin/webhooks/webhook/",
        f"/admin/webhooks/webhook/{created['id']}/change/",
        "/admin/webhooks/webhookdelivery/",
        f"/admin/webhooks/webhookdelivery/{delivery.pk}/change/",
    ):
        page = admin.get(path)
        assert page.status_code == 200, path
        assert created["secret"] not in page.content.decode()
    assert (
        admin.post(f"/admin/webhooks/webhookdelivery/{delivery.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert WebhookDelivery.objects.filter(pk=delivery.pk).exists()
