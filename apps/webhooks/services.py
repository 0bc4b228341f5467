"""Webhooks: their owners' write rules, the deliveries they are owed, and getting those delivered.

The flow, and why a delivery is never lost:

1. A change (a new current result, a published release) is announced by a signal inside its own
   transaction; ``deliveries_record_result`` and ``deliveries_record_release`` write one
   ``WebhookDelivery`` per webhook and event in that transaction (an outbox): a delivery exists if
   and only if the change committed. Each payload holds only what the webhook's owner may read.
2. The relay (``webhook_deliveries_publish_pending``, run by beat every OUTBOX_RELAY_INTERVAL_SECONDS)
   hands every due delivery to the broker as a ``deliver_webhook`` task. While the broker is down the
   deliveries stay pending, and the next tick after it is back publishes them.
3. The task (``webhook_delivery_attempt``) claims the delivery with a lease, re-checks that the owner
   may still read everything in it, POSTs it (``delivery.post``, outside any transaction) and records
   the attempt. A failure schedules the next attempt with exponential backoff (the relay publishes it
   when it is due); after WEBHOOKS_MAX_ATTEMPTS attempts the delivery is marked failed.
4. Tasks are acknowledged late and rejected when a worker dies. The sweep
   (``webhook_deliveries_requeue_stale``) re-queues deliveries whose lease expired (the worker died
   mid-attempt) and those published long ago but never picked up (a lost message). Delivery is
   therefore at least once: a receiver recognises a repeat by its ``X-Evidence-Delivery`` id.

Writes to webhooks are one transaction each, with the owner re-checked under the row lock and an
audit record. A receiver URL is checked (and its host resolved) before the transaction, so that no
lock is held while DNS answers.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import connection, transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.audit.services import audit_record
from apps.common.text import FieldChecks, clean_text
from apps.config.celery import configured_app
from apps.config.publisher import publish_soon
from apps.consortium import roles
from apps.consortium.models import ApiClient
from apps.webhooks import delivery as wire
from apps.webhooks import events
from apps.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery
from workers.metaanalysis import measures

if TYPE_CHECKING:
    from django.contrib.auth.models import User

logger = logging.getLogger(__name__)

DELIVER_TASK = "workers.tasks.deliver_webhook"
WEBHOOK_FIELDS = ("url", "description", "events", "i2_threshold", "estimate_threshold", "active")
URL_MAX_LENGTH = 2000
ESTIMATE_THRESHOLD_MAX = 1000.0
LOST_ATTEMPT = "No outcome recorded: the worker ended during the attempt, or the attempt outlived its lease."
PING_MESSAGE = "A ping from the Evidence Platform: this receiver is set up."

Pending = WebhookDelivery.Status.PENDING


# --- who may hold a webhook -------------------------------------------------------------------


def owner_may_subscribe(user: Any) -> bool:
    """Every active person (each receives what they may read) and API clients with ``results:read``."""
    if not (user.is_authenticated and user.is_active):
        return False
    client = roles.api_client_of(user)
    return client is None or client.has_scope(ApiClient.Scope.RESULTS_READ)


def _assert_may_subscribe(user: Any) -> None:
    if not owner_may_subscribe(user):
        raise PermissionDenied("Webhooks are for people and for API clients with the results:read scope.")


def allow_http() -> bool:
    """Plain http receivers: outside production, or where WEBHOOKS_ALLOW_HTTP says so."""
    return bool(settings.WEBHOOKS_ALLOW_HTTP or not settings.PRODUCTION)


# --- validation -------------------------------------------------------------------------------


def clean_url(value: Any) -> str:
    """An http(s) URL the platform may call. A host name is resolved and every address checked;
    a name that does not resolve (yet) is accepted, because every delivery resolves it again."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give the receiver's URL, e.g. https://tools.example.org/hooks/evidence.")
    url = value.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ValidationError(f"The URL is longer than {URL_MAX_LENGTH} characters.")
    try:
        target = wire.parse(url, allow_http=allow_http())
        if not settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
            try:
                addresses = wire.resolve(target.host, target.port)
            except (OSError, UnicodeError):
                addresses = ()
            wire.check(target, allow_private=False, addresses=addresses)
    except wire.TargetRefusedError as exc:
        raise ValidationError(str(exc)) from exc
    return url


def _clean_events(value: Any) -> list[str]:
    choices = ", ".join(events.EVENTS)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"List the events to deliver, one or more of: {choices}.")
    unknown = [v for v in value if v not in events.EVENTS]
    if unknown:
        raise ValidationError(f"{', '.join(map(repr, unknown))}: not an event; choose from {choices}.")
    return list(dict.fromkeys(value))  # each once, in the order given


def _number(*, low: float, high: float, what: str) -> Callable[[Any], float]:
    def clean(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValidationError(f"{what} is a number.")
        if not low <= value <= high:
            raise ValidationError(f"{what} is between {low:g} and {high:g}.")
        return float(value)

    return clean


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("Give true or false.")
    return value


_CLEAN: dict[str, Callable[[Any], Any]] = {
    "url": clean_url,
    "description": lambda v: clean_text(
        "" if v is None else v, field="The description", max_length=200, blank=True
    ),
    "events": _clean_events,
    "i2_threshold": _number(low=0, high=100, what="The I² threshold (a percentage)"),
    "estimate_threshold": _number(low=0, high=ESTIMATE_THRESHOLD_MAX, what="The estimate threshold"),
    "active": _flag,
}


def webhook_validate(*, webhook: Webhook | None, data: dict[str, Any]) -> dict[str, Any]:
    """The cleaned fields that ``data`` sets: every field, with defaults, for a new webhook; only the
    fields given for a change (so that changing a description does not resolve the URL again).
    Raises ``ValidationError`` with the messages of every field."""
    given = {k: v for k, v in data.items() if k in WEBHOOK_FIELDS}
    if webhook is None:
        given = {
            "description": "",
            "i2_threshold": events.DEFAULT_I2_THRESHOLD,
            "estimate_threshold": events.DEFAULT_ESTIMATE_THRESHOLD,
            "active": True,
            **given,
        }
    checks = FieldChecks(given)
    for name in WEBHOOK_FIELDS:
        if name in given or webhook is None:
            checks.check(name, _CLEAN[name])
    return checks.result()


# --- the owner's writes -----------------------------------------------------------------------


def _audit_view(webhook: Webhook) -> dict[str, Any]:
    """What the audit trail records of a webhook: everything but its secret."""
    return {
        "owner": webhook.owner_id,
        "url": webhook.url,
        "description": webhook.description,
        "events": list(webhook.events),
        "i2_threshold": webhook.i2_threshold,
        "estimate_threshold": webhook.estimate_threshold,
        "active": webhook.active,
    }


def _own_locked(actor: Any, webhook: Webhook) -> Webhook:
    """The webhook, locked, after checking under the lock that ``actor`` owns it and may hold it."""
    locked = Webhook.objects.select_for_update().get(pk=webhook.pk)
    if locked.owner_id != actor.pk:
        raise PermissionDenied("This webhook belongs to someone else.")
    _assert_may_subscribe(actor)
    return locked


def webhook_create(*, actor: User, data: dict[str, Any]) -> tuple[Webhook, str]:
    """A new webhook of ``actor``'s, with a new secret: returned here and never shown again."""
    from django.contrib.auth.models import User

    _assert_may_subscribe(actor)
    cleaned = webhook_validate(webhook=None, data=data)
    with transaction.atomic():
        # the owner's row serialises their creations, so the limit holds under concurrency
        owner = User.objects.select_for_update().get(pk=actor.pk)
        _assert_may_subscribe(owner)
        if Webhook.objects.filter(owner=owner).count() >= settings.WEBHOOKS_MAX_PER_OWNER:
            raise ValidationError(
                f"You have {settings.WEBHOOKS_MAX_PER_OWNER} webhooks, the most one owner may have: "
                "delete one, or let one receive more events."
            )
        secret = secrets.token_urlsafe(32)
        webhook = Webhook.objects.create(owner=owner, secret=secret, **cleaned)
        audit_record(actor=actor, action="webhook.create", obj=webhook, after=_audit_view(webhook))
    return webhook, secret


def webhook_update(*, actor: User, webhook: Webhook, changes: dict[str, Any]) -> Webhook:
    """Change a webhook; ``active: true`` also restarts one the platform stopped, if its owner may
    hold webhooks again. No change changes nothing."""
    cleaned = webhook_validate(webhook=webhook, data=changes)
    with transaction.atomic():
        webhook = _own_locked(actor, webhook)
        changed = [f for f, v in cleaned.items() if getattr(webhook, f) != v]
        restart = cleaned.get("active") is True and bool(webhook.disabled_reason)
        if not changed and not restart:
            return webhook
        before = _audit_view(webhook)
        for name in changed:
            setattr(webhook, name, cleaned[name])
        if cleaned.get("active") is not None:
            webhook.disabled_reason, webhook.disabled_at = "", None
        webhook.save(update_fields=[*changed, "disabled_reason", "disabled_at", "updated_at"])
        audit_record(
            actor=actor, action="webhook.update", obj=webhook, before=before, after=_audit_view(webhook)
        )
    return webhook


def webhook_delete(*, actor: User, webhook: Webhook) -> None:
    """Delete a webhook, its pending deliveries and its delivery log."""
    with transaction.atomic():
        webhook = _own_locked(actor, webhook)
        before, pk = _audit_view(webhook), webhook.pk
        webhook.delete()
        audit_record(
            actor=actor,
            action="webhook.delete",
            obj=None,
            object_type="webhooks.webhook",
            object_id=str(pk),
            before=before,
        )


def webhook_rotate_secret(*, actor: User, webhook: Webhook) -> tuple[Webhook, str]:
    """A new secret, effective at once: deliveries from now on are signed with it alone."""
    with transaction.atomic():
        webhook = _own_locked(actor, webhook)
        secret = secrets.token_urlsafe(32)
        webhook.secret, webhook.secret_rotated_at = secret, timezone.now()
        webhook.save(update_fields=["secret", "secret_rotated_at", "updated_at"])
        audit_record(
            actor=actor,
            action="webhook.rotate_secret",
            obj=webhook,
            after={"secret_rotated_at": _iso(webhook.secret_rotated_at)},
        )
    return webhook, secret


def webhook_ping(*, actor: User, webhook: Webhook) -> WebhookDelivery:
    """Queue a ``ping`` delivery (also to a paused webhook: it tests the receiver). One at a time:
    the platform does not POST to a URL as often as someone can ask it to."""
    with transaction.atomic():
        webhook = _own_locked(actor, webhook)
        if webhook.deliveries.filter(event=events.PING, status=Pending).exists():
            raise ValidationError(
                "A ping to this webhook is still on its way: see its delivery log.", code="ping_pending"
            )
        return _record(webhook, events.PING, {"webhook": webhook.pk, "message": PING_MESSAGE})


def _disable(webhook: Webhook, reason: str) -> None:
    """Stop a webhook whose owner lost access (it records and delivers nothing until they restart it)."""
    now = timezone.now()
    updated = Webhook.objects.filter(pk=webhook.pk, active=True).update(
        active=False, disabled_reason=reason, disabled_at=now, updated_at=now
    )
    if updated:
        webhook.active, webhook.disabled_reason, webhook.disabled_at = False, reason, now
        audit_record(actor=None, action="webhook.disable", obj=webhook, after={"reason": reason})
        logger.warning("Webhook %s stopped: %s", webhook.pk, reason)


# --- recording deliveries (inside the change's transaction) -----------------------------------


def _iso(value: datetime | None) -> str | None:
    """A time as the API writes it (ISO 8601, ``Z`` for UTC)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def _record(
    webhook: Webhook, event: str, data: dict[str, Any], *, result_ids: Iterable[int] = ()
) -> WebhookDelivery:
    delivery_id = uuid.uuid4()
    now = timezone.now()
    payload = {
        "id": str(delivery_id),
        "event": event,
        "occurred_at": _iso(now),
        "webhook": webhook.pk,
        "data": data,
    }
    delivery = WebhookDelivery.objects.create(
        uuid=delivery_id,
        webhook=webhook,
        event=event,
        payload=payload,
        result_ids=sorted(set(result_ids)),
        next_attempt_at=now,
    )
    if settings.OUTBOX_PUBLISH_ON_COMMIT:
        # handed to the broker right after the commit; the relay sends it if that fails
        transaction.on_commit(
            lambda: publish_soon(
                partial(webhook_deliveries_publish_pending, ids=[delivery.pk]), what="webhook deliveries"
            )
        )
    return delivery


def _subscribed(wanted: Iterable[str]) -> list[Webhook]:
    """Active webhooks that ask for any of ``wanted``, whose owners may still hold them (the others
    are stopped). Few rows: filtered here, which works on every database."""
    wanted = set(wanted)
    found = []
    for webhook in Webhook.objects.filter(active=True).select_related("owner").order_by("pk"):
        if not wanted & set(webhook.events):
            continue
        if not owner_may_subscribe(webhook.owner):
            _disable(webhook, "The owner no longer has access to results.")
            continue
        found.append(webhook)
    return found


def _result_view(result: AnalysisResult) -> dict[str, Any]:
    return {
        "id": result.pk,
        "url": reverse("v1:result-detail", kwargs={"pk": result.pk}),
        "seq": result.seq,
        "status": result.status,
        "k": result.k,
        "finished_at": _iso(result.finished_at),
        "engine_version": result.engine_version,
        "input_fingerprint": result.input_fingerprint,
        "pooled": result.pooled,
        "error": result.error,
        # what was analysed, as named when the result was computed (outcome, measure, direction,
        # time point, instruments): a tool labels the numbers with these, never with today's names
        "labels": result.labels,
    }


def _comparable(result: AnalysisResult | None) -> dict[str, Any] | None:
    """The headline to compare, or None: a failed result has none, and a meta-regression's first
    coefficient is an intercept, not a pooled effect."""
    if result is None or result.status != AnalysisResult.Status.DONE or result.spec.get("mods"):
        return None
    return result.pooled


def _owner_view(
    owner: Any, result: AnalysisResult, previous_id: int | None
) -> tuple[bool, AnalysisResult | None]:
    """Whether ``owner`` may read ``result``, and the previous result they may read: the analysis's
    previous current result if they may read it, otherwise the newest earlier one they may."""
    readable = AnalysisResult.objects.visible_to(owner)
    if not readable.filter(pk=result.pk).exists():
        return False, None
    previous = readable.filter(pk=previous_id).first() if previous_id is not None else None
    if previous is None:
        previous = (
            readable.filter(analysis_id=result.analysis_id, seq__lt=result.seq).order_by("-seq").first()
        )
    return True, previous


def deliveries_record_result(
    *, result: AnalysisResult, previous_id: int | None, released: bool = False
) -> list[WebhookDelivery]:
    """Record ``result.changed`` and the condition events of a new current result for every webhook
    that asks for them and whose owner may read the result (a member: released results only).

    With ``released``, the result has just been released: only owners who read released results
    alone get it now (the steering group had it when it was stored)."""
    webhooks = _subscribed(events.RESULT_EVENTS)
    if not webhooks:
        return []
    analysis = Analysis.objects.select_related("outcome").get(pk=result.analysis_id)
    measure = str(result.spec.get("measure") or analysis.outcome.measure)
    after = _comparable(result)
    views: dict[int, tuple[bool, AnalysisResult | None]] = {}
    recorded = []
    for webhook in webhooks:
        if webhook.owner_id not in views:
            views[webhook.owner_id] = _owner_view(webhook.owner, result, previous_id)
        visible, previous = views[webhook.owner_id]
        if not visible or (released and roles.reads_unreleased_results(webhook.owner)):
            continue
        data = {
            "analysis": {
                "id": analysis.pk,
                "name": analysis.name,
                "is_default": analysis.is_default,
                "outcome": analysis.outcome.code,
                "measure": measure,
            },
            "scale": "log" if measures.is_log_scale(measure) else "identity",
            "null": events.NULL,
            "result": _result_view(result),
            "previous": _result_view(previous) if previous is not None else None,
        }
        fired: dict[str, dict[str, Any] | None] = {events.RESULT_CHANGED: None}
        if after is not None:
            fired.update(
                events.conditions(
                    _comparable(previous),
                    after,
                    i2_threshold=webhook.i2_threshold,
                    estimate_threshold=webhook.estimate_threshold,
                )
            )
        shown = [result.pk] + ([previous.pk] if previous is not None else [])
        for event, condition in fired.items():
            if event in webhook.events:
                body = data if condition is None else {**data, "condition": condition}
                recorded.append(_record(webhook, event, body, result_ids=shown))
    return recorded


def deliveries_record_release(*, release: Release) -> list[WebhookDelivery]:
    """Record ``release.published`` for every webhook that asks for it, now that members and API
    clients may read the release (at publication, or when its embargo ended). The body names the
    release and the result it froze for each analysis."""
    entries = release.entries.select_related("analysis__outcome").order_by("analysis_id")
    data = {
        "release": {
            "id": release.pk,
            "name": release.name,
            "url": reverse("v1:release-detail", kwargs={"name": release.name}),
            "notes": release.notes,
            "published_at": _iso(release.published_at),
            "embargo_until": _iso(release.embargo_until) if release.embargo_until else None,
            "results": [
                {
                    "analysis": entry.analysis_id,
                    "outcome": entry.analysis.outcome.code,
                    "result": entry.result_id,
                    "url": reverse("v1:result-detail", kwargs={"pk": entry.result_id}),
                }
                for entry in entries
            ],
        }
    }
    return [
        _record(webhook, events.RELEASE_PUBLISHED, data, result_ids=[e.result_id for e in entries])
        for webhook in _subscribed([events.RELEASE_PUBLISHED])
    ]


# --- the relay and the sweep ------------------------------------------------------------------


def _send(delivery_id: int) -> None:
    configured_app().send_task(DELIVER_TASK, args=[delivery_id], retry=False)


def webhook_deliveries_publish_pending(*, ids: list[int] | None = None, limit: int = 500) -> int:
    """Hand every due delivery (or the due ones of ``ids``) to the broker; return how many were
    handed over. A broker error stops the round and leaves the rest pending for the next one."""
    now = timezone.now()
    with transaction.atomic():
        due = WebhookDelivery.objects.filter(
            Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
            status=Pending,
            queued_at__isnull=True,
            leased_until__isnull=True,
        )
        if ids is not None:
            due = due.filter(pk__in=ids)
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True)
        chosen = list(due.order_by("next_attempt_at", "id").values_list("pk", flat=True)[:limit])
        sent: list[int] = []
        for pk in chosen:
            try:
                _send(pk)
            except Exception as exc:
                logger.warning(
                    "Broker unavailable for webhook delivery %s (%s); the relay will retry.", pk, exc
                )
                break
            sent.append(pk)
        if sent:
            WebhookDelivery.objects.filter(pk__in=sent).update(queued_at=now)
    return len(sent)


def _close_lost_attempts(delivery: WebhookDelivery, now: datetime) -> None:
    WebhookAttempt.objects.filter(delivery=delivery, finished_at__isnull=True).update(
        finished_at=now, error=LOST_ATTEMPT
    )


def webhook_deliveries_requeue_stale() -> int:
    """Re-queue deliveries whose attempt lease expired (the worker died mid-attempt: the attempt counts)
    and those handed to the broker more than a lease ago but never started (the message was lost);
    forget finished deliveries older than WEBHOOKS_LOG_RETENTION_DAYS. Returns how many were re-queued."""
    now = timezone.now()
    lease = timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS)
    requeued = 0
    with transaction.atomic():
        expired = WebhookDelivery.objects.filter(status=Pending, leased_until__lt=now)
        if connection.vendor == "postgresql":
            expired = expired.select_for_update(skip_locked=True)
        for delivery in expired:
            _close_lost_attempts(delivery, now)
            if delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    status=WebhookDelivery.Status.FAILED,
                    finished_at=now,
                    leased_until=None,
                    last_error=LOST_ATTEMPT,
                )
            else:
                WebhookDelivery.objects.filter(pk=delivery.pk).update(
                    leased_until=None, queued_at=None, next_attempt_at=now, last_error=LOST_ATTEMPT
                )
                requeued += 1
        requeued += WebhookDelivery.objects.filter(
            status=Pending, leased_until__isnull=True, queued_at__lt=now - lease
        ).update(queued_at=None)
    cutoff = now - timedelta(days=settings.WEBHOOKS_LOG_RETENTION_DAYS)
    WebhookDelivery.objects.exclude(status=Pending).filter(finished_at__lt=cutoff).delete()
    if requeued:
        webhook_deliveries_publish_pending()
    return requeued


# --- one attempt ------------------------------------------------------------------------------


def retry_delay(attempts: int) -> int:
    """Seconds to wait after failed attempt number ``attempts``: WEBHOOKS_BACKOFF_SECONDS, doubling
    with each attempt, at most WEBHOOKS_BACKOFF_MAX_SECONDS."""
    return int(
        min(
            settings.WEBHOOKS_BACKOFF_MAX_SECONDS,
            settings.WEBHOOKS_BACKOFF_SECONDS * 2 ** min(attempts - 1, 30),
        )
    )


def _withhold_reason(delivery: WebhookDelivery) -> str:
    """Why the delivery must not go out now (empty if it may): checked under the delivery's lock,
    just before it is sent."""
    webhook = delivery.webhook
    owner = webhook.owner
    if not owner_may_subscribe(owner):
        reason = "The owner no longer has access to results."
        _disable(webhook, reason)
        return reason
    if not webhook.active and delivery.event != events.PING:
        return webhook.disabled_reason or "The webhook is paused."
    if delivery.result_ids:
        visible = AnalysisResult.objects.visible_to(owner).filter(pk__in=delivery.result_ids).count()
        if visible != len(set(delivery.result_ids)):
            return "A result in this delivery is no longer visible to the webhook's owner."
    return ""


def _finish(
    delivery: WebhookDelivery, status: str, *, now: datetime, error: str = "", code: int | None = None
) -> None:
    WebhookDelivery.objects.filter(pk=delivery.pk).update(
        status=status, finished_at=now, leased_until=None, last_error=_text(error), last_status_code=code
    )


def _text(value: str) -> str:
    """Text PostgreSQL stores (a NUL character it does not)."""
    return value.replace("\x00", "\ufffd")


def _call(delivery: WebhookDelivery, url: str, secret: str) -> wire.Answer:
    try:
        target = wire.parse(url, allow_http=allow_http())
        try:
            addresses = wire.resolve(target.host, target.port)
        except (OSError, UnicodeError) as exc:
            return wire.Answer(None, 0.0, f"The host name did not resolve: {exc}", b"", retry=True)
        # checked again now, whatever the name resolved to when the webhook was registered
        target = wire.check(
            target, allow_private=settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES, addresses=addresses
        )
    except wire.TargetRefusedError as exc:
        return wire.Answer(None, 0.0, f"Not sent: {exc}", b"", retry=False)
    body = wire.encode(delivery.payload)
    headers = wire.signed_headers(
        secret=secret,
        event=delivery.event,
        delivery_id=str(delivery.uuid),
        body=body,
        timestamp=int(time.time()),
    )
    return wire.post(target, body, headers)


def webhook_delivery_attempt(*, delivery_id: int) -> str | None:
    """One attempt at one delivery; idempotent and safe to run concurrently and repeatedly.

    Returns the delivery's status afterwards, or None when there was nothing to do: it is finished,
    not yet due, or another worker's attempt holds its lease.
    """
    now = timezone.now()
    with transaction.atomic():
        delivery = (
            WebhookDelivery.objects.select_for_update(of=("self",))
            .select_related("webhook", "webhook__owner")
            .filter(pk=delivery_id)
            .first()
        )
        if delivery is None or delivery.status != Pending:
            return None
        if delivery.leased_until is not None:
            if delivery.leased_until > now:
                return None  # another attempt is in progress
            _close_lost_attempts(delivery, now)  # its worker died; the sweep had not come round yet
            if delivery.attempts >= settings.WEBHOOKS_MAX_ATTEMPTS:
                _finish(delivery, WebhookDelivery.Status.FAILED, now=now, error=LOST_ATTEMPT)
                return WebhookDelivery.Status.FAILED
        elif delivery.next_attempt_at is not None and delivery.next_attempt_at > now:
            return None  # a duplicate message; the relay publishes it again when it is due
        reason = _withhold_reason(delivery)
        if reason:
            _finish(delivery, WebhookDelivery.Status.WITHHELD, now=now, error=reason)
            return WebhookDelivery.Status.WITHHELD
        number = delivery.attempts + 1
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            attempts=number, leased_until=now + timedelta(seconds=settings.WEBHOOKS_LEASE_SECONDS)
        )
        WebhookAttempt.objects.create(delivery=delivery, number=number, started_at=now)
        url, secret = delivery.webhook.url, delivery.webhook.secret
    answer = _call(delivery, url, secret)  # the network, outside any transaction
    return _record_attempt(delivery, number, answer)


def _record_attempt(delivery: WebhookDelivery, number: int, answer: wire.Answer) -> str | None:
    now = timezone.now()
    error = _text(answer.error)
    with transaction.atomic():
        WebhookAttempt.objects.filter(
            delivery_id=delivery.pk, number=number, finished_at__isnull=True
        ).update(
            finished_at=now,
            status_code=answer.status_code,
            duration_ms=answer.duration_ms,
            error=error,
            response_body=_text(answer.body.decode("utf-8", "replace")),
        )
        mine = (
            WebhookDelivery.objects.select_for_update()
            .filter(pk=delivery.pk, status=Pending, attempts=number, leased_until__isnull=False)
            .values_list("pk", flat=True)
            .first()
        )
        if mine is None:
            return None  # the sweep took it back (this attempt outlived its lease); it will go again
        if answer.ok:
            _finish(delivery, WebhookDelivery.Status.DELIVERED, now=now, code=answer.status_code)
            return WebhookDelivery.Status.DELIVERED
        if not answer.retry or number >= settings.WEBHOOKS_MAX_ATTEMPTS:
            _finish(delivery, WebhookDelivery.Status.FAILED, now=now, error=error, code=answer.status_code)
            logger.warning(
                "Webhook delivery %s failed for good after %s attempt(s): %s", delivery.uuid, number, error
            )
            return WebhookDelivery.Status.FAILED
        delay = retry_delay(number)
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            leased_until=None,
            queued_at=None,
            next_attempt_at=now + timedelta(seconds=delay),
            last_status_code=answer.status_code,
            last_error=error,
        )
        logger.info(
            "Webhook delivery %s attempt %s failed (%s); next in %ss", delivery.uuid, number, error, delay
        )
        return Pending
