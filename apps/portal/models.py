"""What the portal remembers about a person between visits."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class PortalVisit(models.Model):
    """When a person last saw the dashboard, so that the next visit can say what changed since.

    Kept in the database rather than the session: a session ends at sign-out or after the idle
    timeout, and "since your last visit" has to span exactly those gaps.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="portal_visit"
    )
    seen_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"{self.user_id} saw the dashboard at {self.seen_at:%Y-%m-%d %H:%M}"
