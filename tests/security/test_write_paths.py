"""One write path (finding 7): an edit in the admin is validated, audited and recomputed exactly as
one through the API; centres' object permissions follow memberships only."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.analyses.models import Analysis, OutboxEvent
from apps.audit.models import AuditEvent
from apps.consortium.models import Outcome

pytestmark = pytest.mark.django_db


def _admin(cast: dict[str, Any]) -> Client:
    client = Client()
    client.force_login(cast["users"]["admin"])
    return client


def _outcome_form(outcome: Outcome, **changes: Any) -> dict[str, Any]:
    import json

    data = {
        "code": outcome.code,
        "name": outcome.name,
        "description": outcome.description,
        "measure": outcome.measure,
        "direction": outcome.direction,
        "instruments": json.dumps(outcome.instruments),
        "timepoints": json.dumps(outcome.timepoints),
        "moderators": json.dumps(outcome.moderators),
    }
    data.update(changes)
    return data


def test_an_outcome_edited_in_the_admin_is_audited_and_recomputed(cast: dict[str, Any]) -> None:
    outcome = cast["outcome"]
    events = OutboxEvent.objects.count()
    resp = _admin(cast).post(
        f"/admin/consortium/outcome/{outcome.pk}/change/", _outcome_form(outcome, direction="lower")
    )
    assert resp.status_code == 302, resp.content.decode()[:2000]
    outcome.refresh_from_db()
    assert outcome.direction == "lower"
    event = AuditEvent.objects.get(action="outcome.update", object_id=str(outcome.pk))
    assert event.actor_username == "admin"
    assert event.before["direction"] == "higher" and event.after["direction"] == "lower"
    assert OutboxEvent.objects.count() == events + Analysis.objects.filter(outcome=outcome).count()


@pytest.mark.parametrize(
    "changes",
    [
        {"instruments": '["EPDS\\u0000"]'},
        {"moderators": '[{"name": "Risk Group", "kind": "categorical"}]'},
        {"name": "Bad\u200bname"},
    ],
)
def test_the_admin_applies_the_data_dictionarys_rules(cast: dict[str, Any], changes: dict[str, Any]) -> None:
    outcome = cast["outcome"]
    before = Outcome.objects.filter(pk=outcome.pk).values().get()
    resp = _admin(cast).post(
        f"/admin/consortium/outcome/{outcome.pk}/change/", _outcome_form(outcome, **changes)
    )
    assert resp.status_code == 200  # the form again, with errors
    assert "errorlist" in resp.content.decode()
    assert Outcome.objects.filter(pk=outcome.pk).values().get() == before
    assert not AuditEvent.objects.filter(action="outcome.update").exists()


def test_an_outcome_added_in_the_admin_gets_its_default_analysis(cast: dict[str, Any]) -> None:
    resp = _admin(cast).post(
        "/admin/consortium/outcome/add/",
        _outcome_form(Outcome(code="attach", name="Attachment", measure="RR", direction="higher")),
    )
    assert resp.status_code == 302
    outcome = Outcome.objects.get(code="attach")
    assert Analysis.objects.filter(outcome=outcome, is_default=True).count() == 1
    assert AuditEvent.objects.filter(action="outcome.create", object_id=str(outcome.pk)).exists()


def _analysis_form(analysis: Analysis, **changes: Any) -> dict[str, Any]:
    import json

    data = {
        "outcome": analysis.outcome_id,
        "name": analysis.name,
        "method": analysis.method,
        "test": analysis.test,
        "level": analysis.level,
        "mods": json.dumps(analysis.mods),
        "subgroup": analysis.subgroup,
        "cumulative_order": analysis.cumulative_order,
        "sensitivity": "on" if analysis.sensitivity else "",
        "bias": "on" if analysis.bias else "",
        "dependence": analysis.dependence,
        "rho": analysis.rho,
        "robust": "on" if analysis.robust else "",
        "timepoint": analysis.timepoint,
        "instruments": json.dumps(analysis.instruments),
    }
    data.update(changes)
    return {k: v for k, v in data.items() if v != ""}


def test_an_analysis_edited_in_the_admin_is_validated_audited_and_recomputed(cast: dict[str, Any]) -> None:
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    seq = analysis.requested_seq
    url = f"/admin/analyses/analysis/{analysis.pk}/change/"
    bad = _admin(cast).post(url, _analysis_form(analysis, mods='["no_such_column"]'))
    assert bad.status_code == 200 and "not recorded for this outcome" in bad.content.decode()
    analysis.refresh_from_db()
    assert analysis.mods == [] and analysis.requested_seq == seq
    good = _admin(cast).post(url, _analysis_form(analysis, method="DL", mods='["year"]'))
    assert good.status_code == 302
    analysis.refresh_from_db()
    assert (analysis.method, analysis.mods, analysis.requested_seq) == ("DL", ["year"], seq + 1)
    event = AuditEvent.objects.get(action="analysis.update", object_id=str(analysis.pk))
    assert event.actor_username == "admin" and event.after["method"] == "DL"


def test_outcomes_and_analyses_cannot_be_deleted_in_the_admin(cast: dict[str, Any]) -> None:
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    admin = _admin(cast)
    assert admin.post(f"/admin/analyses/analysis/{analysis.pk}/delete/", {"post": "yes"}).status_code == 403
    assert (
        admin.post(f"/admin/consortium/outcome/{cast['outcome'].pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Analysis.objects.filter(pk=analysis.pk).exists()


def test_centre_permissions_are_not_granted_in_the_admin(cast: dict[str, Any]) -> None:
    """django-guardian's object-permission pages would grant access without a membership or an
    audit record; they are not there."""
    centre = cast["centre_a"]
    admin = _admin(cast)
    assert admin.get(f"/admin/consortium/centre/{centre.pk}/change/").status_code == 200
    assert admin.get(f"/admin/consortium/centre/{centre.pk}/permissions/").status_code in (302, 404)
    resp = admin.post(
        f"/admin/consortium/centre/{centre.pk}/permissions/",
        {"user": "steering", "submit_manage_user": "1"},
    )
    assert resp.status_code in (302, 404)
    from apps.consortium import roles

    assert not roles.can_change_centre(cast["users"]["steering"], centre)


def test_a_membership_added_in_the_admin_grants_and_audits(cast: dict[str, Any]) -> None:
    from apps.consortium import roles

    steering = cast["users"]["steering"]
    resp = _admin(cast).post(
        "/admin/consortium/membership/add/",
        {"user": steering.pk, "centre": cast["centre_b"].pk, "role": "data_manager"},
    )
    assert resp.status_code == 302
    assert roles.can_change_centre(steering, cast["centre_b"])
    assert AuditEvent.objects.filter(action="membership.set", actor_username="admin").exists()
