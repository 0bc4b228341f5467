"""The API's error shapes: a service's refusal as a 400 naming fields, a state conflict as a 409,
and errors raised outside the views (no URL matched, a server error) answered in the API's own shape
under /api/, so that clients always get JSON with a ``detail``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers, status
from rest_framework.exceptions import APIException, ValidationError


@contextmanager
def service_errors() -> Iterator[None]:
    """A service's ValidationError (a message per field) becomes the API's 400 body."""
    try:
        yield
    except DjangoValidationError as exc:
        raise ValidationError(detail=serializers.as_serializer_error(exc)) from exc


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


def page_not_found(request: HttpRequest, exception: Any) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "Not found."}, status=404)
    return defaults.page_not_found(request, exception)


def server_error(request: HttpRequest) -> HttpResponse:
    if request.path.startswith("/api/"):
        return JsonResponse({"detail": "A server error occurred; it has been logged."}, status=500)
    return defaults.server_error(request)
