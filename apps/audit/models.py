"""An append-only trail of every data and permission change."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.common.models import WriteOnce


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
