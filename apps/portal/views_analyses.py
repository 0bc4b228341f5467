"""The steering group changes an analysis's settings in the portal, through ``analysis_update``:
validated by the same rules as the API (against the outcome's data too), previewed, audited with
the reason given, and recomputed. A refused setting changes nothing and the outcome page keeps
showing the last good result.

Two steps, as an upload: "Preview" checks the settings and shows each changed setting and the
pooled estimate before and after (recomputed now on the analysis's data); "Save and recompute"
stores exactly the previewed settings (a digest of them travels with the form, so settings edited
after the preview are previewed again, never saved unseen).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from apps.analyses.models import Analysis
from apps.analyses.selectors import analysis_settings_preview
from apps.analyses.services import analysis_data_plan, analysis_update, analysis_validate
from apps.consortium import roles
from apps.portal.forms import AnalysisSettingsForm
from apps.portal.scale import estimate_of, level_of


def _digest(cleaned: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(cleaned, sort_keys=True, default=str).encode()).hexdigest()[:32]


def _data_model(analysis: Analysis) -> dict[str, Any] | None:
    """What the outcome's submitted data decide about the model under ``auto``, at the analysis's
    row selection: whether a study reports several effects (then only ML and REML and the z or t
    test apply), and the engine's reason, for the form's hint."""
    selection = {f: getattr(analysis, f) for f in ("timepoint", "instruments", "rho")}
    plan = analysis_data_plan(outcome=analysis.outcome, settings=selection)
    if plan is None:
        return None
    return {
        "several": plan.dependence != "none",
        "reason": plan.reason,
        "k": plan.k,
        "studies": plan.n_studies,
    }


@login_required
def analysis_settings(request: HttpRequest, pk: int) -> HttpResponse:
    if not roles.is_steering(request.user):
        raise Http404("Not found.")
    analysis = get_object_or_404(Analysis.objects.select_related("outcome", "current_result"), pk=pk)
    outcome = analysis.outcome
    context: dict[str, Any] = {"analysis": analysis, "data_model": _data_model(analysis)}
    status = 200
    if request.method == "POST":
        form = AnalysisSettingsForm(request.POST, outcome=outcome)
        status = 400
        if form.is_valid():
            data = dict(form.cleaned_data)
            reason = data.pop("reason")
            try:
                cleaned = analysis_validate(outcome=outcome, analysis=analysis, data=data)
            except ValidationError as exc:
                for field, texts in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, texts)
            else:
                digest = _digest(cleaned)
                if request.POST.get("confirm") == "1" and request.POST.get("previewed") == digest:
                    try:
                        analysis_update(actor=request.user, analysis=analysis, changes=cleaned, reason=reason)
                    except ValidationError as exc:
                        for field, texts in exc.message_dict.items():
                            form.add_error(field if field in form.fields else None, texts)
                    else:
                        messages.success(request, "Settings saved; the analysis is being recomputed.")
                        return redirect(
                            f"{reverse('portal:outcome', args=[outcome.code])}?analysis={analysis.pk}"
                        )
                else:
                    preview = analysis_settings_preview(analysis=analysis, cleaned=cleaned)
                    labels = {name: form.fields[name].label for name in form.fields}
                    preview["changes"] = [(labels.get(n, n), b, a) for n, b, a in preview["changes"]]
                    preview["before_estimate"] = estimate_of(outcome.measure, preview["before"])
                    preview["after_estimate"] = estimate_of(outcome.measure, preview["after"])
                    preview["level"] = f"{float(cleaned['level']):g}%"
                    preview["before_level"] = (
                        level_of(preview["before_result"]) if preview["before_result"] else "95%"
                    )
                    context.update({"preview": preview, "previewed": digest})
                    status = 200
    else:
        form = AnalysisSettingsForm(initial=AnalysisSettingsForm.initial_for(analysis), outcome=outcome)
    context["form"] = form
    return render(request, "portal/analysis_settings.html", context, status=status)
