"""A meta-regression has no pooled effect: the pages show its coefficients and tests, and never
present its intercept as the outcome's pooled estimate."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute, analysis_update
from apps.portal.models import PortalVisit
from tests.conftest import SMD_ROWS, store_rows

pytestmark = pytest.mark.django_db


def test_the_outcome_page_and_the_dashboard_show_a_meta_regression_as_one(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    rows = [dict(r) for r in SMD_ROWS] + [
        dict(r, study=r["study"] + " II", m1i=r["m1i"] + 1, year=r["year"] - 6) for r in SMD_ROWS
    ]
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=rows, submit=True)
    steering = cast["users"]["steering"]
    PortalVisit.objects.create(user=steering, seen_at=timezone.now() - timedelta(days=1))
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_update(actor=steering, analysis=analysis, changes={"mods": ["year"], "level": 90})
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None
    fit = result.blocks["fit"]
    assert fit["coef_names"] == ["intrcpt", "year"]

    client = Client()
    client.force_login(steering)
    page = client.get("/outcomes/rf/").content.decode()
    assert "Meta-regression on year" in page and 'id="pooled-estimate"' not in page
    table = page.split('id="regression-coefficients"')[1].split("</table>")[0]
    assert '<th scope="col">90% CI</th>' in table
    for name, beta, lb, ub in zip(
        ["intercept", "year"], fit["beta"], fit["ci_lb"], fit["ci_ub"], strict=True
    ):
        assert f'<th scope="row">{name}</th><td class="num">{beta:.4f}</td>' in table
        assert f"{lb:.4f} to {ub:.4f}" in table
    assert f"QM = {fit['QM']:.2f}" in page

    dashboard = client.get("/").content.decode()
    card = dashboard.split('data-outcome="rf"')[1].split('class="card"')[0]
    assert "Meta-regression" in card and f"SMD {fit['beta'][0]:.2f}" not in card
    review = dashboard.split('id="review-summary"')[1].split("</table>")[0]
    assert "meta-regression on year: no pooled effect" in review
    # since the last visit: a new result, without an intercept passed off as its estimate
    since = dashboard.split('id="since-last-visit"')[1].split("</section>")[0]
    assert "Reflective functioning" in since and "no pooled estimate" in since


def test_neither_the_preview_nor_the_history_passes_an_intercept_off_as_a_pooled_effect(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    from apps.consortium.models import ConsortiumRole
    from tests.conftest import api_client_for

    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    steering = cast["users"]["steering"]
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    plain = analysis_recompute(analysis_id=analysis.pk)
    analysis_update(actor=steering, analysis=analysis, changes={"mods": ["year"]})
    regression = analysis_recompute(analysis_id=analysis.pk)
    assert plain is not None and regression is not None

    client = Client()
    client.force_login(steering)
    history = client.get(f"/results/{regression.pk}/tables/history.csv").content.decode()
    assert f"{plain.pooled['estimate']!r}" in history or f"{plain.pooled['estimate']:.6g}" in history
    assert f"{regression.pooled['estimate']:.6g}" not in history

    ConsortiumRole.objects.create(user=cast["users"]["dm_a"], role=ConsortiumRole.Role.STEERING)
    answer = api_client_for(cast, "dm_a").post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "rows": SMD_ROWS[:3], "preview": True},
        format="json",
    )
    (entry,) = [p for p in answer.json()["pooled"] if p["analysis"] == analysis.pk]
    assert entry["meta_regression"] is True and entry["before"] is None and entry["after"] is None
