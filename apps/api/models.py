"""API tokens: personal tokens people create for their own tools, and service-account tokens.

A token is a random secret shown once when it is created; the database keeps only its SHA-512
digest (django-rest-knox's ``AbstractAuthToken``: ``digest``, ``token_key`` the first 15
characters for lookup, ``user``, ``created``, ``expiry``). A token acts for its user and only
within its scopes: what a request may do is what the user may do AND what the token's scopes allow.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from knox.models import AbstractAuthToken

from apps.consortium.models import Scope


class ApiToken(AbstractAuthToken):
    """A named, scoped, expiring API token (``Authorization: Token <secret>``).

    ``token_key`` (the secret's first 15 characters, its public prefix) identifies a token in
    listings and URLs; the secret itself is never stored.
    """

    #: the one list of scopes (``apps.consortium.models.Scope``)
    Scope = Scope

    name = models.CharField(max_length=100)
    scopes = models.JSONField(default=list)
    last_used_at = models.DateTimeField(null=True, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created"]

    def __str__(self) -> str:
        return f"{self.name} ({self.token_key}…, {self.user})"

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes
