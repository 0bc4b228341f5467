"""The outcome page: an analysis's current result, its diagnostics and its history."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.selectors import analysis_results_shown, release_names
from apps.consortium import roles
from apps.consortium.models import Outcome
from apps.portal.plots import forest_svg, funnel_svg, history_svg
from apps.portal.scale import ratio_of


def _study_labels(result: AnalysisResult) -> list[str]:
    if result.studies:
        return list(result.studies)
    return [f"Study {i + 1}" for i in range(len((result.blocks.get("effect_sizes") or {}).get("yi") or []))]


def _included_labels(result: AnalysisResult) -> list[str]:
    """Labels of the rows in the model (the engine lists leave-one-out etc. for those only)."""
    omitted = {o.get("row") for o in result.omitted if isinstance(o, dict)}
    return [label for i, label in enumerate(_study_labels(result)) if i not in omitted]


@login_required
def outcome_detail(request: HttpRequest, code: str) -> HttpResponse:
    outcome = get_object_or_404(Outcome, code=code)
    analyses = list(
        Analysis.objects.visible_to(request.user).filter(outcome=outcome).select_related("current_result")
    )
    selected_id = request.GET.get("analysis")
    analysis = next((a for a in analyses if str(a.pk) == selected_id), None) or next(
        (a for a in analyses if a.is_default), analyses[0] if analyses else None
    )
    result = None
    history: list[AnalysisResult] = []
    if analysis is not None:
        history = list(
            AnalysisResult.objects.visible_to(request.user).filter(analysis=analysis).order_by("seq")
        )
    failed = None
    if analysis is not None:
        result, failed = analysis_results_shown(user=request.user, analysis=analysis)
    context: dict[str, Any] = {
        "outcome": outcome,
        "analyses": analyses,
        "analysis": analysis,
        "result": result,
        "failed": failed,
        "is_steering": roles.is_steering(request.user),
    }
    if result is not None and result.status == AnalysisResult.Status.DONE:
        labels = _study_labels(result)
        # the level the stored intervals were computed at, which the plots must match
        level = result.spec.get("level") if isinstance(result.spec, dict) else None
        context.update(
            {
                "pooled": result.pooled,
                "ratio": ratio_of(outcome.measure, result.pooled),
                "forest": forest_svg(
                    result.blocks, labels, direction=outcome.direction, measure=outcome.measure, level=level
                ),
                "funnel": funnel_svg(result.blocks, level=level),
                "blocks": result.blocks,
                "leave1out_rows": _zip_rows(result.blocks.get("leave1out"), _included_labels(result)),
                # dependent effects: each study left out with all its rows
                "leave1out_study_rows": _zip_rows(result.blocks.get("leave1out_study"), []),
                "rho_rows": _zip_rows(result.blocks.get("rho_sensitivity"), []),
                "effect_rows": _zip_rows(result.blocks.get("effect_sizes"), []),
            }
        )
    points = [
        (str(r.seq), r.pooled["estimate"], r.pooled["ci_lb"], r.pooled["ci_ub"])
        for r in history
        if r.status == AnalysisResult.Status.DONE
        and r.pooled
        and None not in (r.pooled["estimate"], r.pooled["ci_lb"], r.pooled["ci_ub"])
    ]
    context["history_svg"] = history_svg(points)
    context["history"] = list(reversed(history))[:25]
    context["releases"] = release_names(user=request.user, result_ids=[r.pk for r in context["history"]])
    for r in context["history"]:
        r.release_names = context["releases"].get(r.pk, [])
    return render(request, "portal/outcome.html", context)


def _zip_rows(block: dict[str, Any] | None, included: list[str]) -> list[dict[str, Any]]:
    if not block or not isinstance(block, dict):
        return []
    # Per-study columns are lists; scalars (method, test, level) describe the whole block.
    keys = [k for k, v in block.items() if isinstance(v, list)]
    n = len(block[keys[0]]) if keys else 0
    return [
        {"study": included[i] if i < len(included) else str(i + 1), **{k: block[k][i] for k in keys}}
        for i in range(n)
    ]
