"""Live updates: what an open page needs to know to refresh itself when a recompute moves on.

``GET /live/`` answers, for every analysis the person may see, its recompute state, the result the
portal shows them (and a failure shown beside it), the releases holding that result, and a
fingerprint of all of these. The answer carries an ETag: a page that polls with ``If-None-Match``
gets a bodiless 304 while nothing it may see has changed. ``live.js`` compares the fingerprints
and refreshes only the regions of the page that show an analysis whose fingerprint moved.

Polling, not server-sent events. The web tier runs gunicorn's synchronous workers behind nginx's
buffering proxy: an event stream would hold a whole worker (and an nginx buffer) per open tab, so
a few dozen open dashboards would starve the site, and nginx would hold the events back. A
conditional GET every five seconds is one short request that nginx and gunicorn handle like any
other, answered with 304 almost always; a recompute takes longer than that anyway.

The answer is what the dashboard itself would show, so it tells a member nothing the dashboard
does not: the results are picked by ``apps.analyses.selectors.results_shown``, as the dashboard's
are (an unreleased result changes neither a
member's result id nor their fingerprint). The poll never renews the session: an open tab must
not keep its session alive past the idle timeout (see ``apps.portal.session_middleware``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.http import parse_etags, quote_etag

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.selectors import release_names, results_shown
from apps.api.throttling import LiveRateThrottle
from apps.portal.session_middleware import idle_seconds_left, mark_passive

#: how many analyses one request may name in ``?analysis=``
_MAX_NAMED = 200


def analysis_label(analysis: Analysis) -> str:
    """How a status line names an analysis: its outcome, and its own name unless it is the default."""
    if analysis.is_default:
        return analysis.outcome.name
    return f"{analysis.outcome.name} ({analysis.name})"


def live_states(*, user: Any, analysis_ids: list[int] | None = None) -> list[dict[str, Any]]:
    """For each analysis ``user`` may see: state, shown result, failure, releases and fingerprint.

    Two queries whatever the number of analyses, reading only ids, sequence numbers and statuses
    (never a result's blocks): an open tab asks every few seconds.
    """
    picked = results_shown(user=user, analysis_ids=analysis_ids)
    ids = {pk for _, shown, failed in picked for pk in (shown, failed) if pk is not None}
    seqs, statuses = {}, {}
    for pk, seq, status in (
        AnalysisResult.objects.filter(pk__in=ids).order_by().values_list("pk", "seq", "status")
    ):
        seqs[pk], statuses[pk] = seq, status
    releases = release_names(user=user, result_ids=[shown for _, shown, _ in picked if shown is not None])
    states = []
    for analysis, shown, failed in picked:
        state = analysis.progress
        if state == "current":
            if failed is not None:
                state = "waiting" if statuses.get(failed) == AnalysisResult.Status.EMPTY else "failed"
            else:
                state = "done" if shown is not None else "idle"
        entry: dict[str, Any] = {
            "id": analysis.pk,
            "outcome": analysis.outcome.code,
            "label": analysis_label(analysis),
            "default": analysis.is_default,
            "state": state,
            "result": {"id": shown, "seq": seqs[shown]} if shown is not None else None,
            "failed": {"id": failed, "seq": seqs[failed]} if failed is not None else None,
            "releases": releases.get(shown, []) if shown is not None else [],
        }
        entry["fingerprint"] = _digest(entry)[:16]
        states.append(entry)
    return states


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def _refuse(status: int, message: str) -> JsonResponse:
    response = JsonResponse({"detail": message}, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _named_analyses(raw: str) -> list[int] | None:
    """``?analysis=3,7``: only these analyses (None: all). Raises ValueError with the reason."""
    if not raw:
        return None
    parts = [p.strip() for p in raw.split(",") if p.strip()]
    if len(parts) > _MAX_NAMED:
        raise ValueError(f"Name at most {_MAX_NAMED} analyses.")
    try:
        ids = [int(p) for p in parts]
    except ValueError:
        raise ValueError("analysis must be a comma-separated list of analysis ids, such as 3,7.") from None
    if any(i < 1 or i > 2**63 - 1 for i in ids):
        raise ValueError("An analysis id is a positive whole number.")
    return ids


def live(request: HttpRequest) -> HttpResponse:
    """The live state of the analyses the signed-in person may see (see the module's docstring).

    ``?analysis=3,7`` limits the answer to those analyses. ``?renew=1`` counts the request as the
    person's activity (the idle-timeout warning's "Stay signed in"); every other call leaves the
    session's idle timer alone. ``X-Idle-Seconds-Left`` says how long the session has left.
    """
    if request.method not in ("GET", "HEAD"):
        refused = _refuse(405, "Live updates are read with GET.")
        refused["Allow"] = "GET, HEAD"
        return refused
    renew = request.GET.get("renew", "")
    if renew not in ("", "0", "1"):
        return _refuse(400, "renew must be 1 (count this request as activity) or left out.")
    if renew != "1":
        mark_passive(request)
    if not request.user.is_authenticated:
        return _refuse(401, "Sign in to follow live updates.")
    throttle = LiveRateThrottle()
    if not throttle.allow_request(request, None):
        wait = int(throttle.wait() or 1)
        refused = _refuse(429, f"Too many live-update requests; ask again in {wait} s.")
        refused["Retry-After"] = str(wait)
        return refused
    try:
        named = _named_analyses(request.GET.get("analysis", ""))
    except ValueError as exc:
        return _refuse(400, str(exc))
    states = live_states(user=request.user, analysis_ids=named)
    body = {"analyses": states}
    etag = quote_etag(_digest(body)[:32])
    # a renewing request is itself the activity: the whole timeout lies ahead again
    left = settings.SESSION_COOKIE_AGE if renew == "1" else idle_seconds_left(request)
    asked = {tag.removeprefix("W/") for tag in parse_etags(request.headers.get("If-None-Match", ""))}
    if etag in asked or "*" in asked:
        response: HttpResponse = HttpResponse(status=304)
    else:
        response = JsonResponse(body)
    response["ETag"] = etag
    # Each person's answer is their own, and is revalidated on every poll.
    response["Cache-Control"] = "private, no-cache"
    response["Vary"] = "Cookie"
    if left is not None:
        response["X-Idle-Seconds-Left"] = str(left)
    return response
