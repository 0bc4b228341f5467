"""One attempt at a time, in this process, to a real HTTP receiver on 127.0.0.1: the signature, the
retry schedule, the address rules at delivery time, the owner re-checked, the relay and the sweep."""

from __future__ import annotations

import json
import socket
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute
from apps.consortium.models import ConsortiumRole
from apps.webhooks import delivery, events
from apps.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from apps.webhooks.services import dispatch
from apps.webhooks.services.dispatch import webhook_delivery_attempt
from apps.webhooks.services.writes import PING_MESSAGE, webhook_ping
from tests.conftest import SMD_ROWS, api_client_for, make_cast, store_rows
from tests.webhooks.conftest import Receiver, Scripted, subscribe

pytestmark = pytest.mark.django_db

Status = WebhookDelivery.Status


@pytest.fixture
def world(tmp_media: Any, private_allowed: None, settings: Any) -> dict[str, Any]:
    settings.WEBHOOKS_BACKOFF_SECONDS = 7
    settings.WEBHOOKS_MAX_ATTEMPTS = 3
    return make_cast()


def ping(world: dict[str, Any], receiver: Receiver, who: str = "steering", **fields: Any) -> WebhookDelivery:
    webhook, _ = subscribe(
        world["users"][who], fields.pop("url", receiver.url), [events.RESULT_CHANGED], **fields
    )
    return webhook_ping(actor=world["users"][who], webhook=webhook)


def attempt(d: WebhookDelivery) -> WebhookDelivery:
    webhook_delivery_attempt(delivery_id=d.pk)
    d.refresh_from_db()
    return d


def make_due(d: WebhookDelivery) -> None:
    WebhookDelivery.objects.filter(pk=d.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_a_delivery_is_signed_and_the_docs_snippet_verifies_it(
    world: dict[str, Any], receiver: Receiver, docs_verify: Any
) -> None:
    d = attempt(ping(world, receiver))
    assert d.status == Status.DELIVERED and d.attempts == 1 and d.last_status_code == 200
    (request,) = receiver.requests
    secret = Webhook.objects.get(pk=d.webhook_id).secret
    assert request.path == "/hooks/evidence"
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["X-Evidence-Event"] == "ping"
    assert request.headers["X-Evidence-Delivery"] == str(d.uuid)
    assert docs_verify(secret, request.headers, request.body)
    assert not docs_verify("another secret", request.headers, request.body)
    assert request.json() == d.payload and request.json()["data"]["message"] == PING_MESSAGE
    (log,) = WebhookAttempt.objects.filter(delivery=d)
    assert (log.number, log.status_code, log.error, log.response_body) == (1, 200, "", "ok")
    assert log.duration_ms is not None and log.finished_at is not None
    assert attempt(d).attempts == 1  # finished: another task for it does nothing
    assert len(receiver.requests) == 1


def test_failures_are_retried_with_backoff_then_marked_failed(
    world: dict[str, Any], receiver: Receiver
) -> None:
    receiver.answer(Scripted(500, body=b"x" * 5000), 503, 404)
    d = attempt(ping(world, receiver))
    assert (d.status, d.attempts, d.last_status_code, d.last_error) == (Status.PENDING, 1, 500, "HTTP 500")
    assert d.next_attempt_at is not None
    assert 6 <= (d.next_attempt_at - timezone.now()).total_seconds() <= 7  # WEBHOOKS_BACKOFF_SECONDS
    assert WebhookAttempt.objects.get(delivery=d, number=1).response_body == "x" * 1024  # the first 1 KiB
    assert attempt(d).attempts == 1  # not due yet: a duplicate task does nothing
    make_due(d)
    d = attempt(d)
    assert (d.status, d.attempts) == (Status.PENDING, 2)
    assert 13 <= (d.next_attempt_at - timezone.now()).total_seconds() <= 14  # doubled
    make_due(d)
    d = attempt(d)
    assert (d.status, d.attempts, d.last_status_code) == (Status.FAILED, 3, 404)  # WEBHOOKS_MAX_ATTEMPTS
    assert list(WebhookAttempt.objects.filter(delivery=d).values_list("status_code", flat=True)) == [
        500,
        503,
        404,
    ]
    assert len({r.delivery_id for r in receiver.requests}) == 1 and len(receiver.requests) == 3


def test_retry_delays_double_up_to_the_maximum(settings: Any) -> None:
    settings.WEBHOOKS_BACKOFF_SECONDS = 15
    settings.WEBHOOKS_BACKOFF_MAX_SECONDS = 3600
    assert [dispatch.retry_delay(n) for n in range(1, 11)] == [
        15,
        30,
        60,
        120,
        240,
        480,
        960,
        1920,
        3600,
        3600,
    ]
    assert dispatch.retry_delay(500) == 3600


def test_redirects_are_not_followed(world: dict[str, Any], receiver: Receiver) -> None:
    elsewhere = Receiver()
    try:
        receiver.answer(Scripted(307, headers={"Location": elsewhere.url}))
        d = attempt(ping(world, receiver))
        assert d.status == Status.PENDING and d.last_status_code == 307
        assert "redirects are not followed" in d.last_error and elsewhere.url in d.last_error
        assert elsewhere.requests == []
    finally:
        elsewhere.stop()


def test_a_private_address_is_refused_at_delivery_time(
    world: dict[str, Any], receiver: Receiver, settings: Any
) -> None:
    d = ping(world, receiver)  # registered while private addresses were allowed
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    d = attempt(d)
    assert d.status == Status.FAILED and d.attempts == 1  # refused for good, not retried
    assert "127.0.0.1" in d.last_error and receiver.requests == []


def test_dns_rebinding_cannot_reach_a_private_address(
    world: dict[str, Any], receiver: Receiver, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = False
    answers = {"hooks.example.org": "93.184.215.14"}

    def resolver(host: str, port: int, **_: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (answers[host], port))]

    monkeypatch.setattr(delivery.socket, "getaddrinfo", resolver)
    url = f"http://hooks.example.org:{receiver.port}/hooks/evidence"
    d = ping(world, receiver, url=url)  # accepted: the name resolves to a public address
    answers["hooks.example.org"] = "127.0.0.1"  # ... and then to the receiver's
    d = attempt(d)
    assert d.status == Status.FAILED and "127.0.0.1" in d.last_error
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(
    world: dict[str, Any], receiver: Receiver, monkeypatch: pytest.MonkeyPatch, docs_verify: Any
) -> None:
    """With private addresses allowed, a name is resolved once and the POST goes to that address,
    with the name in the Host header."""
    monkeypatch.setattr(
        delivery.socket,
        "getaddrinfo",
        lambda host, port, **_: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))],
    )
    d = attempt(ping(world, receiver, url=f"http://hooks.example.org:{receiver.port}/in?x=1"))
    assert d.status == Status.DELIVERED
    (request,) = receiver.requests
    assert request.headers["Host"] == f"hooks.example.org:{receiver.port}" and request.path == "/in?x=1"


def test_no_answer_in_time_fails_the_attempt(
    world: dict[str, Any], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(delivery, "READ_TIMEOUT", 0.5)
    receiver.answer(Scripted(200, hold=3))
    d = attempt(ping(world, receiver))
    assert d.status == Status.PENDING and "time limit" in d.last_error
    # the answer that came after the time limit was not taken
    assert WebhookAttempt.objects.get(delivery=d).status_code is None


def test_a_closed_port_fails_the_attempt(world: dict[str, Any], receiver: Receiver) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    d = attempt(ping(world, receiver, url=f"http://127.0.0.1:{port}/h"))
    assert d.status == Status.PENDING and "ConnectionRefused" in d.last_error


def result_delivery(world: dict[str, Any], receiver: Receiver) -> WebhookDelivery:
    """A pending result.changed delivery of the steering member's, for an unreleased result."""
    subscribe(world["users"]["steering"], receiver.url, [events.RESULT_CHANGED])
    store_rows(centre=world["centre_a"], outcome=world["outcome"], rows=SMD_ROWS, submit=True)
    analysis_recompute(analysis_id=Analysis.objects.get(outcome=world["outcome"], is_default=True).pk)
    return WebhookDelivery.objects.get(event=events.RESULT_CHANGED)


def test_an_owner_who_lost_access_gets_nothing_and_the_webhook_is_marked(
    world: dict[str, Any], receiver: Receiver
) -> None:
    d = result_delivery(world, receiver)
    world["users"]["steering"].is_active = False
    world["users"]["steering"].save()
    d = attempt(d)
    assert d.status == Status.WITHHELD and d.attempts == 0 and receiver.requests == []
    webhook = Webhook.objects.get(pk=d.webhook_id)
    assert not webhook.active and webhook.disabled_reason and webhook.disabled_at is not None


def test_a_result_the_owner_can_no_longer_read_is_withheld_and_hidden_from_the_log(
    world: dict[str, Any], receiver: Receiver
) -> None:
    d = result_delivery(world, receiver)
    log = api_client_for(world, "steering").get(f"/api/v1/webhooks/{d.webhook_id}/deliveries/").json()
    assert log["results"][0]["payload"] == d.payload
    ConsortiumRole.objects.filter(user=world["users"]["steering"]).delete()
    d = attempt(d)
    assert d.status == Status.WITHHELD and "no longer visible" in d.last_error and receiver.requests == []
    assert Webhook.objects.get(pk=d.webhook_id).active  # the person still reads released results
    log = api_client_for(world, "steering").get(f"/api/v1/webhooks/{d.webhook_id}/deliveries/").json()
    assert log["results"][0]["payload"] is None and log["results"][0]["status"] == "withheld"


def test_pausing_withholds_pending_deliveries_but_a_ping_still_goes(
    world: dict[str, Any], receiver: Receiver
) -> None:
    d = result_delivery(world, receiver)
    Webhook.objects.filter(pk=d.webhook_id).update(active=False)
    assert attempt(d).status == Status.WITHHELD
    pinged = webhook_ping(actor=world["users"]["steering"], webhook=Webhook.objects.get(pk=d.webhook_id))
    assert attempt(pinged).status == Status.DELIVERED and len(receiver.requests) == 1


def test_the_relay_publishes_due_deliveries_and_stops_when_the_broker_fails(
    world: dict[str, Any], receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second, later = (ping(world, receiver) for _ in range(3))
    WebhookDelivery.objects.filter(pk=later.pk).update(next_attempt_at=timezone.now() + timedelta(minutes=5))
    sent: list[int] = []

    def broken(delivery_id: int) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(dispatch, "_send", broken)
    assert dispatch.webhook_deliveries_publish_pending() == 0
    assert not WebhookDelivery.objects.filter(queued_at__isnull=False).exists()
    monkeypatch.setattr(dispatch, "_send", sent.append)
    assert dispatch.webhook_deliveries_publish_pending() == 2
    assert sent == [first.pk, second.pk]
    assert dispatch.webhook_deliveries_publish_pending() == 0  # already handed over
    assert set(WebhookDelivery.objects.filter(queued_at__isnull=False).values_list("pk", flat=True)) == {
        first.pk,
        second.pk,
    }


def test_the_sweep_takes_back_lost_attempts_and_lost_messages(
    world: dict[str, Any], receiver: Receiver, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    sent: list[int] = []
    monkeypatch.setattr(dispatch, "_send", sent.append)
    now = timezone.now()
    lost_attempt, at_cap, lost_message, old = (ping(world, receiver) for _ in range(4))
    # a worker died mid-attempt: the lease ran out, the attempt has no outcome
    for d, attempts in ((lost_attempt, 1), (at_cap, settings.WEBHOOKS_MAX_ATTEMPTS)):
        WebhookDelivery.objects.filter(pk=d.pk).update(
            attempts=attempts, leased_until=now - timedelta(seconds=1), queued_at=now - timedelta(minutes=5)
        )
        WebhookAttempt.objects.create(delivery=d, number=attempts, started_at=now - timedelta(minutes=2))
    # handed to the broker long ago, never started
    WebhookDelivery.objects.filter(pk=lost_message.pk).update(queued_at=now - timedelta(minutes=5))
    # delivered long ago
    WebhookDelivery.objects.filter(pk=old.pk).update(
        status=Status.DELIVERED, finished_at=now - timedelta(days=91)
    )

    assert dispatch.webhook_deliveries_requeue_stale() == 2
    assert sorted(sent) == sorted([lost_attempt.pk, lost_message.pk])
    lost_attempt.refresh_from_db()
    assert lost_attempt.status == Status.PENDING and lost_attempt.leased_until is None
    assert WebhookAttempt.objects.get(delivery=lost_attempt).error == dispatch.LOST_ATTEMPT
    at_cap.refresh_from_db()
    assert at_cap.status == Status.FAILED and at_cap.last_error == dispatch.LOST_ATTEMPT
    assert not WebhookDelivery.objects.filter(pk=old.pk).exists()

    # and the re-queued attempt goes out, counted after the lost one
    lost_attempt = attempt(lost_attempt)
    assert lost_attempt.status == Status.DELIVERED and lost_attempt.attempts == 2


def test_an_attempt_in_progress_holds_the_delivery(world: dict[str, Any], receiver: Receiver) -> None:
    d = ping(world, receiver)
    WebhookDelivery.objects.filter(pk=d.pk).update(leased_until=timezone.now() + timedelta(seconds=30))
    assert webhook_delivery_attempt(delivery_id=d.pk) is None
    assert receiver.requests == []
    # a task for a delivery that no longer exists (its webhook was deleted) does nothing
    assert webhook_delivery_attempt(delivery_id=d.pk + 1000) is None


def test_a_body_survives_json_round_trip_byte_for_byte(world: dict[str, Any], receiver: Receiver) -> None:
    d = attempt(ping(world, receiver))
    assert receiver.requests[0].body == delivery.encode(d.payload)
    assert json.loads(receiver.requests[0].body) == d.payload
