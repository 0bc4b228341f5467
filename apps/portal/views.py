"""Server-rendered pages: datasets, uploads and the audit trail (the dashboard and outcome pages
have their own modules).

Every page starts from the same visibility querysets as the API (``visible_to``), and a user who
may not see an object gets 404.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.analyses import visibility
from apps.analyses.selectors import upload_preview_report
from apps.audit.models import AuditEvent
from apps.audit.selectors import audit_events_shown, audit_object_names, changed_only
from apps.common.text import clean_text
from apps.consortium import roles
from apps.consortium.models import Centre, Outcome
from apps.datasets.ingest import UploadRejected
from apps.datasets.models import Dataset, DatasetVersion, StagedUpload
from apps.datasets.selectors import dataset_version_diff, with_shown_versions
from apps.datasets.services import (
    dataset_set_status,
    dataset_version_restore,
    staged_upload_confirm,
    staged_upload_discard,
)
from apps.datasets.uploads import UploadRequest, upload_preview
from apps.portal.scale import ratio_of


@login_required
def dataset_list(request: HttpRequest) -> HttpResponse:
    datasets = with_shown_versions(
        Dataset.objects.visible_to(request.user).select_related(
            "centre", "outcome", "current_version", "submitted_version"
        ),
        request.user,
    )
    return render(
        request,
        "portal/datasets.html",
        {
            "datasets": datasets,
            "upload_centres": roles.centres_changeable(request.user)
            if roles.api_client_of(request.user) is None
            else [],
            "outcomes": Outcome.objects.all(),
        },
    )


@login_required
def dataset_detail(request: HttpRequest, pk: int) -> HttpResponse:
    dataset = get_object_or_404(
        Dataset.objects.visible_to(request.user).select_related(
            "centre", "outcome", "current_version", "submitted_version"
        ),
        pk=pk,
    )
    with_shown_versions([dataset], request.user)
    readable = DatasetVersion.objects.visible_to(request.user).filter(dataset=dataset)
    versions = list(readable.select_related("created_by").order_by("-number"))
    diff = None
    if "from" in request.GET and "to" in request.GET:
        try:
            old = readable.get(number=int(request.GET["from"]))
            new = readable.get(number=int(request.GET["to"]))
        except (ValueError, OverflowError, DatasetVersion.DoesNotExist) as exc:
            raise Http404("No such version.") from exc
        diff = dataset_version_diff(old=old, new=new)
    return render(
        request,
        "portal/dataset.html",
        {
            "dataset": dataset,
            "current": dataset.shown_version,
            "versions": versions,
            "diff": diff,
            "can_change": roles.can_change_centre(request.user, dataset.centre)
            and roles.api_client_of(request.user) is None,
        },
    )


@login_required
@require_POST
def dataset_action(request: HttpRequest, pk: int, action: str) -> HttpResponse:
    dataset = get_object_or_404(Dataset.objects.visible_to(request.user), pk=pk)
    if action in ("submit", "withdraw", "restore") and not roles.can_change_centre(
        request.user, dataset.centre
    ):
        raise PermissionDenied("Only the centre's data managers may change its datasets.")
    try:
        reason = _reason(request)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return redirect("portal:dataset", pk=dataset.pk)
    if action in ("submit", "withdraw", "restore") and not reason:
        # the reason goes into the version history and the audit trail: a change without one is
        # a change nobody can account for later
        messages.error(request, f"Give a reason to {action}: it is kept in the history and the audit trail.")
        return redirect("portal:dataset", pk=dataset.pk)
    try:
        if action in ("submit", "withdraw"):
            status = Dataset.Status.SUBMITTED if action == "submit" else Dataset.Status.WITHDRAWN
            was = (dataset.status, dataset.submitted_version_id)
            dataset = dataset_set_status(actor=request.user, dataset=dataset, status=status, reason=reason)  # type: ignore[arg-type]
            if was == (dataset.status, dataset.submitted_version_id):
                messages.info(request, f"The dataset was already {status}; nothing changed.")
            elif was[0] == dataset.status:
                number = dataset.current_version.number if dataset.current_version else "–"
                messages.success(
                    request, f"Version {number} now enters the analyses; the results are being recomputed."
                )
            else:
                messages.success(request, f"The dataset is now {status}.")
        elif action == "restore":
            number = request.POST.get("number", "")
            if not number.isdigit() or len(number) > 9:
                raise ValidationError("Choose the version to restore by its number.")
            version = get_object_or_404(
                DatasetVersion.objects.visible_to(request.user).filter(dataset=dataset), number=int(number)
            )
            new, created = dataset_version_restore(actor=request.user, version=version, reason=reason)  # type: ignore[arg-type]
            dataset.refresh_from_db()
            messages.success(
                request,
                (
                    f"Version {version.number} restored as version {new.number}."
                    + (" Submit it to use it in the analyses." if dataset.revision_pending else "")
                )
                if created
                else "That version is already the current content.",
            )
        else:
            raise Http404("Unknown action.")
    except PermissionDenied:
        raise
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    return redirect("portal:dataset", pk=dataset.pk)


def _reason(request: HttpRequest) -> str:
    """The reason a form gives, by the data dictionary's character rule (as the API reads it):
    control characters, bidirectional overrides and invisible characters are refused, since the
    reason is shown in the history and the audit trail as the person wrote it."""
    return clean_text(request.POST.get("reason", ""), field="The reason", max_length=500, blank=True)


@login_required
def upload(request: HttpRequest) -> HttpResponse:
    """Choose a file; a valid one becomes a preview (nothing is stored until it is confirmed), an
    invalid one is answered with every problem, by row and column."""
    centres = roles.centres_changeable(request.user) if roles.api_client_of(request.user) is None else []
    context: dict[str, Any] = {
        "centres": centres,
        "outcomes": Outcome.objects.all(),
        # preselected from a dataset page's "upload a new version" link
        "selected": {"centre": request.GET.get("centre"), "outcome": request.GET.get("outcome")},
    }
    if request.method == "POST":
        # Refused before the file is read: someone who may upload nowhere is told so at once (the
        # body itself was parsed already, by the CSRF check, which reads the form's token).
        if not centres:
            raise PermissionDenied("Only a centre's data managers may upload its data.")
        f = request.FILES.get("file")
        context["selected"] = {
            "centre": request.POST.get("centre"),
            "outcome": request.POST.get("outcome"),
            "reason": request.POST.get("reason", ""),
        }
        if f is None:
            context["errors"] = [
                {
                    "row": None,
                    "column": None,
                    "value": None,
                    "code": "no_file",
                    "message": "Choose a CSV or XLSX file to upload.",
                }
            ]
            return render(request, "portal/upload.html", context, status=400)
        try:
            reason = _reason(request)
        except ValidationError as exc:
            context["errors"] = [
                {"row": None, "column": "reason", "value": None, "code": "invalid_request", "message": m}
                for m in exc.messages
            ]
            return render(request, "portal/upload.html", context, status=400)
        try:
            sent = UploadRequest(
                user=request.user,  # type: ignore[arg-type]
                centre_code=request.POST.get("centre", ""),
                outcome_code=request.POST.get("outcome", ""),
                file=f,
                filename=f.name or "",
                content_type=f.content_type,
            )
            staged = upload_preview(sent, reason=reason)
        except Centre.DoesNotExist as exc:
            raise Http404("No such centre.") from exc
        except UploadRejected as exc:
            context["errors"] = [e.to_dict() for e in exc.errors]
            return render(request, "portal/upload.html", context, status=400)
        return redirect("portal:upload-preview", key=staged.key)
    return render(request, "portal/upload.html", context)


#: Rows listed on a preview page; every row was validated, and the counts and the pooled effect
#: cover them all. Beyond this a page stops being read and only slows the browser.
PREVIEW_ROWS_SHOWN = 500


@login_required
def upload_preview_view(request: HttpRequest, key: str) -> HttpResponse:
    """A preview: what the upload would change, each row's effect, warnings and (for the steering
    group) the pooled results before and after; confirm stores it as a version, discard drops it.

    A preview is its uploader's alone; anyone else (and a gone preview) gets 404.
    """
    staged = get_object_or_404(
        StagedUpload.objects.select_related("centre", "outcome", "base_version"),
        key=key,
        created_by=request.user.pk,
    )
    if not roles.can_change_centre(request.user, staged.centre):
        # a data manager no longer: the preview compares with the centre's current data, theirs no more
        raise Http404("No such preview.")
    if request.method == "POST":
        action = request.POST.get("action")
        try:
            if action == "discard":
                staged_upload_discard(actor=request.user, staged=staged)  # type: ignore[arg-type]
                messages.info(
                    request, f"The preview of {staged.original_filename} was discarded; nothing was stored."
                )
                return redirect("portal:upload")
            if action != "confirm":
                return HttpResponseBadRequest("Choose confirm or discard.")
            version, created = staged_upload_confirm(
                actor=request.user,  # type: ignore[arg-type]
                staged=staged,
                reason=_reason(request),
            )
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
            return redirect("portal:upload")
        dataset = Dataset.objects.get(pk=version.dataset_id)
        if not created:
            messages.info(
                request, "This content is identical to the current version; no new version was created."
            )
        elif dataset.revision_pending:
            messages.success(
                request,
                f"Stored as version {version.number} ({version.row_count} rows), a revision: the analyses "
                f"keep using version {dataset.submitted_version.number if dataset.submitted_version else '–'} "
                "until you submit it.",
            )
        else:
            messages.success(
                request,
                f"Stored as version {version.number} ({version.row_count} rows). "
                + (
                    "Submit it to enter the analyses."
                    if dataset.status != Dataset.Status.SUBMITTED
                    else "It is the version the analyses use."
                ),
            )
        return redirect("portal:dataset", pk=version.dataset_id)
    report = upload_preview_report(
        user=request.user,
        centre=staged.centre,
        outcome=staged.outcome,
        rows=staged.rows,
        columns=staged.columns,
        row_limit=PREVIEW_ROWS_SHOWN,
        base=staged.base_version,
    )
    code = staged.outcome.measure
    for entry in report["pooled"]:
        entry["before_ratio"] = ratio_of(code, entry["before"])
        entry["after_ratio"] = ratio_of(code, entry["after"])
    return render(
        request,
        "portal/upload_preview.html",
        {
            "staged": staged,
            **report,
            "rows_total": len(staged.rows),
            "rows_shown": min(len(staged.rows), PREVIEW_ROWS_SHOWN),
            "is_steering": visibility.reads_unreleased(request.user),
            # the scale rows are shown on: a ratio measure's ratio, else the measure itself
            "scale": (ratio_of(code, {"estimate": 0, "ci_lb": 0, "ci_ub": 0}) or {}).get("label", code),
            "ratio_scale": ratio_of(code, {"estimate": 0, "ci_lb": 0, "ci_ub": 0}) is not None,
        },
    )


@login_required
def audit(request: HttpRequest) -> HttpResponse:
    """The audit trail, newest first, 100 events a page, filtered by action, centre and who."""
    if not roles.is_steering(request.user):
        raise Http404("Not found.")
    selected = {key: request.GET.get(key, "").strip()[:100] for key in ("action", "centre", "actor")}
    events = AuditEvent.objects.select_related("centre").order_by("-at", "-id")
    if selected["action"]:
        events = events.filter(action=selected["action"])
    if selected["centre"]:
        events = events.filter(centre__code=selected["centre"])
    if selected["actor"]:
        events = events.filter(actor_username__icontains=selected["actor"])
    page = Paginator(events, 100).get_page(request.GET.get("page"))  # a bad page number: the nearest
    names = audit_object_names(list(page))
    rows = []
    for item in audit_events_shown(user=request.user, events=list(page)):
        e = item.event
        before, after = (
            changed_only(item.before, item.after)
            if e.action.endswith("update")
            else (item.before, item.after)
        )
        name = names.get((e.object_type, e.object_id), f"{e.object_type} {e.object_id}")
        rows.append((item, name, _audit_items(before), _audit_items(after)))
    return render(
        request,
        "portal/audit.html",
        {
            "page": page,
            "rows": rows,
            "selected": selected,
            "query": urlencode({k: v for k, v in selected.items() if v}),
            # the export takes the API's filter names (it has no filter by who)
            "export_query": urlencode(
                {k: v for k, v in (("action", selected["action"]), ("centre__code", selected["centre"])) if v}
            ),
            "actions": AuditEvent.objects.order_by("action").values_list("action", flat=True).distinct(),
            "centres": Centre.objects.order_by("name"),
        },
    )


def _audit_items(value: Any) -> list[tuple[str, str]]:
    """A recorded state as labelled lines: each key with its value as text (lists joined, nested
    values as compact JSON), long values shortened; anything else as one unlabelled line."""
    if value in (None, "", {}, []):
        return []
    if not isinstance(value, dict):
        return [("", _audit_text(value))]
    return [(str(key), _audit_text(item)) for key, item in value.items()]


def _audit_text(value: Any, limit: int = 300) -> str:
    if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
        text = ", ".join(str(v) for v in value) or "(none)"
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(", ", ": ")) if value else "(none)"
    else:
        text = "–" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"
