"""API rate limits: per token, per signed-in person, per address without credentials, and for
failed token authentications per address. Rates come from ``settings.API_THROTTLE_RATES`` (read
on every request, so that an operator's change needs no code), counters from the shared cache.
A refused request gets 429 with ``Retry-After``.

Counted in fixed windows (a minute for a rate per minute): one atomic increment of a counter per
request. DRF's own ``SimpleRateThrottle`` keeps a list of every request's time in the window and
rewrites it on each request, which costs in proportion to the budget (1,200 timestamps read and
written back per request at the default) and loses counts when two workers write at once. The
price of a fixed window is that a client can spend two budgets across a window's edge.
"""

from __future__ import annotations

import hashlib
import math
from typing import Any

from django.conf import settings
from rest_framework.throttling import SimpleRateThrottle

from apps.security.client import client_ip


class _SettingsRateThrottle(SimpleRateThrottle):
    """DRF's throttle interface (rates, keys, ``wait``) over a fixed-window counter."""

    num_requests: int
    duration: int

    def get_rate(self) -> str | None:
        return settings.API_THROTTLE_RATES.get(str(self.scope))

    def _window(self, key: str) -> str:
        self.now = self.timer()
        window = int(self.now // self.duration)
        self.window_end = (window + 1) * self.duration
        return f"{key}:{window}"

    def _count(self, key: str) -> int:
        """Add one to the window's counter and return it (one round trip once the window exists)."""
        try:
            return int(self.cache.incr(key))
        except ValueError:  # the window's first request (or the counter expired)
            self.cache.add(key, 0, self.duration + 1)
            return int(self.cache.incr(key))

    def allow_request(self, request: Any, view: Any) -> bool:
        if self.rate is None:
            return True
        key = self.get_cache_key(request, view)
        if key is None:
            return True
        return self._count(self._window(key)) <= self.num_requests

    def wait(self) -> float | None:
        """Seconds until the window ends (at least one, as ``Retry-After`` is whole seconds)."""
        return max(1.0, math.ceil(self.window_end - self.now))


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

    def window_key(self, token_key: str) -> str:
        """The counter of ``token_key``'s current window (``self.now``, ``self.window_end`` set)."""
        return self._window(self.cache_format % {"scope": self.scope, "ident": token_ident(token_key)})

    def allow_request(self, request: Any, view: Any) -> bool:
        """The token authentication counted this request already, with its other reads
        (``ApiTokenAuthentication``): compare that count, or count here for any other path."""
        counted = getattr(request, "token_window", None)
        if self.rate is None or counted is None or counted[0] != getattr(request.auth, "token_key", None):
            return super().allow_request(request, view)
        _, count, self.now, self.window_end = counted
        return bool(count <= self.num_requests)


class SessionRateThrottle(_SettingsRateThrottle):
    """A person signed in through the portal (session) has a budget of their own."""

    scope = "session"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if getattr(request.auth, "token_key", None) or not request.user.is_authenticated:
            return None
        return self.cache_format % {"scope": self.scope, "ident": request.user.pk}


class LiveRateThrottle(SessionRateThrottle):
    """The portal's live-update polls, per person: an open tab asks 12 times a minute, so the
    default (120 a minute) allows about ten open tabs and stops a script that polls in a loop."""

    scope = "live"

    def get_cache_key(self, request: Any, view: Any) -> str | None:
        if not request.user.is_authenticated:
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

    def window_key(self, request: Any) -> str:
        """The counter of the address's current window (``self.now``, ``self.window_end`` set)."""
        return self._window(self.key_for(request))

    def blocked(self, request: Any) -> bool:
        """True (and ``wait()`` says for how long) when the address has used up its failures."""
        self.key = self._window(self.key_for(request))
        return int(self.cache.get(self.key, 0)) >= self.num_requests

    def record_failure(self, request: Any) -> None:
        self._count(self._window(self.key_for(request)))
