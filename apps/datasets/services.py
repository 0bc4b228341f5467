"""Writes on datasets. Every change is one transaction: version, audit event and recompute request
commit together or not at all, and the permission is re-checked inside it."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.audit.services import audit_record
from apps.consortium import roles
from apps.consortium.models import Centre, Outcome
from apps.datasets.ingest import ModeratorSpec, ParsedUpload, UploadSpec
from apps.datasets.ingest.labels import comparison_key
from apps.datasets.models import Dataset, DatasetVersion, Study
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
        submitted_at=timezone.now() if dataset.status == Dataset.Status.SUBMITTED else None,
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
    if dataset.status == Dataset.Status.SUBMITTED:
        _request_recompute(dataset.outcome)
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

    Returns ``(version, created)``; identical content creates no new version (``created`` is False)
    and requests no recompute.
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


_TRANSITIONS = {
    (Dataset.Status.DRAFT, Dataset.Status.SUBMITTED),
    (Dataset.Status.SUBMITTED, Dataset.Status.WITHDRAWN),
    (Dataset.Status.WITHDRAWN, Dataset.Status.SUBMITTED),
    (Dataset.Status.WITHDRAWN, Dataset.Status.DRAFT),
}


def dataset_set_status(*, actor: User | None, dataset: Dataset, status: str, reason: str = "") -> Dataset:
    """Move a dataset through its lifecycle (draft -> submitted -> withdrawn -> submitted/draft)."""
    with transaction.atomic():
        dataset = (
            Dataset.objects.select_for_update(of=("self",))
            .select_related("centre", "outcome")
            .get(pk=dataset.pk)
        )
        _assert_can_change(actor, dataset.centre)
        old = dataset.status
        if old == status:
            return dataset
        if (old, status) not in _TRANSITIONS:
            raise ValidationError(f"A {old} dataset cannot become {status}.", code="invalid_transition")
        if status == Dataset.Status.SUBMITTED and dataset.current_version_id is None:
            raise ValidationError("A dataset without any version cannot be submitted.", code="no_version")
        dataset.status = status
        dataset.save(update_fields=["status", "updated_at"])
        if status == Dataset.Status.SUBMITTED and dataset.current_version_id is not None:
            # From now on the steering group and API clients may read this version (and only
            # versions so marked): drafts it replaced stay with the centre.
            DatasetVersion.objects.filter(pk=dataset.current_version_id, submitted_at__isnull=True).update(
                submitted_at=timezone.now()
            )
        audit_record(
            actor=actor,
            action="dataset.status",
            obj=dataset,
            centre=dataset.centre,
            before={"status": old},
            after={"status": status, "reason": reason},
        )
        if Dataset.Status.SUBMITTED in (old, status):
            _request_recompute(dataset.outcome)
        return dataset


def dataset_version_restore(
    *, actor: User | None, version: DatasetVersion, reason: str = ""
) -> tuple[DatasetVersion, bool]:
    """Restore an earlier version's rows as a new version (history is never rewritten)."""
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
