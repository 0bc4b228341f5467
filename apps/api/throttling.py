"""API rate limits: per token, per signed-in person, per address without credentials, and for
failed token authentications per address. Rates come from ``settings.API_THROTTLE_RATES`` (read
on every request, so that an operator's change needs no code), counters from the shared cache.
A refused request gets 429 with ``Retry-After``.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from apps.security.client import client_ip


class _SettingsRateThrottle(SimpleRateThrottle):
    num_requests: int
    duration: int

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(str(self.scope))


def token_ident(key: str) -> str:
    """Counters are keyed by a digest of the token, never the token itself (cache keys get logged)."""
    return hashlib.sha256(key.encode()).hexdigest()[:32]


class TokenRateThrottle(_SettingsRateThrottle):
    """Each API token has its own budget."""

    scope = "token"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        key = getattr(request.auth, "token_key", None)  # the token's public prefix
        if not key:
            return None
        return self.cache_format % {"scope": self.scope, "ident": token_ident(str(key))}


class SessionRateThrottle(_SettingsRateThrottle):
    """A person signed in through the portal (session) has a budget of their own."""

    scope = "session"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if getattr(request.auth, "token_key", None) or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class AnonymousRateThrottle(_SettingsRateThrottle):
    """Requests without credentials share one budget per address."""

    scope = "anonymous"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}


class FailedAuthenticationThrottle(_SettingsRateThrottle):
    """Failed token authentications per address. Consulted by the authentication class before a
    token is looked up: past the limit every token from that address is refused until the window
    passes, so guessing costs the window rather than one request."""

    scope = "failed_auth"

    def key_for(self, request: Any) -> str:
        return self.cache_format % {"scope": self.scope, "ident": client_ip(request) or "unknown"}

    def blocked(self, request: Any) -> bool:
        """True (and ``wait()`` says for how long) when the address has used up its failures."""
        self.key = self.key_for(request)
        self.now = self.timer()
        self.history = [t for t in self.cache.get(self.key, []) if t > self.now - self.duration]
        return len(self.history) >= self.num_requests

    def record_failure(self, request: Any) -> None:
        self.blocked(request)
        self.history.insert(0, self.now)
        self.cache.set(self.key, self.history[: self.num_requests], self.duration)
