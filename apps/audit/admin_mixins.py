"""Changes made in ``/admin/`` are audited like every other write.

Most of the admin's models save through their services (memberships, outcomes, analyses), which
record their own events. The rest (people's accounts with their superuser, staff and active flags,
groups and permissions; consortium roles; API clients; centres) are plain model forms, and
:class:`AuditedAdmin` records for them what the form changed: one event per save, in the save's
transaction, with the changed fields only, before and after (passwords never: the event says that
the password changed, not to what).
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction

from apps.audit.services import audit_record

#: fields whose values are never written to the trail (only that they changed)
_SECRET = {"password"}


def _value(obj: Any, field: str) -> Any:
    """A field's value as the trail keeps it: related objects by name, many-to-many as sorted names."""
    model_field = obj._meta.get_field(field)
    if model_field.many_to_many:
        return sorted(str(o) for o in getattr(obj, field).all()) if obj.pk else []
    value = getattr(obj, field)
    if model_field.is_relation:
        return None if value is None else str(value)
    if field in _SECRET:
        return "(set)" if value else ""
    return value if isinstance(value, bool | int | float | str | type(None)) else str(value)


class AuditedAdmin(admin.ModelAdmin):
    """Records ``<action_prefix>.create``, ``.update`` (changed fields before and after) and
    ``.delete`` for every save and deletion made through this admin. ``action_prefix`` names the
    object kind in the trail ("user", "consortium_role")."""

    action_prefix = ""

    def _changed(self, form: Any) -> list[str]:
        return [f for f in form.changed_data if f in {fl.name for fl in self.model._meta.get_fields()}]

    def save_model(self, request: Any, obj: Any, form: Any, change: bool) -> None:
        fields = self._changed(form)
        # before the save: the stored values of the fields the form changes (many-to-many are read
        # again after save_related, which is when Django writes them)
        stored = type(obj).objects.filter(pk=obj.pk).first() if change else None
        self._audit_before = {f: _value(stored, f) for f in fields} if stored is not None else {}
        self._audit_fields = fields
        with transaction.atomic():
            super().save_model(request, obj, form, change)

    def save_related(self, request: Any, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        obj, fields = form.instance, getattr(self, "_audit_fields", [])
        after = {f: _value(obj, f) for f in fields}
        before = getattr(self, "_audit_before", {})
        changed = {f for f in fields if before.get(f) != after.get(f)} if change else set(fields)
        if change and not changed:
            return
        audit_record(
            actor=request.user,
            action=f"{self.action_prefix}.{'update' if change else 'create'}",
            obj=obj,
            before={f: before.get(f) for f in sorted(changed)} if change else None,
            after={f: after[f] for f in sorted(changed)},
        )

    def delete_model(self, request: Any, obj: Any) -> None:
        with transaction.atomic():
            audit_record(
                actor=request.user, action=f"{self.action_prefix}.delete", obj=obj, before={"name": str(obj)}
            )
            super().delete_model(request, obj)

    def delete_queryset(self, request: Any, queryset: Any) -> None:
        with transaction.atomic():
            for obj in queryset:
                audit_record(
                    actor=request.user,
                    action=f"{self.action_prefix}.delete",
                    obj=obj,
                    before={"name": str(obj)},
                )
            super().delete_queryset(request, queryset)
