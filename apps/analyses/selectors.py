"""Reads of analyses and their results, shared by the portal's pages."""

from __future__ import annotations

from typing import Any

from apps.analyses.models import Analysis, AnalysisResult


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
