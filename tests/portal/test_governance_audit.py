"""Governance that reads: changes made in /admin/ are audited like every other write, the trail
shows what an update changed and names objects by what they are, and another centre's versions
that were never submitted stay with that centre."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_update
from apps.audit.models import AuditEvent
from apps.audit.selectors import WITHHELD
from apps.consortium.models import ConsortiumRole
from tests.conftest import SMD_ROWS, api_client_for, store_rows

pytestmark = pytest.mark.django_db


def _client(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_making_someone_a_superuser_in_the_admin_is_audited(cast: dict[str, Any]) -> None:
    admin, member = cast["users"]["admin"], cast["users"]["member_a"]
    page = _client(admin).get(f"/admin/auth/user/{member.pk}/change/")
    assert page.status_code == 200
    form = page.context["adminform"].form
    data = {
        "username": member.username,
        "first_name": "",
        "last_name": "",
        "email": "",
        "is_active": "on",
        "is_superuser": "on",
        "date_joined_0": form.initial["date_joined"].strftime("%Y-%m-%d"),
        "date_joined_1": form.initial["date_joined"].strftime("%H:%M:%S.%f"),
    }
    answer = _client(admin).post(f"/admin/auth/user/{member.pk}/change/", data)
    assert answer.status_code == 302, answer.context["adminform"].form.errors if answer.context else answer
    member.refresh_from_db()
    assert member.is_superuser
    event = AuditEvent.objects.get(action="user.update", object_id=str(member.pk))
    assert event.actor_username == "admin"
    assert event.before == {"is_superuser": False} and event.after == {"is_superuser": True}


def test_granting_a_consortium_role_in_the_admin_is_audited(cast: dict[str, Any]) -> None:
    admin, member = cast["users"]["admin"], cast["users"]["member_a"]
    answer = _client(admin).post(
        "/admin/consortium/consortiumrole/add/", {"user": member.pk, "role": ConsortiumRole.Role.STEERING}
    )
    assert answer.status_code == 302
    event = AuditEvent.objects.get(action="consortium_role.create")
    assert event.after == {"role": "steering", "user": "member_a"} and event.actor_username == "admin"
    role = ConsortiumRole.objects.get(user=member)
    _client(admin).post(f"/admin/consortium/consortiumrole/{role.pk}/delete/", {"post": "yes"})
    assert not ConsortiumRole.objects.filter(user=member).exists()
    assert AuditEvent.objects.filter(action="consortium_role.delete", object_id=str(role.pk)).exists()


def test_the_trail_shows_what_changed_names_objects_and_keeps_drafts_with_their_centre(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    steering = cast["users"]["steering"]
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_update(actor=steering, analysis=analysis, changes={"level": 90.0}, reason="protocol")
    # centre B stores a draft it never submits, with a reason that is the centre's
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=SMD_ROWS, actor=cast["users"]["dm_b"])
    draft = AuditEvent.objects.get(action="dataset.version_create", centre=cast["centre_b"])
    assert draft.actor_username == "dm_b" and draft.after["rows"] == len(SMD_ROWS)

    page = _client(steering).get("/audit/").content.decode()
    update = page.split("<code>analysis.update</code>")[1].split("</tr>")[0]
    assert "Analysis &#x27;Primary analysis&#x27; of Reflective functioning" in update
    assert "<dt>level</dt><dd>95.0</dd>" in update and "<dt>level</dt><dd>90.0</dd>" in update
    assert "<dt>method</dt>" not in update and "<dt>reason</dt><dd>protocol</dd>" in update
    version = page.split("<code>dataset.version_create</code>")[1].split("</tr>")[0]
    assert "Centre Beta&#x27;s Reflective functioning data" in version
    assert "dm_b" not in page.split("<code>dataset.version_create</code>")[0].rsplit("<tr>", 1)[1]
    assert draft.after["checksum"] not in version and "the centre" in version

    api = api_client_for(cast, "steering").get("/api/v1/audit/?action=dataset.version_create").json()
    [row] = api["results"]
    assert row["actor_username"] == "" and row["after"] == {"version": 1, "note": WITHHELD}
    export = api_client_for(cast, "steering").get("/api/v1/audit/export/").content.decode()
    assert draft.after["checksum"] not in export
    # centre B's own data manager is not steering: the trail is not theirs; once the version is
    # submitted, the steering group reads it in full
    from apps.datasets.models import Dataset
    from apps.datasets.services import dataset_set_status

    dataset = Dataset.objects.get(centre=cast["centre_b"], outcome=cast["outcome"])
    dataset_set_status(actor=cast["users"]["dm_b"], dataset=dataset, status="submitted")
    api = api_client_for(cast, "steering").get("/api/v1/audit/?action=dataset.version_create").json()
    assert api["results"][0]["actor_username"] == "dm_b" and api["results"][0]["after"]["rows"] == len(
        SMD_ROWS
    )


def test_a_password_set_in_the_admin_is_audited_without_the_password(cast: dict[str, Any]) -> None:
    admin, member = cast["users"]["admin"], cast["users"]["member_a"]
    answer = _client(admin).post(
        f"/admin/auth/user/{member.pk}/password/",
        {"password1": "a-long-new-pass-2026", "password2": "a-long-new-pass-2026"},
    )
    assert answer.status_code == 302
    event = AuditEvent.objects.get(action="user.password", object_id=str(member.pk))
    assert event.actor_username == "admin" and event.after == {"password": "(changed)"}
    assert "a-long-new-pass-2026" not in str(event.after)
