"""Writes on the consortium model. Permission grants follow memberships, always in one transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from apps.audit.services import audit_record
from apps.consortium.models import Centre, Membership

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_ROLE_PERMS = {
    Membership.Role.DATA_MANAGER: ("consortium.view_centre_data", "consortium.change_centre_data"),
    Membership.Role.MEMBER: ("consortium.view_centre_data",),
}


def _sync_perms(user: User, centre: Centre, role: str | None) -> None:
    wanted = set(_ROLE_PERMS.get(role, ())) if role else set()  # type: ignore[call-overload]
    for perm in ("consortium.view_centre_data", "consortium.change_centre_data"):
        if perm in wanted:
            assign_perm(perm, user, centre)
        else:
            remove_perm(perm, user, centre)


@transaction.atomic
def membership_set(*, actor: User | None, user: User, centre: Centre, role: str) -> Membership:
    """Give ``user`` the ``role`` in ``centre`` (creating or changing the membership) and grant its permissions."""
    if role not in Membership.Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    membership = Membership.objects.filter(user=user, centre=centre).first()
    before = {"role": membership.role} if membership else None
    if membership is None:
        membership = Membership.objects.create(user=user, centre=centre, role=role)
    elif membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    _sync_perms(user, centre, role)
    if before != {"role": role}:
        audit_record(
            actor=actor,
            action="membership.set",
            obj=membership,
            centre=centre,
            before=before,
            after={"user": user.username, "centre": centre.code, "role": role},
        )
    return membership


@transaction.atomic
def membership_remove(*, actor: User | None, membership: Membership) -> None:
    """End a membership and revoke the object permissions it granted."""
    user, centre, role = membership.user, membership.centre, membership.role
    membership.delete()
    _sync_perms(user, centre, None)
    audit_record(
        actor=actor,
        action="membership.remove",
        obj=None,
        object_type="consortium.membership",
        object_id=str(membership.pk),
        centre=centre,
        before={"user": user.username, "centre": centre.code, "role": role},
        after=None,
    )
