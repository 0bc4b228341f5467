"""Responses made of stored bytes: results are immutable, so the API sends what was rendered when
they were stored (``apps.api.documents``) and answers conditional requests without a body.

Every response carries ``ETag`` and ``Last-Modified``; ``If-None-Match`` / ``If-Modified-Since``
that match give 304. ``Cache-Control: private, no-cache`` because what one may read depends on who
asks: a shared cache must not answer for someone else, and a client revalidates (cheaply) each time.
Visibility is checked before any of this, so a 304 never confirms a result to someone who may not
read it.
"""

from __future__ import annotations

import gzip
from datetime import datetime
from typing import Any

from django.http import HttpResponse
from django.utils.cache import get_conditional_response, patch_vary_headers
from django.utils.http import http_date

from apps.api.documents import summaries_page

JSON = "application/json"
#: below this a gzip header and a round trip cost more than the bytes they save
GZIP_MIN_BYTES = 1_024


def _validators(response: HttpResponse, etag: str, last_modified: float) -> HttpResponse:
    response["ETag"] = etag
    response["Last-Modified"] = http_date(last_modified)
    response["Cache-Control"] = "private, no-cache"
    patch_vary_headers(response, ["Authorization", "Cookie"])
    return response


def stored_response(
    request: Any,
    body: bytes,
    *,
    etag: str,
    last_modified: datetime,
    compress: bool = False,
) -> HttpResponse:
    """``body`` (JSON) with its validators, or 304 when the client holds it. With ``compress``,
    gzip when the client accepts it (the ETag then names the compressed form, as RFC 9110 asks)."""
    quoted = f'"{etag}"'
    gzipped = (
        compress and len(body) >= GZIP_MIN_BYTES and "gzip" in request.META.get("HTTP_ACCEPT_ENCODING", "")
    )
    if gzipped:
        quoted = f'"{etag}-gz"'
    stamp = last_modified.timestamp()
    not_modified = get_conditional_response(request, etag=quoted, last_modified=int(stamp))
    if not_modified is not None:
        return _validators(not_modified, quoted, stamp)
    if gzipped:
        body = gzip.compress(body, compresslevel=6, mtime=0)
    response = HttpResponse(body, content_type=JSON)
    if compress:
        patch_vary_headers(response, ["Accept-Encoding"])
    if gzipped:
        response["Content-Encoding"] = "gzip"
    return _validators(response, quoted, stamp)


def summaries_response(view: Any, queryset: Any) -> HttpResponse:
    """A paginated list of results as their stored summaries (one query for the page, one for the
    count): the pagination's envelope around rows that are already JSON."""
    paginator = view.paginator
    page = paginator.paginate_queryset(
        queryset.values_list("summary_json", flat=True), view.request, view=view
    )
    meta = {
        "count": paginator.count,
        "next": paginator.get_next_link(),
        "previous": paginator.get_previous_link(),
    }
    return HttpResponse(summaries_page(meta, list(page)), content_type=JSON)
