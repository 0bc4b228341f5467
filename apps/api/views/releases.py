"""Releases through the API: read them (everyone who reads results), publish one (steering group).

A release is addressed by its name (``/api/v1/releases/2026.1/``) and never changes, so there is
no update or delete: a correction is a new release.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from apps.analyses.models import AnalysisResult, Release, ReleaseResult
from apps.analyses.releases import release_publish
from apps.api import serializers as s
from apps.api.filters import ReleaseFilter
from apps.api.models import ApiToken
from apps.api.permissions import ApiClientsReadOnly, SteeringWrites, TokenScopes
from apps.api.stored import summaries_response


class ReleaseViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.CreateModelMixin, viewsets.GenericViewSet
):
    """Published releases, newest first. Members and API clients see releases whose embargo has
    ended; the steering group sees embargoed ones too and publishes."""

    serializer_class = s.ReleaseSerializer
    filterset_class = ReleaseFilter
    lookup_field = "name"
    lookup_value_regex = r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}"

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly, SteeringWrites]
    read_scope = ApiToken.Scope.RESULTS_READ
    write_scope = ApiToken.Scope.ANALYSES_WRITE

    queryset = Release.objects.none()  # for the schema; requests use get_queryset

    def get_queryset(self) -> Any:
        entries = ReleaseResult.objects.select_related("analysis__outcome").order_by("analysis_id")
        return (
            Release.objects.visible_to(self.request.user)
            .select_related("published_by")
            .prefetch_related(Prefetch("entries", queryset=entries))
        )

    @extend_schema(request=s.ReleaseCreateSerializer, responses={201: s.ReleasePublishedSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Publish a release: freeze the current result of each analysis (``analyses``, default
        all) when it has an estimate; otherwise the result the latest earlier release froze for it
        (the entry's ``note`` says why). Analyses with neither are listed in ``skipped`` with the
        reason: a release never holds a result without an estimate."""
        form = s.ReleaseCreateSerializer(data=request.data)
        form.is_valid(raise_exception=True)
        data = dict(form.validated_data)
        release, skipped = release_publish(
            actor=request.user,
            name=data["name"],
            notes=data.get("notes", ""),
            embargo_until=data.get("embargo_until"),
            analyses=data.get("analyses"),
        )
        body = dict(s.ReleaseSerializer(self.get_queryset().get(pk=release.pk)).data)
        body["skipped"] = [{"analysis": x.analysis.pk, "reason": x.reason} for x in skipped]
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses=s.AnalysisResultSummarySerializer(many=True))
    @action(detail=True, methods=["get"], filter_backends=[])
    def results(self, request: Request, name: str | None = None, version: str | None = None) -> Any:
        """The release's results as summaries (one per analysis), in analysis order."""
        release = self.get_object()
        frozen = AnalysisResult.objects.filter(release_entries__release=release).order_by("analysis_id")
        return summaries_response(self, frozen)
