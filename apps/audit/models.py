"""An append-only trail of every data and permission change."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import models


class WriteOnce:
    """Mixin for records that are written once and then only read: the audit trail and the
    dataset versions that results cite. Saving an existing row or deleting one raises, so no code
    path (admin, shell, a future service) can rewrite what a result or an auditor relies on.
    """

    #: what the error says when code tries to change or delete a row
    write_once_message = "This record is never changed or deleted."

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None and not kwargs.get("force_insert"):  # type: ignore[attr-defined]
            raise RuntimeError(self.write_once_message)
        super().save(*args, **kwargs)  # type: ignore[misc]

    def delete(self, *args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(self.write_once_message)


class AuditEvent(WriteOnce, models.Model):
    """One change: who did what to which object, when, with the state before and after.

    Rows are never updated or deleted through the ORM (``save`` on an existing row and
    ``delete`` raise); retention is an operator's decision made in the database.
    """

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_username = models.CharField(max_length=150, blank=True)
    action = models.CharField(max_length=60, db_index=True)
    object_type = models.CharField(max_length=60)
    object_id = models.CharField(max_length=64)
    centre = models.ForeignKey(
        "consortium.Centre", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)

    write_once_message = "Audit events are append-only."

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.at:%Y-%m-%d %H:%M:%S} {self.actor_username or 'system'} {self.action} {self.object_type}#{self.object_id}"
