"""Sign-in lock-outs go into the audit trail, like every other change of access."""

from __future__ import annotations

from typing import Any

from axes.signals import user_locked_out
from django.conf import settings
from django.dispatch import receiver
from django.utils import timezone

from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from apps.security.client import client_ip


@receiver(user_locked_out)
def record_lockout(sender: Any, request: Any, username: str | None = None, **kwargs: Any) -> None:
    """One record per lock-out. django-axes signals every refused attempt while the lock holds;
    recording each would let an attacker flood the trail."""
    address = client_ip(request) if request is not None else None
    object_id = (username or "")[:64]
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    if AuditEvent.objects.filter(
        action="auth.lockout", object_id=object_id, at__gte=since, after__address=address
    ).exists():
        return
    audit_record(
        actor=None,
        action="auth.lockout",
        obj=None,
        object_type="auth.user",
        object_id=object_id,
        after={"username": username, "address": address},
    )
