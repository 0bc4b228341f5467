"""Reads of analyses and their results, shared by the portal's pages."""

from __future__ import annotations

from typing import Any

from apps.analyses.models import Analysis, AnalysisResult, Release, ReleaseResult


def analysis_result_shown(*, user: Any, analysis: Analysis) -> AnalysisResult | None:
    """The result to show for ``analysis`` to ``user``.

    The analysis's current result when the user may see it (even a failed one: it says why the
    estimate is missing); otherwise the newest finished result the user may see (members see
    released results only, so an unreleased current result falls back to the last released one).
    """
    visible = AnalysisResult.objects.visible_to(user).filter(analysis=analysis)
    if analysis.current_result_id is not None:
        current = visible.filter(pk=analysis.current_result_id).first()
        if current is not None:
            return current
    return visible.filter(status=AnalysisResult.Status.DONE).order_by("-seq").first()


def analysis_results_shown(
    *, user: Any, analysis: Analysis
) -> tuple[AnalysisResult | None, AnalysisResult | None]:
    """What a page shows for ``analysis``: the result with numbers, and a failure to report beside
    it. When the newest result the user may see failed, the numbers are the last good result's (a
    failed recompute never hides them) and the failure says why they are not newer."""
    shown = analysis_result_shown(user=user, analysis=analysis)
    if shown is None or shown.status == AnalysisResult.Status.DONE:
        return shown, None
    good = (
        AnalysisResult.objects.visible_to(user)
        .filter(analysis=analysis, status=AnalysisResult.Status.DONE)
        .order_by("-seq")
        .first()
    )
    return good, shown


def release_names(*, user: Any, result_ids: list[int]) -> dict[int, list[str]]:
    """For each result, the names of the releases holding it that the user may see, oldest first."""
    names: dict[int, list[str]] = {}
    entries = (
        ReleaseResult.objects.filter(result_id__in=result_ids, release__in=Release.objects.visible_to(user))
        .order_by("release__published_at")
        .values_list("result_id", "release__name")
    )
    for result_id, name in entries:
        names.setdefault(result_id, []).append(name)
    return names
