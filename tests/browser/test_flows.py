"""What people do, driven through Chromium: a data manager uploads a bad file and a good one,
previews, confirms and submits; the steering group watches the new result arrive on an open page
without reloading it, changes an analysis's settings and publishes a release. Each page on the way
passes axe-core."""

from __future__ import annotations

import csv
import io
import os
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F

from apps.analyses.models import Analysis, Release
from apps.analyses.services import analysis_recompute
from apps.datasets.models import Dataset
from tests.browser.conftest import serious_violations

pytestmark = pytest.mark.django_db(transaction=True)

OUTCOME = "postnatal-depression"


@pytest.fixture
def demo(tmp_media: Any) -> None:
    with open(os.devnull, "w") as out:
        call_command("load_demo", stdout=out)


def _north_csv(change: Any = None) -> bytes:
    """North's current rows for the outcome as a CSV file, optionally changed."""
    version = Dataset.objects.get(centre__code="north", outcome__code=OUTCOME).current_version
    assert version is not None
    rows = [dict(r) for r in version.rows]
    if change is not None:
        change(rows)
    columns = [c for c in version.columns if any(r.get(c) is not None for r in rows)]
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows({c: ("" if r.get(c) is None else r[c]) for c in columns} for r in rows)
    return out.getvalue().encode()


def _upload(page: Any, base: str, name: str, content: bytes) -> None:
    page.goto(f"{base}/upload/")
    page.select_option("#upload-centre", "north")
    page.select_option("#upload-outcome", OUTCOME)
    page.set_input_files("#upload-file", files=[{"name": name, "mimeType": "text/csv", "buffer": content}])
    page.fill("input[name=reason]", "corrected the first study's SD")
    page.click("form.card button[type=submit]")


def test_upload_preview_confirm_submit_and_the_result_arrives_live(
    demo: None, page_for: Any, live_server: Any
) -> None:
    base = live_server.url
    analysis = Analysis.objects.get(outcome__code=OUTCOME, is_default=True)
    watcher = page_for("steering")
    watcher.goto(f"{base}/outcomes/{OUTCOME}/")
    before = watcher.inner_text("#pooled-estimate")
    watcher.evaluate("window.__stillTheSamePage = true")

    dm = page_for("dm-north")
    dm.on("dialog", lambda dialog: dialog.accept())

    # a bad file: every problem named by row and column, nothing stored
    versions = Dataset.objects.get(centre__code="north", outcome__code=OUTCOME).versions.count()

    def negative_sd(rows: list[dict[str, Any]]) -> None:
        column = "sd1i" if "sd1i" in rows[1] else next(c for c in rows[1] if c.startswith("sd"))
        rows[1][column] = -3

    _upload(dm, base, "bad.csv", _north_csv(negative_sd))
    errors = dm.locator("#upload-errors")
    errors.wait_for()
    assert "not stored" in errors.inner_text()
    assert "3" in errors.locator("tr").nth(1).inner_text()  # the second data row is spreadsheet row 3
    assert serious_violations(dm) == []
    assert Dataset.objects.get(centre__code="north", outcome__code=OUTCOME).versions.count() == versions

    # a good file: a preview first, nothing stored until confirmed
    def larger_first_effect(rows: list[dict[str, Any]]) -> None:
        first = rows[0]
        if first.get("m1i") is not None:
            first["m1i"] = round(float(first["m1i"]) - 3.0, 3)
        else:
            first["yi"] = round(float(first["yi"]) - 0.5, 3)

    _upload(dm, base, "corrected.csv", _north_csv(larger_first_effect))
    dm.wait_for_url(f"{base}/upload/*/")
    assert "Nothing is stored yet" in dm.inner_text("#preview-status")
    assert dm.inner_text("#diff-changed") == "~1"
    assert dm.locator("#preview-rows tbody tr").count() > 0
    assert serious_violations(dm) == []
    assert Dataset.objects.get(centre__code="north", outcome__code=OUTCOME).versions.count() == versions

    dm.click("#confirm-upload")
    dm.wait_for_selector("#revision-pending")
    assert "waiting for submission" in dm.inner_text("#revision-pending")
    assert serious_violations(dm) == []
    dm.fill("#reason-submit", "checked against the source")
    dm.click("#submit-dataset")
    dm.wait_for_selector(".messages li.success")
    assert "now enters the analyses" in dm.inner_text(".messages")
    dataset = Dataset.objects.get(centre__code="north", outcome__code=OUTCOME)
    assert dataset.submitted_version_id == dataset.current_version_id

    # the worker's part, here in the test's process: the recompute the submission requested
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None
    watcher.wait_for_function(
        "before => document.querySelector('#pooled-estimate').innerText !== before",
        arg=before,
        timeout=30_000,
    )
    assert watcher.evaluate("window.__stillTheSamePage") is True
    assert f"result {result.pk}" in watcher.inner_text("main")


def test_the_steering_group_is_told_why_a_setting_cannot_be_used_and_reviews_a_release(
    demo: None, page_for: Any, live_server: Any
) -> None:
    """Paule-Mandel on an outcome whose studies report several effects is refused with the reason
    and changes nothing; a valid change is previewed before it is saved; a release published while
    an analysis has no estimate shows first what it will carry, keeps that analysis's released
    estimate, and a member never loses it."""
    base = live_server.url
    analysis = Analysis.objects.get(outcome__code=OUTCOME, is_default=True)
    requested = analysis.requested_seq
    page = page_for("steering")
    page.goto(f"{base}/analyses/{analysis.pk}/settings/")
    assert "studies have more than one row" in page.inner_text("#data-model")
    # the form offers only what the model allows ...
    assert page.locator('#id_method option[value="PM"]').is_disabled()
    # ... pooling each study's rows first would allow it; choosing it and going back is refused
    page.select_option("#id_dependence", "aggregate")
    assert not page.locator('#id_method option[value="PM"]').is_disabled()
    page.select_option("#id_method", "PM")
    page.select_option("#id_dependence", "auto")
    page.fill("#id_reason", "trying Paule-Mandel")
    page.click("#preview-settings")
    page.wait_for_selector(".errors[role=alert]")
    refusal = page.inner_text(".errors")
    assert "Paule-Mandel cannot be used here" in refusal and "ML or REML" in refusal
    analysis.refresh_from_db()
    assert (analysis.method, analysis.requested_seq) == ("REML", requested)
    assert serious_violations(page) == []

    # a valid change: previewed (before -> after), then saved
    page.goto(f"{base}/analyses/{analysis.pk}/settings/")
    page.fill("#id_level", "90")
    page.fill("#id_reason", "90% intervals, as the protocol says")
    page.click("#preview-settings")
    page.wait_for_selector("#settings-preview")
    preview = page.inner_text("#settings-preview")
    assert "nothing is saved yet" in preview and "90%" in preview
    assert serious_violations(page) == []
    analysis.refresh_from_db()
    assert analysis.level == 95.0
    page.click("#save-settings")
    page.wait_for_url(f"{base}/outcomes/{OUTCOME}/*")
    analysis.refresh_from_db()
    assert analysis.level == 90.0 and analysis.requested_seq > requested
    analysis_recompute(analysis_id=analysis.pk)

    # another analysis's settings stop fitting its data (saved before the data called for a
    # multilevel model): its newest result has no estimate
    other = Analysis.objects.get(outcome__code="infant-social-emotional", is_default=True)
    released = other.current_result
    Analysis.objects.filter(pk=other.pk).update(method="PM", requested_seq=F("requested_seq") + 1)
    failed = analysis_recompute(analysis_id=other.pk)
    assert failed is not None and failed.status == "failed"

    page.goto(f"{base}/")
    page.click("#publish-release summary")
    page.fill("#release-name", "2026.2")
    page.fill("#release-notes", "90% intervals for postnatal depression.")
    page.click("#publish-release button[type=submit]")
    page.wait_for_selector("#release-review")
    assert not Release.objects.filter(name="2026.2").exists()
    row = page.locator("#release-review tr.kept")
    assert row.count() == 1 and "Infant social-emotional" in row.inner_text()
    assert f"keeps result {released.pk} from release demo-2026.1" in row.inner_text()
    assert serious_violations(page) == []
    page.click("#confirm-release")
    page.wait_for_selector("#release-results")
    release = Release.objects.get(name="2026.2")
    assert release.entries.get(analysis=other).result == released
    assert (
        release.entries.get(analysis=analysis).result == Analysis.objects.get(pk=analysis.pk).current_result
    )
    assert "kept" in page.inner_text("#release-results") and "90% intervals" in page.inner_text("main")
    assert serious_violations(page) == []

    # a member still reads the released estimate of the analysis that failed
    member = page_for("member-north")
    member.goto(f"{base}/")
    card = member.locator('.card[data-outcome="infant-social-emotional"]')
    assert card.locator(".pooled-estimate").count() == 1
    assert "no estimate" not in card.inner_text()


def test_the_keyboard_focus_is_visible_on_every_kind_of_control(
    demo: None, page_for: Any, live_server: Any
) -> None:
    page = page_for("dm-north")
    page.goto(f"{live_server.url}/upload/")
    seen = set()
    for _ in range(25):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
                     return [e.tagName, s.outlineStyle, parseFloat(s.outlineWidth)]; }"""
        )
        tag, style, width = focused
        if tag == "BODY":
            continue
        assert style != "none" and width >= 2, focused
        seen.add(tag)
    assert {"A", "SELECT", "INPUT", "BUTTON"} <= seen
