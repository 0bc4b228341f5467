"""The dashboard: every outcome's pooled estimate from its default analysis, what changed since the
person's last visit, datasets and releases."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone

from apps.analyses.models import Analysis, AnalysisResult, OutboxEvent, Release
from apps.analyses.selectors import analysis_results_shown, release_names
from apps.audit.models import AuditEvent
from apps.consortium import roles
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.selectors import with_shown_versions
from apps.portal.models import PortalVisit
from apps.portal.scale import favours, headline, labels_of, level_of, measure_title, ratio_of, regression_of
from apps.portal.session_middleware import is_passive
from apps.portal.views_live import live_states

#: the session key that pins "since your last visit" for one sign-in (see ``_changes_baseline``)
_BASELINE_KEY = "portal_changes_since"
#: at most this many items of each kind in the panel; the rest are counted
_CHANGES_SHOWN = 8


def home(request: HttpRequest) -> HttpResponse:
    """The dashboard: every outcome's pooled estimate from its default analysis."""
    if not request.user.is_authenticated:
        return render(request, "portal/welcome.html")
    user = request.user
    is_steering = roles.is_steering(user)
    cards: list[dict[str, Any]] = []
    for analysis in Analysis.objects.visible_to(user).filter(is_default=True).select_related("outcome"):
        result, failed = analysis_results_shown(user=user, analysis=analysis)
        pooled = result.pooled if result else None
        regression = regression_of(result) if result else None
        cards.append(
            {
                "analysis": analysis,
                "outcome": analysis.outcome,
                "result": result,
                "failed": failed,
                "pooled": pooled,
                "ratio": None if regression else ratio_of(analysis.outcome.measure, pooled),
                "favours": "– (meta-regression)"
                if regression
                else favours(labels_of(result)["direction"], pooled)
                if result
                else "–",
                "headline": headline(result) if result else None,
                "measure_title": measure_title(analysis.outcome),
                # a meta-regression has no pooled effect: its headline number is the intercept
                "regression": regression,
                "level": level_of(result) if result else "95%",
            }
        )
    releases = release_names(user=user, result_ids=[c["result"].pk for c in cards if c["result"]])
    for card in cards:
        card["releases"] = releases.get(card["result"].pk, []) if card["result"] else []
    if is_steering:
        _add_review_columns(cards)
    since = _changes_baseline(request)
    return render(
        request,
        "portal/home.html",
        {
            "cards": cards,
            "is_steering": is_steering,
            "since": since,
            "changes": changes_since(user=user, since=since, cards=cards) if since else None,
            # what the page shows, for live.js to compare its first poll with (a recompute that
            # finishes between this render and that poll still refreshes the page)
            "live_known": json.dumps(live_states(user=user)),
            "releases": Release.objects.visible_to(user).select_related("published_by")[:5],
            "datasets": with_shown_versions(
                Dataset.objects.visible_to(user).select_related("centre", "outcome", "current_version"),
                user,
            ),
        },
    )


# --- since your last visit -----------------------------------------------------------------------


def _changes_baseline(request: HttpRequest) -> datetime | None:
    """The time "since your last visit" counts from, or None on a first visit; records this visit.

    The last visit is kept per person in ``PortalVisit``, so it survives signing out. Within one
    sign-in the baseline stays where it was when the dashboard was first shown (kept in the
    session): coming back from an outcome page does not empty the panel. A page's own refresh of
    its live regions reads the baseline but records no visit.
    """
    user = request.user
    assert user.is_authenticated
    pinned = request.session.get(_BASELINE_KEY)
    if pinned is None:
        last = PortalVisit.objects.filter(user=user).values_list("seen_at", flat=True).first()
        pinned = last.isoformat() if last else ""
        if not is_passive(request):
            request.session[_BASELINE_KEY] = pinned
    if not is_passive(request):
        PortalVisit.objects.update_or_create(user=user, defaults={"seen_at": timezone.now()})
    return datetime.fromisoformat(pinned) if pinned else None


def changes_since(*, user: Any, since: datetime, cards: list[dict[str, Any]]) -> dict[str, Any]:
    """What changed since ``since`` that ``user`` may see, each kind newest first.

    Each list starts from the model's ``visible_to``: a member hears of a result when a release
    makes it readable to them (and of the release itself), of dataset versions and withdrawals of
    the datasets they may read, and of no failed recompute (failures are never released).
    """
    seen_then = AnalysisResult.objects.visible_to(user, at=since)
    results = []
    for card in cards:
        after = card["result"]
        if after is None or seen_then.filter(pk=after.pk).exists():
            continue
        before = (
            seen_then.filter(analysis=card["analysis"], status=AnalysisResult.Status.DONE)
            .order_by("-seq")
            .first()
        )
        results.append(
            {
                "card": card,
                "after": after,
                "after_estimate": _estimate(card["outcome"], after),
                "before": before,
                "before_estimate": _estimate(card["outcome"], before) if before else None,
            }
        )
    versions = (
        DatasetVersion.objects.visible_to(user)
        .filter(submitted_at__gt=since)
        .select_related("dataset__centre", "dataset__outcome")
        .order_by("-submitted_at", "-id")
    )
    visible_datasets = Dataset.objects.visible_to(user)
    withdrawals = (
        AuditEvent.objects.filter(
            action="dataset.status",
            object_type="datasets.dataset",
            at__gt=since,
            after__status=Dataset.Status.WITHDRAWN,
            object_id__in=[str(pk) for pk in visible_datasets.values_list("pk", flat=True)],
        )
        .order_by("-at", "-id")
        .values("object_id", "at", "actor_username", "after")
    )
    withdrawn_rows = list(withdrawals[:_CHANGES_SHOWN])
    datasets = visible_datasets.select_related("centre", "outcome").in_bulk(
        [int(w["object_id"]) for w in withdrawn_rows]
    )
    withdrawn = [
        {
            "dataset": datasets.get(int(w["object_id"])),
            "at": w["at"],
            "by": w["actor_username"],
            "reason": (w["after"] or {}).get("reason", ""),
        }
        for w in withdrawn_rows
    ]
    # new to the reader: visible now, not then (published since, or out of embargo since)
    new_releases = (
        Release.objects.visible_to(user)
        .exclude(pk__in=Release.objects.visible_to(user, at=since).values("pk"))
        .select_related("published_by")
    )
    failures = (
        AnalysisResult.objects.visible_to(user)
        .filter(status__in=[AnalysisResult.Status.FAILED, AnalysisResult.Status.EMPTY], created_at__gt=since)
        .select_related("analysis__outcome")
        .order_by("-created_at", "-id")
    )
    changes = {
        "results": results,
        "versions": list(versions[:_CHANGES_SHOWN]),
        "versions_more": max(0, versions.count() - _CHANGES_SHOWN),
        "withdrawn": withdrawn,
        "withdrawn_more": max(0, withdrawals.count() - _CHANGES_SHOWN),
        "releases": list(new_releases.order_by("-published_at", "-id")[:_CHANGES_SHOWN]),
        "failures": list(failures[:_CHANGES_SHOWN]),
        "failures_more": max(0, failures.count() - _CHANGES_SHOWN),
    }
    changes["any"] = any(changes[k] for k in ("results", "versions", "withdrawn", "releases", "failures"))
    return changes


def _estimate(outcome: Any, result: Any) -> dict[str, Any] | None:
    """A result's pooled estimate on the outcome's own scale (a ratio, not its log), with its label;
    None for a result without one (no model, or a meta-regression, whose headline is its intercept)."""
    pooled = result.pooled
    if not pooled or pooled.get("estimate") is None or regression_of(result) is not None:
        return None
    ratio = ratio_of(outcome.measure, pooled)
    if ratio:
        return {"label": ratio["label"], "value": ratio["estimate"]}
    return {"label": outcome.measure, "value": pooled["estimate"]}


# --- the steering group's review table ----------------------------------------------------------


def _add_review_columns(cards: list[dict[str, Any]]) -> None:
    """N (participants) and the last change of each card's analysis, for the review table."""
    results = [c["result"] for c in cards if c["result"] is not None]
    version_rows = _version_rows(results)
    requested = dict(
        OutboxEvent.objects.filter(analysis__in=[c["analysis"] for c in cards])
        .values("analysis_id")
        .annotate(at=Max("created_at"))
        .values_list("analysis_id", "at")
    )
    for card in cards:
        result = card["result"]
        card["n"], card["n_note"] = participants(result, version_rows) if result else (None, "")
        card["last_change"] = last_change(card, requested.get(card["analysis"].pk))


def _version_rows(results: list[AnalysisResult]) -> dict[int, list[dict[str, Any]]]:
    """The rows of every dataset version the results cite, in one query."""
    ids = {p["version"] for r in results for p in r.dataset_versions if "version" in p}
    return dict(DatasetVersion.objects.filter(pk__in=ids).values_list("pk", "rows"))


#: how one row gives its participants, in the order tried: two groups, one group, a 2x2 table
_SIZE_COLUMNS: tuple[tuple[str, ...], ...] = (("n1i", "n2i"), ("ni",), ("ai", "bi", "ci", "di"))


def _row_size(row: dict[str, Any]) -> int | None:
    for names in _SIZE_COLUMNS:
        values = [row.get(name) for name in names]
        if all(v not in (None, "") for v in values):
            try:
                return int(sum(float(v) for v in values if v is not None))
            except (TypeError, ValueError):
                return None
    return None


def participants(
    result: AnalysisResult, version_rows: dict[int, list[dict[str, Any]]]
) -> tuple[int | None, str]:
    """The participants in a result: for each study in the model, its largest sample among its
    rows (a study's rows on other instruments or time points are the same people), summed.

    The sizes come from the result's ``effect_sizes`` block when it carries sample-size columns,
    and otherwise from the dataset versions the result cites, whose rows are its input in order.
    Returns ``(None, why)`` when some study in the model has no sample size (its rows give
    ``yi``/``vi`` or person-time only) or the input cannot be matched to the result.
    """
    block = result.blocks.get("effect_sizes") or {}
    in_model = block.get("in_model") or []
    labels = result.studies or block.get("study") or []
    if not in_model or len(labels) != len(in_model):
        return None, "This result has no model, so no participants to count."
    carried = [name for names in _SIZE_COLUMNS for name in names if name in block]
    if carried:
        rows = [{name: block[name][i] for name in carried} for i in range(len(in_model))]
    else:
        rows = [row for p in result.dataset_versions for row in version_rows.get(p.get("version"), [])]
    if len(rows) != len(in_model):
        return None, "The result's input rows are no longer available to count participants."
    largest: dict[str, int | None] = {}
    for row, label, used in zip(rows, labels, in_model, strict=True):
        if not used:
            continue
        size = _row_size(row)
        known = largest.get(label)
        largest[label] = size if known is None else max(known, size or 0)
    missing = sum(1 for size in largest.values() if size is None)
    if missing:
        return None, (
            f"{missing} of the {len(largest)} studies in the model give no sample sizes "
            "(their rows give an effect and its variance only), so N is unknown."
        )
    return sum(v for v in largest.values() if v is not None), (
        f"Participants in the {len(largest)} studies in the model: each study's largest sample "
        "(n1i + n2i, ni, or the 2x2 table) among its rows, counted once."
    )


def last_change(card: dict[str, Any], requested_at: datetime | None) -> dict[str, Any] | None:
    """The newest thing that happened to the card's analysis: a recompute requested (its input or
    settings changed), started, stored or failed."""
    analysis = card["analysis"]
    events = [
        (requested_at, "recompute requested"),
        (analysis.running_since, "recompute started"),
    ]
    if card["result"] is not None:
        events.append((card["result"].finished_at, f"result {card['result'].pk} stored"))
    if card["failed"] is not None:
        events.append((card["failed"].finished_at, "recompute failed"))
    known = [(at, what) for at, what in events if at is not None]
    if not known:
        return None
    at, what = max(known, key=lambda e: e[0])
    return {"at": at, "what": what}
