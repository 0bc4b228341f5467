"""REST API views. Every queryset starts from what the requesting user may see."""

from __future__ import annotations

import csv
import io
from typing import Any, Literal, cast

from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models.fields.json import KeyTransform
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, ParseError, PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apps.analyses.documents import block_bytes, stored_detail
from apps.analyses.exports import CONTENT_TYPES as EXPORT_TYPES
from apps.analyses.exports import ExportError, export_file
from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.releases import seconds_to_next_embargo_end
from apps.analyses.selectors import result_rows_readable, upload_preview_report
from apps.analyses.services import analysis_create, analysis_update
from apps.api import readcache
from apps.api import serializers as s
from apps.api.errors import CONFLICT_RESPONSE, Conflict, service_errors
from apps.api.filters import AnalysisFilter, AnalysisResultFilter, DatasetFilter
from apps.api.models import ApiToken
from apps.api.pagination import query_whole_number
from apps.api.parsers import BoundedJSONParser
from apps.api.permissions import ApiClientsReadOnly, SteeringOnly, SteeringWrites, TokenScopes
from apps.api.stored import JSON, stored_response, summaries_response
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events_shown
from apps.consortium import roles
from apps.consortium.models import Centre, Outcome
from apps.consortium.services import outcome_create, outcome_update
from apps.datasets.ingest import UploadError, UploadRejected, export_rows, neutralise, template_for
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.selectors import dataset_version_diff, with_shown_versions
from apps.datasets.services import dataset_set_status, dataset_version_restore, upload_spec_for
from apps.datasets.uploads import upload_parse, upload_receive

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _plain(data: Any) -> dict[str, Any]:
    """Validated data as plain Python (nested serializers give OrderedDicts)."""
    return {
        k: [dict(i) if isinstance(i, dict) else i for i in v] if isinstance(v, list) else v
        for k, v in data.items()
    }


def _field_errors(errors: Any, prefix: str = "") -> list[UploadError]:
    """A serializer's errors as upload errors naming the field."""
    found: list[UploadError] = []
    items = (
        errors.items() if isinstance(errors, dict) else enumerate(errors) if isinstance(errors, list) else []
    )
    for key, value in items:
        name = prefix if key == "non_field_errors" else f"{prefix}{'.' if prefix else ''}{key}"
        if isinstance(value, (dict, list)) and not all(hasattr(v, "code") for v in value):
            found += _field_errors(value, name)
            continue
        for detail in value if isinstance(value, list) else [value]:
            found.append(_request_error(name or None, f"{name}: {detail}" if name else str(detail)))
    return found


def _request_error(column: str | None, message: str) -> UploadError:
    return UploadError.about("invalid_request", message, column=column)


def _rejected_response(exc: UploadRejected) -> Response:
    errors = [e.to_dict() for e in exc.errors]
    return Response(
        {
            "detail": f"The upload was rejected: {len(errors)} problem(s) found. Nothing was stored.",
            "errors": errors,
        },
        status=status.HTTP_400_BAD_REQUEST,
    )


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
        with service_errors():
            serializer.instance = outcome_create(
                actor=cast(User, self.request.user), data=_plain(serializer.validated_data)
            )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        with service_errors():
            serializer.instance = outcome_update(
                actor=cast(User, self.request.user),
                outcome=cast(Outcome, serializer.instance),
                changes=_plain(serializer.validated_data),
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
        fmt = _format(request)
        content = template_for(upload_spec_for(outcome), fmt=fmt)
        return _download(content, f"{outcome.code}-template.{fmt}", fmt)


def _format(request: Request) -> Literal["csv", "xlsx"]:
    fmt = request.query_params.get("fmt", "csv")
    if fmt == "csv":
        return "csv"
    if fmt == "xlsx":
        return "xlsx"
    raise ValidationError({"fmt": "Use csv or xlsx."})


def _download(content: bytes, filename: str, fmt: str) -> HttpResponse:
    content_type = "text/csv; charset=utf-8" if fmt == "csv" else XLSX_TYPE
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


class DatasetViewSet(viewsets.ReadOnlyModelViewSet):
    """Datasets: a centre's rows for one outcome, with versions, lifecycle, diff, restore and exports."""

    serializer_class = s.DatasetSerializer
    filterset_class = DatasetFilter

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly]
    read_scope = ApiToken.Scope.DATASETS_READ
    action_scopes = dict.fromkeys(("upload", "submit", "withdraw", "restore"), ApiToken.Scope.DATASETS_WRITE)

    def get_queryset(self) -> Any:
        return (
            Dataset.objects.visible_to(self.request.user)
            .select_related(
                "centre",
                "outcome",
                "current_version",
                "current_version__created_by",
                "submitted_version",
                "submitted_version__created_by",
            )
            .order_by("outcome__code", "centre__code")
        )

    def get_serializer(self, *args: Any, **kwargs: Any) -> Any:
        # Readers from outside the centre see the latest submitted version as "current".
        if args and isinstance(args[0], (list, Dataset)):
            with_shown_versions(args[0] if isinstance(args[0], list) else [args[0]], self.request.user)
        return super().get_serializer(*args, **kwargs)

    def _versions(self, dataset: Dataset) -> Any:
        """The dataset's versions this user may read (drafts never submitted: the centre only)."""
        return DatasetVersion.objects.visible_to(self.request.user).filter(dataset=dataset)

    @extend_schema(
        request={"multipart/form-data": s.UploadFileSerializer, "application/json": s.UploadRowsSerializer},
        responses={
            201: s.UploadResultSerializer,
            200: PolymorphicProxySerializer(
                "UploadAnswer",
                [s.UploadResultSerializer, s.UploadPreviewSerializer],
                resource_type_field_name=None,
            ),
            400: s.UploadRejectedSerializer,
            403: OpenApiResponse(description="Not a data manager"),
            404: OpenApiResponse(description="Centre not visible"),
        },
    )
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, BoundedJSONParser])
    def upload(self, request: Request, version: str | None = None) -> Response:
        """Upload a CSV/XLSX file or JSON rows for one centre and outcome.

        All-or-nothing: every problem is reported at once (row, column, value, code, message) and a
        rejected upload changes nothing. Identical content creates no new version (200, created=false).
        """
        # Before the body is parsed: someone who may upload nowhere gets 403 without the platform
        # spending a temporary file on what they sent.
        user = cast(User, request.user)
        if roles.api_client_of(user) is not None or not roles.centres_changeable(user).exists():
            raise PermissionDenied("Only a centre's data managers may upload its data.")
        # Bodies over REQUEST_MAX_BYTES never get here (RequestBodyLimitMiddleware: 413).
        try:
            body = request.data
        except ParseError as exc:
            return _rejected_response(UploadRejected([_request_error(None, str(exc.detail))]))
        ser = s.UploadSerializer(data=body)
        if not ser.is_valid():
            # The upload's own error format (row, column, code, message), like every other rejection.
            return _rejected_response(UploadRejected(_field_errors(ser.errors)))
        data = ser.validated_data
        upload = data.get("file")
        if data["preview"]:
            return self._preview(user, data)
        try:
            outcome = upload_receive(
                user=user,
                centre_code=data["centre"],
                outcome_code=data["outcome"],
                file=upload,
                filename=upload.name if upload else "",
                content_type=getattr(upload, "content_type", None),
                rows=data.get("rows"),
                reason=data.get("reason", ""),
                submit=data["submit"],
            )
        except Centre.DoesNotExist as exc:
            raise Http404("No such centre.") from exc
        except UploadRejected as exc:
            return _rejected_response(exc)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        outcome.version.dataset.refresh_from_db()  # its status and submitted version, after submit
        payload = {
            "created": outcome.created,
            "dataset": self.get_serializer(outcome.version.dataset).data,
            "version": s.DatasetVersionSummarySerializer(outcome.version).data,
            "mapping": [m.to_dict() for m in outcome.parsed.mapping],
            "warnings": [w.to_dict() for w in outcome.parsed.warnings],
            # which input form each row's effect comes from (raw, yi_vi, yi_sei, di, ti)
            "forms": list(outcome.parsed.forms),
            "form_counts": outcome.parsed.form_counts,
        }
        return Response(payload, status=status.HTTP_201_CREATED if outcome.created else status.HTTP_200_OK)

    def _preview(self, user: User, data: dict[str, Any]) -> Response:
        """What the upload would change, stored nowhere (the portal's preview page, as JSON)."""
        upload = data.get("file")
        try:
            centre, outcome, parsed, _ = upload_parse(
                user=user,
                centre_code=data["centre"],
                outcome_code=data["outcome"],
                file=upload,
                filename=upload.name if upload else "",
                content_type=getattr(upload, "content_type", None),
                rows=data.get("rows"),
            )
        except Centre.DoesNotExist as exc:
            raise Http404("No such centre.") from exc
        except UploadRejected as exc:
            return _rejected_response(exc)
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        rows = [dict(r) for r in parsed.rows]
        report = upload_preview_report(
            user=user, centre=centre, outcome=outcome, rows=rows, columns=list(parsed.columns)
        )
        return Response(
            {
                "preview": True,
                "base_version": report["base"].number if report["base"] is not None else None,
                "identical": report["identical"],
                "diff": report["diff"],
                "rows": report["effects"],
                "pooled": [
                    {
                        "analysis": entry["analysis"].pk,
                        "name": entry["analysis"].name,
                        "meta_regression": entry["regression"],
                        "before": entry["before"],
                        "after": entry["after"],
                        "error": entry["error"],
                    }
                    for entry in report["pooled"]
                ],
                "mapping": [m.to_dict() for m in parsed.mapping],
                "warnings": [w.to_dict() for w in parsed.warnings],
                "form_counts": parsed.form_counts,
            }
        )

    def _change_status(self, request: Request, new_status: str) -> Response:
        dataset = self.get_object()
        ser = s.StatusChangeSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            dataset = dataset_set_status(
                actor=cast(User, request.user),
                dataset=dataset,
                status=new_status,
                reason=ser.validated_data["reason"],
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        except DjangoValidationError as exc:
            raise Conflict(" ".join(exc.messages)) from exc
        return Response(self.get_serializer(dataset).data)

    @extend_schema(
        request=s.StatusChangeSerializer, responses={200: s.DatasetSerializer, 409: CONFLICT_RESPONSE}
    )
    @action(detail=True, methods=["post"])
    def submit(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """Submit the dataset: its current version enters the consortium's analyses. On a submitted
        dataset, this submits its revision (a version stored since it was submitted); with none
        pending, nothing changes."""
        return self._change_status(request, Dataset.Status.SUBMITTED)

    @extend_schema(
        request=s.StatusChangeSerializer, responses={200: s.DatasetSerializer, 409: CONFLICT_RESPONSE}
    )
    @action(detail=True, methods=["post"])
    def withdraw(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """Withdraw the dataset: kept, but no longer analysed."""
        return self._change_status(request, Dataset.Status.WITHDRAWN)

    @extend_schema(responses=s.DatasetVersionSummarySerializer(many=True))
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def versions(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """The version history, newest first."""
        dataset = self.get_object()
        versions = self._versions(dataset).select_related("created_by").order_by("-number")
        return Response(s.DatasetVersionSummarySerializer(versions, many=True).data)

    @extend_schema(
        parameters=[
            OpenApiParameter("number", int, OpenApiParameter.PATH),
            OpenApiParameter("offset", int, description="First row of the page (default 0)"),
            OpenApiParameter(
                "limit", int, description=f"Rows per page (default and maximum {s.VERSION_ROWS_PAGE})"
            ),
        ],
        responses=s.DatasetVersionSerializer,
    )
    @action(detail=True, methods=["get"], url_path=r"versions/(?P<number>[0-9]+)")
    def version_detail(
        self, request: Request, pk: str | None = None, number: str | None = None, version: str | None = None
    ) -> Response:
        """One version with its column mapping and a page of its rows (``rows_next`` links the next
        page), so that no response grows with the size of a dataset."""
        dataset = self.get_object()
        v = get_object_or_404(self._versions(dataset).select_related("created_by"), number=number)
        offset = min(query_whole_number(request, "offset", minimum=0, default=0), v.row_count)
        limit = min(
            query_whole_number(request, "limit", minimum=0, default=s.VERSION_ROWS_PAGE), s.VERSION_ROWS_PAGE
        )
        data = s.DatasetVersionSerializer(v, context={"rows_offset": offset, "rows_limit": limit}).data
        following = offset + limit
        data["rows_next"] = (
            replace_query_param(
                replace_query_param(request.build_absolute_uri(), "offset", following), "limit", limit
            )
            if following < v.row_count
            else None
        )
        return Response(data)

    @extend_schema(
        parameters=[OpenApiParameter("from", int, required=True), OpenApiParameter("to", int, required=True)],
        responses=OpenApiTypes.OBJECT,
    )
    @action(detail=True, methods=["get"])
    def diff(self, request: Request, pk: str | None = None, version: str | None = None) -> Response:
        """Rows added, removed and changed (cell by cell) between two versions."""
        dataset = self.get_object()
        try:
            a, b = int(request.query_params["from"]), int(request.query_params["to"])
        except (KeyError, ValueError) as exc:
            raise ValidationError({"detail": "Give the version numbers as ?from=N&to=M."}) from exc
        old = get_object_or_404(self._versions(dataset), number=a)
        new = get_object_or_404(self._versions(dataset), number=b)
        return Response(dataset_version_diff(old=old, new=new))

    @extend_schema(
        parameters=[OpenApiParameter("number", int, OpenApiParameter.PATH)],
        request=s.StatusChangeSerializer,
        responses={
            201: s.DatasetVersionSummarySerializer,
            200: OpenApiResponse(
                s.DatasetVersionSummarySerializer, "Already the current content: nothing new stored."
            ),
        },
    )
    @action(detail=True, methods=["post"], url_path=r"versions/(?P<number>[0-9]+)/restore")
    def restore(
        self, request: Request, pk: str | None = None, number: str | None = None, version: str | None = None
    ) -> Response:
        """Restore an earlier version as a new version."""
        dataset = self.get_object()
        old = get_object_or_404(self._versions(dataset), number=number)
        ser = s.StatusChangeSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            new, created = dataset_version_restore(
                actor=cast(User, request.user),
                version=old,
                reason=ser.validated_data["reason"],
            )
        except DjangoPermissionDenied as exc:
            raise PermissionDenied(str(exc)) from exc
        return Response(
            s.DatasetVersionSummarySerializer(new).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(
        parameters=[OpenApiParameter("fmt", str, enum=["csv", "xlsx"])],
        responses={
            (200, "text/csv"): OpenApiTypes.BINARY,
            (200, XLSX_TYPE): OpenApiTypes.BINARY,
        },
    )
    @action(detail=True, methods=["get"])
    def export(self, request: Request, pk: str | None = None, version: str | None = None) -> HttpResponse:
        """The current version's rows as CSV or XLSX (spreadsheet formulas neutralised).

        For readers outside the centre, the latest submitted version."""
        dataset = self.get_object()
        fmt = _format(request)
        current = with_shown_versions([dataset], request.user)[0].shown_version
        rows = current.rows if current else []
        columns = current.columns if current else []
        content = export_rows(rows, columns, fmt=fmt)
        return _download(
            content,
            f"{dataset.centre.code}-{dataset.outcome.code}-v{current.number if current else 0}.{fmt}",
            fmt,
        )


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
        if not roles.reads_unreleased_results(self.request.user):
            current = Analysis.objects.values("current_result_id")
            context["visible_result_ids"] = set(
                AnalysisResult.objects.visible_to(self.request.user)
                .filter(pk__in=current)
                .values_list("pk", flat=True)
            )
        return context

    def perform_create(self, serializer: serializers.BaseSerializer) -> None:
        data = _plain(serializer.validated_data)
        data.pop("reason", None)
        with service_errors():
            serializer.instance = analysis_create(
                actor=cast(User, self.request.user), outcome=data.pop("outcome"), data=data
            )

    def perform_update(self, serializer: serializers.BaseSerializer) -> None:
        data = _plain(serializer.validated_data)
        data.pop("outcome", None)  # the serializer refuses a change of outcome
        reason = data.pop("reason", "")
        analysis = cast(Analysis, serializer.instance)
        with service_errors():
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


class AnalysisResultViewSet(viewsets.ReadOnlyModelViewSet):
    """Immutable result snapshots with full provenance. Members and API clients read the results of
    published releases; the steering group reads every result.

    Reads send the documents stored with each result (``apps.analyses.documents``) as they are:
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
        released_only = not roles.reads_unreleased_results(request.user)
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
        released_only = not roles.reads_unreleased_results(request.user)
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
        responses={(200, content_type): OpenApiTypes.BINARY for content_type in set(EXPORT_TYPES.values())}
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
        try:
            exported = export_file(result, kind)
        except ExportError as exc:
            return Response({"detail": exc.message, "code": exc.code}, status=status.HTTP_409_CONFLICT)
        response = HttpResponse(exported.content, content_type=exported.content_type)
        response["Content-Disposition"] = f'attachment; filename="{exported.filename}"'
        response["X-Content-Type-Options"] = "nosniff"
        return response


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
        return _download(buffer.getvalue().encode(), "audit-trail.csv", "csv")


def _audit_cells(values: list[Any]) -> list[Any]:
    """Audit export cells: numbers as numbers, everything else as formula-neutralised text."""
    return [v if isinstance(v, (int, float)) else neutralise("" if v is None else str(v)) for v in values]
