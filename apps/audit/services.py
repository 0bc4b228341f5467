"""Recording audit events. Call inside the transaction of the change so both commit or neither."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from apps.audit.models import AuditEvent

if TYPE_CHECKING:
    from django.contrib.auth.models import AnonymousUser, User
    from django.db.models import Model

    from apps.consortium.models import Centre


def audit_record(
    *,
    actor: User | AnonymousUser | None,
    action: str,
    obj: Model | None,
    centre: Centre | None = None,
    before: Any = None,
    after: Any = None,
    object_type: str | None = None,
    object_id: str | None = None,
) -> AuditEvent:
    if obj is not None:
        object_type = object_type or f"{obj._meta.app_label}.{obj._meta.model_name}"
        object_id = object_id or str(obj.pk)
    return AuditEvent.objects.create(
        actor=actor if actor is not None and actor.is_authenticated else None,
        actor_username=actor.get_username() if actor is not None and actor.is_authenticated else "",
        action=action,
        object_type=object_type or "",
        object_id=object_id or "",
        centre=centre,
        before=before,
        after=after,
    )
