"""Webhooks delivered by real Celery worker processes on Redis, over the test PostgreSQL, to a real
HTTP receiver on 127.0.0.1: a stored result's events with their payloads, retries with backoff,
and nothing lost when a worker is killed mid-delivery or the broker is stopped."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from typing import Any

import pytest

from apps.analyses.models import Analysis
from apps.analyses.releases import release_publish
from apps.analyses.services import analysis_recompute
from apps.config.publisher import publisher_drain
from apps.webhooks import events, services
from apps.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from tests.conftest import SMD_ROWS, api_client_for, make_cast, store_rows
from tests.integration.conftest import all_analyses_current, wait_until
from tests.webhooks import conftest as webhooks_fixtures
from tests.webhooks.conftest import Receiver, Scripted, docs_json_block, subscribe

# The local receiver and the documentation's verification snippet, the fixtures tests/webhooks uses.
receiver = webhooks_fixtures.receiver
private_allowed = webhooks_fixtures.private_allowed
docs_verify = webhooks_fixtures.docs_verify

# The worker may deliver to the local receiver, retries after 1 s, 2 s, ..., and the sweep runs
# every 2 s with the shortest lease allowed (the worker also relays every second).
WORKER_ENV = {
    "WEBHOOKS_ALLOW_PRIVATE_ADDRESSES": "true",
    "WEBHOOKS_BACKOFF_SECONDS": "1",
    "WEBHOOKS_SWEEP_INTERVAL_SECONDS": "2",
    "WEBHOOKS_LEASE_SECONDS": "15",
}


PENDING = WebhookDelivery.Status.PENDING


def state() -> list[Any]:
    return list(
        WebhookDelivery.objects.order_by("id").values_list(
            "event", "status", "attempts", "queued_at", "leased_until", "last_error"
        )
    )


def delivered(pk: int) -> WebhookDelivery | None:
    d = WebhookDelivery.objects.get(pk=pk)
    return d if d.status == WebhookDelivery.Status.DELIVERED else None


def processes_connected_to(pids: list[int], port: int) -> list[int]:
    """Those of ``pids`` with a TCP connection to ``port`` on this machine (from /proc)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if int(fields[2].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
    found = []
    for pid in pids:
        try:
            links = {os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")}
        except OSError:
            continue
        if links & inodes:
            found.append(pid)
    return found


def keys(value: Any) -> Any:
    """The shape of a JSON value: its keys, recursively (lists by their first item)."""
    if isinstance(value, dict):
        return {k: keys(v) for k, v in value.items() if k != "pooled"}
    if isinstance(value, list):
        return [keys(value[0])] if value else []
    return None


def test_a_stored_result_is_delivered_with_its_events_signed(
    worker_factory: Any, receiver: Receiver, private_allowed: None, tmp_media: Any, docs_verify: Any
) -> None:
    cast = make_cast()
    worker_factory(extra_env=WORKER_ENV)
    everything, secret = subscribe(cast["users"]["steering"], receiver.url, list(events.EVENTS))
    member, _ = subscribe(cast["users"]["member_a"], receiver.url, list(events.EVENTS))

    # When a centre submits data (the worker recomputes, stores the result, records the deliveries)
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)

    # Then the receiver gets result.changed and ci.excludes_null for the stored result, signed. (The
    # analyses' first computations, before any data, failed: each of those is a result.changed too.)
    def stored() -> Any:
        analysis = Analysis.objects.select_related("current_result").get(
            outcome=cast["outcome"], is_default=True
        )
        result = analysis.current_result
        return result if result is not None and result.status == "done" else None

    result = wait_until(stored, timeout=60, what="the result", state=state)

    def about_result() -> list[Any]:
        return [
            r for r in list(receiver.requests) if r.json()["data"].get("result", {}).get("id") == result.pk
        ]

    # Once no analysis waits for a computation and no delivery is pending, nothing more comes: each
    # delivery is written with the result it announces, and each attempt before its request is sent.
    def settled() -> bool:
        return all_analyses_current() and not WebhookDelivery.objects.filter(status=PENDING).exists()

    wait_until(settled, timeout=60, what="every delivery to be finished", state=state)
    assert sorted(r.event for r in about_result()) == [events.CI_EXCLUDES_NULL, events.RESULT_CHANGED]
    for request in receiver.requests:
        assert docs_verify(secret, request.headers, request.body)
        body = request.json()
        assert body["webhook"] == everything.pk and body["event"] == request.event
        assert body["id"] == request.delivery_id
    for request in about_result():
        data = request.json()["data"]
        assert data["result"]["pooled"] == result.pooled and data["result"]["status"] == "done"
        previous = data["previous"]
        assert previous is None or previous["status"] == "empty"  # computed before any data came
    condition = receiver.of_event(events.CI_EXCLUDES_NULL)[0].json()
    assert condition["data"]["condition"]["side"] == "above"
    assert condition["data"]["condition"]["interval"] == {
        "ci_lb": result.pooled["ci_lb"],
        "ci_ub": result.pooled["ci_ub"],
    }
    # the documentation's example has the shape of a real delivery
    documented = docs_json_block("Payloads")
    # (the example shows a previous result with an interval; here the previous computation failed)
    condition["data"]["previous"] = condition["data"]["result"]
    condition["data"]["condition"]["previous_interval"] = condition["data"]["condition"]["interval"]
    assert keys(documented) == keys(condition)
    # and the member, who may not read the unreleased result, got nothing
    assert not member.deliveries.exists()
    assert set(everything.deliveries.values_list("status", flat=True)) == {WebhookDelivery.Status.DELIVERED}


def test_a_receiver_that_fails_twice_gets_the_third_attempt_after_backoff(
    worker_factory: Any, receiver: Receiver, private_allowed: None, tmp_media: Any, docs_verify: Any
) -> None:
    cast = make_cast()
    worker_factory(extra_env=WORKER_ENV)
    # release.published only: the analyses' first (failed) computations must not take the script's answers
    webhook, secret = subscribe(cast["users"]["steering"], receiver.url, [events.RELEASE_PUBLISHED])
    receiver.answer(500, 500)  # then 200
    resp = api_client_for(cast, "steering").post(f"/api/v1/webhooks/{webhook.pk}/ping/")
    assert resp.status_code == 202
    pk = WebhookDelivery.objects.get(uuid=resp.json()["id"]).pk
    d = wait_until(lambda: delivered(pk), timeout=60, what="the ping, third time", state=state)
    assert d.attempts == 3 and d.last_status_code == 200
    log = list(WebhookAttempt.objects.filter(delivery=d).order_by("number"))
    assert [(a.number, a.status_code) for a in log] == [(1, 500), (2, 500), (3, 200)]
    assert [a.error for a in log] == ["HTTP 500", "HTTP 500", ""]
    # one delivery id throughout, each attempt freshly signed, each retry started no sooner than its
    # backoff (1 s, then 2 s) after the failure before it, as the attempt log records them
    assert len({r.delivery_id for r in receiver.requests}) == 1 and len(receiver.requests) == 3
    assert all(docs_verify(secret, r.headers, r.body) for r in receiver.requests)
    for failed, retried, backoff in zip(log[:2], log[1:], (1, 2), strict=True):
        assert retried.started_at >= failed.finished_at + timedelta(seconds=backoff), (failed, retried)
    log_api = api_client_for(cast, "steering").get(f"/api/v1/webhooks/{webhook.pk}/deliveries/").json()
    assert [a["status_code"] for a in log_api["results"][0]["attempt_log"]] == [500, 500, 200]


@pytest.mark.slow
def test_a_worker_killed_mid_delivery_delays_but_does_not_lose_it(
    worker_factory: Any, receiver: Receiver, private_allowed: None, tmp_media: Any
) -> None:
    cast = make_cast()
    worker = worker_factory(concurrency=1, extra_env=WORKER_ENV)
    webhook, _ = subscribe(cast["users"]["steering"], receiver.url, [events.RELEASE_PUBLISHED])
    # The first answer is held longer than the worker waits for one: only the kill ends that attempt.
    receiver.answer(Scripted(200, hold=60))
    pk = services.webhook_ping(actor=cast["users"]["steering"], webhook=webhook).pk
    wait_until(lambda: receiver.requests, timeout=60, what="the first attempt", state=state)
    # the pool process holding the connection (not the embedded beat, which must go on sweeping)
    (child,) = processes_connected_to(worker.children(), receiver.port)
    os.kill(child, signal.SIGKILL)

    d = wait_until(
        lambda: delivered(pk), timeout=90, interval=0.2, what="the delivery after the kill", state=state
    )
    # delivered again once the lost attempt's lease had run out, to the same delivery id
    assert d.attempts == 2
    log = list(WebhookAttempt.objects.filter(delivery=d).order_by("number"))
    assert [a.error for a in log] == [services.LOST_ATTEMPT, ""]
    lease = timedelta(seconds=int(WORKER_ENV["WEBHOOKS_LEASE_SECONDS"]))
    assert log[1].started_at >= log[0].started_at + lease, log
    assert {r.delivery_id for r in receiver.requests} == {str(d.uuid)} and len(receiver.requests) == 2


@pytest.mark.slow
def test_a_stopped_broker_delays_but_does_not_lose_deliveries(
    private_redis: Any, worker_factory: Any, receiver: Receiver, private_allowed: None, tmp_media: Any
) -> None:
    cast = make_cast()
    worker_env = {**WORKER_ENV, "CELERY_BROKER_URL": private_redis.url}
    worker = worker_factory(extra_env=worker_env)
    webhook, _ = subscribe(cast["users"]["steering"], receiver.url, [events.RELEASE_PUBLISHED])
    ping = services.webhook_ping(actor=cast["users"]["steering"], webhook=webhook)
    wait_until(lambda: delivered(ping.pk), timeout=60, what="the ping before the outage", state=state)
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_recompute(analysis_id=analysis.pk)

    private_redis.stop()
    # While the broker is down: a ping through the API and a published release are recorded...
    resp = api_client_for(cast, "steering").post(f"/api/v1/webhooks/{webhook.pk}/ping/")
    assert resp.status_code == 202
    release_publish(actor=cast["users"]["steering"], name="outage-release", analyses=[analysis.pk])
    publisher_drain()  # this process has tried to hand both to the broker
    # ... and wait in the database, not delivered, not lost, not marked as handed over
    waiting = list(WebhookDelivery.objects.exclude(pk=ping.pk))
    assert [(d.status, d.attempts, d.queued_at) for d in waiting] == [(PENDING, 0, None)] * 2
    assert len(receiver.requests) == 1

    private_redis.start()
    if worker.exited():  # the broker's loss may have ended it: started again, as deployed
        worker_factory(extra_env=worker_env)
    wait_until(
        lambda: WebhookDelivery.objects.filter(status=WebhookDelivery.Status.DELIVERED).count() == 3,
        timeout=120,
        interval=0.5,
        what="the deliveries after the outage",
        state=state,
    )
    assert sorted(r.event for r in receiver.requests) == ["ping", "ping", "release.published"]
    release_body = receiver.of_event(events.RELEASE_PUBLISHED)[0].json()
    assert release_body["data"]["release"]["name"] == "outage-release"
    assert Webhook.objects.get(pk=webhook.pk).active
