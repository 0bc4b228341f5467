"""What the API says about a result, rendered once when the result is stored.

A result never changes, so its two documents (the summary a list shows and the detail
``/results/{id}/`` shows) are rendered to JSON text once and served as stored bytes, with an ETag
that is a hash of the detail. A list of a thousand results then costs one query and a join of
strings, never a decode of the results' blocks (7 MB at k = 10,000) to find a pooled estimate.

The detail does not inline the blocks: it lists them, with their sizes and addresses, and each is
fetched on its own from ``/results/{id}/blocks/{name}/`` (compressed when the client accepts it).
The shapes here are the API's: ``apps.api.serializers`` describes them for the OpenAPI schema, and
a test holds the two together.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from typing import Any

from django.urls import reverse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from apps.analyses.models import AnalysisResult, Release, ReleaseResult, pooled_of

#: the summary's keys, in order (the list rows and the first keys of the detail)
SUMMARY_FIELDS = (
    "id",
    "url",
    "analysis",
    "seq",
    "status",
    "error",
    "k",
    "pooled",
    "engine_version",
    "spec_hash",
    "input_fingerprint",
    "dataset_versions",
    "requested_at",
    "started_at",
    "finished_at",
    "compute_ms",
)

_renderer = JSONRenderer()


def _render(data: Any) -> str:
    """JSON text exactly as the API's renderer writes it (dates in ISO 8601, no NaN)."""
    return _renderer.render(data).decode()


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


def result_summary(result: AnalysisResult) -> dict[str, Any]:
    """The list row: the headline numbers and the provenance, no blocks."""
    return {
        "id": result.pk,
        "url": reverse("v1:result-detail", kwargs={"pk": result.pk}),
        "analysis": result.analysis_id,
        "seq": result.seq,
        "status": result.status,
        "error": result.error,
        "k": result.k,
        "pooled": pooled_of(result.blocks or {}),
        "engine_version": result.engine_version,
        "spec_hash": result.spec_hash,
        "input_fingerprint": result.input_fingerprint,
        "dataset_versions": result.dataset_versions,
        "requested_at": _iso(result.requested_at),
        "started_at": _iso(result.started_at),
        "finished_at": _iso(result.finished_at),
        "compute_ms": result.compute_ms,
    }


def block_bytes(block: Any) -> bytes:
    """A block as the blocks endpoint sends it (before compression)."""
    return _renderer.render(block)


def result_detail(result: AnalysisResult) -> dict[str, Any]:
    """The summary, the specification, the engine's notes and omitted rows, and an index of the
    blocks: for each, its address and its size in bytes uncompressed."""
    blocks = result.blocks or {}
    return {
        **result_summary(result),
        "spec": result.spec,
        # a migration's historical result may predate the column
        "labels": getattr(result, "labels", None) or {},
        "notes": result.notes,
        "omitted": result.omitted,
        "blocks": {
            name: {
                "url": reverse("v1:result-block", kwargs={"pk": result.pk, "name": name}),
                "bytes": len(block_bytes(block)),
            }
            for name, block in blocks.items()
        },
    }


def documents_store(result: AnalysisResult, *, manager: Any = None) -> None:
    """Render the result's documents and write them to its row (an ``UPDATE`` of three columns:
    the rest of the row is never written again). ``manager``: a migration's historical one."""
    summary = _render(result_summary(result))
    detail = _render(result_detail(result))
    etag = hashlib.sha256(detail.encode()).hexdigest()[:32]
    rows: Any = manager or AnalysisResult.objects
    rows.filter(pk=result.pk).update(summary_json=summary, detail_json=detail, etag=etag)
    result.summary_json, result.detail_json, result.etag = summary, detail, etag


@lru_cache(maxsize=2)
def _stored_detail_sql(released_only: bool) -> str:
    result, link, release = (
        AnalysisResult._meta.db_table,
        ReleaseResult._meta.db_table,
        Release._meta.db_table,
    )
    sql = f"SELECT r.id, r.detail_json, r.etag, r.finished_at FROM {result} r WHERE r.id = %s"  # noqa: S608
    if released_only:
        # ``AnalysisResultQuerySet.released``: in a release with no embargo or an ended one
        sql += (
            f" AND EXISTS (SELECT 1 FROM {link} rr JOIN {release} rl ON rl.id = rr.release_id"  # noqa: S608
            " WHERE rr.result_id = r.id AND (rl.embargo_until IS NULL OR rl.embargo_until <= %s))"
        )
    return sql


def stored_detail(pk: int, *, released_only: bool) -> AnalysisResult | None:
    """The result ``pk`` with only its stored detail, ETag and time (``released_only``: if a
    readable release holds it), or None. The same rule as ``visible_to``, written as one fixed
    statement because every read of a result runs it: the ORM spent 1.9 ms compiling the
    queryset each time, this 0.2 ms (bench/API.md); a test holds the two to the same answers."""
    params: list[Any] = [pk]
    if released_only:
        params.append(timezone.now())
    found = list(AnalysisResult.objects.raw(_stored_detail_sql(released_only), params))
    return found[0] if found else None


def summaries_page(meta: dict[str, Any], summaries: list[str]) -> bytes:
    """A list page (``count``, ``next``, ``previous``, then ``results``) around stored summaries,
    joined as text: the rows are already JSON."""
    head = json.dumps(meta, separators=(",", ":"))[:-1]
    return f'{head},"results":[{",".join(summaries)}]}}'.encode()
