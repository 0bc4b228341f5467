"""Receiving an upload, shared by the portal and the API.

Order matters for what a user may learn: the centre must be visible (else ``Centre.DoesNotExist``,
which views answer with 404, so existence does not leak), then changeable (else 403), then the file is validated completely; only a valid file
reaches the transaction that stores a version.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from django.core.exceptions import PermissionDenied
from django.db import transaction

from apps.consortium import roles
from apps.consortium.models import Centre, Outcome
from apps.datasets.ingest import ParsedUpload, UploadError, UploadRejected, parse_json_rows, parse_upload
from apps.datasets.models import Dataset, DatasetVersion, StagedUpload
from apps.datasets.services import (
    dataset_set_status,
    dataset_version_create,
    staged_upload_create,
    upload_spec_for,
)
from apps.datasets.signals import upload_checked

if TYPE_CHECKING:
    from django.contrib.auth.models import User


_CODE = re.compile(r"[-a-zA-Z0-9_]{1,100}\Z")


@dataclass(frozen=True)
class UploadOutcome:
    version: DatasetVersion
    created: bool
    parsed: ParsedUpload


def upload_target(*, user: User, centre_code: str, outcome_code: str) -> tuple[Centre, Outcome]:
    """Resolve the centre and outcome an upload is for, enforcing visibility then write permission."""
    # codes are slugs: anything else (a NUL byte, which PostgreSQL refuses in a query) names nothing
    centre = (
        roles.centres_viewable(user).filter(code=centre_code).first() if _CODE.match(centre_code) else None
    )
    if centre is None:
        raise Centre.DoesNotExist("No such centre.")
    if not roles.can_change_centre(user, centre) or roles.api_client_of(user) is not None:
        raise PermissionDenied("Only the centre's data managers may upload its data.")
    outcome = Outcome.objects.filter(code=outcome_code).first() if _CODE.match(outcome_code) else None
    if outcome is None:
        raise UploadRejected(
            [
                UploadError(
                    row=None,
                    column="outcome",
                    value=outcome_code,
                    code="unknown_outcome",
                    message=f"There is no outcome '{outcome_code}' in the data dictionary.",
                ),
            ]
        )
    return centre, outcome


@dataclass(frozen=True)
class UploadRequest:
    """An upload as it was sent: who sends it, for which centre and outcome (by code), and the
    file (with its name and type), its bytes or its rows (JSON)."""

    user: User
    centre_code: str
    outcome_code: str
    file: IO[bytes] | None = None
    filename: str = ""
    content_type: str | None = None
    rows: Any = None
    content: bytes | None = None


def upload_parse(upload: UploadRequest) -> tuple[Centre, Outcome, ParsedUpload, bytes | None]:
    """Resolve the target (visibility, then permission) and validate the upload completely;
    ``UploadRejected`` lists every problem. Stores nothing."""
    centre, outcome = upload_target(
        user=upload.user, centre_code=upload.centre_code, outcome_code=upload.outcome_code
    )
    content = upload.file.read() if upload.file is not None else upload.content
    spec = upload_spec_for(outcome)
    if upload.rows is not None:
        parsed = parse_json_rows(upload.rows, spec=spec)
    else:
        assert content is not None
        parsed = parse_upload(content, filename=upload.filename, spec=spec, content_type=upload.content_type)
    # last, on a valid file: what the rest of the platform has to say about its rows (the analyses:
    # rows that none of them would read), as warnings; the file is accepted either way
    answers: list[tuple[Any, Any]] = upload_checked.send(
        sender=Dataset, outcome=outcome, rows=[dict(r) for r in parsed.rows]
    )
    extra: list[UploadError] = [warning for _, warnings in answers for warning in warnings or ()]
    if extra:
        parsed = dataclasses.replace(parsed, warnings=(*parsed.warnings, *extra))
    return centre, outcome, parsed, content


def upload_receive(upload: UploadRequest, *, reason: str = "", submit: bool = False) -> UploadOutcome:
    """Validate and store an upload; raises ``UploadRejected`` with every error, changing nothing.

    With ``submit`` the new version is also submitted, in the same transaction, so it enters the
    analyses at once (for a tool that checks its data before sending it); otherwise it waits for
    its submission like every version.

    Raises ``Centre.DoesNotExist`` for a centre the user may not see and ``PermissionDenied`` for
    one they may not change.

    A ``file`` is read only after the permission checks, so a refused upload costs no more than
    its (already size-checked) request.
    """
    centre, outcome, parsed, content = upload_parse(upload)
    with transaction.atomic():
        version, created = dataset_version_create(
            actor=upload.user,
            centre=centre,
            outcome=outcome,
            parsed=parsed,
            content=content,
            filename=upload.filename or "rows.json",
            reason=reason,
        )
        if submit:
            dataset_set_status(
                actor=upload.user, dataset=version.dataset, status=Dataset.Status.SUBMITTED, reason=reason
            )
    return UploadOutcome(version=version, created=created, parsed=parsed)


def upload_preview(upload: UploadRequest, *, reason: str = "") -> StagedUpload:
    """Validate an upload like :func:`upload_receive` (same refusals, in the same order) and keep
    it as a preview for its data manager to confirm or discard; no version is stored."""
    centre, outcome, parsed, content = upload_parse(upload)
    return staged_upload_create(
        actor=upload.user,
        centre=centre,
        outcome=outcome,
        parsed=parsed,
        content=content,
        filename=upload.filename,
        reason=reason,
    )
