"""Token authentication for API clients and people: ``Authorization: Token <secret>``.

django-rest-knox checks a token against its stored SHA-512 digest; this class adds the platform's
rules around it: a limit on failed attempts per address, expiry that refuses without deleting (the
owner still sees an expired token in their list), and the time a token was last used.
"""

from __future__ import annotations

import json
from datetime import timedelta
from functools import lru_cache
from hmac import compare_digest
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone
from knox.auth import TokenAuthentication
from knox.crypto import hash_token
from knox.settings import CONSTANTS
from rest_framework.authentication import BasicAuthentication, get_authorization_header
from rest_framework.exceptions import AuthenticationFailed, Throttled

from apps.api import readcache
from apps.api.models import ApiToken
from apps.api.throttling import FailedAuthenticationThrottle, TokenRateThrottle
from apps.consortium import roles
from apps.consortium.models import ApiClient, ConsortiumRole

TOKEN_KEY_LENGTH = CONSTANTS.TOKEN_KEY_LENGTH
#: tokens this process has verified: digest -> their row, while the ``auth`` generation stands
_VERIFIED = readcache.LocalCache(size=10_000)

#: ``last_used_at`` is written at most this often per token: a read-heavy client must not turn
#: every request into a database write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


class ApiTokenAuthentication(TokenAuthentication):
    """knox token authentication with a limit on failures per address.

    An address that has sent too many wrong tokens gets 429 with ``Retry-After`` for every token
    until the window passes, before any lookup: a right guess inside the window is not confirmed.
    Inactive accounts and expired tokens are refused (401).

    A request with a token makes one round trip to the shared cache (``readcache.request_counters``:
    the address's failures, the generations, and the count against the token's rate limit, which
    ``TokenRateThrottle`` then compares), and reads the database only when this process has not
    verified the token under the current ``auth`` generation.
    """

    def authenticate(self, request: Any) -> Any:
        parts = get_authorization_header(request).split()
        if not parts or parts[0].lower() != self.authenticate_header(request).encode().lower():
            return None  # no token: another scheme (a session) may authenticate the request
        failures = FailedAuthenticationThrottle()
        failed_key = failures.window_key(request)
        tokens = TokenRateThrottle()
        prefix = parts[1][:TOKEN_KEY_LENGTH].decode("ascii", "replace") if len(parts) == 2 else None
        counted = tokens.window_key(prefix) if prefix is not None and tokens.rate else None
        counters = readcache.request_counters(
            failed_key=failed_key, token_key=counted, token_ttl=int(tokens.duration or 0) + 1
        )
        request.api_counters = counters
        if counters.failed_auth >= failures.num_requests:
            raise Throttled(
                wait=failures.wait(),
                detail="Too many failed authentications from this address. Try again later.",
            )
        self._generation = counters.auth
        try:
            found = super().authenticate(request)
        except AuthenticationFailed:
            failures.record_failure(request)
            raise
        if found is not None and counted is not None:
            request.token_window = (prefix, counters.token_requests, tokens.now, tokens.window_end)
        if found is not None:
            self._touch(found[1])
        return found

    def authenticate_credentials(self, token: bytes) -> tuple[Any, ApiToken]:
        """The token's user, by its digest (the table's primary key). Unlike knox's own lookup this
        refuses an expired token without deleting it (its owner still sees it in their list).

        One query, which also reads what every permission check of the request asks: the user,
        their service account (if any) and whether they are in the steering group; this process
        then remembers the answer while the ``auth`` generation stands. The query is written as
        SQL (``_token_sql``) because it runs on every request a process has not seen: the ORM spent
        0.9 ms compiling it each time, the fixed statement 0.1 ms (bench/API.md)."""
        text = token.decode("utf-8", "replace")
        try:
            digest = hash_token(text)
        except (TypeError, ValueError):  # not hex after the prefix: no token has this form
            raise AuthenticationFailed("Invalid token.") from None
        generation = getattr(self, "_generation", None)
        row = _VERIFIED.get(digest, generation) if generation is not None else None
        if row is None:
            found = list(ApiToken.objects.raw(_token_sql(), [ConsortiumRole.Role.STEERING, digest]))
            if not found or not compare_digest(digest, found[0].digest):
                raise AuthenticationFailed("Invalid token.")
            row = {k: v for k, v in vars(found[0]).items() if k != "_state"}
            if generation is not None:
                _VERIFIED.put(digest, generation, row)
        candidate = ApiToken.from_db(DEFAULT_DB_ALIAS, [], [])  # an empty shell, filled from the row
        candidate.__dict__.update(row)
        candidate._row = row  # ``_touch`` keeps its last use current
        if candidate.expiry is not None and candidate.expiry <= timezone.now():
            raise AuthenticationFailed(
                f"This token expired on {candidate.expiry:%Y-%m-%d}; create a new one."
            )
        candidate.user = _user_of(candidate)
        return self.validate_user(candidate)

    def _touch(self, token: ApiToken) -> None:
        now = timezone.now()
        if token.last_used_at is None or now - token.last_used_at >= LAST_USED_RESOLUTION:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
            row = getattr(token, "_row", None)
            if row is not None:
                row["last_used_at"] = now  # the remembered row too: one write a minute, not each request


_COLUMNS = {
    "u_username": "u.username",
    "u_is_active": "u.is_active",
    "u_is_superuser": "u.is_superuser",
    "u_is_staff": "u.is_staff",
    "c_id": "c.id",
    "c_name": "c.name",
    "c_scopes": "c.scopes",
}


@lru_cache(maxsize=1)
def _token_sql() -> str:
    """The token, its user, service account and steering role, by digest (table names from the
    models, so a renamed table cannot drift from it)."""
    token, user = ApiToken._meta.db_table, get_user_model()._meta.db_table
    extra = ", ".join(f"{column} AS {alias}" for alias, column in _COLUMNS.items())
    return (
        f"SELECT t.*, {extra}, EXISTS (SELECT 1 FROM {ConsortiumRole._meta.db_table} r "  # noqa: S608
        f"WHERE r.user_id = u.id AND r.role = %s) AS u_is_steering "
        f"FROM {token} t JOIN {user} u ON u.id = t.user_id "
        f"LEFT JOIN {ApiClient._meta.db_table} c ON c.user_id = u.id WHERE t.digest = %s"
    )  # table names from the models; every value a parameter


def _user_of(token: Any) -> Any:
    """The token's user from the columns read with it: the fields permission checks read (others
    load on first use), its service account or none, and its steering role."""
    User = get_user_model()
    known = {
        "id": token.user_id,
        "username": token.u_username,
        "is_active": bool(token.u_is_active),
        "is_superuser": bool(token.u_is_superuser),
        "is_staff": bool(token.u_is_staff),
    }
    # ``from_db`` takes the values in the model's field order
    names = [f.attname for f in User._meta.concrete_fields if f.attname in known]
    user = User.from_db(DEFAULT_DB_ALIAS, names, [known[name] for name in names])
    client = None
    if token.c_id is not None:
        scopes = json.loads(token.c_scopes) if isinstance(token.c_scopes, str) else token.c_scopes
        client = ApiClient.from_db(
            DEFAULT_DB_ALIAS, ["id", "user_id", "name", "scopes"], [token.c_id, user.pk, token.c_name, scopes]
        )
    # what ``user.api_client`` answers without a query: this account, or "none" (DoesNotExist)
    User.api_client.related.set_cached_value(user, client)
    roles.remember_steering(user, bool(token.u_is_steering))
    return user


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
