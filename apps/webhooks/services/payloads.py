"""Recording deliveries, inside the transaction of the change they announce (an outbox): one
``WebhookDelivery`` per webhook and event, whose payload holds only what the webhook's owner may
read. After the commit each is handed to the relay (``dispatch``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from functools import partial
from typing import Any

from django.conf import settings
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.analyses import visibility
from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.common.times import iso_time
from apps.config.publisher import publish_soon
from apps.webhooks import events
from apps.webhooks.models import Webhook, WebhookDelivery
from apps.webhooks.services.access import owner_may_subscribe, webhook_disable
from apps.webhooks.services.dispatch import webhook_deliveries_publish_pending
from workers.metaanalysis import measures


def delivery_record(
    webhook: Webhook, event: str, data: dict[str, Any], *, result_ids: Iterable[int] = ()
) -> WebhookDelivery:
    delivery_id = uuid.uuid4()
    now = timezone.now()
    payload = {
        "id": str(delivery_id),
        "event": event,
        "occurred_at": iso_time(now),
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
            webhook_disable(webhook, "The owner no longer has access to results.")
            continue
        found.append(webhook)
    return found


def _result_view(result: AnalysisResult) -> dict[str, Any]:
    """A result as a webhook payload names it (docs/webhooks.md). Written here, not taken from the
    API's summary (``apps.api.documents``): the two hold different fields, and a payload keeps its
    documented shape whatever the API's list rows become."""
    return {
        "id": result.pk,
        "url": reverse("v1:result-detail", kwargs={"pk": result.pk}),
        "seq": result.seq,
        "status": result.status,
        "k": result.k,
        "finished_at": iso_time(result.finished_at),
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
        if not visible or (released and visibility.reads_unreleased(webhook.owner)):
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
                recorded.append(delivery_record(webhook, event, body, result_ids=shown))
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
            "published_at": iso_time(release.published_at),
            "embargo_until": iso_time(release.embargo_until) if release.embargo_until else None,
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
        delivery_record(webhook, events.RELEASE_PUBLISHED, data, result_ids=[e.result_id for e in entries])
        for webhook in _subscribed([events.RELEASE_PUBLISHED])
    ]
