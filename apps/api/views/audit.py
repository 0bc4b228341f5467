"""The append-only audit trail, as pages and as a CSV export (steering group and administrators)."""

from __future__ import annotations

import csv
import io
from typing import Any

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.api import serializers as s
from apps.api.models import ApiToken
from apps.api.permissions import ApiClientsReadOnly, SteeringOnly, TokenScopes
from apps.api.views.common import download
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events_shown
from apps.consortium import roles
from apps.datasets.ingest import neutralise


class AuditEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The append-only audit trail (steering group and administrators)."""

    serializer_class = s.AuditEventSerializer
    filterset_fields = {"action": ["exact"], "centre__code": ["exact"], "object_type": ["exact"]}

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly, SteeringOnly]
    read_scope = ApiToken.Scope.DATASETS_READ  # the trail records data changes above all

    def get_queryset(self) -> Any:
        if not roles.is_steering(self.request.user):
            return AuditEvent.objects.none()
        return AuditEvent.objects.select_related("centre").order_by("-at", "-id")

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """A page of events, each as the reader may see it (``audit_events_shown``: another
        centre's unsubmitted versions without their author and details)."""
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        shown = audit_events_shown(user=request.user, events=list(page or []))
        data = []
        for item in shown:
            row = dict(self.get_serializer(item.event).data)
            row.update(actor_username=item.actor, before=item.before, after=item.after)
            data.append(row)
        return self.get_paginated_response(data)

    @extend_schema(responses={(200, "text/csv"): OpenApiTypes.BINARY})
    @action(detail=False, methods=["get"])
    def export(self, request: Request, version: str | None = None) -> HttpResponse:
        """The whole audit trail as CSV."""
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(
            ["id", "at", "actor", "action", "object_type", "object_id", "centre", "before", "after"]
        )
        events = list(self.filter_queryset(self.get_queryset()))
        for item in audit_events_shown(user=request.user, events=events):
            e = item.event
            writer.writerow(
                _audit_cells(
                    [
                        e.pk,
                        e.at.isoformat(),
                        item.actor,
                        e.action,
                        e.object_type,
                        e.object_id,
                        e.centre.code if e.centre else "",
                        item.before,
                        item.after,
                    ]
                )
            )
        return download(buffer.getvalue().encode(), "audit-trail.csv", "csv")


def _audit_cells(values: list[Any]) -> list[Any]:
    """Audit export cells: numbers as numbers, everything else as formula-neutralised text."""
    return [v if isinstance(v, (int, float)) else neutralise("" if v is None else str(v)) for v in values]
