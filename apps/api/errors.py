"""The API's errors, in one place: how a domain error becomes an HTTP answer (``exception_handler``,
the ``EXCEPTION_HANDLER`` of REST_FRAMEWORK), the 409 of a refused state change, and the JSON
answers under /api/ for errors raised outside the views (no URL matched, a server error), so that
clients always get JSON with a ``detail``.

Views call the services and let their exceptions through; none catches a domain error itself
(``tests/platform/test_error_handler_home.py`` checks that).
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from apps.analyses.exports import ExportError
from apps.datasets.ingest import UploadRejected


class Conflict(APIException):
    """The request is valid but the object's state does not allow it (e.g. withdrawing a draft)."""

    status_code = status.HTTP_409_CONFLICT
    default_detail = "The object's current state does not allow this."
    default_code = "conflict"


#: the schema of a 409 answer
CONFLICT_RESPONSE = OpenApiResponse(
    {"type": "object", "properties": {"detail": {"type": "string"}}, "required": ["detail"]},
    "The object's current state does not allow this (e.g. withdrawing a draft); nothing changed.",
)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """The API's answer to an exception a view let through.

    - ``UploadRejected``: 400, ``{"detail", "errors"}`` with every problem's row, column, value,
      code and message; nothing was stored.
    - ``ExportError``: 409, ``{"detail", "code"}``.
    - Django's ``ValidationError``: 400 with its messages per field (``non_field_errors`` when it
      names none), the shape of a serializer's errors; in an action the view lists in
      ``conflict_actions`` (the service refused the object's current state), 409 ``Conflict``
      with its messages.
    - Django's ``PermissionDenied``: 403; ``Http404`` and ``ObjectDoesNotExist``: 404; each with
      the exception's message as ``detail`` (DRF's default detail when it has none).
    - DRF's own exceptions as DRF answers them (status, ``detail``, ``WWW-Authenticate``,
      ``Retry-After``); anything else is a server error.
    """
    if isinstance(exc, UploadRejected):
        errors = [e.to_dict() for e in exc.errors]
        detail = f"The upload was rejected: {len(errors)} problem(s) found. Nothing was stored."
        return Response({"detail": detail, "errors": errors}, status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ExportError):
        return Response({"detail": exc.message, "code": exc.code}, status=status.HTTP_409_CONFLICT)
    return drf_exception_handler(_as_api_exception(exc, context.get("view")), context)


def _as_api_exception(exc: Exception, view: Any) -> Exception:
    """A domain exception as the DRF exception that answers it (others unchanged)."""
    if isinstance(exc, DjangoValidationError):
        if getattr(view, "action", None) in getattr(view, "conflict_actions", ()):
            return Conflict(" ".join(exc.messages))
        return ValidationError(detail=serializers.as_serializer_error(exc))
    if isinstance(exc, ObjectDoesNotExist):
        return NotFound(*exc.args)
    return exc


def page_not_found(request: HttpRequest, exception: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "A server error occurred; it has been logged."}, status=500)
    return defaults.server_error(request)
