from typing import Any

from django.contrib import admin

from apps.common.admin import ReadOnlyAdmin
from apps.webhooks.models import Webhook, WebhookAttempt, WebhookDelivery


@admin.register(Webhook)
class WebhookAdmin(ReadOnlyAdmin):
    """Owners manage their webhooks through the API; the admin reads them, never their secrets."""

    exclude = ["secret"]
    list_display = ["owner", "url", "active", "disabled_reason", "created_at"]
    list_filter = ["active"]


class WebhookAttemptInline(admin.TabularInline):
    model = WebhookAttempt
    extra = 0
    fields = ["number", "started_at", "finished_at", "status_code", "duration_ms", "error", "response_body"]

    def has_add_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(ReadOnlyAdmin):
    """The delivery log: what was sent to whom, and how each attempt went."""

    inlines = [WebhookAttemptInline]
    list_display = ["created_at", "webhook", "event", "status", "attempts", "last_status_code", "last_error"]
    list_filter = ["status", "event"]
    search_fields = ["uuid"]
