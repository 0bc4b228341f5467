"""Token authentication for API clients and people: ``Authorization: Token <secret>``.

django-rest-knox checks a token against its stored SHA-512 digest; this class adds the platform's
rules around it: a limit on failed attempts per address, expiry that refuses without deleting (the
owner still sees an expired token in their list), and the time a token was last used.
"""

from __future__ import annotations

from datetime import timedelta
from hmac import compare_digest
from typing import Any

from django.conf import settings
from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

from apps.api.models import ApiToken
from apps.api.throttling import FailedAuthenticationThrottle

TOKEN_KEY_LENGTH = CONSTANTS.TOKEN_KEY_LENGTH

#: ``last_used_at`` is written at most this often per token: a read-heavy client must not turn
#: every request into a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(TokenAuthentication):
    """knox token authentication with a limit on failures per address.

    An address that has sent too many wrong tokens gets 429 with ``Retry-After`` for every token
    until the window passes, before any lookup: a right guess inside the window is not confirmed.
    Inactive accounts and expired tokens are refused (401).
    """

    def authenticate(self, request: Any) -> Any:
        throttle = FailedAuthenticationThrottle()
        if self._carries_token(request) and throttle.blocked(request):
            raise Throttled(
                wait=throttle.wait(),
                detail="Too many failed authentications from this address. Try again later.",
            )
        try:
            found = super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure(request)
            raise
        if found is not None:
            self._touch(found[1])
        return found

    def authenticate_credentials(self, token: bytes) -> tuple[Any, ApiToken]:
        """The token's user, by its digest. Unlike knox's own lookup this refuses an expired token
        without deleting it (its owner still sees it in their list) and without scanning the user's
        other tokens: one indexed query per request."""
        text = token.decode("utf-8", "replace")
        digest = hash_token(text)
        for candidate in ApiToken.objects.select_related("user").filter(token_key=text[:TOKEN_KEY_LENGTH]):
            if compare_digest(digest, candidate.digest):
                if candidate.expiry is not None and candidate.expiry <= timezone.now():
                    raise AuthenticationFailed(
                        f"This token expired on {candidate.expiry:%Y-%m-%d}; create a new one."
                    )
                user, auth = self.validate_user(candidate)
                return user, auth
        raise AuthenticationFailed("Invalid token.")

    def _touch(self, token: ApiToken) -> None:
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now

    def _carries_token(self, request: Any) -> bool:
        header = str(request.META.get("HTTP_AUTHORIZATION", ""))
        return header.split(" ", 1)[0].lower() == self.authenticate_header(request).lower()


class PasswordAuthentication(BasicAuthentication):
    """HTTP Basic (username and password), for creating a token from a script.

    Every attempt goes through Django's ``authenticate`` and so through the sign-in lock-out
    (django-axes): a locked account is answered 429 with ``Retry-After``, as the portal's sign-in
    page answers it, instead of a bare 401 that would invite more guessing.
    """

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> Any:
        try:
            return super().authenticate_credentials(userid, password, request)
        except AuthenticationFailed:
            if request is not None and getattr(request, "axes_locked_out", False):
                wait = int(settings.AXES_COOLOFF_TIME.total_seconds())
                raise Throttled(
                    wait=wait,
                    detail=f"Too many wrong passwords for this account from this address; try again in "
                    f"{max(1, wait // 60)} minutes.",
                ) from None
            raise
