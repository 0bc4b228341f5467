"""Datasets: a centre's rows for one outcome, with uploads (and their previews), versions,
lifecycle, diff, restore and exports."""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.models import User
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, PolymorphicProxySerializer, extend_schema
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import ParseError, PermissionDenied, ValidationError
from rest_framework.parsers import MultiPartParser
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from apps.analyses.selectors import upload_preview_report
from apps.api import serializers as s
from apps.api.errors import CONFLICT_RESPONSE
from apps.api.filters import DatasetFilter
from apps.api.models import ApiToken
from apps.api.pagination import query_whole_number
from apps.api.parsers import BoundedJSONParser
from apps.api.permissions import ApiClientsReadOnly, TokenScopes
from apps.api.views.common import XLSX_TYPE, download, download_format
from apps.consortium import roles
from apps.datasets.ingest import UploadError, UploadRejected, export_rows
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.selectors import dataset_version_diff, with_shown_versions
from apps.datasets.services import dataset_set_status, dataset_version_restore
from apps.datasets.uploads import UploadRequest, upload_parse, upload_receive


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


def _upload_input(user: User, data: dict[str, Any]) -> UploadRequest:
    """The upload a validated upload request sends: who uploads, for which centre and outcome, and
    the file (with its name and type) or the rows."""
    upload = data.get("file")
    return UploadRequest(
        user=user,
        centre_code=data["centre"],
        outcome_code=data["outcome"],
        file=upload,
        filename=upload.name if upload else "",
        content_type=getattr(upload, "content_type", None),
        rows=data.get("rows"),
    )


class DatasetViewSet(viewsets.ReadOnlyModelViewSet):
    """Datasets: a centre's rows for one outcome, with versions, lifecycle, diff, restore and exports."""

    serializer_class = s.DatasetSerializer
    filterset_class = DatasetFilter

    permission_classes = [IsAuthenticated, TokenScopes, ApiClientsReadOnly]
    read_scope = ApiToken.Scope.DATASETS_READ
    action_scopes = dict.fromkeys(("upload", "submit", "withdraw", "restore"), ApiToken.Scope.DATASETS_WRITE)
    #: a lifecycle step the dataset's status does not allow is a 409 (``apps.api.errors``)
    conflict_actions = frozenset({"submit", "withdraw"})

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
            raise UploadRejected([_request_error(None, str(exc.detail))]) from exc
        ser = s.UploadSerializer(data=body)
        if not ser.is_valid():
            # The upload's own error format (row, column, code, message), like every other rejection.
            raise UploadRejected(_field_errors(ser.errors))
        data = ser.validated_data
        if data["preview"]:
            return self._preview(user, data)
        outcome = upload_receive(
            _upload_input(user, data), reason=data.get("reason", ""), submit=data["submit"]
        )
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
        centre, outcome, parsed, _ = upload_parse(_upload_input(user, data))
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
        dataset = dataset_set_status(
            actor=cast(User, request.user),
            dataset=dataset,
            status=new_status,
            reason=ser.validated_data["reason"],
        )
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
        new, created = dataset_version_restore(
            actor=cast(User, request.user), version=old, reason=ser.validated_data["reason"]
        )
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
        fmt = download_format(request)
        current = with_shown_versions([dataset], request.user)[0].shown_version
        rows = current.rows if current else []
        columns = current.columns if current else []
        content = export_rows(rows, columns, fmt=fmt)
        return download(
            content,
            f"{dataset.centre.code}-{dataset.outcome.code}-v{current.number if current else 0}.{fmt}",
            fmt,
        )
