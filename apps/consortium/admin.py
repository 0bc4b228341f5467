"""The admin site is for administrators' housekeeping. Every change it can make goes through the
same services as the API and the portal: validated, audited and recomputed."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError

from apps.audit.admin_mixins import AuditedAdmin
from apps.audit.services import audit_record
from apps.consortium.models import ApiClient, Centre, ConsortiumRole, Membership, Outcome
from apps.consortium.services import (
    OUTCOME_FIELDS,
    membership_remove,
    membership_set,
    outcome_create,
    outcome_update,
    outcome_validate,
)

admin.site.unregister(User)
admin.site.unregister(Group)


@admin.register(User)
class AuditedUserAdmin(AuditedAdmin, UserAdmin):
    """People's accounts: who is a superuser, staff or active, their groups and permissions. Each
    change is in the audit trail (``user.update``) with the fields it changed."""

    action_prefix = "user"

    def user_change_password(self, request: Any, id: str, form_url: str = "") -> Any:
        """The admin's own password form: a successful change (a redirect) is audited too (never
        the password itself)."""
        response = super().user_change_password(request, id, form_url)
        if request.method == "POST" and response.status_code == 302:
            user = User.objects.filter(pk=id).first()
            if user is not None:
                audit_record(
                    actor=request.user, action="user.password", obj=user, after={"password": "(changed)"}
                )
        return response


@admin.register(Group)
class AuditedGroupAdmin(AuditedAdmin, GroupAdmin):
    action_prefix = "group"


@admin.register(Centre)
class CentreAdmin(AuditedAdmin):
    """Centres only: who may see and change a centre's data follows from memberships (below), so
    object permissions are never granted here directly."""

    action_prefix = "centre"
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
class ConsortiumRoleAdmin(AuditedAdmin):
    """The consortium-wide roles (steering group): each grant and removal is audited."""

    action_prefix = "consortium_role"
    list_display = ["user", "role", "created_at"]


@admin.register(ApiClient)
class ApiClientAdmin(AuditedAdmin):
    action_prefix = "api_client"
    list_display = ["name", "user", "scopes", "created_at"]


class ServiceValidatedForm(forms.ModelForm):
    """An admin form whose rules are a service's: ``validate_with`` runs the service's validation
    and shows its messages on the fields; ``service_data`` is what the admin then saves through
    the service."""

    service_data: dict[str, Any]

    def validate_with(self, validate: Callable[[], dict[str, Any]]) -> None:
        try:
            self.service_data = validate()
        except ValidationError as exc:
            for field, messages in exc.message_dict.items():
                self.add_error(field if field in self.fields else None, messages)


class OutcomeForm(ServiceValidatedForm):
    """Checks the entry with the data dictionary's own rules (``outcome_validate``)."""

    class Meta:
        model = Outcome
        fields = list(OUTCOME_FIELDS)

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        outcome = self.instance if self.instance.pk else None
        self.validate_with(lambda: outcome_validate(outcome=outcome, data=data))
        return data


@admin.register(Outcome)
class OutcomeAdmin(admin.ModelAdmin):
    form = OutcomeForm
    list_display = ["code", "name", "measure", "direction"]

    def save_model(self, request: Any, obj: Outcome, form: Any, change: bool) -> None:
        if change:
            saved = outcome_update(
                actor=request.user, outcome=Outcome.objects.get(pk=obj.pk), changes=form.service_data
            )
        else:
            saved = outcome_create(actor=request.user, data=form.service_data)
        obj.pk = saved.pk
        obj._state.adding = False

    def has_delete_permission(self, request: Any, obj: Any = None) -> bool:
        return False  # datasets and results refer to outcomes; they are never deleted
