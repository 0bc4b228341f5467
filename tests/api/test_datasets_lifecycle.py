"""Versions, diff, restore, lifecycle and the audit trail, through the API and the portal."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from django.test import Client

from apps.analyses.models import Analysis, OutboxEvent
from apps.analyses.services import analysis_inputs
from apps.audit.models import AuditEvent
from apps.datasets.models import Dataset, DatasetVersion
from tests.conftest import SMD_ROWS, api_client_for

pytestmark = pytest.mark.django_db


def _upload(client: Any, rows: list[dict[str, Any]], *, reason: str = "") -> Any:
    return client.post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "rows": rows, "reason": reason},
        format="json",
    )


def test_versions_are_immutable_and_identical_content_creates_none(cast: Any, tmp_media: Any) -> None:
    dm = api_client_for(cast, "dm_a")
    first = _upload(dm, SMD_ROWS, reason="initial")
    assert first.status_code == 201
    assert first.json()["version"]["number"] == 1
    again = _upload(dm, SMD_ROWS, reason="same again")
    assert again.status_code == 200
    assert again.json()["created"] is False
    assert again.json()["version"]["id"] == first.json()["version"]["id"]
    assert DatasetVersion.objects.count() == 1
    version = DatasetVersion.objects.get()
    version.reason = "tampered"
    with pytest.raises(RuntimeError):
        version.save()
    with pytest.raises(RuntimeError):
        version.delete()


def test_diff_restore_and_history_through_the_api(cast: Any, tmp_media: Any) -> None:
    dm = api_client_for(cast, "dm_a")
    _upload(dm, SMD_ROWS, reason="initial")
    changed = [dict(r) for r in SMD_ROWS[:3]]
    changed[1]["sd1i"] = 7.5
    changed.append(
        {
            "study": "Evans 2021",
            "m1i": 9.0,
            "sd1i": 3.0,
            "n1i": 22,
            "m2i": 8.1,
            "sd2i": 3.1,
            "n2i": 20,
            "year": 2021,
        }
    )
    resp = _upload(dm, changed, reason="corrected SD, added Evans, dropped Diaz")
    assert resp.status_code == 201
    dataset_id = resp.json()["dataset"]["id"]

    diff = dm.get(f"/api/v1/datasets/{dataset_id}/diff/?from=1&to=2").json()
    assert [r["study"] for r in diff["added"]] == ["Evans 2021"]
    assert [r["study"] for r in diff["removed"]] == ["Diaz 2020"]
    assert diff["changed"] == [{"key": "Baker 2017", "cells": [{"column": "sd1i", "old": 6.1, "new": 7.5}]}]
    assert diff["summary"] == {"added": 1, "removed": 1, "changed": 1, "unchanged": 2}

    restored = dm.post(
        f"/api/v1/datasets/{dataset_id}/versions/1/restore/", {"reason": "undo"}, format="json"
    )
    assert restored.status_code == 201
    assert restored.json()["number"] == 3
    assert restored.json()["restored_from"] == DatasetVersion.objects.get(dataset_id=dataset_id, number=1).pk
    v3 = dm.get(f"/api/v1/datasets/{dataset_id}/versions/3/").json()
    v1 = dm.get(f"/api/v1/datasets/{dataset_id}/versions/1/").json()
    assert v3["rows"] == v1["rows"] and v3["checksum"] == v1["checksum"]
    history = dm.get(f"/api/v1/datasets/{dataset_id}/versions/").json()
    assert [(v["number"], v["reason"]) for v in history] == [
        (3, "undo"),
        (2, "corrected SD, added Evans, dropped Diaz"),
        (1, "initial"),
    ]


def test_lifecycle_controls_what_is_analysed(cast: Any, tmp_media: Any) -> None:
    dm = api_client_for(cast, "dm_a")
    resp = _upload(dm, SMD_ROWS)
    dataset_id = resp.json()["dataset"]["id"]
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    before = analysis.requested_seq

    # A draft is not analysed: uploading to it requests no recompute.
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before
    assert (
        dm.post(f"/api/v1/datasets/{dataset_id}/withdraw/", {}).status_code == 409
    )  # draft -> withdrawn is not allowed: a conflict with the state
    assert (
        dm.post(f"/api/v1/datasets/{dataset_id}/submit/", {"reason": "ready"}).json()["status"] == "submitted"
    )
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before + 1
    assert OutboxEvent.objects.filter(analysis=analysis, seq=before + 1).exists()

    # A correction to a submitted dataset is a revision: the analyses keep version 1 until it is
    # submitted, and submitting it (the same call) requests the recompute.
    revised = _upload(dm, [dict(r, m1i=r["m1i"] + 1) for r in SMD_ROWS]).json()
    assert revised["version"]["number"] == 2
    assert revised["dataset"]["submitted_version"]["number"] == 1
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before + 1
    rows, _ = analysis_inputs(analysis=analysis)
    assert [r["m1i"] for r in rows] == [r["m1i"] for r in SMD_ROWS]
    submitted = dm.post(f"/api/v1/datasets/{dataset_id}/submit/", {"reason": "corrected means"}).json()
    assert submitted["submitted_version"]["number"] == 2
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before + 2
    rows, provenance = analysis_inputs(analysis=analysis)
    assert [r["m1i"] for r in rows] == [r["m1i"] + 1 for r in SMD_ROWS]
    assert [p["number"] for p in provenance] == [2]
    # nothing pending: submitting again changes nothing and requests nothing
    dm.post(f"/api/v1/datasets/{dataset_id}/submit/", {"reason": "again"})
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before + 2

    assert dm.post(f"/api/v1/datasets/{dataset_id}/withdraw/", {}).json()["status"] == "withdrawn"
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before + 3
    _upload(dm, [dict(r, m1i=r["m1i"] + 2) for r in SMD_ROWS])
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == before + 3  # withdrawn: not analysed


def test_audit_trail_records_every_change_with_before_and_after(cast: Any, tmp_media: Any) -> None:
    dm = api_client_for(cast, "dm_a")
    resp = _upload(dm, SMD_ROWS, reason="initial")
    dataset_id = resp.json()["dataset"]["id"]
    dm.post(f"/api/v1/datasets/{dataset_id}/submit/", {"reason": "ready"})
    steering = api_client_for(cast, "steering")
    events = steering.get("/api/v1/audit/?centre__code=alpha").json()["results"]
    status_event = next(e for e in events if e["action"] == "dataset.status")
    assert status_event["before"] == {"status": "draft", "submitted_version": None}
    assert status_event["after"] == {"status": "submitted", "reason": "ready", "submitted_version": 1}
    version_event = next(e for e in events if e["action"] == "dataset.version_create")
    assert version_event["actor_username"] == "dm_a"
    assert version_event["after"]["rows"] == 4
    exported = steering.get("/api/v1/audit/export/")
    rows = list(csv.reader(io.StringIO(exported.content.decode())))
    assert rows[0][:4] == ["id", "at", "actor", "action"]
    assert {"dataset.status", "dataset.version_create", "membership.set"} <= {r[3] for r in rows[1:]}
    event = AuditEvent.objects.first()
    assert event is not None
    with pytest.raises(RuntimeError):
        event.save()
    with pytest.raises(RuntimeError):
        event.delete()


def test_portal_upload_versions_diff_restore_and_lifecycle(cast: Any, tmp_media: Any) -> None:
    client = Client()
    client.force_login(cast["users"]["dm_a"])
    from django.core.files.uploadedfile import SimpleUploadedFile

    def csv_file(rows: list[dict[str, Any]]) -> SimpleUploadedFile:
        cols = ["study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"]
        text = "\n".join(
            [";".join(cols)] + [";".join(str(r[c]).replace(".", ",") for c in cols) for r in rows]
        )
        return SimpleUploadedFile("data.csv", text.encode("latin-1"), content_type="text/csv")

    def upload_and_confirm(data: dict[str, Any]) -> Any:
        preview = client.post("/upload/", data)
        assert preview.status_code == 302 and preview["Location"].startswith("/upload/")
        return client.post(preview["Location"], {"action": "confirm", "reason": data.get("reason", "")})

    resp = upload_and_confirm(
        {"centre": "alpha", "outcome": "rf", "file": csv_file(SMD_ROWS), "reason": "v1"}
    )
    assert resp.status_code == 302
    dataset = Dataset.objects.get(centre=cast["centre_a"], outcome=cast["outcome"])
    assert dataset.current_version.rows[0]["sd1i"] == 4.2  # decimal comma, semicolon delimiter

    bad = [dict(r) for r in SMD_ROWS]
    bad[2]["sd2i"] = -1
    resp = client.post("/upload/", {"centre": "alpha", "outcome": "rf", "file": csv_file(bad)})
    assert resp.status_code == 400
    page = resp.content.decode()
    assert "sd_not_positive" in page and "Nothing was changed" in page
    assert dataset.versions.count() == 1

    upload_and_confirm(
        {"centre": "alpha", "outcome": "rf", "file": csv_file([dict(r, n1i=r["n1i"] + 1) for r in SMD_ROWS])},
    )
    page = client.get(f"/datasets/{dataset.pk}/?from=1&to=2").content.decode()
    assert "4 changed" in page
    # every change asks for a reason (and the page asks for a confirmation): none, and nothing changes
    refused = client.post(f"/datasets/{dataset.pk}/restore/", {"number": 1, "reason": " "}, follow=True)
    assert "Give a reason to restore" in refused.content.decode() and dataset.versions.count() == 2
    page = client.get(f"/datasets/{dataset.pk}/").content.decode()
    assert 'data-confirm="Restore version 1 as a new version?' in page and 'name="reason" required' in page
    assert (
        client.post(f"/datasets/{dataset.pk}/restore/", {"number": 1, "reason": "back to v1"}).status_code
        == 302
    )
    assert (
        dataset.versions.count() == 3 and dataset.versions.order_by("-number").first().reason == "back to v1"
    )
    assert client.post(f"/datasets/{dataset.pk}/submit/").status_code == 302
    dataset.refresh_from_db()
    assert dataset.status == "draft"  # no reason: not submitted
    assert client.post(f"/datasets/{dataset.pk}/submit/", {"reason": "checked"}).status_code == 302
    dataset.refresh_from_db()
    assert dataset.status == "submitted"
    assert (
        client.post(f"/datasets/{dataset.pk}/withdraw/", {"reason": "an error in arm 2"}).status_code == 302
    )
    dataset.refresh_from_db()
    assert dataset.status == "withdrawn"
    member = Client()
    member.force_login(cast["users"]["member_a"])
    assert member.post(f"/datasets/{dataset.pk}/submit/", {"reason": "x"}).status_code == 403
    assert member.post(f"/datasets/{dataset.pk}/submit/").status_code == 403  # refused before the reason


def test_analysis_state_reports_queued_running_and_current(cast: Any, tmp_media: Any, settings: Any) -> None:
    from datetime import timedelta

    from django.utils import timezone

    from apps.analyses.services import analysis_recompute
    from tests.conftest import store_rows

    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    assert analysis.state == "queued"
    Analysis.objects.filter(pk=analysis.pk).update(running_since=timezone.now())
    analysis.refresh_from_db()
    assert analysis.state == "running"
    # a worker that died mid-computation: after the lease its work counts as queued again
    Analysis.objects.filter(pk=analysis.pk).update(
        running_since=timezone.now() - timedelta(seconds=settings.RECOMPUTE_STALE_AFTER_SECONDS + 1)
    )
    analysis.refresh_from_db()
    assert analysis.state == "queued"
    analysis_recompute(analysis_id=analysis.pk)
    analysis.refresh_from_db()
    assert analysis.state == "current" and analysis.running_since is None
    assert (
        api_client_for(cast, "steering").get(f"/api/v1/analyses/{analysis.pk}/").json()["state"] == "current"
    )


def test_portal_shows_how_aliased_columns_were_read(cast: Any, tmp_media: Any) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(cast["users"]["dm_a"])
    header = "Study name;Mean intervention;SD intervention;n1;m2i;SD control;n2i"
    lines = [
        f"{r['study']};{r['m1i']};{r['sd1i']};{r['n1i']};{r['m2i']};{r['sd2i']};{r['n2i']}" for r in SMD_ROWS
    ]
    upload = SimpleUploadedFile("aliases.csv", "\n".join([header, *lines]).encode())
    resp = client.post("/upload/", {"centre": "alpha", "outcome": "rf", "file": upload})
    assert resp.status_code == 302
    page = client.get(resp["Location"]).content.decode()
    mapping = page.split('id="column-mapping"', 1)[1].split("</table>", 1)[0]
    for source, target in [
        ("Mean intervention", "m1i"),
        ("SD control", "sd2i"),
        ("n1", "n1i"),
        ("Study name", "study"),
    ]:
        assert f"<td>{source}</td><td><code>{target}</code>" in mapping
    # shown before anything is stored, and again on the dataset's page once confirmed
    assert not Dataset.objects.filter(centre=cast["centre_a"], outcome=cast["outcome"]).exists()
    confirmed = client.post(resp["Location"], {"action": "confirm"})
    page = client.get(confirmed["Location"]).content.decode()
    assert "<td>Mean intervention</td><td><code>m1i</code>" in page.split('id="column-mapping"', 1)[1]
    dataset = Dataset.objects.get(centre=cast["centre_a"], outcome=cast["outcome"])
    assert dataset.current_version.rows[0]["m1i"] == SMD_ROWS[0]["m1i"]


def test_an_outcome_with_data_keeps_its_measure(cast: Any, tmp_media: Any) -> None:
    from tests.conftest import store_rows

    steering = api_client_for(cast, "steering")
    assert steering.patch("/api/v1/outcomes/dep/", {"measure": "MD"}, format="json").status_code == 200
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS)
    resp = steering.patch("/api/v1/outcomes/rf/", {"measure": "MD"}, format="json")
    assert resp.status_code == 400
    assert "cannot change" in resp.json()["measure"][0]
