"""What every page's header needs to know about the signed-in person."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

from apps.consortium import roles


def navigation(request: HttpRequest) -> dict[str, Any]:
    """``can_upload``: whether the header offers the upload page (a centre's data manager signed in
    in person). Lazy: only a page that renders the header asks the database."""

    def can_upload() -> bool:
        user = request.user
        return bool(
            user.is_authenticated
            and roles.api_client_of(user) is None
            and roles.centres_changeable(user).exists()
        )

    return {"can_upload": SimpleLazyObject(can_upload)}
