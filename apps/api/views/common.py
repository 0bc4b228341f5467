"""What several resources' views share: validated data as the services take it, and file downloads
(the format a request asks for, the attachment that answers it)."""

from __future__ import annotations

from typing import Any, Literal

from django.http import HttpResponse
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def plain(data: Any) -> dict[str, Any]:
    """Validated data as plain Python (nested serializers give OrderedDicts)."""
    return {
        k: [dict(i) if isinstance(i, dict) else i for i in v] if isinstance(v, list) else v
        for k, v in data.items()
    }


def download_format(request: Request) -> Literal["csv", "xlsx"]:
    """The spreadsheet format ``?fmt=`` asks for (default csv)."""
    fmt = request.query_params.get("fmt", "csv")
    if fmt == "csv":
        return "csv"
    if fmt == "xlsx":
        return "xlsx"
    raise ValidationError({"fmt": "Use csv or xlsx."})


def download(content: bytes, filename: str, fmt: str) -> HttpResponse:
    """``content`` as a CSV or XLSX attachment named ``filename``."""
    return attachment(content, "text/csv; charset=utf-8" if fmt == "csv" else XLSX_TYPE, filename)


def attachment(content: bytes, content_type: str, filename: str) -> HttpResponse:
    """``content`` as a file to save, never to be rendered by the browser."""
    response = HttpResponse(content, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response
