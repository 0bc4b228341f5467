"""Reading the audit trail: what each reader may see of an event, and what its object is called.

The trail records everything, but a reader sees each event as the rest of the platform would
show its object: a dataset version that another centre never submitted (a draft, or a revision
still waiting) stays with that centre, so the steering group sees that a version was stored and
not who stored it, why, how many rows it held or its checksum (``DatasetVersion.visible_to``'s
rule). Events name their objects by what they are ("Analysis 'Primary analysis' of Postnatal
depression"), not by table and id.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from apps.audit.models import AuditEvent

#: events that describe one dataset version by its number (``after["version"]``)
VERSION_ACTIONS = ("dataset.version_create", "dataset.version_restore")
#: what a reader sees instead of the details of a version that is not theirs to read
WITHHELD = (
    "a version the centre has not submitted: its author, reason, size and checksum stay with the centre"
)


@dataclass(frozen=True)
class ShownEvent:
    """An event as one reader sees it."""

    event: AuditEvent
    actor: str
    before: Any
    after: Any
    withheld: bool


def audit_events_shown(*, user: Any, events: list[AuditEvent]) -> list[ShownEvent]:
    """``events`` as ``user`` may see them: version events of versions the user may not read
    keep their time, action, object and version number, and lose the rest."""
    from apps.datasets.models import DatasetVersion

    wanted: dict[int, set[Any]] = defaultdict(set)
    for e in events:
        if e.action in VERSION_ACTIONS and isinstance(e.after, dict) and str(e.object_id).isdigit():
            wanted[int(e.object_id)].add(e.after.get("version"))
    readable: set[tuple[int, Any]] = set()
    if wanted:
        readable = set(
            DatasetVersion.objects.visible_to(user)
            .filter(dataset_id__in=list(wanted))
            .values_list("dataset_id", "number")
        )
    shown = []
    for e in events:
        hidden = (
            e.action in VERSION_ACTIONS
            and isinstance(e.after, dict)
            and str(e.object_id).isdigit()
            and (int(e.object_id), e.after.get("version")) not in readable
        )
        if hidden:
            number = e.after.get("version") if isinstance(e.after, dict) else None
            shown.append(ShownEvent(e, "", None, {"version": number, "note": WITHHELD}, withheld=True))
        else:
            shown.append(ShownEvent(e, e.actor_username, e.before, e.after, withheld=False))
    return shown


def audit_object_names(events: list[AuditEvent]) -> dict[tuple[str, str], str]:
    """What each event's object is, in words, for the objects that still exist (a deleted one
    keeps its table and id)."""
    from django.contrib.auth.models import User

    from apps.analyses.models import Analysis, Release
    from apps.consortium.models import Centre, Outcome
    from apps.datasets.models import Dataset

    ids: dict[str, set[int]] = defaultdict(set)
    for e in events:
        if str(e.object_id).isdigit():
            ids[e.object_type].add(int(e.object_id))
    names: dict[tuple[str, str], str] = {}

    def named(object_type: str, queryset: Any, describe: Any) -> None:
        for obj in queryset.filter(pk__in=ids.get(object_type, ())):
            names[(object_type, str(obj.pk))] = describe(obj)

    named(
        "analyses.analysis",
        Analysis.objects.select_related("outcome"),
        lambda a: f"Analysis {a.name!r} of {a.outcome.name}",
    )
    named("analyses.release", Release.objects.all(), lambda r: f"Release {r.name}")
    named(
        "datasets.dataset",
        Dataset.objects.select_related("centre", "outcome"),
        lambda d: f"{d.centre.name}'s {d.outcome.name} data",
    )
    named("consortium.outcome", Outcome.objects.all(), lambda o: f"Outcome {o.name!r}")
    named("consortium.centre", Centre.objects.all(), lambda c: f"Centre {c.name}")
    named("auth.user", User.objects.all(), lambda u: f"Account {u.username}")
    return names


def changed_only(before: Any, after: Any) -> tuple[Any, Any]:
    """An update's record reduced to what changed: the keys whose values differ, before and
    after (a reason, which has no before, stays with the after)."""
    if not (isinstance(before, dict) and isinstance(after, dict)):
        return before, after
    keys = [k for k in after if k in before and before[k] != after[k]]
    extra = [k for k in after if k not in before]
    gone = [k for k in before if k not in after]
    return {k: before[k] for k in (*keys, *gone)}, {k: after[k] for k in (*keys, *extra)}
