"""The owner's writes: create, change, delete a webhook, rotate its secret, ask for a ping. One
transaction each, with the owner re-checked under the row lock and an audit record. A receiver URL
is checked (and its host resolved) before the transaction, so that no lock is held while DNS answers.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.common.times import iso_time
from apps.webhooks import events
from apps.webhooks.models import Webhook, WebhookDelivery
from apps.webhooks.services.access import assert_may_subscribe
from apps.webhooks.services.payloads import delivery_record
from apps.webhooks.services.validation import webhook_validate

if TYPE_CHECKING:
    from django.contrib.auth.models import User

PING_MESSAGE = "A ping from the Evidence Platform: this receiver is set up."


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
    locked = Webhook.objects.select_for_update().filter(pk=webhook.pk).first()
    if locked is None:
        raise Webhook.DoesNotExist  # deleted meanwhile
    if locked.owner_id != actor.pk:
        raise PermissionDenied("This webhook belongs to someone else.")
    assert_may_subscribe(actor)
    return locked


def webhook_create(*, actor: User, data: dict[str, Any]) -> tuple[Webhook, str]:
    """A new webhook of ``actor``'s, with a new secret: returned here and never shown again."""
    from django.contrib.auth.models import User

    assert_may_subscribe(actor)
    cleaned = webhook_validate(webhook=None, data=data)
    with transaction.atomic():
        # the owner's row serialises their creations, so the limit holds under concurrency
        owner = User.objects.select_for_update().get(pk=actor.pk)
        assert_may_subscribe(owner)
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
            after={"secret_rotated_at": iso_time(webhook.secret_rotated_at)},
        )
    return webhook, secret


def webhook_ping(*, actor: User, webhook: Webhook) -> WebhookDelivery:
    """Queue a ``ping`` delivery (also to a paused webhook: it tests the receiver). One at a time:
    the platform does not POST to a URL as often as someone can ask it to."""
    with transaction.atomic():
        webhook = _own_locked(actor, webhook)
        if webhook.deliveries.filter(event=events.PING, status=WebhookDelivery.Status.PENDING).exists():
            raise ValidationError(
                "A ping to this webhook is still on its way: see its delivery log.", code="ping_pending"
            )
        return delivery_record(webhook, events.PING, {"webhook": webhook.pk, "message": PING_MESSAGE})
