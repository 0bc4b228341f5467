from typing import Any

from django.contrib import admin

from apps.analyses.models import Analysis, AnalysisResult, OutboxEvent, Release
from apps.analyses.services import ANALYSIS_FIELDS, analysis_create, analysis_update, analysis_validate
from apps.common.admin import ReadOnlyAdmin
from apps.consortium.admin import ServiceValidatedForm


class AnalysisForm(ServiceValidatedForm):
    """Checks the specification with the same rules as the API (``analysis_validate``)."""

    class Meta:
        model = Analysis
        fields = ["outcome", *ANALYSIS_FIELDS]

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        outcome = data.get("outcome")
        if self.instance.pk and outcome != self.instance.outcome:
            self.add_error("outcome", "An analysis stays with its outcome; create a new analysis.")
            return data
        if outcome is None:
            return data
        fields = {k: v for k, v in data.items() if k in ANALYSIS_FIELDS}
        analysis = self.instance if self.instance.pk else None
        self.validate_with(lambda: analysis_validate(outcome=outcome, analysis=analysis, data=fields))
        return data


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    """Edits go through the analysis services: validated, audited and recomputed like the API's."""

    form = AnalysisForm
    list_display = ["outcome", "name", "is_default", "method", "test", "requested_seq", "computed_seq"]

    def save_model(self, request: Any, obj: Analysis, form: Any, change: bool) -> None:
        if change:
            saved = analysis_update(
                actor=request.user, analysis=Analysis.objects.get(pk=obj.pk), changes=form.service_data
            )
        else:
            saved = analysis_create(
                actor=request.user, outcome=form.cleaned_data["outcome"], data=form.service_data
            )
        obj.pk = saved.pk
        obj._state.adding = False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # results refer to their analysis and are kept for provenance


@admin.register(AnalysisResult)
class AnalysisResultAdmin(ReadOnlyAdmin):
    list_display = ["analysis", "seq", "status", "k", "finished_at", "compute_ms"]
    list_filter = ["status", "analysis__outcome"]


@admin.register(Release)
class ReleaseAdmin(ReadOnlyAdmin):
    """Releases are published from the portal or the API (``release_publish``), never edited."""

    list_display = ["name", "published_at", "published_by", "embargo_until", "announced_at"]


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["analysis", "seq", "created_at", "published_at", "attempts", "last_error"]
