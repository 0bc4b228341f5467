"""Thin Celery tasks: they take ids and call idempotent services."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.analyses import outbox, releases, services
from apps.webhooks.services import dispatch as webhooks

# Transient failures worth retrying: the connection to the database was lost, refused or timed out
# (OperationalError, InterfaceError). Not their parent DatabaseError: an integrity, data or
# programming error fails the same way every time, so retrying it 20 times only hides it. An
# engine error is not transient either and is stored as a failed result (see analysis_recompute).
TRANSIENT = (OperationalError, InterfaceError)
#: For tasks whose work must happen: acknowledged after it is done, redelivered if the worker dies,
#: retried with backoff (up to 20 times, a minute apart at most) when the database was unreachable.
NEVER_LOST: dict[str, Any] = {
    "acks_late": True,
    "reject_on_worker_lost": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 1,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 20,
}


@shared_task(
    name="workers.tasks.recompute_analysis",
    **NEVER_LOST,
)
def recompute_analysis(analysis_id: int) -> int | None:
    result = services.analysis_recompute(analysis_id=analysis_id)
    return result.pk if result is not None else None


@shared_task(name="workers.tasks.relay_outbox", acks_late=True, ignore_result=True)
def relay_outbox() -> int:
    return outbox.outbox_publish_pending()


@shared_task(name="workers.tasks.sweep_stale", acks_late=True, ignore_result=True)
def sweep_stale() -> int:
    return len(outbox.analyses_requeue_stale())


@shared_task(
    name="workers.tasks.deliver_webhook",
    **NEVER_LOST,
    ignore_result=True,
)
def deliver_webhook(delivery_id: int) -> str | None:
    return webhooks.webhook_delivery_attempt(delivery_id=delivery_id)


@shared_task(name="workers.tasks.relay_webhooks", acks_late=True, ignore_result=True)
def relay_webhooks() -> int:
    return webhooks.webhook_deliveries_publish_pending()


@shared_task(name="workers.tasks.sweep_webhooks", acks_late=True, ignore_result=True)
def sweep_webhooks() -> int:
    return webhooks.webhook_deliveries_requeue_stale()


@shared_task(name="workers.tasks.announce_releases", acks_late=True, ignore_result=True)
def announce_releases() -> int:
    """Releases whose embargo has ended become readable: announce them (once, whoever runs it)."""
    return releases.releases_announce()


@shared_task(name="workers.tasks.housekeeping", acks_late=True, ignore_result=True)
def housekeeping() -> dict[str, int]:
    """Hourly: previews nobody confirmed within their lifetime, and sessions past their expiry
    (Django keeps them until asked; the idle-timeout notice reads them only while they last)."""
    from importlib import import_module

    from django.conf import settings

    from apps.datasets.services import staged_uploads_purge

    engine = import_module(settings.SESSION_ENGINE)
    engine.SessionStore.clear_expired()
    return {"previews": staged_uploads_purge()}
