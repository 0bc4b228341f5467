"""Analyses: the steering group's specifications over an outcome, and each one's history."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.http import HttpResponse
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request

from apps.analyses import visibility
from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.services import analysis_create, analysis_update
from apps.api import serializers as s
from apps.api.filters import AnalysisFilter
from apps.api.models import ApiToken
from apps.api.permissions import ApiClientsReadOnly, SteeringWrites, TokenScopes
from apps.api.stored import summaries_response
from apps.api.views.common import plain

#: a result's large columns, which a page that shows its summary never needs
_RESULT_BULK = ("blocks", "detail_json", "studies", "notes", "omitted", "spec", "dataset_versions", "error")


class AnalysisViewSet(viewsets.ModelViewSet):
    """Analyses: the steering group's specifications over an outcome."""

    serializer_class = s.AnalysisSerializer
    http_method_names = ["get", "post", "patch", "head", "options"]
    filterset_class = AnalysisFilter

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly, SteeringWrites]
    read_scope = ApiToken.Scope.RESULTS_READ
    write_scope = ApiToken.Scope.ANALYSES_WRITE

    def get_queryset(self) -> Any:
        # the current result's stored summary, not its blocks (megabytes at large k)
        return (
            Analysis.objects.visible_to(self.request.user)
            .select_related("outcome", "current_result")
            .defer(*(f"current_result__{name}" for name in _RESULT_BULK))
        )

    def get_serializer_context(self) -> dict[str, Any]:
        context = dict(super().get_serializer_context())
        if not visibility.reads_unreleased(self.request.user):
            current = Analysis.objects.values("current_result_id")
            context["visible_result_ids"] = set(
                AnalysisResult.objects.visible_to(self.request.user)
                .filter(pk__in=current)
                .values_list("pk", flat=True)
            )
        return context

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = plain(serializer.validated_data)
        data.pop("reason", None)
        serializer.instance = analysis_create(
            actor=cast(User, self.request.user), outcome=data.pop("outcome"), data=data
        )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        data = plain(serializer.validated_data)
        data.pop("outcome", None)  # the serializer refuses a change of outcome
        reason = data.pop("reason", "")
        analysis = cast(Analysis, serializer.instance)
        serializer.instance = analysis_update(
            actor=cast(User, self.request.user), analysis=analysis, changes=data, reason=reason
        )

    @extend_schema(responses=s.AnalysisResultSummarySerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def history(self, request: Request, pk: str | None = None, version: str | None = None) -> HttpResponse:
        """Every result of this analysis the user may see, newest first: how the estimate moved."""
        analysis = self.get_object()
        results = AnalysisResult.objects.visible_to(request.user).filter(analysis=analysis).order_by("-seq")
        return summaries_response(self, results)
