"""The client's address, as every rate limit and lock-out counts it.

``REMOTE_ADDR`` is the peer of the web server. Behind a reverse proxy (``BEHIND_PROXY``) that peer
is the proxy, and the client is the last address in ``X-Forwarded-For``: the platform's nginx
sets the header to the address it saw (overwriting what the client sent), and a proxy that
appends instead puts it last; earlier entries were sent by the client and prove nothing. Without a declared proxy the header is ignored, so that rotating it cannot escape a limit.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings


def _address(text: str) -> str | None:
    try:
        return str(ipaddress.ip_address(text.strip()))
    except ValueError:
        return None


def client_ip(request: Any) -> str | None:
    """The client's IP address, or None when the request has none (an internal request)."""
    meta = getattr(request, "META", {}) or {}
    if settings.BEHIND_PROXY:
        forwarded = [part for part in meta.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if forwarded:
            address = _address(forwarded[-1])
            if address is not None:
                return address
    return _address(str(meta.get("REMOTE_ADDR") or ""))
