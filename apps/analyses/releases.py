"""Releases: the steering group publishes named, frozen sets of results to members and API clients.

A release (``2026.1``) freezes, for each analysis it covers, the result that was current when it
was published. It never changes afterwards; a correction is a new release. Members and API clients
read the results of releases whose embargo has ended; the steering group reads everything.

Announcing is separate from publishing because of the embargo: a release becomes readable to
members when its embargo ends, and only then do their webhooks hear of it (``release.published``,
and ``result.changed`` for each result they could not read before). ``releases_announce`` does
that, in the publishing transaction when there is no embargo and from the periodic task
(``workers.tasks.announce_releases``) when there is one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Min
from django.utils import timezone

from apps.analyses.models import Analysis, AnalysisResult, Release, ReleaseResult
from apps.analyses.signals import release_published, result_released
from apps.audit.services import audit_record
from apps.common.text import clean_text
from apps.consortium import roles

#: a name that reads well in a citation and in a URL: "2026.1", "2026-interim", "v3"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
NOTES_MAX = 5_000


@dataclass(frozen=True)
class Skipped:
    """An analysis a release could not freeze, and why (the publisher sees the list)."""

    analysis: Analysis
    reason: str


@dataclass(frozen=True)
class Planned:
    """What a release would hold for one analysis.

    ``result`` is what it freezes: the current result when that has an estimate, else the result
    the latest earlier release froze for the analysis (``kept``), else nothing (left out).
    ``previous`` is that earlier release's result and ``previous_release`` its name, so that the
    publisher sees each estimate before and after. ``reason`` says why the current result is not
    the one frozen ("" when it is).
    """

    analysis: Analysis
    result: AnalysisResult | None
    previous: AnalysisResult | None
    previous_release: str | None
    reason: str

    @property
    def kept(self) -> bool:
        return self.result is not None and self.result.pk != self.analysis.current_result_id


def _not_frozen_reason(current: AnalysisResult | None) -> str:
    """Why an analysis's current result cannot go into a release ("" when it can)."""
    if current is None:
        return "It has no result yet."
    if current.status == AnalysisResult.Status.EMPTY:
        return "No centre has submitted data for it yet."
    if current.status != AnalysisResult.Status.DONE or current.pooled is None:
        message = (current.error or {}).get("message", "") if isinstance(current.error, dict) else ""
        return f"Its current result ({current.pk}) has no estimate. {message}".strip()
    return ""


def release_fields_validate(*, name: Any, notes: Any, embargo_until: Any) -> str:
    """Check a release's name, notes and embargo (before anything is frozen, and before a
    publisher reviews the release); returns the cleaned notes. Raises ``ValidationError`` per field."""
    errors: dict[str, list[str]] = {}
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        errors["name"] = [
            "Give 1-40 letters, digits, dots, hyphens or underscores, starting with a letter or digit "
            "(e.g. 2026.1)."
        ]
    try:
        notes = clean_text(notes or "", field="notes", max_length=NOTES_MAX, multiline=True, blank=True)
    except ValidationError as exc:
        errors["notes"] = exc.messages
    if embargo_until is not None and embargo_until <= timezone.now():
        errors["embargo_until"] = ["An embargo ends in the future; leave it out to publish now."]
    if errors:
        raise ValidationError(errors)
    return str(notes)


def release_plan(*, analyses: Any) -> list[Planned]:
    """For each analysis of the queryset ``analyses`` (``select_related("current_result",
    "outcome")``), what a release published now would hold, in analysis order. A release never
    holds a result without an estimate: an analysis whose current result failed keeps the result
    its latest earlier release froze, or is left out when none did."""
    chosen = list(analyses.order_by("pk"))
    earlier: dict[int, ReleaseResult] = {}
    for entry in (
        ReleaseResult.objects.filter(analysis__in=[a.pk for a in chosen])
        .select_related("result", "release")
        .order_by("analysis_id", "-release__published_at", "-release_id")
    ):
        earlier.setdefault(entry.analysis_id, entry)
    plan = []
    for analysis in chosen:
        before = earlier.get(analysis.pk)
        previous, previous_release = None, None
        # frozen before results without an estimate were refused: not one to keep
        if before is not None and before.result.status == AnalysisResult.Status.DONE and before.result.pooled:
            previous, previous_release = before.result, before.release.name
        reason = _not_frozen_reason(analysis.current_result)
        result = analysis.current_result if not reason else previous
        if reason and previous is not None:
            reason = f"{reason} The release keeps result {previous.pk} from release {previous_release}."
        plan.append(
            Planned(
                analysis=analysis,
                result=result,
                previous=previous,
                previous_release=previous_release,
                reason=reason,
            )
        )
    return plan


def release_publish(
    *,
    actor: Any,
    name: str,
    notes: str = "",
    embargo_until: Any = None,
    analyses: list[int] | None = None,
    expected: dict[int, int | None] | None = None,
) -> tuple[Release, list[Skipped]]:
    """Publish a release that freezes, for each analysis (every analysis when ``analyses`` is
    None), what :func:`release_plan` says: its current result with an estimate, else the one its
    latest earlier release froze. Analyses with neither are left out and returned as ``Skipped``
    with the reason; the reason of each kept result is stored with it.

    ``expected`` (analysis id -> result id or None), when given, is the plan the publisher
    reviewed: if a recompute has changed it since, nothing is published.

    One transaction: the analyses are locked while their current results are read, so a recompute
    that finishes meanwhile waits and cannot swap a result under the release.
    """
    notes = release_fields_validate(name=name, notes=notes, embargo_until=embargo_until)
    with transaction.atomic():
        # re-checked here, not only in the view: the service is the one door to publishing
        if not roles.is_steering(actor):
            raise PermissionDenied("Only the steering group publishes releases.")
        chosen = Analysis.objects.select_for_update(of=("self",)).select_related("current_result", "outcome")
        if analyses is not None:
            chosen = chosen.filter(pk__in=analyses)
            missing = set(analyses) - set(chosen.values_list("pk", flat=True))
            if missing:
                raise ValidationError({"analyses": [f"No analysis with id {sorted(missing)[0]}."]})
        plan = release_plan(analyses=chosen)
        if expected is not None and expected != plan_key(plan):
            raise ValidationError(
                {"release": ["The results changed since you reviewed them; review the release again."]}
            )
        frozen = [p for p in plan if p.result is not None]
        skipped = [Skipped(p.analysis, p.reason) for p in plan if p.result is None]
        if not frozen:
            raise ValidationError({"analyses": ["None of these analyses has a result with an estimate."]})
        try:
            with transaction.atomic():
                release = Release.objects.create(
                    name=name, notes=notes, embargo_until=embargo_until, published_by=actor
                )
        except IntegrityError:
            raise ValidationError(
                {"name": [f"A release named {name!r} exists; releases never change, so choose a new name."]}
            ) from None
        ReleaseResult.objects.bulk_create(
            ReleaseResult(release=release, analysis=p.analysis, result=p.result, note=p.reason)
            for p in frozen
        )
        audit_record(
            actor=actor,
            action="release.publish",
            obj=release,
            after={
                "name": name,
                "embargo_until": embargo_until.isoformat() if embargo_until else None,
                "results": {str(p.analysis.pk): p.result.pk for p in frozen if p.result is not None},
                "kept": {str(p.analysis.pk): p.reason for p in frozen if p.reason},
                "skipped": {str(s.analysis.pk): s.reason for s in skipped},
            },
        )
        if release.is_readable:
            releases_announce(release_ids=[release.pk])
    return release, skipped


def plan_key(plan: list[Planned]) -> dict[int, int | None]:
    """The part of a plan a publisher reviews and confirms: which result each analysis gets."""
    return {p.analysis.pk: (p.result.pk if p.result is not None else None) for p in plan}


def releases_announce(*, release_ids: list[int] | None = None) -> int:
    """Announce every readable release not yet announced (or those of ``release_ids``): mark it,
    then send ``result_released`` for each of its results that no earlier announced release held
    (members could not read it before) and ``release_published``. Returns how many were announced.

    The mark is a conditional ``UPDATE`` whose row count is checked, so two callers (the beat task
    on two machines) never announce one release twice; the signals' receivers record webhook
    deliveries in this transaction, so the mark and the deliveries commit together.
    """
    now = timezone.now()
    pending = Release.objects.readable(now).filter(announced_at__isnull=True)
    if release_ids is not None:
        pending = pending.filter(pk__in=release_ids)
    announced = 0
    for release in pending.order_by("published_at", "pk"):
        with transaction.atomic():
            if not Release.objects.filter(pk=release.pk, announced_at__isnull=True).update(announced_at=now):
                continue
            earlier = ReleaseResult.objects.filter(release__announced_at__isnull=False).exclude(
                release=release
            )
            new = (
                AnalysisResult.objects.filter(release_entries__release=release)
                .exclude(pk__in=earlier.values("result_id"))
                .order_by("pk")
            )
            for result in new:
                result_released.send(sender=AnalysisResult, result=result)
            release.announced_at = now
            release_published.send(sender=Release, release=release)
            announced += 1
    return announced


def seconds_to_next_embargo_end() -> float:
    """How long what members may read stays as it is, as far as time goes: the seconds until the
    next embargo ends (infinity when none is pending). Caches of released results expire then."""
    now = timezone.now()
    ends = Release.objects.filter(embargo_until__gt=now).aggregate(first=Min("embargo_until"))["first"]
    return float("inf") if ends is None else max(0.0, (ends - now).total_seconds())
