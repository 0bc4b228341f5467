"""Staged uploads and revisions in the portal: a file is a preview until its data manager confirms
it, a confirmed version of a submitted dataset is a revision until it is submitted, and the preview
tells the truth about what confirming and submitting will do."""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_inputs, analysis_recompute
from apps.consortium.models import ConsortiumRole, Membership
from apps.consortium.services import membership_set
from apps.datasets.models import Dataset, DatasetVersion, StagedUpload
from tests.conftest import SMD_ROWS, store_rows

pytestmark = pytest.mark.django_db

COLUMNS = ["study", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i", "year"]


def _csv(rows: list[dict[str, Any]]) -> bytes:
    lines = [",".join(COLUMNS)] + [",".join(str(r[c]) for c in COLUMNS) for r in rows]
    return ("\n".join(lines) + "\n").encode()


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _post_file(client: Client, rows: list[dict[str, Any]] | bytes, *, reason: str = "corrected") -> Any:
    content = rows if isinstance(rows, bytes) else _csv(rows)
    return client.post(
        "/upload/",
        {
            "centre": "alpha",
            "outcome": "rf",
            "reason": reason,
            "file": SimpleUploadedFile("rows.csv", content, content_type="text/csv"),
        },
    )


def _hedges_g(r: dict[str, Any]) -> tuple[float, float]:
    """SMD (Hedges' g) and its variance from means and SDs, written out from Hedges (1981) as an
    oracle independent of the engine: J = 1 - 3 / (4 (n1 + n2 - 2) - 1), pooled SD, LS variance."""
    n1, n2 = r["n1i"], r["n2i"]
    sp = math.sqrt(((n1 - 1) * r["sd1i"] ** 2 + (n2 - 1) * r["sd2i"] ** 2) / (n1 + n2 - 2))
    j = 1 - 3 / (4 * (n1 + n2 - 2) - 1)
    g = j * (r["m1i"] - r["m2i"]) / sp
    v = 1 / n1 + 1 / n2 + g**2 / (2 * (n1 + n2))
    return g, v


@pytest.fixture
def submitted(cast: dict[str, Any], tmp_media: Any) -> Dataset:
    """Centre Alpha's submitted dataset (version 1, the four SMD rows), with its analysis current."""
    dataset = store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_recompute(analysis_id=analysis.pk)
    return dataset


def _corrected() -> list[dict[str, Any]]:
    """Baker's SD corrected, Diaz dropped, Evans added."""
    rows = [dict(r) for r in SMD_ROWS[:3]]
    rows[1]["sd1i"] = 7.5
    rows.append(
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
    return rows


def test_an_upload_is_a_preview_that_stores_nothing_until_confirmed(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    requested = analysis.requested_seq
    response = _post_file(dm, _corrected())
    assert response.status_code == 302
    staged = StagedUpload.objects.get()
    assert response["Location"] == f"/upload/{staged.key}/"
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 1
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested

    page = dm.get(response["Location"])
    assert page.status_code == 200
    html = page.content.decode()
    assert "Nothing is stored yet" in html
    # against version 1: Evans added, Diaz removed, Baker changed, Adams and Chen unchanged
    assert "1 added · 1 removed · 1 changed · 2 unchanged" in html
    assert "Diaz 2020" in html.split('id="preview-removed"')[1]
    assert re.search(r"sd1i</td><td>6\.1</td><td>7\.5</td>", html)
    assert "stored as a <strong>revision</strong>" in html
    # each row's effect and 95% CI, as the oracle computes them
    for row in _corrected():
        g, v = _hedges_g(row)
        text = f"{g:.2f} ({g - 1.959964 * math.sqrt(v):.2f} to {g + 1.959964 * math.sqrt(v):.2f})"
        assert text in html, (row["study"], text)
    # a data manager is not shown the pooled results of other centres' unreleased data
    assert 'id="pooled-effect"' not in html


def test_confirming_stores_a_revision_the_analyses_ignore_until_it_is_submitted(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    requested = analysis.requested_seq
    preview = _post_file(dm, _corrected())["Location"]
    response = dm.post(preview, {"action": "confirm", "reason": "corrected Baker's SD"})
    assert response.status_code == 302 and response["Location"] == f"/datasets/{submitted.pk}/"
    assert not StagedUpload.objects.exists()
    dataset = Dataset.objects.get(pk=submitted.pk)
    assert dataset.current_version is not None and dataset.current_version.number == 2
    assert dataset.current_version.reason == "corrected Baker's SD"
    assert dataset.submitted_version is not None and dataset.submitted_version.number == 1
    assert dataset.revision_pending
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested
    rows, provenance = analysis_inputs(analysis=analysis)
    assert [p["number"] for p in provenance] == [1]
    assert [r["study"] for r in rows] == [r["study"] for r in SMD_ROWS]
    # the steering group (outside the centre) still sees version 1 as the dataset's content
    steering = _client(cast["users"]["steering"])
    page = steering.get(f"/datasets/{submitted.pk}/").content.decode()
    assert "Version 2 is a revision" not in page and ">2<" not in page.split("<h2>Versions</h2>")[1]

    page = dm.get(f"/datasets/{submitted.pk}/").content.decode()
    assert "Version 2 is a revision waiting for submission" in page
    assert "Submit revision" in page
    assert dm.post(f"/datasets/{submitted.pk}/submit/", {"reason": "checked"}).status_code == 302
    dataset.refresh_from_db()
    assert dataset.submitted_version_id == dataset.current_version_id and not dataset.revision_pending
    assert Analysis.objects.get(pk=analysis.pk).requested_seq == requested + 1
    rows, provenance = analysis_inputs(analysis=analysis)
    assert [p["number"] for p in provenance] == [2]
    assert "Evans 2021" in [r["study"] for r in rows]


def test_the_pooled_preview_is_what_the_recompute_then_gives(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    """A person who is both a data manager and on the steering group sees the pooled results before
    and after; the "after" is exactly what the analysis gives once the revision is submitted."""
    both = cast["users"]["dm_a"]
    ConsortiumRole.objects.create(user=both, role=ConsortiumRole.Role.STEERING)
    # Centre Beta's submitted data too, so that the pooled result has more than one centre
    store_rows(
        centre=cast["centre_b"],
        outcome=cast["outcome"],
        rows=[dict(r, study=r["study"] + " B", m1i=r["m1i"] - 1) for r in SMD_ROWS],
        submit=True,
    )
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_recompute(analysis_id=analysis.pk)
    before = Analysis.objects.get(pk=analysis.pk).current_result
    assert before is not None and before.pooled is not None

    client = _client(both)
    preview = _post_file(client, _corrected())["Location"]
    html = client.get(preview).content.decode()
    table = html.split('id="pooled-effect"')[1].split("</table>")[0]
    now = f"{before.pooled['estimate']:.3f} ({before.pooled['ci_lb']:.3f} to {before.pooled['ci_ub']:.3f})"
    assert now in table
    assert "8 → 8" in table  # k before and after: 4 + 4 rows, one dropped and one added

    client.post(preview, {"action": "confirm", "reason": "corrected"})
    client.post(f"/datasets/{submitted.pk}/submit/", {"reason": "checked"})
    analysis_recompute(analysis_id=analysis.pk)
    after = Analysis.objects.get(pk=analysis.pk).current_result
    assert after is not None and after.pooled is not None and after.pk != before.pk
    then = f"{after.pooled['estimate']:.3f} ({after.pooled['ci_lb']:.3f} to {after.pooled['ci_ub']:.3f})"
    assert then in table
    assert then != now


def test_a_bad_file_names_row_column_and_reason_and_stages_nothing(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    rows = _corrected()
    rows[2]["sd1i"] = -1
    response = _post_file(dm, rows)
    assert response.status_code == 400
    html = response.content.decode()
    assert "The file was not stored" in html
    cells = re.findall(r"<tr><td>(\d+)</td><td>(\w+)</td>", html)
    assert ("4", "sd1i") in cells  # the header is row 1: the third data row is row 4
    assert not StagedUpload.objects.exists()
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 1


def test_discarding_leaves_nothing(cast: dict[str, Any], submitted: Dataset, tmp_media: Any) -> None:
    dm = _client(cast["users"]["dm_a"])
    files_before = sorted(p.name for p in tmp_media.rglob("*") if p.is_file())
    preview = _post_file(dm, _corrected())["Location"]
    response = dm.post(preview, {"action": "discard"})
    assert response.status_code == 302 and response["Location"] == "/upload/"
    assert not StagedUpload.objects.exists()
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 1
    assert sorted(p.name for p in tmp_media.rglob("*") if p.is_file()) == files_before
    assert dm.get(preview).status_code == 404


def test_a_preview_is_its_uploaders_alone(cast: dict[str, Any], submitted: Dataset) -> None:
    dm = _client(cast["users"]["dm_a"])
    preview = _post_file(dm, _corrected())["Location"]
    # another data manager of the same centre, the steering group, a member: 404, and nothing stored
    colleague = cast["users"]["dm_b"]
    membership_set(actor=None, user=colleague, centre=cast["centre_a"], role=Membership.Role.DATA_MANAGER)
    for who in ("steering", "member_a", "admin"):
        assert _client(cast["users"][who]).get(preview).status_code == 404, who
    other = _client(colleague)
    assert other.get(preview).status_code == 404
    assert other.post(preview, {"action": "confirm"}).status_code == 404
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 1
    # a member may not upload at all
    assert _post_file(_client(cast["users"]["member_a"]), _corrected()).status_code == 403


def test_a_preview_overtaken_by_another_version_cannot_be_confirmed(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    preview = _post_file(dm, _corrected())["Location"]
    # meanwhile a version arrives through the API
    store_rows(
        centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS[:3], actor=cast["users"]["dm_a"]
    )
    # the page says so, and still shows the comparison with version 1 it was made against
    page = dm.get(preview).content.decode()
    assert 'id="preview-outdated"' in page and 'id="confirm-upload"' not in page
    assert "1 added · 1 removed · 1 changed · 2 unchanged" in page
    response = dm.post(preview, {"action": "confirm", "reason": "corrected"}, follow=True)
    assert (
        "The dataset changed since this preview (its current version is now 2)" in response.content.decode()
    )
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 2
    assert StagedUpload.objects.count() == 1  # still there to look at; a new upload replaces it


def test_confirming_twice_stores_once_and_an_expired_preview_is_refused(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    preview = _post_file(dm, _corrected())["Location"]
    assert dm.post(preview, {"action": "confirm"}).status_code == 302
    assert dm.post(preview, {"action": "confirm"}).status_code == 404
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 2

    preview = _post_file(dm, SMD_ROWS)["Location"]
    StagedUpload.objects.update(created_at=timezone.now() - timedelta(hours=25))
    response = dm.post(preview, {"action": "confirm"}, follow=True)
    assert "more than a day old" in response.content.decode()
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 2


def test_a_new_upload_replaces_the_persons_earlier_preview(cast: dict[str, Any], submitted: Dataset) -> None:
    dm = _client(cast["users"]["dm_a"])
    first = _post_file(dm, _corrected())["Location"]
    second = _post_file(dm, SMD_ROWS[:2])["Location"]
    assert first != second
    assert dm.get(first).status_code == 404
    assert StagedUpload.objects.count() == 1
    assert dm.post(second, {"action": "neither"}).status_code == 400


def test_any_two_versions_can_be_compared(cast: dict[str, Any], submitted: Dataset) -> None:
    for rows in (_corrected(), SMD_ROWS[:2]):
        store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=rows)
    dm = _client(cast["users"]["dm_a"])
    html = dm.get(f"/datasets/{submitted.pk}/?from=1&to=3").content.decode()
    assert "Changes from version 1 to 3" in html
    assert "0 added · 2 removed · 0 changed · 2 unchanged" in html
    html = dm.get(f"/datasets/{submitted.pk}/?from=3&to=2").content.decode()
    assert "Changes from version 3 to 2" in html
    assert "2 added · 0 removed · 1 changed · 1 unchanged" in html
    assert 'id="compare-versions"' in html
    assert dm.get(f"/datasets/{submitted.pk}/?from=1&to=99").status_code == 404
    assert dm.get(f"/datasets/{submitted.pk}/?from=x&to=1").status_code == 404


def test_housekeeping_deletes_previews_nobody_confirmed_in_time(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    from workers.tasks import housekeeping

    dm = _client(cast["users"]["dm_a"])
    old = _post_file(dm, _corrected())["Location"]
    StagedUpload.objects.update(created_at=timezone.now() - timedelta(hours=25))
    # another person's fresh preview stays
    colleague = cast["users"]["dm_b"]
    membership_set(actor=None, user=colleague, centre=cast["centre_a"], role=Membership.Role.DATA_MANAGER)
    fresh = _post_file(_client(colleague), SMD_ROWS)["Location"]
    assert housekeeping() == {"previews": 1}
    assert dm.get(old).status_code == 404
    assert _client(colleague).get(fresh).status_code == 200


def test_the_datasets_page_marks_a_pending_revision_for_the_centre_only(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=_corrected())
    assert "revision pending" in _client(cast["users"]["dm_a"]).get("/datasets/").content.decode()
    assert "revision pending" in _client(cast["users"]["member_a"]).get("/datasets/").content.decode()
    assert "revision pending" not in _client(cast["users"]["steering"]).get("/datasets/").content.decode()


def test_a_data_manager_who_lost_the_role_cannot_confirm_their_preview(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    preview = _post_file(dm, _corrected())["Location"]
    membership_set(
        actor=None, user=cast["users"]["dm_a"], centre=cast["centre_a"], role=Membership.Role.MEMBER
    )
    # nor read it any more: it compares with the centre's current data
    assert dm.get(preview).status_code == 404
    assert dm.post(preview, {"action": "confirm", "reason": "corrected"}).status_code == 404
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 1


def test_reasons_keys_and_codes_that_name_nothing_are_refused_with_4xx(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    dm = _client(cast["users"]["dm_a"])
    refused = _post_file(dm, _corrected(), reason="corrected\u202e evil")
    assert refused.status_code == 400 and "The reason" in refused.content.decode()
    assert not StagedUpload.objects.exists()
    preview = _post_file(dm, _corrected())["Location"]
    bad = dm.post(preview, {"action": "confirm", "reason": "x\x00y"}, follow=True)
    assert bad.status_code == 200 and "The reason" in bad.content.decode()
    assert DatasetVersion.objects.filter(dataset=submitted).count() == 1
    assert dm.get("/upload/%00/").status_code == 404
    assert dm.get("/upload/" + "g" * 32 + "/").status_code == 404
    nul = dm.post(
        "/upload/",
        {"centre": "alpha\x00", "outcome": "rf", "file": SimpleUploadedFile("a.csv", _csv(SMD_ROWS))},
    )
    assert nul.status_code == 404
    nul = dm.post(
        "/upload/",
        {"centre": "alpha", "outcome": "rf\x00", "file": SimpleUploadedFile("a.csv", _csv(SMD_ROWS))},
    )
    assert nul.status_code == 400 and "unknown_outcome" in nul.content.decode()
    withdraw = dm.post(f"/datasets/{submitted.pk}/withdraw/", {"reason": "x\x00"}, follow=True)
    assert "The reason" in withdraw.content.decode()
    assert Dataset.objects.get(pk=submitted.pk).status == "submitted"


def test_a_changed_row_shows_its_effect_before(cast: dict[str, Any], submitted: Dataset) -> None:
    dm = _client(cast["users"]["dm_a"])
    html = dm.get(_post_file(dm, _corrected())["Location"]).content.decode()
    g, v = _hedges_g(SMD_ROWS[1])  # Baker as it is now
    assert f"was {g:.2f} ({g - 1.959964 * math.sqrt(v):.2f} to {g + 1.959964 * math.sqrt(v):.2f})" in html
    assert "lower is better" not in html and "a positive value favours the intervention" in html


def test_the_header_offers_uploads_to_data_managers_only_and_a_way_past_it(
    cast: dict[str, Any], submitted: Dataset
) -> None:
    for who, offered in (("dm_a", True), ("member_a", False), ("steering", False)):
        page = _client(cast["users"][who]).get("/datasets/").content.decode()
        header = page.split("<main")[0]
        assert ('href="/upload/"' in header) == offered, who
        assert 'class="skip-link" href="#main"' in header and '<main id="main"' in page
