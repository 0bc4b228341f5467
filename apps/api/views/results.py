"""Result snapshots: summaries, one result's stored document, its blocks and its exports. Reads
send the documents stored with each result and remember them between token requests."""

from __future__ import annotations

from typing import Any

from django.db.models.fields.json import KeyTransform
from django.http import Http404, HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request

from apps.analyses import visibility
from apps.analyses.exports import CONTENT_TYPES as EXPORT_TYPES
from apps.analyses.exports import export_file
from apps.analyses.models import AnalysisResult
from apps.analyses.releases import seconds_to_next_embargo_end
from apps.analyses.selectors import result_rows_readable
from apps.api import readcache
from apps.api import serializers as s
from apps.api.documents import block_bytes, stored_detail
from apps.api.errors import CONFLICT_RESPONSE
from apps.api.filters import AnalysisResultFilter
from apps.api.models import ApiToken
from apps.api.permissions import ApiClientsReadOnly, TokenScopes
from apps.api.stored import JSON, stored_response, summaries_response
from apps.api.views.common import attachment

#: What token requests remember between requests (``apps.api.readcache``): result documents and
#: list pages, keyed by what the user may read, valid while the ``results`` generation stands (and,
#: for released results, until the next embargo ends). Requests signed in by session read afresh.
_RESULT_DETAILS = readcache.LocalCache(size=2_000)
_RESULT_LISTS = readcache.LocalCache(size=500)
_NOT_FOUND = ("", "", None)


def _remembered(local: readcache.LocalCache, request: Request, key: Any) -> Any:
    counters = getattr(request, "api_counters", None)
    return None if counters is None else local.get(key, counters.results)


def _remember(
    local: readcache.LocalCache, request: Request, key: Any, value: Any, *, released_only: bool
) -> None:
    counters = getattr(request, "api_counters", None)
    if counters is not None:
        ttl = seconds_to_next_embargo_end() if released_only else readcache.MAX_AGE_SECONDS
        local.put(key, counters.results, value, ttl=ttl)


class AnalysisResultViewSet(viewsets.ReadOnlyModelViewSet):
    """Immutable result snapshots with full provenance. Members and API clients read the results of
    published releases; the steering group reads every result.

    Reads send the documents stored with each result (``apps.api.documents``) as they are:
    no serializer runs and no block is decoded. The serializers named in the schema describe them.
    """

    filterset_class = AnalysisResultFilter
    # JSON only: reads send stored JSON, and an exporter's or a script's Accept header needs no
    # negotiating among renderers on every request (the browsable API would not render them)
    renderer_classes = [JSONRenderer]

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly]
    read_scope = ApiToken.Scope.RESULTS_READ
    # an export holds the study rows: reading it takes the datasets scope
    action_scopes = {"export": ApiToken.Scope.DATASETS_READ}

    def get_serializer_class(self) -> type[serializers.BaseSerializer]:
        return s.AnalysisResultSerializer if self.action == "retrieve" else s.AnalysisResultSummarySerializer

    def get_queryset(self) -> Any:
        return AnalysisResult.objects.visible_to(self.request.user).order_by("-id")

    @staticmethod
    def _id(pk: Any) -> int:
        """``pk`` as a result id (one that is not a number names no result: 404)."""
        if not str(pk).isascii() or not str(pk).isdigit() or len(str(pk)) > 18:
            raise Http404
        return int(pk)

    def _one(self, pk: Any) -> Any:
        """The result ``pk`` if the user may read it."""
        return self.get_queryset().filter(pk=self._id(pk))

    def list(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        """Result summaries, newest first: the pooled headline and the provenance, never blocks."""
        released_only = not visibility.reads_unreleased(request.user)
        key = (request.build_absolute_uri(), released_only)
        remembered = _remembered(_RESULT_LISTS, request, key)
        if remembered is not None:
            return HttpResponse(remembered, content_type=JSON)
        response = summaries_response(self, self.filter_queryset(self.get_queryset()))
        _remember(_RESULT_LISTS, request, key, response.content, released_only=released_only)
        return response

    @extend_schema(
        responses={200: s.AnalysisResultSerializer, 304: OpenApiResponse(description="Not modified.")}
    )
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:  # type: ignore[override]
        """One result: its summary, specification, notes, omitted rows and the index of its blocks
        (each fetched from its own address). ``ETag``/``Last-Modified``; conditional GETs get 304."""
        pk = self._id(kwargs["pk"])
        released_only = not visibility.reads_unreleased(request.user)
        key = (pk, released_only)
        found = _remembered(_RESULT_DETAILS, request, key)
        if found is None:
            result = stored_detail(pk, released_only=released_only)
            found = (result.detail_json.encode(), result.etag, result.finished_at) if result else _NOT_FOUND
            _remember(_RESULT_DETAILS, request, key, found, released_only=released_only)
        if found is _NOT_FOUND:
            raise Http404
        body, etag, finished_at = found
        return stored_response(request, body, etag=etag, last_modified=finished_at)

    @extend_schema(
        responses={
            (200, "application/json"): OpenApiTypes.OBJECT,
            304: OpenApiResponse(description="Not modified."),
        }
    )
    @action(detail=True, methods=["get"], url_path=r"blocks/(?P<name>[A-Za-z0-9_]{1,64})", filter_backends=[])
    def block(
        self, request: Request, pk: str | None = None, name: str = "", version: str | None = None
    ) -> HttpResponse:
        """One block of a result (``fit``, ``leave1out``, ``effect_sizes``, ...), gzip-compressed
        when the client sends ``Accept-Encoding: gzip``. The detail's ``blocks`` lists the names."""
        row = (
            self._one(pk)
            .filter(blocks__has_key=name)
            .annotate(block=KeyTransform(name, "blocks"))
            .values_list("block", "etag", "finished_at")
            .first()
        )
        if row is None:
            if self._one(pk).exists():
                raise NotFound(f"This result has no block {name!r}; its detail lists the blocks it has.")
            raise Http404
        block, etag, finished_at = row
        return stored_response(
            request, block_bytes(block), etag=f"{etag}.{name}", last_modified=finished_at, compress=True
        )

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "fmt",
                str,
                enum=[*EXPORT_TYPES],
                description="csv, json (the rows), r, python (scripts), bundle (zip)",
            )
        ],
        responses={
            (200, content_type): OpenApiTypes.BINARY for content_type in sorted(set(EXPORT_TYPES.values()))
        }
        | {409: CONFLICT_RESPONSE},
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None, version: str | None = None) -> HttpResponse:
        """The study rows a result was computed from (CSV, JSON), an R script that reproduces it
        with metafor, a Python script that reruns the engine, or all of it as a reproducibility
        bundle (zip with the data, specification, scripts, versions and checksums)."""
        result = self.get_object()
        kind = request.query_params.get("fmt", "bundle")
        if kind not in EXPORT_TYPES:
            raise ValidationError({"fmt": f"Use one of {', '.join(EXPORT_TYPES)}."})
        # the rows of every centre in the result: only for someone who may read all of them
        if not result_rows_readable(user=request.user, result=result):
            raise PermissionDenied(
                "This result's rows include data of centres you may not read; its numbers are in the result itself."
            )
        exported = export_file(result, kind)
        return attachment(exported.content, exported.content_type, exported.filename)
