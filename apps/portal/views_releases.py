"""Releases in the portal: the steering group reviews what a release would hold, then publishes
it; everyone who may read a release sees its own page. The rules and the freezing are
``apps.analyses.releases``'s, as for the API."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.analyses.models import Analysis, AnalysisResult, Release
from apps.analyses.releases import plan_key, release_fields_validate, release_plan, release_publish
from apps.consortium import roles
from apps.portal.scale import estimate_of, headline, level_of


def _embargo(text: str) -> datetime | None:
    """The form's embargo: a date and time in UTC (as every time on the portal), or an ISO 8601
    time with its own offset, which is kept. Raises ValueError for anything else."""
    if not text:
        return None
    when = datetime.fromisoformat(text)
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when


def _row(planned: Any) -> dict[str, Any]:
    """One line of a release review: the analysis, the estimate its latest release holds and the
    one this release would hold, and why it is not the current result when it is not."""
    analysis = planned.analysis
    measure = analysis.outcome.measure

    def shown(result: AnalysisResult | None) -> dict[str, Any] | None:
        if result is None:
            return None
        return {"result": result, "estimate": estimate_of(measure, result.pooled), "level": level_of(result)}

    return {
        "analysis": analysis,
        "before": shown(planned.previous),
        "before_release": planned.previous_release,
        "after": shown(planned.result),
        "kept": planned.kept,
        "reason": planned.reason,
        "regression": analysis.is_regression,
    }


@login_required
@require_POST
def release_publish_view(request: HttpRequest) -> HttpResponse:
    """Step one (no ``confirm``): show what the release would hold, estimate before and after per
    analysis and what it leaves out, with the form to confirm. Step two (``confirm``): publish,
    unless a recompute has changed what was reviewed, and open the release's page."""
    if not roles.is_steering(request.user):
        raise Http404("Not found.")
    fields = {k: request.POST.get(k, "") for k in ("name", "notes", "embargo_until")}
    fields["name"] = fields["name"].strip()
    try:
        embargo = _embargo(fields["embargo_until"].strip())
    except ValueError:
        messages.error(
            request,
            f"The embargo {fields['embargo_until'][:40]!r} is not a date and time; nothing was published.",
        )
        return redirect("portal:home")
    try:
        release_fields_validate(name=fields["name"], notes=fields["notes"], embargo_until=embargo)
    except ValidationError as exc:
        for field, texts in exc.message_dict.items():
            messages.error(request, f"{field}: {' '.join(texts)} Nothing was published.")
        return redirect("portal:home")
    plan = release_plan(analyses=Analysis.objects.select_related("current_result", "outcome"))
    if request.POST.get("confirm") != "1":
        return render(
            request,
            "portal/release_review.html",
            {
                "fields": fields,
                "embargo": embargo,
                "rows": [_row(p) for p in plan],
                "publishable": any(p.result is not None for p in plan),
                "expected": json.dumps({str(k): v for k, v in plan_key(plan).items()}),
            },
        )
    try:
        reviewed = json.loads(request.POST.get("expected", ""))
        expected = {int(k): (int(v) if v is not None else None) for k, v in reviewed.items()}
    except (ValueError, TypeError, AttributeError):
        messages.error(
            request, "The reviewed release could not be read; review it again. Nothing was published."
        )
        return redirect("portal:home")
    try:
        release, _ = release_publish(
            actor=request.user,
            name=fields["name"],
            notes=fields["notes"],
            embargo_until=embargo,
            expected=expected,
        )
    except ValidationError as exc:
        problems = exc.message_dict if hasattr(exc, "error_dict") else {"release": exc.messages}
        for field, texts in problems.items():
            messages.error(request, f"{field}: {' '.join(texts)} Nothing was published.")
        return redirect("portal:home")
    frozen = release.entries.count()
    when = (
        f", readable by members from {embargo:%Y-%m-%d %H:%M} UTC" if embargo else ", readable by members now"
    )
    messages.success(
        request, f"Release {release.name} published: {frozen} result{'s' if frozen != 1 else ''}{when}."
    )
    return redirect("portal:release", name=release.name)


@login_required
@require_GET
def release_detail(request: HttpRequest, name: str) -> HttpResponse:
    """A release's own page: what it froze (each analysis's estimate, and why an earlier result
    was kept), its notes, embargo and who published it. Members see releases whose embargo ended."""
    release = get_object_or_404(
        Release.objects.visible_to(request.user).select_related("published_by"), name=name
    )
    entries = release.entries.select_related("analysis__outcome", "result").order_by(
        "analysis__outcome__code", "-analysis__is_default", "analysis__name"
    )
    rows = []
    for entry in entries:
        result = entry.result
        rows.append(
            {
                "entry": entry,
                "analysis": entry.analysis,
                "result": result,
                "estimate": estimate_of(entry.analysis.outcome.measure, result.pooled),
                "pooled": result.pooled,
                "level": level_of(result),
                "regression": result.is_regression,
                "headline": headline(result),
            }
        )
    return render(request, "portal/release.html", {"release": release, "rows": rows})
