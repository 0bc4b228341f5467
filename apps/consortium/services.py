"""Writes on the consortium model: memberships (permission grants follow them, always in one
transaction) and the data dictionary (validated, audited, recomputed, whoever makes the change)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from guardian.shortcuts import assign_perm, remove_perm

from apps.audit.services import audit_record
from apps.common.text import FieldChecks, clean_name_list, clean_text
from apps.consortium import roles, signals
from apps.consortium.models import MEASURE_CHOICES, MODERATOR_NAME, OUTCOME_CODE, Centre, Membership, Outcome
from workers.metaanalysis.spec import LATEST
from workers.metaanalysis.tables import header_key

if TYPE_CHECKING:
    from django.contrib.auth.models import User

_ROLE_PERMS = {
    Membership.Role.DATA_MANAGER: ("consortium.view_centre_data", "consortium.change_centre_data"),
    Membership.Role.MEMBER: ("consortium.view_centre_data",),
}


def _sync_perms(user: User, centre: Centre, role: str | None) -> None:
    wanted = set(_ROLE_PERMS.get(role, ())) if role else set()  # type: ignore[call-overload]
    for perm in ("consortium.view_centre_data", "consortium.change_centre_data"):
        if perm in wanted:
            assign_perm(perm, user, centre)
        else:
            remove_perm(perm, user, centre)


@transaction.atomic
def membership_set(*, actor: User | None, user: User, centre: Centre, role: str) -> Membership:
    """Give ``user`` the ``role`` in ``centre`` (creating or changing the membership) and grant its permissions."""
    if role not in Membership.Role.values:
        raise ValueError(f"Unknown role {role!r}.")
    membership = Membership.objects.filter(user=user, centre=centre).first()
    before = {"role": membership.role} if membership else None
    if membership is None:
        membership = Membership.objects.create(user=user, centre=centre, role=role)
    elif membership.role != role:
        membership.role = role
        membership.save(update_fields=["role"])
    _sync_perms(user, centre, role)
    if before != {"role": role}:
        audit_record(
            actor=actor,
            action="membership.set",
            obj=membership,
            centre=centre,
            before=before,
            after={"user": user.username, "centre": centre.code, "role": role},
        )
    return membership


@transaction.atomic
def membership_remove(*, actor: User | None, membership: Membership) -> None:
    """End a membership and revoke the object permissions it granted."""
    user, centre, role = membership.user, membership.centre, membership.role
    membership.delete()
    _sync_perms(user, centre, None)
    audit_record(
        actor=actor,
        action="membership.remove",
        obj=None,
        object_type="consortium.membership",
        object_id=str(membership.pk),
        centre=centre,
        before={"user": user.username, "centre": centre.code, "role": role},
        after=None,
    )


# --- the data dictionary ----------------------------------------------------------------------

OUTCOME_FIELDS = (
    "code",
    "name",
    "description",
    "measure",
    "direction",
    "instruments",
    "timepoints",
    "moderators",
    "instrument_scales",
)
_MAX_MODERATORS = 50


def outcome_snapshot(outcome: Outcome) -> dict[str, Any]:
    """The outcome's dictionary entry as the audit trail records it."""
    return {f: getattr(outcome, f) for f in OUTCOME_FIELDS}


def outcome_validate(*, outcome: Outcome | None, data: dict[str, Any]) -> dict[str, Any]:
    """The complete, cleaned entry that ``data`` (all fields, or changes to ``outcome``) would give.

    Raises ``ValidationError`` with a message per field. Shared by the API, the portal and the
    admin, so that one set of rules guards every way in.
    """
    current = outcome_snapshot(outcome) if outcome is not None else {}
    merged = {**current, **{k: v for k, v in data.items() if k in OUTCOME_FIELDS}}
    checks = FieldChecks(merged)

    def code(value: Any) -> str:
        text = clean_text(value, field="The code", max_length=40)
        if not OUTCOME_CODE.fullmatch(text):
            raise ValidationError("The code uses lower-case letters, digits, '-' and '_' only.")
        if outcome is not None and text != outcome.code:
            raise ValidationError("The code identifies the outcome in uploads and links; it cannot change.")
        if outcome is None and Outcome.objects.filter(code=text).exists():
            raise ValidationError(f"There is already an outcome {text!r}.")
        return text

    def measure(value: Any) -> str:
        if value not in dict(MEASURE_CHOICES):
            raise ValidationError(f"Choose one of {', '.join(dict(MEASURE_CHOICES))}.")
        if outcome is not None and value != outcome.measure and outcome.datasets.exists():
            raise ValidationError(
                "This outcome already has datasets; its effect measure cannot change. Create a new outcome."
            )
        return str(value)

    def direction(value: Any) -> str:
        if value not in Outcome.Direction.values:
            raise ValidationError(f"Choose one of {', '.join(Outcome.Direction.values)}.")
        return str(value)

    def moderators(value: Any) -> list[dict[str, str]]:
        value = [] if value is None else value
        if not isinstance(value, list) or len(value) > _MAX_MODERATORS:
            raise ValidationError(
                f"Moderators are a list of at most {_MAX_MODERATORS} {{name, kind}} entries."
            )
        result: list[dict[str, str]] = []
        keys: dict[str, str] = {}
        for item in value:
            if not isinstance(item, dict) or set(item) - {"name", "kind"} or "name" not in item:
                raise ValidationError('Each moderator is {"name": ..., "kind": "numeric" or "categorical"}.')
            name = clean_text(item["name"], field="A moderator's name", max_length=40)
            if not MODERATOR_NAME.fullmatch(name):
                raise ValidationError(
                    f"Moderator {name!r}: use a lower-case column name (letters, digits and '_', "
                    "starting with a letter), as it appears in upload headers."
                )
            kind = item.get("kind", "categorical")
            if kind not in ("numeric", "categorical"):
                raise ValidationError(f"Moderator {name!r}: kind is numeric or categorical.")
            key = header_key(name)
            if key in keys:
                raise ValidationError(f"Moderators {keys[key]!r} and {name!r} would read the same column.")
            keys[key] = name
            result.append({"name": name, "kind": kind})
        if outcome is not None:
            kept = {m["name"] for m in result}
            for analysis in outcome.analyses.all():
                used = ({*analysis.mods} | {analysis.subgroup, analysis.cumulative_order}) - {
                    "",
                    None,
                    "year",
                }
                if used - kept:
                    raise ValidationError(
                        f"Analysis {analysis.name!r} uses {', '.join(sorted(used - kept))}: change the analysis first."
                    )
        return result

    checks.check("code", code)
    checks.check("name", lambda v: clean_text(v, field="The name", max_length=200))
    checks.check(
        "description",
        lambda v: clean_text(v or "", field="The description", max_length=5000, multiline=True, blank=True),
    )
    checks.check("measure", measure)
    checks.check("direction", lambda v: direction(v or Outcome.Direction.HIGHER_IS_BETTER))

    def vocabulary(field: str, label: str, used_by: Any) -> Any:
        """The instruments or time points: each analysis of the outcome must still find its own
        there (an analysis reading a removed one would leave every row out)."""

        def fn(value: Any) -> list[str]:
            names = clean_name_list(value or [], field=f"The {label}")
            if outcome is not None:
                for analysis in outcome.analyses.all():
                    missing = [n for n in used_by(analysis, names) if n not in names]
                    if missing:
                        raise ValidationError(
                            f"Analysis {analysis.name!r} of {outcome.name} uses {label[:-1]} "
                            f"{', '.join(map(repr, missing))}: change the analysis first."
                        )
            return names

        return fn

    def timepoints_used(analysis: Any, names: list[str]) -> list[str]:
        if analysis.timepoint == LATEST and not names:
            raise ValidationError(
                f"Analysis {analysis.name!r} keeps each study's latest time point, which needs the time "
                "points in order: change the analysis first."
            )
        return [analysis.timepoint] if analysis.timepoint and analysis.timepoint != LATEST else []

    checks.check(
        "instruments",
        vocabulary("instruments", "instruments", lambda a, names: list(a.instruments) if names else []),
    )
    checks.check("timepoints", vocabulary("timepoints", "time points", timepoints_used))
    checks.check("moderators", moderators)

    def instrument_scales(value: Any) -> dict[str, dict[str, Any]]:
        """Per instrument its direction (which end of its scale is better) and the range of its
        scores; each must be an instrument of the outcome (when it lists them)."""
        value = {} if value is None else value
        if not isinstance(value, dict):
            raise ValidationError(
                'Give {"instrument": {"direction": "higher" or "lower", "min": .., "max": ..}}.'
            )
        listed = checks.cleaned.get("instruments", merged.get("instruments")) or []
        result: dict[str, dict[str, Any]] = {}
        for name, scale in value.items():
            name = clean_text(name, field="An instrument", max_length=100)
            if listed and name not in listed:
                raise ValidationError(
                    f"{name!r} is not one of the outcome's instruments ({', '.join(listed)})."
                )
            if not isinstance(scale, dict) or set(scale) - {"direction", "min", "max"}:
                raise ValidationError(
                    f'{name}: give "direction" ("higher" or "lower" is better), "min" and "max".'
                )
            direction = scale.get("direction")
            if direction not in Outcome.Direction.values:
                raise ValidationError(
                    f"{name}: the direction is 'higher' or 'lower' (which scores are better)."
                )
            bounds = {}
            for key in ("min", "max"):
                bound = scale.get(key)
                if bound is not None and (
                    isinstance(bound, bool) or not isinstance(bound, int | float) or not math.isfinite(bound)
                ):
                    raise ValidationError(f"{name}: {key} is a number, or null when the scale has none.")
                bounds[key] = None if bound is None else float(bound)
            if bounds["min"] is not None and bounds["max"] is not None and bounds["min"] >= bounds["max"]:
                raise ValidationError(f"{name}: min must be below max.")
            result[name] = {"direction": direction, **bounds}
        return result

    checks.check("instrument_scales", instrument_scales)
    return checks.result()


def _assert_steering(actor: User | None) -> None:
    if actor is not None and not roles.is_steering(actor):
        raise PermissionDenied("Only the steering group may change the data dictionary.")


@transaction.atomic
def outcome_create(*, actor: User | None, data: dict[str, Any]) -> Outcome:
    """Add an outcome to the data dictionary, with its default analysis."""
    _assert_steering(actor)
    outcome = Outcome.objects.create(**outcome_validate(outcome=None, data=data))
    signals.outcome_created.send(sender=Outcome, outcome=outcome)
    audit_record(actor=actor, action="outcome.create", obj=outcome, after=outcome_snapshot(outcome))
    return outcome


@transaction.atomic
def outcome_update(*, actor: User | None, outcome: Outcome, changes: dict[str, Any]) -> Outcome:
    """Change an outcome's entry; every analysis of it is recomputed (its measure, direction or
    vocabulary may change what they compute)."""
    outcome = Outcome.objects.select_for_update().get(pk=outcome.pk)
    _assert_steering(actor)
    before = outcome_snapshot(outcome)
    cleaned = outcome_validate(outcome=outcome, data=changes)
    if cleaned == before:
        return outcome
    for field, value in cleaned.items():
        setattr(outcome, field, value)
    outcome.save()
    audit_record(
        actor=actor, action="outcome.update", obj=outcome, before=before, after=outcome_snapshot(outcome)
    )
    signals.outcome_changed.send(sender=Outcome, outcome=outcome)
    return outcome
