from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.datasets.models import Dataset, DatasetVersion, Study

# One registration a model, as in every app's admin: each names the columns its own model shows.


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
