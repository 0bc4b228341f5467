"""Who may hold a webhook, and stopping one whose owner no longer may."""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied
from django.utils import timezone

from apps.audit.services import audit_record
from apps.consortium import roles
from apps.consortium.models import ApiClient
from apps.webhooks.models import Webhook

logger = logging.getLogger(__name__)


def owner_may_subscribe(user: Any) -> bool:
    """Every active person (each receives what they may read) and API clients with ``results:read``."""
    if not (user.is_authenticated and user.is_active):
        return False
    client = roles.api_client_of(user)
    return client is None or client.has_scope(ApiClient.Scope.RESULTS_READ)


def assert_may_subscribe(user: Any) -> None:
    if not owner_may_subscribe(user):
        raise PermissionDenied("Webhooks are for people and for API clients with the results:read scope.")


def webhook_disable(webhook: Webhook, reason: str) -> None:
    """Stop a webhook whose owner lost access (it records and delivers nothing until they restart it)."""
    now = timezone.now()
    updated = Webhook.objects.filter(pk=webhook.pk, active=True).update(
        active=False, disabled_reason=reason, disabled_at=now, updated_at=now
    )
    if updated:
        webhook.active, webhook.disabled_reason, webhook.disabled_at = False, reason, now
        audit_record(actor=None, action="webhook.disable", obj=webhook, after={"reason": reason})
        logger.warning("Webhook %s stopped: %s", webhook.pk, reason)
