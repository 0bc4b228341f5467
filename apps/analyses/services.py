"""Recompute requests and the recompute itself (the relay that publishes the requests: ``outbox``).

The flow, and why it cannot lose work:

1. A data change bumps ``Analysis.requested_seq`` and writes an ``OutboxEvent`` in the same
   transaction as the change. If the transaction commits, the request exists; if not, neither does.
2. After the commit, the event is handed to a background publisher (``outbox_publish_soon``) so that
   the request never waits on the broker. A periodic relay publishes whatever is still pending, with
   exponential backoff, so a broker outage only delays publication.
3. The worker (``analysis_recompute``) takes a per-analysis lock, reads the latest request number,
   recomputes from the current submitted dataset versions and stores the result only if it answers a
   newer request than the stored one (a conditional UPDATE whose row count is checked). Requests that
   arrive during a computation are picked up by the loop, so a burst costs few recomputes and the last
   result always includes every submitted version.
4. Tasks are acknowledged late and rejected when a worker dies, so a killed worker's task is
   redelivered; a periodic sweep re-queues anything still behind after a lease period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import IntegrityError, connection, transaction
from django.db.models import F
from django.utils import timezone

from apps.analyses.models import Analysis, AnalysisResult, OutboxEvent
from apps.analyses.outbox import outbox_publish_soon
from apps.analyses.signals import result_stored
from apps.audit.services import audit_record
from apps.common.text import FieldChecks, clean_text
from apps.consortium import roles
from apps.consortium.models import Centre, Outcome
from apps.datasets.models import Dataset
from workers.metaanalysis import ENGINE_VERSION, spec
from workers.metaanalysis.analysis import run_analysis
from workers.metaanalysis.errors import EngineError, InvalidInputError
from workers.metaanalysis.spec import LATEST

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 7_311  # first key of pg_advisory_lock(int, int): this platform's recompute locks
_MAX_ROUNDS = 50


# --- requests ---------------------------------------------------------------------------------


def analyses_request_recompute(*, outcome: Outcome) -> list[OutboxEvent]:
    """Record that every analysis of ``outcome`` must be recomputed. Call inside the data change's
    transaction; publication happens after commit."""
    analysis_ids = list(Analysis.objects.filter(outcome=outcome).values_list("pk", flat=True))
    return analysis_request_recompute_many(analysis_ids=analysis_ids)


def on_outcome_data_changed(*, outcome: Outcome, **_: Any) -> None:
    """Receiver of ``apps.datasets.signals.outcome_data_changed`` and of
    ``apps.consortium.signals.outcome_changed`` (connected in ``AnalysesConfig``)."""
    analyses_request_recompute(outcome=outcome)


def on_outcome_created(*, outcome: Outcome, **_: Any) -> None:
    """Receiver of ``apps.consortium.signals.outcome_created``: the outcome's default analysis."""
    analysis_create_default(outcome=outcome)


def analysis_request_recompute_many(*, analysis_ids: Iterable[int]) -> list[OutboxEvent]:
    events = []
    for analysis_id in analysis_ids:
        Analysis.objects.filter(pk=analysis_id).update(requested_seq=F("requested_seq") + 1)
        seq = Analysis.objects.filter(pk=analysis_id).values_list("requested_seq", flat=True).get()
        events.append(OutboxEvent.objects.create(analysis_id=analysis_id, seq=seq))
    if events and settings.OUTBOX_PUBLISH_ON_COMMIT:
        ids = [e.pk for e in events]
        transaction.on_commit(lambda: outbox_publish_soon(event_ids=ids))
    return events


# --- the recompute ----------------------------------------------------------------------------


@contextmanager
def _analysis_lock(analysis_id: int) -> Iterator[None]:
    """Serialise recomputes of one analysis across worker processes and machines.

    A session-level PostgreSQL advisory lock: held outside any transaction, so uploads that bump
    ``requested_seq`` never wait for a computation, and released by PostgreSQL itself if the worker
    process dies. The embedded SQLite default runs a single worker process and needs no lock; the
    conditional update below keeps it correct regardless.
    """
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s, %s)", [_LOCK_NAMESPACE, analysis_id])
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [_LOCK_NAMESPACE, analysis_id])


def analysis_inputs(
    *, analysis: Analysis, replacing: dict[int, list[dict[str, Any]]] | None = None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows the analysis runs on and the exact dataset versions they came from.

    Only submitted datasets enter, each with its submitted version (a revision stored since waits
    for its submission); rows are tagged with their centre, and ordered by centre and row so that
    the input (and hence the result) is deterministic.

    ``replacing`` maps a centre's primary key to rows that take the place of that centre's data
    (a preview of what an upload would change; the centre need not have submitted anything yet).
    """
    replacing = replacing or {}
    datasets = (
        Dataset.objects.filter(
            outcome_id=analysis.outcome_id, status=Dataset.Status.SUBMITTED, submitted_version__isnull=False
        )
        .select_related("centre", "submitted_version")
        .order_by("centre__code")
    )
    rows: list[dict[str, Any]] = []
    provenance = []
    pending = dict(replacing)
    for dataset in datasets:
        if dataset.centre_id in pending:
            rows.extend({**row, "centre": dataset.centre.code} for row in pending.pop(dataset.centre_id))
            continue
        version = dataset.submitted_version
        assert version is not None
        provenance.append(
            {
                "dataset": dataset.pk,
                "centre": dataset.centre.code,
                "version": version.pk,
                "number": version.number,
                "checksum": version.checksum,
                "rows": version.row_count,
            }
        )
        for row in version.rows:
            rows.append({**row, "centre": dataset.centre.code})
    if pending:
        # a centre whose data are not in the analyses yet, previewed as if they were
        codes = dict(Centre.objects.filter(pk__in=pending).values_list("pk", "code"))
        for centre_id in sorted(pending, key=lambda pk: codes.get(pk, "")):
            rows.extend({**row, "centre": codes.get(centre_id, "")} for row in pending[centre_id])
    return rows, provenance


def result_labels(analysis: Analysis, report: dict[str, Any]) -> dict[str, Any]:
    """What a result was computed from, in the words of its time, stored with it (frozen as the
    numbers are): the outcome's name, measure and direction, the time point selected, and the
    instruments whose rows entered the model (in the data dictionary's order)."""
    outcome = analysis.outcome
    es = (report.get("blocks") or {}).get("effect_sizes") or {}
    entered = {
        ins
        for ins, used in zip(es.get("instrument") or [], es.get("in_model") or [], strict=False)
        if used and ins
    }
    order = {code: i for i, code in enumerate(outcome.instruments or ())}
    return {
        "outcome": outcome.name,
        "outcome_code": outcome.code,
        "measure": outcome.measure,
        "measure_label": outcome.get_measure_display(),
        "direction": outcome.direction,
        "timepoint": analysis.timepoint or None,
        "instruments": sorted(entered, key=lambda i: (order.get(i, len(order)), i)),
    }


def input_fingerprint(spec_hash: str, provenance: list[dict[str, Any]]) -> str:
    import hashlib
    import json

    payload = json.dumps({"spec": spec_hash, "versions": [(p["version"], p["checksum"]) for p in provenance]})
    return hashlib.sha256(payload.encode()).hexdigest()


#: the reason stored with an ``empty`` result
NO_DATA = "No centre has submitted data for this outcome yet: waiting for data."


def _compute(analysis: Analysis, rows: list[dict[str, Any]]) -> tuple[str, dict[str, Any], Any]:
    """The status, report and error of one computation: ``done`` only with a pooled estimate (see
    ``AnalysisResult.Status``); a report without one is kept (its effect sizes and left-out rows
    say what happened to each row) but stored as failed, with the reason in words."""
    if not rows:
        return AnalysisResult.Status.EMPTY, {}, {"code": "no_data", "message": NO_DATA}
    try:
        report = run_analysis(analysis.engine_spec(), rows)
    except EngineError as exc:
        return AnalysisResult.Status.FAILED, {}, exc.to_dict()
    reason = report.no_estimate_reason()
    if reason is not None:
        return AnalysisResult.Status.FAILED, report.to_dict(), {"code": "no_estimate", "message": reason}
    return AnalysisResult.Status.DONE, report.to_dict(), None


def analysis_recompute(*, analysis_id: int) -> AnalysisResult | None:
    """Bring one analysis up to date; idempotent and safe to run concurrently and repeatedly.

    Returns the newest result stored by this call, or None when there was nothing to do.
    """
    stored: AnalysisResult | None = None
    with _analysis_lock(analysis_id):
        for _ in range(_MAX_ROUNDS):
            analysis = Analysis.objects.select_related("outcome").get(pk=analysis_id)
            seq = analysis.requested_seq
            if seq <= analysis.computed_seq:
                break
            started = timezone.now()
            Analysis.objects.filter(pk=analysis_id).update(running_since=started)
            requested_at = (
                OutboxEvent.objects.filter(analysis_id=analysis_id, seq=seq)
                .values_list("created_at", flat=True)
                .first()
            )
            rows, provenance = analysis_inputs(analysis=analysis)
            fingerprint = input_fingerprint(analysis.spec_hash(), provenance)
            if _same_input(analysis, fingerprint):
                # the request was made, but the data and settings it saw are those of the stored
                # result (a request counted before its data committed, or a change undone): answer
                # it with that result, so the history has one point per distinct input
                Analysis.objects.filter(pk=analysis_id, computed_seq__lt=seq).update(
                    computed_seq=seq, running_since=None
                )
                logger.info("Analysis %s request %s: inputs unchanged, no new result.", analysis_id, seq)
                continue
            t0 = time.perf_counter()
            status, report, error = _compute(analysis, rows)
            compute_ms = (time.perf_counter() - t0) * 1000
            try:
                with transaction.atomic():
                    result = AnalysisResult.objects.create(
                        analysis=analysis,
                        seq=seq,
                        status=status,
                        error=error,
                        blocks=report.get("blocks", {}),
                        notes=report.get("notes", []),
                        omitted=report.get("omitted", []),
                        k=report.get("k"),
                        studies=[f"{r.get('study')} [{r.get('centre')}]" for r in rows],
                        labels=result_labels(analysis, report),
                        spec=analysis.spec(),
                        spec_hash=analysis.spec_hash(),
                        engine_version=ENGINE_VERSION,
                        dataset_versions=provenance,
                        input_fingerprint=fingerprint,
                        requested_at=requested_at,
                        started_at=started,
                        finished_at=timezone.now(),
                        compute_ms=compute_ms,
                    )
                    # Store only if this answers a newer request than what is stored: a stale or
                    # duplicate task never overwrites a newer result.
                    updated = Analysis.objects.filter(pk=analysis_id, computed_seq__lt=seq).update(
                        computed_seq=seq, current_result=result, running_since=None
                    )
                    if updated != 1:
                        raise _StaleResultError
                    # in the same transaction: a receiver's record (a webhook delivery) commits with it
                    result_stored.send(
                        sender=AnalysisResult, result=result, previous_id=analysis.current_result_id
                    )
            except (_StaleResultError, IntegrityError):
                logger.info("Result for analysis %s request %s was superseded; discarded.", analysis_id, seq)
                continue
            stored = result
            logger.info(
                "Analysis %s: result #%s (%s, k=%s) from %d dataset versions in %.1f ms",
                analysis_id,
                seq,
                status,
                report.get("k"),
                len(provenance),
                compute_ms,
            )
        Analysis.objects.filter(pk=analysis_id, requested_seq__lte=F("computed_seq")).update(
            running_since=None
        )
    return stored


class _StaleResultError(Exception):
    pass


def _same_input(analysis: Analysis, fingerprint: str) -> bool:
    """Whether the analysis's current result was computed, by this engine version, from exactly
    these dataset versions and this specification."""
    if analysis.current_result_id is None:
        return False
    return AnalysisResult.objects.filter(
        pk=analysis.current_result_id, input_fingerprint=fingerprint, engine_version=ENGINE_VERSION
    ).exists()


# --- steering actions -------------------------------------------------------------------------


def analysis_create_default(*, outcome: Outcome) -> Analysis:
    """Every outcome gets a default analysis: REML, z tests, 95 %, all sensitivity and bias checks,
    at the outcome's first time point (post-treatment: a 6-month effect answers another question),
    every instrument, and the dependence model chosen by the data (``auto``: correlated and
    hierarchical effects, rho = 0.6, with CR2 tests where a study has several rows)."""
    first_timepoint = outcome.timepoints[0] if outcome.timepoints else ""
    analysis, created = Analysis.objects.get_or_create(
        outcome=outcome,
        is_default=True,
        defaults={"name": "Primary analysis", "timepoint": first_timepoint},
    )
    if created:
        analysis_request_recompute_many(analysis_ids=[analysis.pk])
    return analysis


# --- specifications ---------------------------------------------------------------------------

#: What an analysis's settings hold: its name and the engine's settings (``spec.SETTINGS``).
ANALYSIS_FIELDS = ("name", *spec.SETTINGS)


def _engine_rule(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """One of the engine's setting rules (``workers.metaanalysis.spec``), its refusal as a form's."""

    def fn(value: Any) -> Any:
        try:
            return check(value)
        except InvalidInputError as exc:
            raise ValidationError(_sentence(exc.message)) from None

    return fn


def _sentence(message: str) -> str:
    return message[:1].upper() + message[1:] + ("" if message.endswith(".") else ".")


def analysis_validate(*, outcome: Outcome, analysis: Analysis | None, data: dict[str, Any]) -> dict[str, Any]:
    """The complete, cleaned specification that ``data`` (all fields, or changes) would give.

    Moderators, the subgroup and the cumulative order must be columns the outcome records: an
    unknown column would be accepted and then fail every recompute. Raises ``ValidationError``
    with a message per field; the API, the portal and the admin all call this.
    """
    current = {f: getattr(analysis, f) for f in ANALYSIS_FIELDS} if analysis is not None else {}
    defaults = {f: Analysis().__dict__[f] for f in ANALYSIS_FIELDS}
    merged = {**defaults, **current, **{k: v for k, v in data.items() if k in ANALYSIS_FIELDS}}
    moderators = {m["name"]: m.get("kind", "categorical") for m in outcome.moderators}
    checks = FieldChecks(merged)

    def mods(value: Any) -> list[str]:
        names = list(_engine_rule(spec.check_mods)(value))
        unknown = [name for name in names if name not in moderators]
        if unknown:
            raise ValidationError(
                f"{', '.join(map(repr, unknown))} {'is' if len(unknown) == 1 else 'are'} not recorded for "
                f"this outcome; its moderators are: {', '.join(moderators) or 'none'}."
            )
        return names

    def column(kinds: tuple[str, ...], extra: tuple[str, ...] = ()) -> Any:
        def fn(value: Any) -> str:
            if value is None or value == "":
                return ""
            if not isinstance(value, str):
                raise ValidationError("Give a column name.")
            allowed = [*extra, *(name for name, kind in moderators.items() if kind in kinds)]
            if value not in allowed:
                raise ValidationError(
                    f"{value!r} is not a column this outcome records for this purpose; choose one of: "
                    f"{', '.join(allowed) or 'none'}."
                )
            return value

        return fn

    checks.check("name", lambda v: clean_text(v, field="The name", max_length=200))
    for name in ("method", "test", "dependence"):
        checks.check(name, _engine_rule(partial(spec.check_choice, name)))
    checks.check("level", _engine_rule(spec.check_level))
    checks.check("mods", mods)
    checks.check("subgroup", column(("categorical", "numeric")))
    checks.check("cumulative_order", column(("numeric",), extra=("year",)))
    for name in ("sensitivity", "bias", "robust"):
        checks.check(name, _engine_rule(partial(spec.check_flag, name)))
    checks.check("rho", _engine_rule(spec.check_rho))

    def timepoint(value: Any) -> str:
        if value is None or value == "":
            return ""
        allowed = [*(outcome.timepoints or ()), LATEST] if outcome.timepoints else []
        if not isinstance(value, str) or value not in allowed:
            raise ValidationError(
                f"Choose one of the outcome's time points or {LATEST!r}: {', '.join(allowed)}."
                if allowed
                else "This outcome's data dictionary lists no time points to choose from; leave it empty."
            )
        return value

    def instruments(value: Any) -> list[str]:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ValidationError("Instruments are a list of the outcome's instruments, first choice first.")
        if len(set(value)) != len(value):
            raise ValidationError("An instrument is listed twice.")
        allowed = list(outcome.instruments or ())
        unknown = [v for v in value if allowed and v not in allowed]
        if unknown:
            raise ValidationError(
                f"{', '.join(map(repr, unknown))} not in the outcome's instruments: {', '.join(allowed)}."
            )
        return list(value)

    checks.check("timepoint", timepoint)
    checks.check("instruments", instruments)
    cleaned = checks.result()
    try:
        spec.check_model(dependence=cleaned["dependence"], method=cleaned["method"], test=cleaned["test"])
    except InvalidInputError as exc:
        raise ValidationError({exc.column or "method": _sentence(exc.message)}) from None
    _check_against_data(outcome, cleaned)
    return cleaned


def analysis_data_plan(*, outcome: Outcome, settings: dict[str, Any]) -> Any:
    """The model an analysis of ``outcome`` with ``settings`` (``ANALYSIS_FIELDS``, any subset;
    defaults for the rest) would fit to the data it would run on now (the engine's ``ModelPlan``),
    or None when there are no data or the engine refuses the data themselves (every setting then
    fails alike, and the recompute says why)."""
    from workers.metaanalysis.analysis import model_plan

    probe = Analysis(outcome=outcome, **{k: v for k, v in settings.items() if k != "name"})
    rows, _ = analysis_inputs(analysis=probe)
    if not rows:
        return None
    try:
        return model_plan(probe.engine_spec(), rows)
    except EngineError:
        return None


def _check_against_data(outcome: Outcome, cleaned: dict[str, Any]) -> None:
    """Refuse settings that the outcome's submitted data cannot support, naming the field: the
    engine would refuse them at every recompute, and the analysis would have no estimate.

    The model the settings lead to is decided by the data (``dependence = auto`` fits the
    correlated-and-hierarchical-effects model as soon as a study reports several effects), so it
    is read from the data the analysis would run on now (``model_plan``). An outcome without data
    accepts any valid setting; data submitted later that the settings cannot support make the
    recompute fail with the reason, shown beside the last good result.
    """
    from workers.metaanalysis.analysis import all_rows_left_out

    plan = analysis_data_plan(outcome=outcome, settings=cleaned)
    if plan is None:
        return
    method = Analysis.Method(cleaned["method"]).label
    if plan.k == 0:
        field = "timepoint" if any(o["code"] == "not_selected" for o in plan.omitted) else "instruments"
        raise ValidationError({field: f"With these settings: {all_rows_left_out(plan.omitted)}"})
    try:
        spec.check_model(dependence=plan.dependence, method=cleaned["method"], test=cleaned["test"])
    except InvalidInputError as exc:
        if exc.column == "method":
            raise ValidationError(
                {
                    "method": f"{method} cannot be used here: {plan.reason}. That model is fitted by "
                    "ML or REML; choose one of them, or pool each study's rows first (several effects "
                    "per study: aggregate)."
                }
            ) from None
        raise ValidationError(
            {
                "test": f"Knapp-Hartung cannot be used here: {plan.reason}. Knapp-Hartung is for "
                "one-level models; use the z or t test (the robust tests apply either way)."
            }
        ) from None
    if plan.dependence == "none" and plan.largest_study > 1 and not cleaned["robust"]:
        raise ValidationError(
            {
                "robust": f"A study has {plan.largest_study} rows at these settings, and the rows would be "
                "treated as independent studies: keep cluster-robust tests, choose a dependence model, "
                "or select one time point and instrument."
            }
        )


def _assert_steering(actor: Any) -> None:
    if actor is not None and not roles.is_steering(actor):
        raise PermissionDenied("Only the steering group may change analyses.")


def analysis_create(*, actor: Any, outcome: Outcome, data: dict[str, Any]) -> Analysis:
    """Add an analysis of ``outcome`` and request its first computation."""
    with transaction.atomic():
        _assert_steering(actor)
        analysis = Analysis.objects.create(
            outcome=outcome, **analysis_validate(outcome=outcome, analysis=None, data=data)
        )
        audit_record(actor=actor, action="analysis.create", obj=analysis, after=analysis.spec())
        analysis_request_recompute_many(analysis_ids=[analysis.pk])
    return analysis


def analysis_update(*, actor: Any, analysis: Analysis, changes: dict[str, Any], reason: str = "") -> Analysis:
    """Change an analysis's specification; a change is recomputed, no change does nothing. The
    audit event records each changed setting before and after (only those) and the reason."""
    with transaction.atomic():
        analysis = (
            Analysis.objects.select_for_update(of=("self",)).select_related("outcome").get(pk=analysis.pk)
        )
        _assert_steering(actor)
        reason = clean_text(reason or "", field="The reason", max_length=500, multiline=True, blank=True)
        cleaned = analysis_validate(outcome=analysis.outcome, analysis=analysis, data=changes)
        changed = [f for f, v in cleaned.items() if getattr(analysis, f) != v]
        if not changed:
            return analysis
        before = {f: getattr(analysis, f) for f in changed}
        for field in changed:
            setattr(analysis, field, cleaned[field])
        analysis.save(update_fields=changed)
        after: dict[str, Any] = {f: cleaned[f] for f in changed}
        if reason:
            after["reason"] = reason
        audit_record(actor=actor, action="analysis.update", obj=analysis, before=before, after=after)
        analysis_request_recompute_many(analysis_ids=[analysis.pk])
    return analysis
