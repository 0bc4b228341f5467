"""Centres and the data dictionary (outcomes, with their upload templates)."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.models import User
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from apps.api import serializers as s
from apps.api.models import ApiToken
from apps.api.permissions import ApiClientsReadOnly, SteeringWrites, TokenScopes
from apps.api.views.common import XLSX_TYPE, download, download_format, plain
from apps.consortium.models import Centre, Outcome
from apps.consortium.services import outcome_create, outcome_update
from apps.datasets.ingest import template_for
from apps.datasets.services import upload_spec_for


class CentreViewSet(viewsets.ReadOnlyModelViewSet):
    """Partner centres (names are not confidential; their data is)."""

    serializer_class = s.CentreSerializer
    lookup_field = "code"
    queryset = Centre.objects.all()
    permission_classes = [IsAuthenticated, TokenScopes]
    read_scope = None  # any valid token: names of centres are not confidential


class OutcomeViewSet(viewsets.ModelViewSet):
    """The data dictionary. Everyone signed in reads it; the steering group edits it."""

    serializer_class = s.OutcomeSerializer
    lookup_field = "code"
    queryset = Outcome.objects.all()
    http_method_names = ["get", "post", "patch", "head", "options"]

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = outcome_create(
            actor=cast(User, self.request.user), data=plain(serializer.validated_data)
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        serializer.instance = outcome_update(
            actor=cast(User, self.request.user),
            outcome=cast(Outcome, serializer.instance),
            changes=plain(serializer.validated_data),
        )

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly, SteeringWrites]
    read_scope = None  # the data dictionary and its templates: any valid token
    write_scope = ApiToken.Scope.ANALYSES_WRITE

    @extend_schema(
        parameters=[OpenApiParameter("fmt", str, enum=["csv", "xlsx"], description="Template format")],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, XLSX_TYPE): OpenApiTypes.BINARY,
        },
    )
    @action(detail=True, methods=["get"])
    def template(self, request: Request, code: str | None = None, version: str | None = None) -> HttpResponse:
        """A blank upload template for this outcome, with its statistic, identity and moderator columns."""
        outcome = self.get_object()
        fmt = download_format(request)
        content = template_for(upload_spec_for(outcome), fmt=fmt)
        return download(content, f"{outcome.code}-template.{fmt}", fmt)
