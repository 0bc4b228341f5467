"""Who may do what, derived from memberships and consortium roles.

Object permissions live in django-guardian (granted in ``services.membership_set``); these helpers
answer the questions every queryset and view asks, in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth.models import AnonymousUser
from guardian.shortcuts import get_objects_for_user

from apps.consortium.models import ApiClient, Centre, ConsortiumRole

if TYPE_CHECKING:
    from django.contrib.auth.models import User
    from django.db.models import QuerySet

    AnyUser = User | AnonymousUser


def is_administrator(user: AnyUser) -> bool:
    return bool(user.is_authenticated and user.is_active and user.is_superuser)


#: where :func:`remember_steering` leaves the answer on a request's user object
_STEERING = "_roles_is_steering"


def is_steering(user: AnyUser) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if is_administrator(user):
        return True
    known = user.__dict__.get(_STEERING)
    if known is not None:
        return bool(known)
    return ConsortiumRole.objects.filter(user=user, role=ConsortiumRole.Role.STEERING).exists()


def remember_steering(user: AnyUser, value: bool) -> None:
    """Record on ``user`` (an object loaded for one request) whether it has the steering role, as
    read in the query that loaded it, so that the request's permission checks ask no more. Only
    for request-scoped objects: a long-lived one would keep the answer after the role changed."""
    user.__dict__[_STEERING] = bool(value)


def api_client_of(user: AnyUser) -> ApiClient | None:
    if not user.is_authenticated:
        return None
    try:
        return user.api_client
    except ApiClient.DoesNotExist:
        return None


def has_scope(user: AnyUser, scope: str) -> bool:
    client = api_client_of(user)
    return client is not None and client.has_scope(scope)


def centres_viewable(user: AnyUser) -> QuerySet[Centre]:
    """Centres whose data (drafts included) the user may read."""
    if not (user.is_authenticated and user.is_active):
        return Centre.objects.none()
    if is_administrator(user):
        return Centre.objects.all()
    return get_objects_for_user(user, "consortium.view_centre_data", klass=Centre, accept_global_perms=False)


def centres_changeable(user: AnyUser) -> QuerySet[Centre]:
    """Centres whose data the user may upload, correct, submit and withdraw."""
    if not (user.is_authenticated and user.is_active):
        return Centre.objects.none()
    if is_administrator(user):
        return Centre.objects.all()
    return get_objects_for_user(
        user, "consortium.change_centre_data", klass=Centre, accept_global_perms=False
    )


def can_change_centre(user: AnyUser, centre: Centre) -> bool:
    if is_administrator(user):
        return True
    return bool(
        user.is_authenticated and user.is_active and user.has_perm("consortium.change_centre_data", centre)
    )


def reads_all_submitted_data(user: AnyUser) -> bool:
    """Steering group, administrators and API clients with the datasets scope."""
    return is_steering(user) or has_scope(user, ApiClient.Scope.DATASETS_READ)
