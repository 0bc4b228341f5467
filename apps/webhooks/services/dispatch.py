"""Getting recorded deliveries to their receivers: the relay hands due deliveries to the broker
(``apps.common.relay``), the sweep takes back lost ones, and one attempt POSTs one delivery and
records what came of it, with exponential backoff between attempts."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from apps.analyses.models import AnalysisResult
from apps.common.relay import backoff_seconds, one_message_each, relay_round
from apps.config.celery import configured_app
from apps.webhooks import delivery as wire
from apps.webhooks import events
from apps.webhooks.models import WebhookAttempt, WebhookDelivery
from apps.webhooks.services.access import owner_may_subscribe, webhook_disable
from apps.webhooks.services.validation import allow_http

logger = logging.getLogger(__name__)

DELIVER_TASK = "workers.tasks.deliver_webhook"
LOST_ATTEMPT = "No outcome recorded: the worker ended during the attempt, or the attempt outlived its lease."

Pending = WebhookDelivery.Status.PENDING


def _send(delivery_id: int) -> None:
    configured_app().send_task(DELIVER_TASK, args=[delivery_id], retry=False)


def webhook_deliveries_publish_pending(*, ids: list[int] | None = None, limit: int = 500) -> int:
    """Hand every due delivery (or the due ones of ``ids``) to the broker, one message each; return
    how many were handed over. A broker error stops the round and leaves the rest pending for the
    next one (``apps.common.relay``)."""
    now = timezone.now()
    due = WebhookDelivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        status=Pending,
        queued_at__isnull=True,
        leased_until__isnull=True,
    )
    if ids is not None:
        due = due.filter(pk__in=ids)

    def queued(sent: list[int]) -> None:
        WebhookDelivery.objects.filter(pk__in=sent).update(queued_at=now)

    return relay_round(
        due.order_by("next_attempt_at", "id").values_list("pk", flat=True),
        messages=one_message_each,
        send=_send,
        mark_sent=queued,
        limit=limit,
        what="webhook delivery",
    )


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


def retry_delay(attempts: int) -> int:
    """Seconds to wait after failed attempt number ``attempts``: WEBHOOKS_BACKOFF_SECONDS, doubling
    with each attempt, at most WEBHOOKS_BACKOFF_MAX_SECONDS."""
    return backoff_seconds(
        attempts - 1, first=settings.WEBHOOKS_BACKOFF_SECONDS, maximum=settings.WEBHOOKS_BACKOFF_MAX_SECONDS
    )


def _withhold_reason(delivery: WebhookDelivery) -> str:
    """Why the delivery must not go out now (empty if it may): checked under the delivery's lock,
    just before it is sent."""
    webhook = delivery.webhook
    owner = webhook.owner
    if not owner_may_subscribe(owner):
        reason = "The owner no longer has access to results."
        webhook_disable(webhook, reason)
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
