"""Who may see which results and releases: the rule's one home.

- Nobody who is not signed in (or whose account is inactive) sees any result or release.
- The steering group and administrators (``roles.is_steering``) see every result and
  every release, embargoed ones included.
- Everyone else sees the releases that are *readable*, and the results those releases hold. A
  release is readable at a moment when it was published by then and has no embargo or an embargo
  that had ended by then.

Every read applies this through ``AnalysisResult.objects.visible_to`` and
``Release.objects.visible_to`` (which call :func:`reader_of` and :func:`release_readable`); the API's
fixed statement for a result's stored detail is compiled from those querysets
(``apps.api.documents``), and the portal asks "what could this reader see then" by passing ``at``.
``tests/platform/test_visibility_home.py`` fails if the rule is written anywhere else.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from django.db.models import Q
from django.utils import timezone


class Reader(enum.Enum):
    """How much of the results a person may read."""

    NOTHING = "nothing"
    RELEASED = "released"
    EVERYTHING = "everything"


def reader_of(user: Any) -> Reader:
    """The reading level of ``user`` (a signed-in user, an API client's user or an anonymous one)."""
    from apps.consortium import roles

    if not (user.is_authenticated and user.is_active):
        return Reader.NOTHING
    if roles.is_steering(user):
        return Reader.EVERYTHING
    return Reader.RELEASED


def reads_unreleased(user: Any) -> bool:
    """Whether ``user`` reads results before they are released (and every release)."""
    return reader_of(user) is Reader.EVERYTHING


def release_readable(at: datetime | None = None, *, prefix: str = "") -> Q:
    """Releases readable ``at`` (now by default), as a filter; ``prefix`` names the release from a
    related model (``"release__"`` from its entries)."""
    at = at or timezone.now()
    return Q(**{f"{prefix}published_at__lte": at}) & (
        Q(**{f"{prefix}embargo_until__isnull": True}) | Q(**{f"{prefix}embargo_until__lte": at})
    )


def release_is_readable(release: Any, at: datetime | None = None) -> bool:
    """:func:`release_readable` for a release already in memory (no query)."""
    at = at or timezone.now()
    return release.published_at <= at and (release.embargo_until is None or release.embargo_until <= at)
