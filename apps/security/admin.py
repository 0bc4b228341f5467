"""Lifting a sign-in lock-out in the admin (deleting its access attempts) is audited with the
administrator who did it."""

from __future__ import annotations

from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.db import transaction

from apps.audit.services import audit_record


def _record_unlock(actor: Any, attempt: AccessAttempt) -> None:
    audit_record(
        actor=actor,
        action="auth.unlock",
        obj=None,
        object_type="auth.user",
        object_id=(attempt.username or "")[:64],
        before={
            "username": attempt.username,
            "address": attempt.ip_address,
            "failures": attempt.failures_since_start,
        },
        after=None,
    )


class AuditedAccessAttemptAdmin(AccessAttemptAdmin):
    def delete_model(self, request: Any, obj: AccessAttempt) -> None:
        with transaction.atomic():
            _record_unlock(request.user, obj)
            super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        with transaction.atomic():
            for attempt in queryset:
                _record_unlock(request.user, attempt)
            super().delete_queryset(request, queryset)


if admin.site.is_registered(AccessAttempt):
    admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, AuditedAccessAttemptAdmin)
