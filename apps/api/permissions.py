"""API permission classes. Visibility is enforced by querysets (``visible_to``); these classes add
the role checks for writes."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.api.models import ApiToken
from apps.consortium import roles

#: A view's ``write_scope`` when no token may write through it (the default for writes).
SESSION_ONLY = "session only"


class ApiClientsReadOnly(BasePermission):
    """Service accounts (API clients) hold read-only scopes: any write is refused."""

    message = "API clients have read-only access."

    def has_permission(self, request: Any, view: Any) -> bool:
        if roles.api_client_of(request.user) is None:
            return True
        return request.method in SAFE_METHODS


class SteeringWrites(BasePermission):
    """Reads for every signed-in user; writes for the steering group and administrators."""

    message = "Only the steering group may change this."

    def has_permission(self, request: Any, view: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        return roles.is_steering(request.user)


class SteeringOnly(BasePermission):
    message = "Only the steering group and administrators may see this."

    def has_permission(self, request: Any, view: Any) -> bool:
        return roles.is_steering(request.user)


def required_scope(view: Any, request: Any) -> str | None:
    """The scope a token needs for this request: the view's ``action_scopes[action]``, else its
    ``read_scope`` (safe methods) or ``write_scope``. None: any valid token; ``SESSION_ONLY``: none."""
    action = getattr(view, "action", None)
    per_action = getattr(view, "action_scopes", {})
    if action in per_action:
        return per_action[action]
    if request.method in SAFE_METHODS:
        return getattr(view, "read_scope", None)
    return getattr(view, "write_scope", SESSION_ONLY)


class TokenScopes(BasePermission):
    """A request made with an API token may do only what the token's scopes allow.

    The user's own rights still apply on top (querysets, role checks): a token never widens them.
    Requests signed in by session (the portal, the browsable API) are not limited by scopes.
    """

    message = "This token does not have the scope this request needs."

    def has_permission(self, request: Any, view: Any) -> bool:
        token = request.auth
        if not isinstance(token, ApiToken):
            return True
        scope = required_scope(view, request)
        if scope is None or token.has_scope(scope):
            return True
        if scope == SESSION_ONLY:
            self.message = "This cannot be done with an API token; sign in to the portal."
        else:
            self.message = (
                f"This token does not have the scope '{scope}' (it has: {', '.join(token.scopes)}); "
                "create a token with that scope."
            )
        return False
