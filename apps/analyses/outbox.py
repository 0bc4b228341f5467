"""The outbox relay for recompute requests: publish pending ``OutboxEvent`` rows to the broker
(through ``apps.common.relay``), with backoff while it is down, and re-request analyses whose
request was lost on the way.

Steps 2 and 4 of the flow described in ``apps.analyses.services``.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.analyses.models import Analysis, OutboxEvent
from apps.common.relay import backoff_seconds, relay_round
from apps.config.celery import configured_app
from apps.config.publisher import publish_soon

RECOMPUTE_TASK = "workers.tasks.recompute_analysis"


def outbox_publish_soon(*, event_ids: list[int]) -> None:
    """Publish in the background publisher so that a slow or absent broker never holds up a
    request (``apps.config.publisher``); what fails stays pending for the relay."""
    publish_soon(partial(outbox_publish_pending, event_ids=event_ids), what="recompute requests")


def _send(analysis_id: int) -> None:
    configured_app().send_task(RECOMPUTE_TASK, args=[analysis_id], retry=False)


def _per_analysis(events: list[OutboxEvent]) -> list[tuple[int, list[OutboxEvent]]]:
    """One message per analysis, covering all its pending events: the worker always computes the
    latest request."""
    by_analysis: dict[int, list[OutboxEvent]] = {}
    for event in events:
        by_analysis.setdefault(event.analysis_id, []).append(event)
    return list(by_analysis.items())


def _published(events: list[OutboxEvent]) -> None:
    OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        published_at=timezone.now(), attempts=F("attempts") + 1
    )


def _postponed(events: list[OutboxEvent], exc: Exception, *, now: datetime) -> None:
    """The broker refused the analysis's message: try its events again after a backoff (doubling
    with each attempt, at most OUTBOX_BACKOFF_MAX_SECONDS)."""
    attempts = max(e.attempts for e in events) + 1
    delay = backoff_seconds(attempts, first=1, maximum=settings.OUTBOX_BACKOFF_MAX_SECONDS)
    OutboxEvent.objects.filter(pk__in=[e.pk for e in events]).update(
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error=f"{type(exc).__name__}: {exc}"[:2000],
    )


def outbox_publish_pending(*, event_ids: list[int] | None = None, limit: int = 500) -> int:
    """Publish pending outbox events (all that are due, or the given ones); return how many were sent.

    Events are coalesced per analysis: one task per analysis covers all its pending events. A
    broker error postpones that analysis's events and leaves the rest pending (``apps.common.relay``).
    """
    now = timezone.now()
    pending = OutboxEvent.objects.filter(published_at__isnull=True)
    if event_ids is not None:
        pending = pending.filter(pk__in=event_ids)
    else:
        pending = pending.exclude(next_attempt_at__gt=now)
    return relay_round(
        pending.order_by("id"),
        messages=_per_analysis,
        send=_send,
        mark_sent=_published,
        mark_failed=partial(_postponed, now=now),
        limit=limit,
        what="analysis",
    )


def analyses_requeue_stale(*, lease_seconds: int | None = None) -> list[int]:
    """Re-request analyses whose latest request has waited longer than a lease without a result
    (a lost message, a worker killed before redelivery, a broker flushed by an operator)."""
    lease = timedelta(
        seconds=lease_seconds if lease_seconds is not None else settings.RECOMPUTE_STALE_AFTER_SECONDS
    )
    cutoff = timezone.now() - lease
    stale = []
    for analysis in Analysis.objects.filter(requested_seq__gt=F("computed_seq")):
        if analysis.running_since is not None and analysis.running_since > cutoff:
            continue
        newest = analysis.outbox_events.order_by("-id").first()
        if newest is not None and (newest.published_at is None or newest.published_at > cutoff):
            continue  # still pending in the relay, or published recently
        stale.append(analysis.pk)
    with transaction.atomic():
        events = [
            OutboxEvent.objects.create(analysis_id=pk, seq=Analysis.objects.get(pk=pk).requested_seq)
            for pk in stale
        ]
    if events:
        outbox_publish_pending(event_ids=[e.pk for e in events])
    return stale
