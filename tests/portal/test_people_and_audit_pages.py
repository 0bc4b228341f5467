"""A person's own page (centres, roles, tokens), the password change (which ends their tokens), and
the audit trail as a readable, filterable table."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from django.test import Client

from apps.api.models import ApiToken
from apps.api.tokens import token_create
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record

pytestmark = pytest.mark.django_db


def _client(cast: dict[str, Any], who: str) -> Client:
    client = Client()
    client.force_login(cast["users"][who])
    return client


def test_the_account_page_lists_centres_roles_and_tokens(cast: dict[str, Any]) -> None:
    token_create(
        actor=cast["users"]["dm_a"],
        user=cast["users"]["dm_a"],
        data={"name": "n", "scopes": ["results:read"]},
    )
    page = _client(cast, "dm_a").get("/account/").content.decode()
    assert "Centre Alpha" in page and "Data manager" in page and "upload, correct, submit" in page
    assert "You have 1 API token." in page and "Results: those of published releases." in page
    steering = _client(cast, "steering").get("/account/").content.decode()
    assert "You are not a member of any centre." in steering and "Steering group" in steering
    assert Client().get("/account/").status_code == 302  # to the sign-in page


def test_changing_the_password_keeps_the_session_and_ends_the_tokens(cast: dict[str, Any]) -> None:
    user = cast["users"]["dm_a"]
    token_create(actor=user, user=user, data={"name": "n", "scopes": ["results:read"]})
    client = _client(cast, "dm_a")
    wrong = client.post(
        "/account/password/",
        {"old_password": "not it", "new_password1": "a-new-pass-2026", "new_password2": "a-new-pass-2026"},
    )
    assert wrong.status_code == 200 and "The password was not changed." in wrong.content.decode()
    assert ApiToken.objects.filter(user=user).exists()
    done = client.post(
        "/account/password/",
        {"old_password": "pw-dm_a", "new_password1": "a-new-pass-2026", "new_password2": "a-new-pass-2026"},
        follow=True,
    )
    assert "Your password is changed. Your 1 API token ended with it." in done.content.decode()
    assert not ApiToken.objects.filter(user=user).exists()
    assert client.get("/account/").status_code == 200  # still signed in
    user.refresh_from_db()
    assert user.check_password("a-new-pass-2026")


def test_the_audit_trail_reads_as_a_table_and_filters(cast: dict[str, Any]) -> None:
    steering = cast["users"]["steering"]
    audit_record(
        actor=steering,
        action="analysis.update",
        obj=None,
        object_type="analyses.analysis",
        object_id="7",
        before={"level": 95.0, "mods": []},
        after={"level": 90.0, "mods": ["year"]},
    )
    audit_record(
        actor=None,
        action="dataset.submit",
        obj=None,
        object_type="datasets.dataset",
        object_id="3",
        centre=cast["centre_a"],
    )
    client = _client(cast, "steering")
    page = client.get("/audit/").content.decode()
    # values as labelled lines, not Python dicts
    assert "<dt>level</dt><dd>90.0</dd>" in page and "<dt>mods</dt><dd>year</dd>" in page
    assert "{'level'" not in page
    only = client.get("/audit/?action=analysis.update").content.decode()
    assert "analysis.update" in only and "datasets.dataset 3" not in only
    by_centre = client.get("/audit/?centre=alpha").content.decode()
    assert "datasets.dataset 3" in by_centre and "analyses.analysis 7" not in by_centre
    assert "analyses.analysis 7" in client.get("/audit/?actor=steer").content.decode()
    assert client.get("/audit/?page=999999").status_code == 200  # the last page, not an error
    assert client.get("/audit/?page=x").status_code == 200
    assert _client(cast, "dm_a").get("/audit/").status_code == 404
    assert AuditEvent.objects.count() >= 2


def test_the_steering_group_publishes_a_release_from_the_dashboard(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    from apps.analyses.models import Analysis, Release
    from apps.analyses.services import analysis_recompute
    from tests.conftest import SMD_ROWS, store_rows

    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    result = analysis_recompute(analysis_id=Analysis.objects.get(outcome=cast["outcome"], is_default=True).pk)
    assert result is not None
    steering = _client(cast, "steering")
    assert 'id="publish-release"' in steering.get("/").content.decode()
    assert 'id="publish-release"' not in _client(cast, "dm_a").get("/").content.decode()
    assert _client(cast, "dm_a").post("/releases/publish/", {"name": "x"}).status_code == 404
    refused = steering.post("/releases/publish/", {"name": "bad name"}, follow=True).content.decode()
    assert "letters, digits" in refused and "Nothing was published." in refused
    assert (
        steering.post("/releases/publish/", {"name": "x", "embargo_until": "soon"}, follow=True).status_code
        == 200
    )
    assert not Release.objects.exists()
    fields = {"name": "2026.1", "notes": "First.", "embargo_until": "2099-01-01T09:00"}
    review = steering.post("/releases/publish/", fields)
    page = review.content.decode()
    # first what it would hold: nothing published yet, the other outcome left out with the reason
    assert review.status_code == 200 and "Nothing is published yet" in page
    assert "left out" in page and "It has no result yet." in page
    assert not Release.objects.exists()
    expected = re.search(r'name="expected" value="([^"]+)"', page)
    assert expected is not None
    confirm = {**fields, "confirm": "1", "expected": html.unescape(expected.group(1))}
    done = steering.post("/releases/publish/", confirm, follow=True).content.decode()
    assert "Release 2026.1 published: 1 result, readable by members from 2099-01-01 09:00 UTC." in done
    assert "<h1>Release 2026.1</h1>" in done  # its own page
    release = Release.objects.get(name="2026.1")
    assert list(release.results.all()) == [result] and release.embargo_until.year == 2099
    # the member sees no release yet (embargoed); the steering group sees it listed
    assert "2026.1" not in _client(cast, "member_a").get("/").content.decode()
    assert "from 2099-01-01 09:00 UTC" in steering.get("/").content.decode()
    assert 'href="/releases/2026.1/"' in steering.get("/").content.decode()
    assert _client(cast, "member_a").get("/releases/2026.1/").status_code == 404  # embargoed
    # an embargo given with its offset keeps it (09:00 at UTC-5 is 14:00 UTC)
    review = steering.post(
        "/releases/publish/", {"name": "2026.2", "embargo_until": "2099-01-01T09:00-05:00"}
    )
    assert "from 2099-01-01 14:00 UTC" in review.content.decode()


def test_the_steering_group_changes_analysis_settings_in_a_validated_form(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    from apps.analyses.models import Analysis, AnalysisResult
    from apps.analyses.services import analysis_recompute
    from tests.conftest import SMD_ROWS, store_rows

    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    good = analysis_recompute(analysis_id=analysis.pk)
    assert good is not None and good.status == AnalysisResult.Status.DONE
    url = f"/analyses/{analysis.pk}/settings/"
    assert _client(cast, "dm_a").get(url).status_code == 404
    steering = _client(cast, "steering")
    form = steering.get(url).content.decode()
    # choices from the data dictionary: its moderators, subgroups by its categorical ones
    assert 'value="year"' in form and '<option value="setting">setting</option>' in form
    assert f"/analyses/{analysis.pk}/settings/" in steering.get("/outcomes/rf/").content.decode()
    base = {
        "name": "Primary analysis",
        "method": "REML",
        "test": "knha",
        "level": "90",
        "dependence": "auto",
        "rho": "0.6",
        "robust": "on",
        "timepoint": "",
        "subgroup": "",
        "cumulative_order": "year",
        "sensitivity": "on",
        "bias": "on",
        "reason": "Knapp-Hartung tests, as the protocol says",
    }
    refused = steering.post(url, {**base, "level": "120"})
    assert refused.status_code == 400 and "The settings were not saved" in refused.content.decode()
    analysis.refresh_from_db()
    assert analysis.level == 95.0 and analysis.current_result_id == good.pk  # nothing changed
    assert 'id="pooled-estimate"' in steering.get("/outcomes/rf/").content.decode()
    assert steering.post(url, {**base, "reason": ""}).status_code == 400  # a change needs a reason
    # first a preview: each changed setting, the estimate before and after; nothing saved
    preview = steering.post(url, base)
    page = preview.content.decode()
    assert preview.status_code == 200 and "Preview: nothing is saved yet" in page
    assert "Confidence level (%)" in page and "<td>95.0</td><td>90.0</td>" in page
    assert f"SMD {good.pooled['estimate']:.2f}" in page and 'id="save-settings"' in page
    analysis.refresh_from_db()
    assert analysis.level == 95.0 and analysis.requested_seq == analysis.computed_seq
    previewed = re.search(r'name="previewed" value="([0-9a-f]+)"', page)
    assert previewed is not None
    # settings edited after the preview are previewed again, never saved unseen
    again = steering.post(url, {**base, "level": "80", "confirm": "1", "previewed": previewed.group(1)})
    assert "Preview: nothing is saved yet" in again.content.decode()
    analysis.refresh_from_db()
    assert analysis.level == 95.0
    saved = steering.post(url, {**base, "confirm": "1", "previewed": previewed.group(1)}, follow=True)
    assert "Settings saved; the analysis is being recomputed." in saved.content.decode()
    analysis.refresh_from_db()
    assert (analysis.test, analysis.level, analysis.requested_seq > analysis.computed_seq) == (
        "knha",
        90.0,
        True,
    )
    event = AuditEvent.objects.filter(action="analysis.update").latest("id")
    # only what changed, before and after, with the reason
    assert event.before == {"test": "z", "level": 95.0}
    assert event.after == {"test": "knha", "level": 90.0, "reason": base["reason"]}
