"""Who sees and changes what: every endpoint and page that touches data, for every member of the cast,
against centre A's and centre B's draft and submitted datasets.

The expected tables are written out, not derived, so that a change in the rules shows up here.
A user who may not see an object gets 404 (existence does not leak); one who may see it but not
change it gets 403; anonymous visitors get 401 from the API and a redirect to sign in from pages.
"""

from __future__ import annotations

from typing import Any

import pytest

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute, result_release
from tests.conftest import SMD_ROWS, api_client_for, make_cast, store_rows

USERS = ["anonymous", "dm_a", "member_a", "dm_b", "steering", "api_client", "admin"]
OBJECTS = ["a_draft", "a_submitted", "b_draft", "b_submitted"]

# May the user read the dataset?  (1 = yes, 0 = no)
VISIBLE = {
    #              a_draft a_sub b_draft b_sub
    "anonymous": (0, 0, 0, 0),
    "dm_a": (1, 1, 0, 0),
    "member_a": (1, 1, 0, 0),
    "dm_b": (0, 0, 1, 1),
    "steering": (0, 1, 0, 1),
    "api_client": (0, 0, 0, 0),  # results:read scope only
    "admin": (1, 1, 1, 1),
}
# May the user change the dataset (upload, submit, withdraw, restore)?
CHANGE = {
    "anonymous": (0, 0, 0, 0),
    "dm_a": (1, 1, 0, 0),
    "member_a": (0, 0, 0, 0),
    "dm_b": (0, 0, 1, 1),
    "steering": (0, 0, 0, 0),
    "api_client": (0, 0, 0, 0),
    "admin": (1, 1, 1, 1),
}


def _world() -> dict[str, Any]:
    cast = make_cast()
    ca, cb, rf, dep = cast["centre_a"], cast["centre_b"], cast["outcome"], cast["outcome2"]
    cast["objects"] = {
        "a_draft": store_rows(centre=ca, outcome=rf, rows=SMD_ROWS),
        "a_submitted": store_rows(centre=ca, outcome=dep, rows=SMD_ROWS, submit=True),
        "b_draft": store_rows(centre=cb, outcome=rf, rows=SMD_ROWS[:3]),
        "b_submitted": store_rows(centre=cb, outcome=dep, rows=SMD_ROWS[1:], submit=True),
    }
    return cast


def _read_status(user: str, visible: int) -> int:
    if user == "anonymous":
        return 401
    return 200 if visible else 404


def _write_status(user: str, visible: int, change: int) -> int:
    if user == "anonymous":
        return 401
    if user == "api_client":
        return 403  # read-only service account: every write is refused before lookup
    if not visible:
        return 404
    return 200 if change else 403


READ_ENDPOINTS = [
    "/api/v1/datasets/{id}/",
    "/api/v1/datasets/{id}/versions/",
    "/api/v1/datasets/{id}/versions/1/",
    "/api/v1/datasets/{id}/diff/?from=1&to=1",
    "/api/v1/datasets/{id}/export/?fmt=csv",
    "/api/v1/datasets/{id}/export/?fmt=xlsx",
]


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_dataset_reads(user: str, obj_index: int, tmp_media: Any) -> None:
    cast = _world()
    dataset = cast["objects"][OBJECTS[obj_index]]
    client = api_client_for(cast, user)
    expected = _read_status(user, VISIBLE[user][obj_index])
    for template in READ_ENDPOINTS:
        resp = client.get(template.format(id=dataset.pk))
        assert resp.status_code == expected, (template, user, OBJECTS[obj_index], resp.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_dataset_lifecycle_writes(user: str, obj_index: int, tmp_media: Any) -> None:
    cast = _world()
    name = OBJECTS[obj_index]
    dataset = cast["objects"][name]
    client = api_client_for(cast, user)
    action = "submit" if name.endswith("draft") else "withdraw"
    expected = _write_status(user, VISIBLE[user][obj_index], CHANGE[user][obj_index])
    resp = client.post(f"/api/v1/datasets/{dataset.pk}/{action}/", {"reason": "matrix"}, format="json")
    assert resp.status_code == expected, resp.content
    dataset.refresh_from_db()
    changed_to = {"submit": "submitted", "withdraw": "withdrawn"}[action]
    assert (dataset.status == changed_to) == (expected == 200)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_dataset_restore(user: str, obj_index: int, tmp_media: Any) -> None:
    cast = _world()
    name = OBJECTS[obj_index]
    dataset = cast["objects"][name]
    # a second version so that restoring version 1 creates version 3
    rows = [dict(r, m1i=r["m1i"] + 1) for r in dataset.current_version.rows]
    store_rows(centre=dataset.centre, outcome=dataset.outcome, rows=rows)
    client = api_client_for(cast, user)
    expected = _write_status(user, VISIBLE[user][obj_index], CHANGE[user][obj_index])
    resp = client.post(f"/api/v1/datasets/{dataset.pk}/versions/1/restore/", {}, format="json")
    assert resp.status_code == (201 if expected == 200 else expected), resp.content
    assert dataset.versions.count() == (3 if expected == 200 else 2)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("centre_index", [0, 1], ids=["centre_a", "centre_b"])
def test_upload(user: str, centre_index: int, tmp_media: Any) -> None:
    cast = _world()
    centre = ["alpha", "beta"][centre_index]
    obj_index = 0 if centre_index == 0 else 2  # the centre's draft dataset for outcome rf
    client = api_client_for(cast, user)
    rows = [dict(r, m2i=r["m2i"] - 0.5) for r in SMD_ROWS]
    resp = client.post(
        "/api/v1/datasets/upload/", {"centre": centre, "outcome": "rf", "rows": rows}, format="json"
    )
    # Whether a centre is visible for upload purposes follows the draft dataset's row of the tables.
    expected = _write_status(
        user, VISIBLE[user][obj_index] or CHANGE[user][obj_index], CHANGE[user][obj_index]
    )
    assert resp.status_code == (201 if expected == 200 else expected), resp.content
    dataset = cast["objects"]["a_draft" if centre_index == 0 else "b_draft"]
    assert dataset.versions.count() == (2 if expected == 200 else 1)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
def test_dataset_list_returns_exactly_the_visible_set(user: str, tmp_media: Any) -> None:
    cast = _world()
    client = api_client_for(cast, user)
    resp = client.get("/api/v1/datasets/")
    if user == "anonymous":
        assert resp.status_code == 401
        return
    assert resp.status_code == 200
    got = {d["id"] for d in resp.json()["results"]}
    want = {cast["objects"][o].pk for i, o in enumerate(OBJECTS) if VISIBLE[user][i]}
    assert got == want


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_portal_dataset_pages(user: str, obj_index: int, tmp_media: Any) -> None:
    from django.test import Client

    cast = _world()
    dataset = cast["objects"][OBJECTS[obj_index]]
    client = Client()
    if user == "api_client":
        client.force_login(cast["users"]["api_client"])
    elif user != "anonymous":
        client.force_login(cast["users"][user])
    resp = client.get(f"/datasets/{dataset.pk}/")
    listing = client.get("/datasets/")
    if user == "anonymous":
        assert resp.status_code == 302 and "/accounts/login/" in resp["Location"]
        assert listing.status_code == 302
        return
    assert resp.status_code == (200 if VISIBLE[user][obj_index] else 404)
    shown = f'href="/datasets/{dataset.pk}/"' in listing.content.decode()
    assert shown == bool(VISIBLE[user][obj_index])
    action = "submit" if OBJECTS[obj_index].endswith("draft") else "withdraw"
    post = client.post(f"/datasets/{dataset.pk}/{action}/", {"reason": "matrix"})
    if not VISIBLE[user][obj_index]:
        assert post.status_code == 404
    elif CHANGE[user][obj_index] and user != "api_client":
        assert post.status_code == 302
    else:
        assert post.status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
def test_results_unreleased_only_for_steering_and_admin(user: str, tmp_media: Any) -> None:
    cast = _world()
    analysis = Analysis.objects.get(outcome=cast["outcome2"], is_default=True)
    first = analysis_recompute(analysis_id=analysis.pk)
    assert first is not None
    result_release(actor=cast["users"]["steering"], result=first)
    store_rows(
        centre=cast["centre_a"], outcome=cast["outcome2"], rows=[dict(r, m1i=r["m1i"] + 2) for r in SMD_ROWS]
    )
    unreleased = analysis_recompute(analysis_id=analysis.pk)
    assert unreleased is not None and not unreleased.released
    client = api_client_for(cast, user)
    resp = client.get("/api/v1/results/")
    if user == "anonymous":
        assert resp.status_code == 401
        return
    ids = {r["id"] for r in resp.json()["results"]}
    sees_unreleased = user in ("steering", "admin")
    assert first.pk in ids
    assert (unreleased.pk in ids) == sees_unreleased
    assert client.get(f"/api/v1/results/{unreleased.pk}/").status_code == (200 if sees_unreleased else 404)
    # Releasing is a steering action: refused (403, whatever the id) for everyone else.
    release = client.post(f"/api/v1/results/{unreleased.pk}/release/")
    assert release.status_code == (200 if sees_unreleased else 403)
    unreleased.refresh_from_db()
    assert unreleased.released == sees_unreleased


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
def test_audit_trail_only_for_steering_and_admin(user: str, tmp_media: Any) -> None:
    cast = _world()
    client = api_client_for(cast, user)
    resp = client.get("/api/v1/audit/")
    export = client.get("/api/v1/audit/export/")
    if user == "anonymous":
        assert resp.status_code == 401
        return
    allowed = user in ("steering", "admin")
    assert resp.status_code == (200 if allowed else 403)
    assert export.status_code == (200 if allowed else 403)
    if allowed:
        actions = {e["action"] for e in resp.json()["results"]}
        assert {"dataset.version_create", "dataset.status", "membership.set"} <= actions
