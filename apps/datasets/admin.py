from typing import Any

from django.contrib import admin

from apps.datasets.models import Dataset, DatasetVersion, Study


class ReadOnlyAdmin(admin.ModelAdmin):
    """Data changes go through uploads (validated, versioned, audited), never through admin edits."""

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(Dataset)
class DatasetAdmin(ReadOnlyAdmin):
    list_display = ["centre", "outcome", "status", "current_version", "updated_at"]
    list_filter = ["status", "centre", "outcome"]


@admin.register(DatasetVersion)
class DatasetVersionAdmin(ReadOnlyAdmin):
    list_display = ["dataset", "number", "created_by", "created_at", "row_count", "checksum"]
    list_filter = ["dataset__centre", "dataset__outcome"]


@admin.register(Study)
class StudyAdmin(ReadOnlyAdmin):
    list_display = ["label", "centre", "year"]
