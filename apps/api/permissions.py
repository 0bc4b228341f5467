"""API permission classes. Visibility is enforced by querysets (``visible_to``); these classes add
the role checks for writes."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import SAFE_METHODS, BasePermission

from apps.consortium import roles


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
