"""The write rules of API tokens: who may hold which scopes, creation, revocation, and their end.

People create, list and revoke their own tokens; an administrator creates the tokens of service
accounts (``ApiClient``). A token's scopes can never exceed what its user may do: ``datasets:write``
only for someone who manages a centre, ``analyses:write`` only for the steering group, and a service
account only the read scopes an administrator granted it. A password change or a deactivation ends
every token of the person (``apps.api.signals``), so a lost laptop's tokens die with the password.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone
from knox.crypto import hash_token
from knox.settings import CONSTANTS

from apps.api.models import ApiToken
from apps.audit.services import audit_record
from apps.common.text import clean_text
from apps.consortium import roles

__all__ = ["allowed_scopes", "token_create", "token_install", "token_revoke", "tokens_end", "tokens_of"]

Scope = ApiToken.Scope


def allowed_scopes(user: Any) -> list[str]:
    """The scopes ``user``'s tokens may carry: what the user may do, as scopes."""
    if not (user.is_authenticated and user.is_active):
        return []
    client = roles.api_client_of(user)
    if client is not None:
        # a service account reads, within what an administrator granted it
        return [s for s in client.READ_SCOPES if client.has_scope(s)]
    scopes = [Scope.RESULTS_READ, Scope.DATASETS_READ]
    if roles.centres_changeable(user).exists():
        scopes.append(Scope.DATASETS_WRITE)
    if roles.is_steering(user):
        scopes.append(Scope.ANALYSES_WRITE)
    return [str(s) for s in scopes]


def tokens_of(user: Any) -> Any:
    """The user's tokens, newest first (never their secrets: those are not stored)."""
    return ApiToken.objects.filter(user=user).order_by("-created")


def _clean(user: Any, data: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    try:
        name = clean_text(data.get("name"), field="The name", max_length=100)
    except ValidationError as exc:
        errors["name"] = " ".join(exc.messages)
        name = ""
    if not name:
        errors.setdefault("name", "Give the token a name that says where it is used, e.g. 'R scripts'.")
    scopes = data.get("scopes")
    allowed = allowed_scopes(user)
    if not isinstance(scopes, list) or not scopes or not all(isinstance(s, str) for s in scopes):
        errors["scopes"] = f"List the scopes the token needs, from: {', '.join(allowed) or 'none'}."
    else:
        refused = [s for s in scopes if s not in allowed]
        if refused:
            errors["scopes"] = (
                f"{', '.join(map(repr, refused))} {'is' if len(refused) == 1 else 'are'} not a scope this "
                f"account may hold; it may hold: {', '.join(allowed) or 'none'}."
            )
    days = data.get("expires_in_days", settings.API_TOKEN_DEFAULT_DAYS)
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= settings.API_TOKEN_MAX_DAYS:
        errors["expires_in_days"] = f"A whole number of days from 1 to {settings.API_TOKEN_MAX_DAYS}."
    if errors:
        raise ValidationError(errors)
    assert isinstance(scopes, list)
    return {"name": name, "scopes": sorted(set(scopes)), "days": days}


def token_create(*, actor: Any, user: Any, data: dict[str, Any]) -> tuple[ApiToken, str]:
    """Create a token for ``user`` (the actor themself, or a service account by an administrator).

    Returns the token and its secret, which is shown once and never stored. Raises
    ``PermissionDenied`` when the actor may not create tokens for ``user`` and ``ValidationError``
    (per field) for a bad name, scope or expiry.
    """
    with transaction.atomic():
        if actor.pk != user.pk:
            if not (roles.is_administrator(actor) and roles.api_client_of(user) is not None):
                raise PermissionDenied("Only an administrator creates tokens for a service account.")
        elif roles.api_client_of(user) is not None:
            raise PermissionDenied("A service account's tokens are created by an administrator.")
        cleaned = _clean(user, data)
        token, secret = ApiToken.objects.create(
            user=user,
            expiry=timedelta(days=cleaned["days"]),
            name=cleaned["name"],
            scopes=cleaned["scopes"],
            created_by=actor,
        )
        audit_record(
            actor=actor,
            action="token.create",
            obj=token,
            object_id=token.token_key,  # the public prefix, never the digest
            after={
                "user": user.get_username(),
                "name": token.name,
                "token_key": token.token_key,
                "scopes": token.scopes,
                "expiry": token.expiry.isoformat() if token.expiry else None,
            },
        )
    return token, secret


def token_install(*, user: Any, secret: str, name: str, scopes: list[str]) -> ApiToken:
    """Store a token whose secret is given, hashed like any other and without expiry: the demo's
    published token (so a newcomer's first ``curl`` works) and nothing else."""
    token = ApiToken(
        digest=hash_token(secret),
        token_key=secret[: CONSTANTS.TOKEN_KEY_LENGTH],
        user=user,
        expiry=None,
        name=name,
        scopes=scopes,
    )
    token.save(force_insert=True)  # knox's manager would generate a secret of its own
    return token


def token_revoke(*, actor: Any, token: ApiToken) -> None:
    """Delete a token: its owner's or, for any token, an administrator's decision."""
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().select_related("user").get(pk=token.pk)
        if token.user_id != actor.pk and not roles.is_administrator(actor):
            raise PermissionDenied("Only the token's owner or an administrator may revoke it.")
        audit_record(
            actor=actor,
            action="token.revoke",
            obj=token,
            object_id=token.token_key,
            before={"user": token.user.get_username(), "name": token.name, "token_key": token.token_key},
        )
        token.delete()


def tokens_end(*, user: Any, reason: str) -> int:
    """End every token of ``user`` (a password change, a deactivation); returns how many."""
    with transaction.atomic():
        tokens = list(ApiToken.objects.select_for_update().filter(user=user))
        for token in tokens:
            audit_record(
                actor=None,
                action="token.end",
                obj=token,
                object_id=token.token_key,
                before={"user": user.get_username(), "name": token.name, "token_key": token.token_key},
                after={"reason": reason},
            )
        ApiToken.objects.filter(pk__in=[t.pk for t in tokens]).delete()
    return len(tokens)


def token_is_live(token: ApiToken) -> bool:
    """Not expired (an expired token is refused, and kept for its owner to see and delete)."""
    return token.expiry is None or token.expiry > timezone.now()
