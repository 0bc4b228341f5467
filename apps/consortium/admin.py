from typing import Any

from django.contrib import admin
from guardian.admin import GuardedModelAdmin

from apps.consortium.models import ApiClient, Centre, ConsortiumRole, Membership, Outcome
from apps.consortium.services import membership_remove, membership_set


@admin.register(Centre)
class CentreAdmin(GuardedModelAdmin):
    list_display = ["code", "name", "country"]
    search_fields = ["code", "name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    """Memberships go through the service so that object permissions and the audit trail follow."""

    list_display = ["user", "centre", "role", "created_at"]
    list_filter = ["centre", "role"]

    def save_model(self, request: Any, obj: Membership, form: Any, change: bool) -> None:
        membership = membership_set(actor=request.user, user=obj.user, centre=obj.centre, role=obj.role)
        obj.pk = membership.pk

    def delete_model(self, request: Any, obj: Membership) -> None:
        membership_remove(actor=request.user, membership=obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        for obj in queryset:
            membership_remove(actor=request.user, membership=obj)


@admin.register(ConsortiumRole)
class ConsortiumRoleAdmin(admin.ModelAdmin):
    list_display = ["user", "role", "created_at"]


@admin.register(ApiClient)
class ApiClientAdmin(admin.ModelAdmin):
    list_display = ["name", "user", "scopes", "created_at"]


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    list_display = ["code", "name", "measure", "direction"]
