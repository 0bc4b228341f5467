"""The steering group changes an analysis's settings in the portal, through ``analysis_update``:
validated by the same rules as the API, audited, and recomputed. A refused setting changes nothing
and the outcome page keeps showing the last good result."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_update
from apps.consortium import roles
from apps.portal.forms import AnalysisSettingsForm


@login_required
def analysis_settings(request: HttpRequest, pk: int) -> HttpResponse:
    if not roles.is_steering(request.user):
        raise Http404("Not found.")
    analysis = get_object_or_404(Analysis.objects.select_related("outcome"), pk=pk)
    outcome = analysis.outcome
    if request.method == "POST":
        form = AnalysisSettingsForm(request.POST, outcome=outcome)
        if form.is_valid():
            try:
                analysis_update(actor=request.user, analysis=analysis, changes=dict(form.cleaned_data))
            except ValidationError as exc:
                for field, texts in exc.message_dict.items():
                    form.add_error(field if field in form.fields else None, texts)
            else:
                messages.success(request, "Settings saved; the analysis is being recomputed.")
                return redirect(f"{reverse('portal:outcome', args=[outcome.code])}?analysis={analysis.pk}")
        status = 400
    else:
        form = AnalysisSettingsForm(initial=AnalysisSettingsForm.initial_for(analysis), outcome=outcome)
        status = 200
    return render(
        request, "portal/analysis_settings.html", {"form": form, "analysis": analysis}, status=status
    )
