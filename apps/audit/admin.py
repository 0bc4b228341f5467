from django.contrib import admin

from apps.audit.models import AuditEvent
from apps.common.admin import ReadOnlyAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyAdmin):
    list_display = ["at", "actor_username", "action", "object_type", "object_id", "centre"]
    list_filter = ["action", "centre"]
