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
from apps.consortium import roles
from apps.consortium.validators import clean_text

#: a name that reads well in a citation and in a URL: "2026.1", "2026-interim", "v3"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
NOTES_MAX = 5_000


@dataclass(frozen=True)
class Skipped:
    """An analysis a release could not freeze, and why (the publisher sees the list)."""

    analysis: Analysis
    reason: str


def release_publish(
    *,
    actor: Any,
    name: str,
    notes: str = "",
    embargo_until: Any = None,
    analyses: list[int] | None = None,
) -> tuple[Release, list[Skipped]]:
    """Publish a release that freezes the current successful result of each analysis (of every
    analysis when ``analyses`` is None). Analyses without one (never computed, or whose current
    result failed) are left out and returned as ``Skipped`` with the reason.

    One transaction: the analyses are locked while their current results are read, so a recompute
    that finishes meanwhile waits and cannot swap a result under the release.
    """
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
        frozen: list[tuple[Analysis, AnalysisResult]] = []
        skipped: list[Skipped] = []
        for analysis in chosen.order_by("pk"):
            current = analysis.current_result
            if current is None:
                skipped.append(Skipped(analysis, "It has no result yet."))
            elif current.status != AnalysisResult.Status.DONE:
                message = (current.error or {}).get("message", "") if isinstance(current.error, dict) else ""
                skipped.append(Skipped(analysis, f"Its current result failed. {message}".strip()))
            else:
                frozen.append((analysis, current))
        if not frozen:
            raise ValidationError({"analyses": ["None of these analyses has a successful current result."]})
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
            ReleaseResult(release=release, analysis=analysis, result=result) for analysis, result in frozen
        )
        audit_record(
            actor=actor,
            action="release.publish",
            obj=release,
            after={
                "name": name,
                "embargo_until": embargo_until.isoformat() if embargo_until else None,
                "results": {str(a.pk): r.pk for a, r in frozen},
                "skipped": {str(s.analysis.pk): s.reason for s in skipped},
            },
        )
        if release.is_readable:
            releases_announce(release_ids=[release.pk])
    return release, skipped


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
