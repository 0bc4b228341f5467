"""An open dashboard follows a recompute without a reload: the new estimate replaces the old one in
place, the focus stays where it was, a status line says what arrived, and the page still passes
axe-core."""

from __future__ import annotations

import os
from typing import Any

import pytest
from django.core.management import call_command

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute
from apps.datasets.models import Dataset
from tests.browser.conftest import serious_violations
from tests.conftest import store_rows

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def demo(tmp_media: Any) -> None:
    with open(os.devnull, "w") as out:
        call_command("load_demo", stdout=out)


def _store_a_correction(outcome_code: str) -> Any:
    """A centre corrects its data (every intervention mean 3 points higher) and submits it; the
    recompute runs here, as a worker would run it."""
    dataset = (
        Dataset.objects.filter(outcome__code=outcome_code, status="submitted")
        .select_related("centre", "outcome", "submitted_version")
        .order_by("centre__code")
        .first()
    )
    assert dataset is not None and dataset.submitted_version is not None
    rows = [dict(r) for r in dataset.submitted_version.rows]
    for row in rows:
        if row.get("m1i") is not None:
            row["m1i"] = round(row["m1i"] + 3, 2)
        elif row.get("di") is not None:
            row["di"] = round(row["di"] + 0.3, 2)
        elif row.get("ti") is not None:
            row["ti"] = round(row["ti"] + 1, 2)
    store_rows(centre=dataset.centre, outcome=dataset.outcome, rows=rows, submit=True)
    analysis = Analysis.objects.get(outcome__code=outcome_code, is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done", result
    return result


def test_a_new_result_reaches_the_open_dashboard_without_a_reload(
    demo: None, page_for: Any, live_server: Any
) -> None:
    analysis = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True)
    before = analysis.current_result
    assert before is not None
    page = page_for("steering")
    card = f"#card-{analysis.pk}"
    old_text = page.inner_text(f"{card} .pooled-estimate")
    assert old_text == f"SMD {before.pooled['estimate']:.2f}"
    # a marker that a reload would lose, and the focus on the card's link
    page.evaluate("window.__liveMarker = 'still here'")
    page.focus(f"{card} h3 a")
    page.wait_for_function("document.body.hasAttribute('data-live-following')")

    result = _store_a_correction("postnatal-depression")
    new_text = f"SMD {result.pooled['estimate']:.2f}"
    assert new_text != old_text, "the correction should move the estimate"

    page.wait_for_function(
        "([selector, text]) => { const e = document.querySelector(selector);"
        " return e !== null && e.textContent.trim() === text; }",
        arg=[f"{card} .pooled-estimate", new_text],
        timeout=30_000,
    )
    assert page.evaluate("window.__liveMarker") == "still here"
    assert page.url == f"{live_server.url}/"
    assert f"result {result.pk}" in page.inner_text(card)
    # the review table's row moved too
    page.wait_for_function(
        "(text) => document.querySelector('#review-summary').textContent.includes(text)",
        arg=f"result {result.pk},",
    )
    status = page.inner_text("#live-status")
    assert f"A new result for {analysis.outcome.name} (result {result.pk}) arrived" in status
    assert page.evaluate(f"document.activeElement.closest('{card}') !== null")
    assert serious_violations(page) == []


def test_a_member_polls_without_hearing_of_unreleased_results(
    demo: None, page_for: Any, live_server: Any
) -> None:
    analysis = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True)
    page = page_for("member-north")
    card = f"#card-{analysis.pk}"
    shown = page.inner_text(f"{card} .pooled-estimate")
    page.evaluate("window.__liveMarker = 'still here'")
    page.wait_for_function("document.body.hasAttribute('data-live-following')")
    with page.expect_response(lambda r: r.url.endswith("/live/")) as first:
        pass
    first_etag = first.value.headers.get("etag")
    assert first_etag
    _store_a_correction("postnatal-depression")
    # the analysis was queued, then current again, with a result the member may not see: the
    # member's answer is the one from before, byte for byte (a 304 to its ETag)
    status = page.evaluate(
        "async (tag) => (await fetch('/live/', {headers: {'If-None-Match': tag, 'X-Live': '1'},"
        " cache: 'no-store'})).status",
        first_etag,
    )
    assert status == 304
    for _ in range(2):  # two more polls
        with page.expect_response(lambda r: r.url.endswith("/live/"), timeout=20_000):
            pass
    assert page.inner_text(f"{card} .pooled-estimate") == shown
    assert "new result" not in page.inner_text("#live-status").lower()
    assert page.evaluate("window.__liveMarker") == "still here"
    assert serious_violations(page) == []
