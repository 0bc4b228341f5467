"""Sessions that a page's own polling does not keep alive, and the notice after an idle timeout.

The stock session middleware cannot tell two pairs of things apart, and the portal needs both:

* A request the person made, and one an open page makes by itself (the live updates' poll and the
  region refreshes it triggers, which send ``X-Live: 1``). With ``SESSION_SAVE_EVERY_REQUEST`` each
  request renews the session, so an open dashboard would keep its session alive for ever and the
  idle timeout would never end it. Passive requests read the session but never save it: only the
  person's own requests count as activity.
* A session that ended because nobody used it, and one ended by signing out. After an idle timeout
  the sign-in page says why the person has to sign in again; after signing out it says nothing.
  The evidence: the session the browser still names exists but has expired (Django deletes a
  session at sign-out, and leaves an expired one until ``clearsessions``), or the ``evp_active``
  cookie, which records the time of the last activity and is deleted at sign-out, is older than
  the idle timeout (for session stores that forget expired sessions). The finding is carried over
  the redirect to the sign-in page in a short-lived cookie, shown once, then dropped.
"""

from __future__ import annotations

import math
import time
from typing import Any

from django.conf import settings
from django.contrib.auth import SESSION_KEY
from django.contrib.sessions.middleware import SessionMiddleware as DjangoSessionMiddleware
from django.core import signing
from django.http import HttpRequest, HttpResponse

#: the time (Unix seconds) of the browser's last request that counted as activity, signed
ACTIVE_COOKIE = "evp_active"
#: "the last session ended after the idle timeout": set until a page has said so
IDLE_COOKIE = "evp_idle"
_SALT = "apps.portal.session_middleware"
#: an idle notice waits this long for the page that shows it (the sign-in page after a redirect)
_IDLE_NOTICE_SECONDS = 300
#: activity this much short of the timeout still counts as the timeout: the session's expiry and
#: the cookie's time are written a few milliseconds apart, by web processes whose clocks may differ
_SLACK_SECONDS = 5
#: the header a page's own requests carry (``live.js``)
PASSIVE_HEADER = "X-Live"


def idle_timeout_minutes() -> int:
    return max(1, settings.SESSION_COOKIE_AGE // 60)


def mark_passive(request: HttpRequest) -> None:
    """This request is the page's, not the person's: it must not renew the session."""
    request.session_passive = True  # type: ignore[attr-defined]


def is_passive(request: HttpRequest) -> bool:
    return request.headers.get(PASSIVE_HEADER) == "1" or bool(getattr(request, "session_passive", False))


def activity_cookie(at: float) -> str:
    """The signed value of ``ACTIVE_COOKIE`` for a last activity at ``at`` (Unix seconds)."""
    return signing.get_cookie_signer(salt=ACTIVE_COOKIE + _SALT).sign(str(at))


def last_activity(request: HttpRequest) -> float | None:
    """When the browser last made a request of its own while signed in (None: unknown)."""
    value = request.get_signed_cookie(ACTIVE_COOKIE, default=None, salt=_SALT)
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def idle_seconds_left(request: HttpRequest) -> int | None:
    """Seconds until the session ends unless the person does something (None: unknown)."""
    at = last_activity(request)
    if at is None:
        return None
    # rounded up: 0 only once the session has ended, never a moment before
    return max(0, math.ceil(settings.SESSION_COOKIE_AGE - (time.time() - at)))


def _cookie_options() -> dict[str, Any]:
    return {
        "path": settings.SESSION_COOKIE_PATH,
        "domain": settings.SESSION_COOKIE_DOMAIN,
        "samesite": settings.SESSION_COOKIE_SAMESITE,
    }


def _is_page(response: HttpResponse) -> bool:
    """A page a person reads (where a notice can be shown), not a redirect, file or JSON answer."""
    return response.status_code == 200 and response.get("Content-Type", "").startswith("text/html")


class SessionMiddleware(DjangoSessionMiddleware):
    """Django's session middleware, with passive requests and the idle-timeout notice."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.idle_timeout_notice = None  # type: ignore[attr-defined]
        if SESSION_KEY in request.session:
            return
        if request.COOKIES.get(IDLE_COOKIE) or self._ended_idle(request):
            request.idle_timeout_notice = idle_timeout_minutes()  # type: ignore[attr-defined]

    def _ended_idle(self, request: HttpRequest) -> bool:
        at = last_activity(request)
        if at is not None and time.time() - at >= settings.SESSION_COOKIE_AGE - _SLACK_SECONDS:
            return True
        named = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        if not named:
            return False
        # The browser names a session that loaded as empty: expired if the store still has it.
        return request.session.is_empty() and self.SessionStore().exists(named)

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if is_passive(request):
            return response
        response = super().process_response(request, response)
        session = getattr(request, "session", None)
        if session is None:
            return response
        secure = settings.SESSION_COOKIE_SECURE
        if SESSION_KEY in session:
            response.set_cookie(
                ACTIVE_COOKIE, activity_cookie(time.time()), httponly=True, secure=secure, **_cookie_options()
            )
            if request.COOKIES.get(IDLE_COOKIE):
                response.delete_cookie(IDLE_COOKIE, **_cookie_options())
            return response
        if request.COOKIES.get(ACTIVE_COOKIE):
            response.delete_cookie(ACTIVE_COOKIE, **_cookie_options())
        notice = getattr(request, "idle_timeout_notice", None)
        if notice and not _is_page(response):
            response.set_cookie(
                IDLE_COOKIE,
                "1",
                max_age=_IDLE_NOTICE_SECONDS,
                httponly=True,
                secure=secure,
                **_cookie_options(),
            )
        elif request.COOKIES.get(IDLE_COOKIE):
            response.delete_cookie(IDLE_COOKIE, **_cookie_options())
        return response
