"""The dashboard: every outcome's pooled estimate from its default analysis, datasets, releases."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from apps.analyses.models import Analysis, Release
from apps.analyses.selectors import analysis_results_shown, release_names
from apps.consortium import roles
from apps.datasets.models import Dataset
from apps.datasets.selectors import with_shown_versions
from apps.portal.scale import favours, ratio_of


def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: every outcome's pooled estimate from its default analysis."""
    if not request.user.is_authenticated:
        return render(request, "portal/welcome.html")
    cards: list[dict[str, Any]] = []
    for analysis in (
        Analysis.objects.visible_to(request.user).filter(is_default=True).select_related("outcome")
    ):
        result, failed = analysis_results_shown(user=request.user, analysis=analysis)
        pooled = result.pooled if result else None
        cards.append(
            {
                "analysis": analysis,
                "outcome": analysis.outcome,
                "result": result,
                "failed": failed,
                "pooled": pooled,
                "ratio": ratio_of(analysis.outcome.measure, pooled),
                "favours": favours(analysis.outcome, pooled),
            }
        )
    releases = release_names(user=request.user, result_ids=[c["result"].pk for c in cards if c["result"]])
    for card in cards:
        card["releases"] = releases.get(card["result"].pk, []) if card["result"] else []
    return render(
        request,
        "portal/home.html",
        {
            "cards": cards,
            "is_steering": roles.is_steering(request.user),
            "releases": Release.objects.visible_to(request.user).select_related("published_by")[:5],
            "datasets": with_shown_versions(
                Dataset.objects.visible_to(request.user).select_related(
                    "centre", "outcome", "current_version"
                ),
                request.user,
            ),
        },
    )
