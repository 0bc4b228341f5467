"""Who sees and changes what: every endpoint and page that touches data, for every member of the cast,
against centre A's and centre B's draft and submitted datasets.

The expected tables are written out, not derived, so that a change in the rules shows up here.
A user who may not see an object gets 404 (existence does not leak); one who may see it but not
change it gets 403; anonymous visitors get 401 from the API and a redirect to sign in from pages.

The world (the cast and the four datasets) is written once for the module, and each class of
tests about results adds its results once for the class, as Django's ``TestCase.setUpTestData``
does: in a transaction rolled back after the module (the class), inside which each test runs in
a savepoint rolled back after the test. A test that writes therefore leaves the world as it found
it, and each test gets its own copy of the world's Python objects.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import pytest
from django.db import transaction
from django.utils import timezone

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute
from tests.conftest import SMD_ROWS, api_client_for, make_cast, publish, store_rows

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


@contextmanager
def rolled_back_afterwards(django_db_blocker: Any) -> Iterator[None]:
    """A transaction for data that many tests share, rolled back when the block ends. pytest-django
    runs each test in an atomic block of its own, which inside this one is a savepoint: whatever a
    test writes is rolled back after it, and the shared data stay as they were written."""
    with django_db_blocker.unblock(), transaction.atomic():
        try:
            yield
        finally:
            transaction.set_rollback(True)


@pytest.fixture(scope="module")
def shared_world(django_db_setup: None, django_db_blocker: Any) -> Iterator[dict[str, Any]]:
    """The cast and its four datasets (centre A's and B's draft and submitted), for the module."""
    with rolled_back_afterwards(django_db_blocker):
        world = make_cast()
        ca, cb, rf, dep = world["centre_a"], world["centre_b"], world["outcome"], world["outcome2"]
        world["objects"] = {
            "a_draft": store_rows(centre=ca, outcome=rf, rows=SMD_ROWS),
            "a_submitted": store_rows(centre=ca, outcome=dep, rows=SMD_ROWS, submit=True),
            "b_draft": store_rows(centre=cb, outcome=rf, rows=SMD_ROWS[:3]),
            "b_submitted": store_rows(centre=cb, outcome=dep, rows=SMD_ROWS[1:], submit=True),
        }
        yield world


@pytest.fixture(scope="class")
def shared_results(
    request: pytest.FixtureRequest, shared_world: dict[str, Any], django_db_blocker: Any
) -> Iterator[dict[str, Any]]:
    """The world with what the test class's ``add_results`` adds to it, for the class."""
    with rolled_back_afterwards(django_db_blocker):
        world = copy.deepcopy(shared_world)
        analysis = Analysis.objects.get(outcome=world["outcome2"], is_default=True)
        yield request.cls.add_results(world, analysis)


@pytest.fixture
def world(shared_world: dict[str, Any], db: None) -> dict[str, Any]:
    """This test's copy of the world: its writes are rolled back after it, its objects its own."""
    return copy.deepcopy(shared_world)


@pytest.fixture
def results(shared_results: dict[str, Any], db: None) -> dict[str, Any]:
    """This test's copy of the world with its class's results."""
    return copy.deepcopy(shared_results)


def _recompute(analysis: Analysis) -> Any:
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None
    return result


def _submit_changed_rows(world: dict[str, Any], shift: float) -> None:
    """Centre A submits its outcome-dep rows again, each first-group mean moved by ``shift``."""
    store_rows(
        centre=world["centre_a"],
        outcome=world["outcome2"],
        rows=[dict(r, m1i=r["m1i"] + shift) for r in SMD_ROWS],
        submit=True,
    )


def _read_status(user: str, visible: int) -> int:
    if user == "anonymous":
        return 401
    if user == "api_client":
        return 403  # its token holds results:read only: dataset reads need datasets:read
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
def test_dataset_reads(user: str, obj_index: int, world: dict[str, Any], tmp_media: Any) -> None:
    dataset = world["objects"][OBJECTS[obj_index]]
    client = api_client_for(world, user)
    expected = _read_status(user, VISIBLE[user][obj_index])
    for template in READ_ENDPOINTS:
        resp = client.get(template.format(id=dataset.pk))
        assert resp.status_code == expected, (template, user, OBJECTS[obj_index], resp.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_dataset_lifecycle_writes(user: str, obj_index: int, world: dict[str, Any], tmp_media: Any) -> None:
    name = OBJECTS[obj_index]
    dataset = world["objects"][name]
    client = api_client_for(world, user)
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
def test_dataset_restore(user: str, obj_index: int, world: dict[str, Any], tmp_media: Any) -> None:
    name = OBJECTS[obj_index]
    dataset = world["objects"][name]
    # a second version so that restoring version 1 creates version 3
    rows = [dict(r, m1i=r["m1i"] + 1) for r in dataset.current_version.rows]
    store_rows(centre=dataset.centre, outcome=dataset.outcome, rows=rows)
    client = api_client_for(world, user)
    expected = _write_status(user, VISIBLE[user][obj_index], CHANGE[user][obj_index])
    resp = client.post(f"/api/v1/datasets/{dataset.pk}/versions/1/restore/", {}, format="json")
    assert resp.status_code == (201 if expected == 200 else expected), resp.content
    assert dataset.versions.count() == (3 if expected == 200 else 2)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("centre_index", [0, 1], ids=["centre_a", "centre_b"])
def test_upload(user: str, centre_index: int, world: dict[str, Any], tmp_media: Any) -> None:
    centre = ["alpha", "beta"][centre_index]
    obj_index = 0 if centre_index == 0 else 2  # the centre's draft dataset for outcome rf
    client = api_client_for(world, user)
    rows = [dict(r, m2i=r["m2i"] - 0.5) for r in SMD_ROWS]
    resp = client.post(
        "/api/v1/datasets/upload/", {"centre": centre, "outcome": "rf", "rows": rows}, format="json"
    )
    # Whether a centre is visible for upload purposes follows the draft dataset's row of the tables.
    expected = _write_status(
        user, VISIBLE[user][obj_index] or CHANGE[user][obj_index], CHANGE[user][obj_index]
    )
    if user != "anonymous" and not any(CHANGE[user]):
        # Someone who may upload to no centre at all is refused before the body is read (403,
        # which says nothing about the centre named inside it).
        expected = 403
    assert resp.status_code == (201 if expected == 200 else expected), resp.content
    dataset = world["objects"]["a_draft" if centre_index == 0 else "b_draft"]
    assert dataset.versions.count() == (2 if expected == 200 else 1)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
def test_dataset_list_returns_exactly_the_visible_set(
    user: str, world: dict[str, Any], tmp_media: Any
) -> None:
    client = api_client_for(world, user)
    resp = client.get("/api/v1/datasets/")
    if user == "anonymous":
        assert resp.status_code == 401
        return
    if user == "api_client":
        assert resp.status_code == 403 and "datasets:read" in resp.json()["detail"]
        return
    assert resp.status_code == 200
    got = {d["id"] for d in resp.json()["results"]}
    want = {world["objects"][o].pk for i, o in enumerate(OBJECTS) if VISIBLE[user][i]}
    assert got == want


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_portal_dataset_pages(user: str, obj_index: int, world: dict[str, Any], tmp_media: Any) -> None:
    from django.test import Client

    dataset = world["objects"][OBJECTS[obj_index]]
    client = Client()
    if user == "api_client":
        client.force_login(world["users"]["api_client"])
    elif user != "anonymous":
        client.force_login(world["users"][user])
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
class TestAReleasedResultAndAnUnreleasedOne:
    """A released result of outcome dep, then a newer one of changed data (another estimate), not
    released."""

    @staticmethod
    def add_results(world: dict[str, Any], analysis: Analysis) -> dict[str, Any]:
        released = _recompute(analysis)
        publish(world["users"]["steering"], released)
        _submit_changed_rows(world, 5)
        return {**world, "analysis": analysis, "released": released, "unreleased": _recompute(analysis)}

    def test_results_unreleased_only_for_steering_and_admin(
        self, user: str, results: dict[str, Any], tmp_media: Any
    ) -> None:
        world, analysis = results, results["analysis"]
        released, unreleased = results["released"], results["unreleased"]
        assert not unreleased.releases.exists()
        client = api_client_for(world, user)
        resp = client.get("/api/v1/results/")
        if user == "anonymous":
            assert resp.status_code == 401
            return
        ids = {r["id"] for r in resp.json()["results"]}
        sees_unreleased = user in ("steering", "admin")
        assert released.pk in ids
        assert (unreleased.pk in ids) == sees_unreleased
        assert client.get(f"/api/v1/results/{unreleased.pk}/").status_code == (
            200 if sees_unreleased else 404
        )
        # its blocks likewise; the released result's blocks are for every reader
        fit = client.get(f"/api/v1/results/{unreleased.pk}/blocks/effect_sizes/")
        assert fit.status_code == (200 if sees_unreleased else 404)
        assert client.get(f"/api/v1/results/{released.pk}/blocks/effect_sizes/").status_code == 200
        # Publishing a release is a steering action: refused (403) for everyone else.
        release = client.post("/api/v1/releases/", {"name": "next", "analyses": [analysis.pk]}, format="json")
        assert release.status_code == (201 if sees_unreleased else 403), release.content
        assert unreleased.releases.exists() == sees_unreleased

    def test_result_history_and_outcome_page_hide_unreleased_results(
        self, user: str, results: dict[str, Any], tmp_media: Any
    ) -> None:
        from django.test import Client

        world, analysis = results, results["analysis"]
        released, hidden = results["released"], results["unreleased"]
        assert hidden.pooled["estimate"] != released.pooled["estimate"]
        sees_all = user in ("steering", "admin")

        history = api_client_for(world, user).get(f"/api/v1/analyses/{analysis.pk}/history/")
        detail = api_client_for(world, user).get(f"/api/v1/analyses/{analysis.pk}/")
        if user == "anonymous":
            assert history.status_code == 401 and detail.status_code == 401
        else:
            ids = [r["id"] for r in history.json()["results"]]
            assert ids == ([hidden.pk, released.pk] if sees_all else [released.pk])
            current = detail.json()["current_result"]
            assert (current["id"] if current else None) == (hidden.pk if sees_all else None)

        page = Client()
        if user != "anonymous":
            page.force_login(world["users"][user])
        resp = page.get("/outcomes/dep/")
        if user == "anonymous":
            assert resp.status_code == 302
            return
        html = resp.content.decode()
        shown = hidden if sees_all else released
        assert f'<div class="big" id="pooled-estimate">{shown.pooled["estimate"]:.3f}</div>' in html
        assert (f"{hidden.pooled['estimate']:.3f}" in html) == sees_all


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
class TestAReleaseAndAnEmbargoedOne:
    """Release 2026.1 of outcome dep's first result; 2026.2 of a newer one, embargoed for 3 days."""

    @staticmethod
    def add_results(world: dict[str, Any], analysis: Analysis) -> dict[str, Any]:
        first = _recompute(analysis)
        publish(world["users"]["steering"], first, name="2026.1")
        _submit_changed_rows(world, 2)
        later = _recompute(analysis)
        embargo = timezone.now() + timedelta(days=3)
        publish(world["users"]["steering"], later, name="2026.2", embargo_until=embargo)
        return {**world, "first": first, "later": later}

    def test_releases_readable_by_every_reader_embargoed_ones_by_steering_only(
        self, user: str, results: dict[str, Any], tmp_media: Any
    ) -> None:
        world, first, later = results, results["first"], results["later"]
        client = api_client_for(world, user)
        listed = client.get("/api/v1/releases/")
        if user == "anonymous":
            assert listed.status_code == 401
            assert client.get("/api/v1/releases/2026.1/").status_code == 401
            return
        steering = user in ("steering", "admin")
        assert [r["name"] for r in listed.json()["results"]] == (
            ["2026.2", "2026.1"] if steering else ["2026.1"]
        )
        detail = client.get("/api/v1/releases/2026.1/").json()
        assert detail["results"][0]["result"] == first.pk and detail["readable"] is True
        assert client.get("/api/v1/releases/2026.2/").status_code == (200 if steering else 404)
        frozen = client.get("/api/v1/releases/2026.1/results/").json()["results"]
        assert [r["id"] for r in frozen] == [first.pk]
        by_filter = client.get("/api/v1/results/?release=2026.2").json()["results"]
        assert [r["id"] for r in by_filter] == ([later.pk] if steering else [])
        # never changed, never deleted
        for method in ("put", "patch", "delete"):
            assert getattr(client, method)(
                "/api/v1/releases/2026.1/", {"notes": "x"}, format="json"
            ).status_code in (
                403,
                405,
            )


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
def test_audit_trail_only_for_steering_and_admin(user: str, world: dict[str, Any], tmp_media: Any) -> None:
    client = api_client_for(world, user)
    resp = client.get("/api/v1/audit/")
    export = client.get("/api/v1/audit/export/")
    if user == "anonymous":
        assert resp.status_code == 401
        return
    allowed = user in ("steering", "admin")
    assert resp.status_code == (200 if allowed else 403)
    assert export.status_code == (200 if allowed else 403)
    from django.test import Client

    page = Client()
    page.force_login(world["users"][user])
    assert page.get("/audit/").status_code == (200 if allowed else 404)
    if allowed:
        actions = {e["action"] for e in resp.json()["results"]}
        assert {"dataset.version_create", "dataset.status", "membership.set"} <= actions


# Steering-group writes: the data dictionary and analysis specifications.
STEERING_WRITE = {
    "anonymous": 401,
    "dm_a": 403,
    "member_a": 403,
    "dm_b": 403,
    "steering": 0,
    "api_client": 403,
    "admin": 0,
}


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
def test_outcome_and_analysis_writes_are_for_the_steering_group(
    user: str, world: dict[str, Any], tmp_media: Any
) -> None:
    from apps.audit.models import AuditEvent
    from apps.consortium.models import Outcome

    client = api_client_for(world, user)
    expected = STEERING_WRITE[user]
    created = client.post(
        "/api/v1/outcomes/",
        {"code": "anxiety", "name": "Anxiety", "measure": "SMD", "direction": "lower"},
        format="json",
    )
    assert created.status_code == (expected or 201), created.content
    patched = client.patch("/api/v1/outcomes/rf/", {"description": "changed"}, format="json")
    assert patched.status_code == (expected or 200)
    analysis = Analysis.objects.get(outcome=world["outcome"], is_default=True)
    seq = analysis.requested_seq
    spec = client.patch(f"/api/v1/analyses/{analysis.pk}/", {"method": "DL", "test": "knha"}, format="json")
    assert spec.status_code == (expected or 200)
    new = client.post(
        "/api/v1/analyses/", {"outcome": "rf", "name": "Sensitivity: PM", "method": "PM"}, format="json"
    )
    assert new.status_code == (expected or 201)
    analysis.refresh_from_db()
    if expected:
        assert not Outcome.objects.filter(code="anxiety").exists()
        assert analysis.method == "REML" and analysis.requested_seq == seq
    else:
        # a new outcome gets its default analysis; a changed specification is recomputed; all audited
        assert Analysis.objects.filter(outcome__code="anxiety", is_default=True).exists()
        assert analysis.method == "DL" and analysis.requested_seq > seq
        actions = set(AuditEvent.objects.values_list("action", flat=True))
        assert {"outcome.create", "outcome.update", "analysis.update", "analysis.create"} <= actions
    # reads of the dictionary and templates are for every signed-in user
    read = client.get("/api/v1/outcomes/rf/template/?fmt=xlsx")
    assert read.status_code == (401 if user == "anonymous" else 200)


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("obj_index", range(4), ids=OBJECTS)
def test_admin_pages_are_for_administrators_only(
    user: str, obj_index: int, world: dict[str, Any], tmp_media: Any
) -> None:
    from django.test import Client

    dataset = world["objects"][OBJECTS[obj_index]]
    client = Client()
    if user != "anonymous":
        client.force_login(world["users"][user])
    resp = client.get(f"/admin/datasets/dataset/{dataset.pk}/change/")
    if user == "admin":
        assert resp.status_code == 200
        # versions are immutable: the admin shows them read-only
        assert (
            client.post(f"/admin/datasets/dataset/{dataset.pk}/delete/", {"post": "yes"}).status_code == 403
        )
    else:
        assert resp.status_code == 302 and "/admin/login/" in resp["Location"]


# The endpoints added with tokens, releases, exports and webhooks, for every role: 1 = 200, else
# the status. A released result of both centres' submitted data, which every reader may read (its
# detail and blocks); its export holds both centres' rows, which only the steering group and
# administrators may read together (and a token needs datasets:read for it).
NEW_ENDPOINTS = {
    "/api/v1/tokens/": {"anonymous": 401},
    "/api/v1/webhooks/": {"anonymous": 401},
    "/api/v1/releases/": {"anonymous": 401},
    "/api/v1/releases/2026.1/results/": {"anonymous": 401},
    "/api/v1/results/{id}/blocks/effect_sizes/": {"anonymous": 401},
    "/api/v1/results/{id}/export/?fmt=csv": {
        "anonymous": 401,
        "dm_a": 403,
        "member_a": 403,
        "dm_b": 403,
        "api_client": 403,
    },
}


@pytest.mark.django_db
@pytest.mark.parametrize("user", USERS)
@pytest.mark.parametrize("path", list(NEW_ENDPOINTS))
class TestReleasedResultOfBothCentres:
    """Release 2026.1 of outcome dep's result, computed from both centres' submitted data."""

    @staticmethod
    def add_results(world: dict[str, Any], analysis: Analysis) -> dict[str, Any]:
        result = _recompute(analysis)
        publish(world["users"]["steering"], result, name="2026.1")
        return {**world, "result": result}

    def test_the_new_endpoints_for_every_role(
        self, user: str, path: str, results: dict[str, Any], tmp_media: Any
    ) -> None:
        world, result = results, results["result"]
        assert result.status == "done"
        assert {v["centre"] for v in result.dataset_versions} == {"alpha", "beta"}
        response = api_client_for(world, user).get(path.replace("{id}", str(result.pk)))
        expected = NEW_ENDPOINTS[path].get(user, 200)
        assert response.status_code == expected, (user, path, response.content[:200])
        if expected == 403 and user == "api_client":
            assert "datasets:read" in response.json()["detail"]  # the token's scope, not the role, refuses
