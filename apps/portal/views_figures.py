"""A result's figures (SVG, PNG) and tables (CSV), each rendered once and then served from the
figure store (``apps.portal.figures.store``).

Only someone who may read the result gets its figures: the result is looked up in
``AnalysisResult.objects.visible_to(request.user)``, so a result one may not read is a 404, as an
unknown one. A stored rendering is served before anything else is read, so a repeated request
costs one lookup and one file read.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Callable
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest, HttpResponseNotModified
from django.views.decorators.http import require_GET

from apps.analyses.models import AnalysisResult
from apps.analyses.selectors import result_rows_readable
from apps.datasets.ingest import neutralise
from apps.portal.figures import FIGURES, FORMATS, SORTS, TABLES_ONLY, catalog, draw, store
from apps.portal.figures.data import Inputs, inputs_of
from apps.portal.figures.history import history_points
from apps.portal.scale import Scale, labels_of

CONTENT_TYPES = {"svg": "image/svg+xml", "png": "image/png", "csv": "text/csv; charset=utf-8"}


#: What a request answered from the store reads of its result: not the blocks or documents
#: (megabytes at large k), which only drawing needs (see :func:`_full`).
_HEAVY = ("blocks", "notes", "omitted", "studies", "summary_json", "detail_json")


def _result(request: HttpRequest, pk: int) -> AnalysisResult:
    found = (
        AnalysisResult.objects.visible_to(request.user)
        .filter(pk=pk, status=AnalysisResult.Status.DONE)
        .select_related("analysis__outcome")
        .defer(*_HEAVY)
        .first()
    )
    if found is None:
        raise Http404("No such result.")
    return found


def _full(result: AnalysisResult) -> AnalysisResult:
    """``result`` with its blocks, to draw from."""
    return AnalysisResult.objects.select_related("analysis__outcome").get(pk=result.pk)


def _history_of(user: Any, result: AnalysisResult) -> QuerySet[AnalysisResult]:
    """The results of ``result``'s analysis up to it that ``user`` may read, oldest first."""
    return (
        AnalysisResult.objects.visible_to(user)
        .filter(analysis_id=result.analysis_id, seq__lte=result.seq, status=AnalysisResult.Status.DONE)
        .order_by("seq")
    )


def history_results(user: Any, result: AnalysisResult) -> list[AnalysisResult]:
    """The results ``result``'s history figure shows (their headline and provenance; not their
    documents)."""
    return list(_history_of(user, result).defer("notes", "omitted", "studies", "summary_json", "detail_json"))


def history_key(ids: list[int]) -> str:
    """The history figure's option: the results it shows (who may read which differs), hashed."""
    return hashlib.sha256(",".join(map(str, ids)).encode()).hexdigest()[:16]


def _history_ids(user: Any, result: AnalysisResult) -> list[int]:
    return list(_history_of(user, result).values_list("pk", flat=True))


def _requested(
    request: HttpRequest, pk: int, *, known: bool, unknown: str
) -> tuple[AnalysisResult, str] | HttpResponse:
    """The result a figure or table request names and the forest plot's order (``?sort=``), checked
    in this order: a name or format not ``known`` is a 404 (``unknown`` says which), an order not in
    SORTS a 400, a result the reader may not read a 404."""
    if not known:
        raise Http404(unknown)
    sort = request.GET.get("sort", "input")
    if sort not in SORTS:
        return HttpResponseBadRequest(f"sort must be one of: {', '.join(SORTS)}.", content_type="text/plain")
    return _result(request, pk), sort


def _option(name: str, sort: str, readable: bool) -> str:
    """What a stored rendering depends on besides the result: the forest plot's order, and whether
    it was drawn with the input rows (years, moderators, subgroups) or, for a reader who may not
    read every centre's rows, without them. Two renderings, never one shared across the two."""
    view = "rows" if readable else "summary"
    return f"{sort}-{view}" if name == "forest" else view


def _stored_or_inputs(
    request: HttpRequest, result: AnalysisResult, name: str, sort: str, fmt: str
) -> tuple[str, Inputs | None]:
    """The stored rendering's option, and the result read for drawing it (None: it is stored)."""
    readable = result_rows_readable(user=request.user, result=result)
    option = _option(name, sort, readable)
    if store.stored(result.pk, name, option, fmt) is not None:
        return option, None
    labels = labels_of(result)
    return option, inputs_of(
        _full(result), measure=labels["measure"], direction=labels["direction"], rows=readable
    )


def _serve(
    request: HttpRequest,
    result: AnalysisResult,
    name: str,
    option: str,
    fmt: str,
    render: Callable[[], bytes],
) -> HttpResponse:
    """The stored rendering (made now by ``render`` if it is not stored yet), with its ETag."""
    etag = store.etag_for(result.pk, name, option, fmt)
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        response: HttpResponse = HttpResponseNotModified()
    else:
        content = store.store(result.pk, name, option, fmt, render)
        response = HttpResponse(content, content_type=CONTENT_TYPES[fmt])
    suffix = f"-{option.split('-')[0]}" if name == "forest" else ""
    filename = f"{result.analysis.outcome.code}-result{result.pk}-{name}{suffix}.{fmt}"
    disposition = "attachment" if request.GET.get("download") or fmt == "csv" else "inline"
    response["Content-Disposition"] = f'{disposition}; filename="{filename}"'
    response["ETag"] = etag
    # the history's content follows the results the reader may see (a release, an embargo's end):
    # revalidated on each use; every other rendering belongs to an immutable result
    response["Cache-Control"] = "private, no-cache" if name == "history" else "private, max-age=3600"
    response["X-Content-Type-Options"] = "nosniff"
    return response


@require_GET
@login_required
def result_figure(request: HttpRequest, pk: int, name: str, fmt: str) -> HttpResponse:
    """Figure ``name`` of result ``pk`` as SVG or PNG (``?sort=`` orders the forest plot's studies)."""
    found = _requested(request, pk, known=name in FIGURES and fmt in FORMATS, unknown="No such figure.")
    if isinstance(found, HttpResponse):
        return found
    result, sort = found
    outcome = result.analysis.outcome
    if name == "history":

        def render_history() -> bytes:
            points = history_points(history_results(request.user, result))
            scale = Scale.of(outcome.measure)
            return draw.save(catalog.build_history(points, scale), fmt, catalog.history_alt(points, scale))

        key = history_key(_history_ids(request.user, result))
        return _serve(request, result, name, key, fmt, render_history)
    option, inp = _stored_or_inputs(request, result, name, sort, fmt)
    if inp is None:
        return _serve(request, result, name, option, fmt, _never)
    if name not in catalog.available(inp):
        raise Http404("This result has no such figure.")
    return _serve(
        request,
        result,
        name,
        option,
        fmt,
        lambda: draw.save(catalog.build(inp, name, sort), fmt, catalog.alt_text(inp, name, sort)),
    )


def _never() -> bytes:
    """The render of a rendering found in the store: only needed if it vanished since."""
    raise Http404("The stored figure is being replaced; ask again.")


def csv_bytes(table: catalog.Table) -> bytes:
    """The table as CSV: numbers at full precision; a text cell that a spreadsheet would run as a
    formula (=, +, -, @ first) is quoted with a leading apostrophe."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(table.columns)
    for row in table.rows:
        writer.writerow([_cell(v) for v in row])
    return buf.getvalue().encode()


# Not the analysis export's cell rule (apps.analyses.exports.rows): a figure's table shows the
# numbers as the figure drew them, nan and inf included, where an export leaves such a cell empty.
def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return repr(value)
    return neutralise(value) if isinstance(value, str) else value


@require_GET
@login_required
def result_table(request: HttpRequest, pk: int, name: str) -> HttpResponse:
    """Table ``name`` of result ``pk`` as CSV: the numbers behind a figure, or a table of the page."""
    found = _requested(request, pk, known=name in FIGURES or name in TABLES_ONLY, unknown="No such table.")
    if isinstance(found, HttpResponse):
        return found
    result, sort = found
    if name == "history":
        return _serve(
            request,
            result,
            name,
            history_key(_history_ids(request.user, result)),
            "csv",
            lambda: csv_bytes(catalog.history_table(history_points(history_results(request.user, result)))),
        )
    option, inp = _stored_or_inputs(request, result, name, sort, "csv")
    if inp is None:
        return _serve(request, result, name, option, "csv", _never)
    if name in FIGURES and name not in catalog.available(inp):
        raise Http404("This result has no such table.")
    table = catalog.table(inp, name, sort)
    if name in TABLES_ONLY and not table.rows:
        raise Http404("This result has no such table.")
    return _serve(request, result, name, option, "csv", lambda: csv_bytes(table))
