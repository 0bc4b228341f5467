from django.contrib import admin

from apps.analyses.models import Analysis, AnalysisResult, OutboxEvent
from apps.datasets.admin import ReadOnlyAdmin


@admin.register(Analysis)
class AnalysisAdmin(admin.ModelAdmin):
    list_display = ["outcome", "name", "is_default", "method", "test", "requested_seq", "computed_seq"]
    readonly_fields = ["requested_seq", "computed_seq", "running_since", "current_result"]


@admin.register(AnalysisResult)
class AnalysisResultAdmin(ReadOnlyAdmin):
    list_display = ["analysis", "seq", "status", "k", "released", "finished_at", "compute_ms"]
    list_filter = ["status", "released", "analysis__outcome"]


@admin.register(OutboxEvent)
class OutboxEventAdmin(ReadOnlyAdmin):
    list_display = ["analysis", "seq", "created_at", "published_at", "attempts", "last_error"]
