"""Refuse an oversized request body from its declared length, before anything reads it.

Django reads a body only as far as ``Content-Length`` (a body without one reads as empty), so the
declared length bounds everything a view can be made to hold. Checking it first means a 300 MB
upload costs the web worker nothing: no temporary file, no parse, no permission query. nginx
refuses the same bodies earlier with the same limit (``client_max_body_size``); this is the check
that holds when the application is reached without the proxy.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from apps.datasets.ingest.errors import UploadError


class RequestBodyLimitMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = settings.REQUEST_MAX_BYTES
        declared = request.META.get("CONTENT_LENGTH") or "0"
        try:
            length = int(declared)
        except ValueError:
            return _refuse(request, 400, "invalid_request", "The Content-Length header is not a number.")
        if length < 0:
            return _refuse(request, 400, "invalid_request", "The Content-Length header is negative.")
        if length > limit:
            return _refuse(
                request,
                413,
                "request_too_large",
                f"The request body ({length / 2**20:.1f} MiB) is larger than the limit of "
                f"{limit / 2**20:.0f} MiB. Split the data into smaller uploads, or ask an "
                "administrator to raise UPLOAD_MAX_BYTES.",
            )
        return self.get_response(request)


def _refuse(request: HttpRequest, status: int, code: str, message: str) -> HttpResponse:
    # The body was not read: close the connection rather than let the server drain it.
    if request.path.startswith("/api/"):
        response: HttpResponse = JsonResponse(
            {"detail": message, "errors": [UploadError.about(code, message).to_dict()]}, status=status
        )
    else:
        response = HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")
    response["Connection"] = "close"
    return response
