"""Token authentication for API clients and people: ``Authorization: Token <key>``."""

from __future__ import annotations

from typing import Any

from rest_framework.authentication import TokenAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled

from apps.api.throttling import FailedAuthenticationThrottle


class ApiTokenAuthentication(TokenAuthentication):
    """DRF's token authentication with a limit on failures per address.

    An address that has sent too many wrong tokens gets 429 with ``Retry-After`` for every token
    until the window passes, before any lookup: a right guess inside the window is not confirmed.
    Inactive accounts are refused by the base class.
    """

    keyword = "Token"

    def authenticate(self, request: Any) -> Any:
        throttle = FailedAuthenticationThrottle()
        if self._carries_token(request) and throttle.blocked(request):
            raise Throttled(
                wait=throttle.wait(),
                detail="Too many failed authentications from this address. Try again later.",
            )
        try:
            return super().authenticate(request)
        except AuthenticationFailed:
            throttle.record_failure(request)
            raise

    def _carries_token(self, request: Any) -> bool:
        header = str(request.META.get("HTTP_AUTHORIZATION", ""))
        return header.split(" ", 1)[0].lower() == self.keyword.lower()
