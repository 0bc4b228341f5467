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
    assert f"#{result.seq}" in watcher.inner_text("main")


def test_the_steering_group_changes_a_setting_and_publishes_a_release(
    demo: None, page_for: Any, live_server: Any
) -> None:
    base = live_server.url
    analysis = Analysis.objects.get(outcome__code=OUTCOME, is_default=True)
    page = page_for("steering")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{base}/analyses/{analysis.pk}/settings/")
    page.select_option("#id_method", "DL")
    page.click("form.settings button[type=submit]")
    page.wait_for_url(f"{base}/outcomes/{OUTCOME}/*")
    analysis.refresh_from_db()
    assert analysis.method == "DL" and analysis.requested_seq > analysis.computed_seq
    assert serious_violations(page) == []

    # a refused setting says why on the form and changes nothing
    page.goto(f"{base}/analyses/{analysis.pk}/settings/")
    page.fill("#id_level", "100")
    page.click("form.settings button[type=submit]")
    page.wait_for_selector(".errors[role=alert]")
    assert "level" in page.inner_text(".errors").lower()
    analysis.refresh_from_db()
    assert analysis.level != 100

    analysis_recompute(analysis_id=analysis.pk)
    page.goto(f"{base}/")
    page.click("#publish-release summary")
    page.fill("#release-name", "2026.2")
    page.fill("#release-notes", "DerSimonian-Laird for postnatal depression.")
    page.click("#publish-release button[type=submit]")
    page.wait_for_selector(".messages li.success")
    release = Release.objects.get(name="2026.2")
    assert release.entries.filter(result__analysis=analysis).exists()
    assert "2026.2" in page.inner_text("main")
    assert serious_violations(page) == []


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
