"""Writes on datasets. Every change is one transaction: version, audit event and recompute request
commit together or not at all, and the permission is re-checked inside it."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit.services import audit_record
from apps.consortium import roles
from apps.consortium.models import Centre, Outcome
from apps.datasets.ingest import ModeratorSpec, ParsedUpload, UploadSpec
from apps.datasets.ingest.labels import comparison_key
from apps.datasets.models import Dataset, DatasetVersion, StagedUpload, Study
from apps.datasets.signals import outcome_data_changed

if TYPE_CHECKING:
    from django.contrib.auth.models import User


def upload_spec_for(outcome: Outcome) -> UploadSpec:
    """The validation rules an upload for ``outcome`` must satisfy, from the data dictionary."""
    return UploadSpec(
        outcome_code=outcome.code,
        measure=outcome.measure,
        instruments=frozenset(outcome.instruments or ()),
        timepoints=frozenset(outcome.timepoints or ()),
        moderators=tuple(
            ModeratorSpec(name=m["name"], kind=m.get("kind", "categorical")) for m in outcome.moderators
        ),
        instrument_ranges=tuple(
            (name, scale.get("min"), scale.get("max"))
            for name, scale in (outcome.instrument_scales or {}).items()
            if scale.get("min") is not None or scale.get("max") is not None
        ),
        max_bytes=settings.UPLOAD_MAX_BYTES,
        max_rows=settings.UPLOAD_MAX_ROWS,
        max_columns=settings.UPLOAD_MAX_COLUMNS,
        max_xlsx_uncompressed_bytes=settings.UPLOAD_MAX_XLSX_UNCOMPRESSED_BYTES,
    )


def rows_checksum(columns: list[str], rows: list[dict[str, Any]]) -> str:
    """SHA-256 of the canonical content, independent of file format, encoding and column order."""
    canonical = json.dumps({"columns": sorted(columns), "rows": rows}, sort_keys=True, default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _store_original(*, centre: Centre, outcome: Outcome, content: bytes, filename: str) -> tuple[str, str]:
    """Keep the uploaded file, content-addressed, under UPLOAD_ROOT (outside the web root)."""
    digest = hashlib.sha256(content).hexdigest()
    suffix = Path(filename).suffix.lower()[:10] if filename else ""
    relative = Path(centre.code) / outcome.code / f"{digest}{suffix}"
    target = Path(settings.MEDIA_ROOT) / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(content)
        tmp.replace(target)
    return str(relative), digest


def _assert_can_change(user: User | None, centre: Centre) -> None:
    if user is None:
        return  # system actions (demo loader, migrations)
    if not roles.can_change_centre(user, centre):
        raise PermissionDenied("You may not change this centre's data.")


def _version_create(
    *,
    actor: User | None,
    dataset: Dataset,
    columns: list[str],
    rows: list[dict[str, Any]],
    mapping: list[dict[str, Any]],
    reason: str,
    filename: str = "",
    stored_file: str = "",
    file_sha256: str = "",
    source_format: str = "",
    restored_from: DatasetVersion | None = None,
) -> tuple[DatasetVersion, bool]:
    checksum = rows_checksum(columns, rows)
    current = dataset.current_version
    if current is not None and current.checksum == checksum:
        return current, False
    number = (dataset.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    version = DatasetVersion.objects.create(
        dataset=dataset,
        number=number,
        created_by=actor if actor is not None and actor.is_authenticated else None,
        reason=reason[:500],
        original_filename=filename[:255],
        stored_file=stored_file,
        file_sha256=file_sha256,
        source_format=source_format,
        checksum=checksum,
        columns=columns,
        column_mapping=mapping,
        rows=rows,
        row_count=len(rows),
        restored_from=restored_from,
    )
    before = {"version": current.number, "checksum": current.checksum} if current else None
    dataset.current_version = version
    dataset.save(update_fields=["current_version", "updated_at"])
    _register_studies(dataset.centre, rows)
    audit_record(
        actor=actor,
        action="dataset.version_create" if restored_from is None else "dataset.version_restore",
        obj=dataset,
        centre=dataset.centre,
        before=before,
        after={
            "version": number,
            "checksum": checksum,
            "rows": len(rows),
            "reason": reason,
            "restored_from": restored_from.number if restored_from else None,
        },
    )
    # No recompute: a new version enters the analyses only when it is submitted (a submitted
    # dataset's analyses keep using its submitted version until then).
    return version, True


def _register_studies(centre: Centre, rows: list[dict[str, Any]]) -> None:
    """Register the centre's studies by label. A label that only looks like a registered one (case,
    lookalike letters, fullwidth forms) is that study, not a second one."""
    labels = {str(r["study"]): r.get("year") for r in rows if r.get("study")}
    known = {
        comparison_key(label) for label in Study.objects.filter(centre=centre).values_list("label", flat=True)
    }
    new: dict[str, Any] = {}
    for label, year in labels.items():
        key = comparison_key(label)
        if key not in known:
            known.add(key)
            new[label] = year
    Study.objects.bulk_create(
        [
            Study(centre=centre, label=label, year=year if isinstance(year, int) else None)
            for label, year in new.items()
        ],
        ignore_conflicts=True,
    )


def _request_recompute(outcome: Outcome) -> None:
    # the analyses app listens; it records its recompute requests in this same transaction
    outcome_data_changed.send(sender=Dataset, outcome=outcome)


def dataset_version_create(
    *,
    actor: User | None,
    centre: Centre,
    outcome: Outcome,
    parsed: ParsedUpload,
    content: bytes | None,
    filename: str,
    reason: str = "",
) -> tuple[DatasetVersion, bool]:
    """Store a validated upload as a new version of the centre's dataset for ``outcome``.

    Returns ``(version, created)``; identical content creates no new version (``created`` is False).
    The version enters no analysis until it is submitted (:func:`dataset_set_status`).
    """
    with transaction.atomic():
        _assert_can_change(actor, centre)
        dataset, _ = Dataset.objects.get_or_create(centre=centre, outcome=outcome)
        # Serialise concurrent uploads to one dataset so version numbers stay dense and ordered.
        dataset = (
            Dataset.objects.select_for_update(of=("self",))
            .select_related("current_version", "outcome", "centre")
            .get(pk=dataset.pk)
        )
        stored_file, file_sha = ("", "")
        if content is not None:
            stored_file, file_sha = _store_original(
                centre=centre, outcome=outcome, content=content, filename=filename
            )
        return _version_create(
            actor=actor,
            dataset=dataset,
            columns=list(parsed.columns),
            rows=[dict(r) for r in parsed.rows],
            mapping=[m.to_dict() for m in parsed.mapping],
            reason=reason,
            filename=filename,
            stored_file=stored_file,
            file_sha256=file_sha,
            source_format=parsed.source_format,
        )


#: How long a preview can be confirmed. It was checked against the data of its moment; a day later
#: the person is better served by looking again (the rows are kept until then, one preview per
#: person and dataset: a new upload replaces the previous one).
STAGED_UPLOAD_LIFETIME = timedelta(hours=24)


# The keywords of dataset_version_create: the same validated upload, kept as a preview instead.
def staged_upload_create(
    *,
    actor: User,
    centre: Centre,
    outcome: Outcome,
    parsed: ParsedUpload,
    content: bytes | None,
    filename: str,
    reason: str = "",
) -> StagedUpload:
    """Keep a validated upload as a preview for ``actor``; nothing the analyses read changes.

    The file's bytes stay in the preview until it is confirmed (then they are stored like any
    version's original file) or discarded. The person's earlier previews for the same centre and
    outcome, and their expired ones, go.
    """
    with transaction.atomic():
        _assert_can_change(actor, centre)
        dataset = Dataset.objects.filter(centre=centre, outcome=outcome).first()
        StagedUpload.objects.filter(created_by=actor).filter(
            Q(centre=centre, outcome=outcome) | Q(created_at__lt=timezone.now() - STAGED_UPLOAD_LIFETIME)
        ).delete()
        return StagedUpload.objects.create(
            key=secrets.token_hex(16),
            centre=centre,
            outcome=outcome,
            created_by=actor,
            base_version=dataset.current_version if dataset is not None else None,
            reason=reason[:500],
            original_filename=filename[:255],
            content=content,
            source_format=parsed.source_format,
            columns=list(parsed.columns),
            column_mapping=[m.to_dict() for m in parsed.mapping],
            rows=[dict(r) for r in parsed.rows],
            warnings=[w.to_dict() for w in parsed.warnings],
            form_counts=dict(parsed.form_counts),
        )


def staged_upload_confirm(
    *, actor: User, staged: StagedUpload, reason: str | None = None
) -> tuple[DatasetVersion, bool]:
    """Store a preview as the dataset's new version, if it still shows what it would change.

    Refused (``ValidationError``, nothing changes) when the preview has expired or the dataset's
    current version is no longer the one the preview was compared with: another upload, a restore
    or a colleague's confirmation came in between, and the person must see the new comparison.
    """
    with transaction.atomic():
        dataset, _ = Dataset.objects.get_or_create(centre=staged.centre, outcome=staged.outcome)
        dataset = (
            Dataset.objects.select_for_update(of=("self",))
            .select_related("current_version", "outcome", "centre")
            .get(pk=dataset.pk)
        )
        # under the lock: a membership ended since the preview was made ends the right to confirm it
        _assert_can_change(actor, staged.centre)
        # re-read under the dataset's lock: a double click confirms once, the second finds nothing
        staged = StagedUpload.objects.select_for_update().filter(pk=staged.pk, created_by=actor).first()  # type: ignore[assignment]
        if staged is None:
            raise ValidationError("This preview was already confirmed or discarded.", code="preview_gone")
        if staged.created_at < timezone.now() - STAGED_UPLOAD_LIFETIME:
            raise ValidationError(
                "This preview is more than a day old; upload the file again to see what it changes now.",
                code="preview_expired",
            )
        if dataset.current_version_id != staged.base_version_id:
            now = dataset.current_version.number if dataset.current_version else "none"
            raise ValidationError(
                f"The dataset changed since this preview (its current version is now {now}); "
                "upload the file again to see what it changes now.",
                code="preview_outdated",
            )
        stored_file, file_sha = ("", "")
        if staged.content is not None:
            stored_file, file_sha = _store_original(
                centre=staged.centre,
                outcome=staged.outcome,
                content=bytes(staged.content),
                filename=staged.original_filename,
            )
        version, created = _version_create(
            actor=actor,
            dataset=dataset,
            columns=list(staged.columns),
            rows=list(staged.rows),
            mapping=list(staged.column_mapping),
            reason=staged.reason if reason is None else reason,
            filename=staged.original_filename,
            stored_file=stored_file,
            file_sha256=file_sha,
            source_format=staged.source_format,
        )
        staged.delete()
        return version, created


def staged_uploads_purge() -> int:
    """Delete the previews nobody confirmed in time (their rows and the file's bytes); the number
    deleted. Run hourly by the workers' housekeeping task."""
    deleted, _ = StagedUpload.objects.filter(created_at__lt=timezone.now() - STAGED_UPLOAD_LIFETIME).delete()
    return deleted


def staged_upload_discard(*, actor: User, staged: StagedUpload) -> None:
    """Drop a preview, and with it the file's bytes (kept in the preview's row, not on disk, so
    that a file uploaded by mistake leaves nothing behind)."""
    with transaction.atomic():
        StagedUpload.objects.filter(pk=staged.pk, created_by=actor).delete()


_TRANSITIONS = {
    (Dataset.Status.DRAFT, Dataset.Status.SUBMITTED),
    (Dataset.Status.SUBMITTED, Dataset.Status.WITHDRAWN),
    (Dataset.Status.WITHDRAWN, Dataset.Status.SUBMITTED),
    (Dataset.Status.WITHDRAWN, Dataset.Status.DRAFT),
}


def dataset_set_status(*, actor: User | None, dataset: Dataset, status: str, reason: str = "") -> Dataset:
    """Move a dataset through its lifecycle (draft -> submitted -> withdrawn -> submitted/draft).

    Submitting makes the current version the one the analyses use. Submitting a dataset that is
    already submitted submits its pending revision (a version stored since); with none pending it
    changes nothing.
    """
    with transaction.atomic():
        dataset = (
            Dataset.objects.select_for_update(of=("self",))
            .select_related("centre", "outcome", "current_version", "submitted_version")
            .get(pk=dataset.pk)
        )
        _assert_can_change(actor, dataset.centre)
        old = dataset.status
        if old == status and not (status == Dataset.Status.SUBMITTED and dataset.revision_pending):
            return dataset
        if old != status and (old, status) not in _TRANSITIONS:
            raise ValidationError(f"A {old} dataset cannot become {status}.", code="invalid_transition")
        if status == Dataset.Status.SUBMITTED and dataset.current_version_id is None:
            raise ValidationError("A dataset without any version cannot be submitted.", code="no_version")
        before: dict[str, Any] = {"status": old}
        after: dict[str, Any] = {"status": status, "reason": reason}
        dataset.status = status
        fields = ["status", "updated_at"]
        if status == Dataset.Status.SUBMITTED:
            current = dataset.current_version
            assert current is not None
            # From now on the steering group and API clients may read this version (and only
            # versions so marked): drafts it replaced stay with the centre.
            DatasetVersion.objects.filter(pk=current.pk, submitted_at__isnull=True).update(
                submitted_at=timezone.now()
            )
            if dataset.submitted_version_id != current.pk:
                before["submitted_version"] = (
                    dataset.submitted_version.number if dataset.submitted_version else None
                )
                after["submitted_version"] = current.number
                dataset.submitted_version = current
                fields.append("submitted_version")
        dataset.save(update_fields=fields)
        audit_record(
            actor=actor,
            action="dataset.status" if old != status else "dataset.revision_submit",
            obj=dataset,
            centre=dataset.centre,
            before=before,
            after=after,
        )
        if Dataset.Status.SUBMITTED in (old, status):
            _request_recompute(dataset.outcome)
        return dataset


def dataset_version_restore(
    *, actor: User | None, version: DatasetVersion, reason: str = ""
) -> tuple[DatasetVersion, bool]:
    """Restore an earlier version's rows as a new version (history is never rewritten). Like any
    new version of a submitted dataset, it is a revision until it is submitted."""
    with transaction.atomic():
        dataset = (
            Dataset.objects.select_for_update(of=("self",))
            .select_related("current_version", "centre", "outcome")
            .get(pk=version.dataset_id)
        )
        _assert_can_change(actor, dataset.centre)
        return _version_create(
            actor=actor,
            dataset=dataset,
            columns=list(version.columns),
            rows=list(version.rows),
            mapping=list(version.column_mapping),
            reason=reason or f"Restored version {version.number}",
            filename=version.original_filename,
            stored_file=version.stored_file,
            file_sha256=version.file_sha256,
            source_format=version.source_format,
            restored_from=version,
        )
