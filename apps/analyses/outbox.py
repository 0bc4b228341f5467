"""The outbox relay for recompute requests: publish pending ``OutboxEvent`` rows to the broker,
with backoff while it is down, and re-request analyses whose request was lost on the way.

Steps 2 and 4 of the flow described in ``apps.analyses.services``.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from functools import partial

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.analyses.models import Analysis, OutboxEvent
from apps.config.celery import configured_app
from apps.config.publisher import publish_soon

logger = logging.getLogger(__name__)

RECOMPUTE_TASK = "workers.tasks.recompute_analysis"
_BACKOFF_MAX_SECONDS = 60


def outbox_publish_soon(*, event_ids: list[int]) -> None:
    """Publish in the background publisher so that a slow or absent broker never holds up a
    request (``apps.config.publisher``); what fails stays pending for the relay."""
    publish_soon(partial(outbox_publish_pending, event_ids=event_ids), what="recompute requests")


def _send(analysis_id: int) -> None:
    configured_app().send_task(RECOMPUTE_TASK, args=[analysis_id], retry=False)


def outbox_publish_pending(*, event_ids: list[int] | None = None, limit: int = 500) -> int:
    """Publish pending outbox events (all that are due, or the given ones); return how many were sent.

    Events are coalesced per analysis: one task per analysis covers all its pending events, because
    the worker always computes the latest request.
    """
    now = timezone.now()
    with transaction.atomic():
        pending = OutboxEvent.objects.filter(published_at__isnull=True)
        if event_ids is not None:
            pending = pending.filter(pk__in=event_ids)
        else:
            pending = pending.exclude(next_attempt_at__gt=now)
        if connection.vendor == "postgresql":
            pending = pending.select_for_update(skip_locked=True)
        events = list(pending.order_by("id")[:limit])
        by_analysis: dict[int, list[OutboxEvent]] = {}
        for event in events:
            by_analysis.setdefault(event.analysis_id, []).append(event)
        sent = 0
        for analysis_id, group in by_analysis.items():
            ids = [e.pk for e in group]
            try:
                _send(analysis_id)
            except Exception as exc:
                attempts = max(e.attempts for e in group) + 1
                delay = min(_BACKOFF_MAX_SECONDS, 2 ** min(attempts, 6))
                OutboxEvent.objects.filter(pk__in=ids).update(
                    attempts=F("attempts") + 1,
                    next_attempt_at=now + timedelta(seconds=delay),
                    last_error=f"{type(exc).__name__}: {exc}"[:2000],
                )
                logger.warning(
                    "Broker unavailable for analysis %s (%s); retry in %ss", analysis_id, exc, delay
                )
                # The broker is down for every other event as well: stop here, keep the rest pending.
                break
            OutboxEvent.objects.filter(pk__in=ids).update(
                published_at=timezone.now(), attempts=F("attempts") + 1
            )
            sent += len(ids)
    return sent


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
