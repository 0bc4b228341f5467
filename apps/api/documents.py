"""What the API says about a result, rendered once when the result is stored (a receiver of the
result's ``post_save``, in the transaction that stores it).

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
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from django.db import connection
from django.db.models.signals import post_save
from django.dispatch import receiver
from django.urls import reverse
from django.utils import timezone
from rest_framework.renderers import JSONRenderer

from apps.analyses.models import AnalysisResult, Release, pooled_of
from apps.common.times import iso_time

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
        "requested_at": iso_time(result.requested_at),
        "started_at": iso_time(result.started_at),
        "finished_at": iso_time(result.finished_at),
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


@receiver(post_save, sender=AnalysisResult, dispatch_uid="api_documents_of_a_new_result")
def on_result_created(
    sender: Any, instance: AnalysisResult, created: bool, raw: bool = False, **_: Any
) -> None:
    """Every new result gets its documents inside the transaction that stores it
    (``AnalysisResult.save``), so no reader sees the row without them. They cite the row's id,
    known only after the insert."""
    if created and not raw and not instance.detail_json:
        documents_store(instance)


#: two moments and two ids to compile the detail read with: where the compiled parameters differ,
#: they are the moment's and the id's places
_PROBES = ((1, datetime(2001, 1, 1, tzinfo=UTC)), (2, datetime(2002, 2, 2, tzinfo=UTC)))


@lru_cache(maxsize=2)
def _detail_statement(released_only: bool) -> tuple[str, tuple[Any, ...], tuple[int, ...], tuple[int, ...]]:
    """The SQL of ``AnalysisResult.objects.released(at).filter(pk=pk)`` (or without ``released``),
    reading only the stored detail: compiled once from the querysets that hold the visibility rule
    (``apps.analyses.visibility``), with the places of the id and of the moment among its parameters."""

    def compiled(pk: int, at: datetime) -> tuple[str, tuple[Any, ...]]:
        rows = AnalysisResult.objects.filter(pk=pk)
        if released_only:
            rows = rows.released(at)
        rows = rows.order_by().only("id", "detail_json", "etag", "finished_at")
        sql, params = rows.query.sql_with_params()
        return sql, tuple(params)

    (sql, first), (again, second) = (compiled(pk, at) for pk, at in _PROBES)
    if sql != again:
        raise RuntimeError("the detail read compiles to different statements for different values")
    ids = tuple(i for i, (x, y) in enumerate(zip(first, second, strict=True)) if (x, y) == (1, 2))
    moments = tuple(i for i, (x, y) in enumerate(zip(first, second, strict=True)) if x != y and i not in ids)
    return sql, first, ids, moments


def stored_detail(pk: int, *, released_only: bool) -> AnalysisResult | None:
    """The result ``pk`` with only its stored detail, ETag and time (``released_only``: if a
    readable release holds it), or None.

    Every read of a result runs this, so it runs one fixed statement, compiled once from the same
    querysets as ``visible_to`` (the ORM spent 1.9 ms compiling the queryset each time, this
    0.2 ms; bench/API.md): the rule is not written again, only its compiled form kept."""
    sql, template, ids, moments = _detail_statement(released_only)
    params = list(template)
    for i in ids:
        params[i] = pk
    if moments:
        now = _MOMENT_FIELD.get_db_prep_value(timezone.now(), connection, prepared=False)
        for i in moments:
            params[i] = now
    found = list(AnalysisResult.objects.raw(sql, params))
    return found[0] if found else None


#: how a moment is written as a statement's parameter (as the compiled filters on release times write it)
_MOMENT_FIELD = Release._meta.get_field("published_at")


def summaries_page(meta: dict[str, Any], summaries: list[str]) -> bytes:
    """A list page (``count``, ``next``, ``previous``, then ``results``) around stored summaries,
    joined as text: the rows are already JSON."""
    head = json.dumps(meta, separators=(",", ":"))[:-1]
    return f'{head},"results":[{",".join(summaries)}]}}'.encode()
