"""The steering group publishes a release from the portal: a name, notes and an optional embargo;
the rules and the freezing are ``apps.analyses.releases.release_publish``'s, as for the API."""

from __future__ import annotations

from datetime import UTC, datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from apps.analyses.releases import release_publish
from apps.consortium import roles


@login_required
@require_POST
def release_publish_view(request: HttpRequest) -> HttpResponse:
    if not roles.is_steering(request.user):
        raise Http404("Not found.")
    embargo_text = request.POST.get("embargo_until", "").strip()
    embargo = None
    if embargo_text:
        try:
            # the form's local time is UTC, as every time on the portal
            embargo = datetime.fromisoformat(embargo_text).replace(tzinfo=UTC)
        except ValueError:
            messages.error(
                request, f"The embargo {embargo_text[:40]!r} is not a date and time; nothing was published."
            )
            return redirect("portal:home")
    try:
        release, skipped = release_publish(
            actor=request.user,
            name=request.POST.get("name", "").strip(),
            notes=request.POST.get("notes", ""),
            embargo_until=embargo,
        )
    except PermissionDenied:
        raise
    except ValidationError as exc:
        problems = exc.message_dict if hasattr(exc, "error_dict") else {"release": exc.messages}
        for field, texts in problems.items():
            messages.error(request, f"{field}: {' '.join(texts)} Nothing was published.")
        return redirect("portal:home")
    frozen = release.entries.count()
    when = (
        f", readable by members from {embargo:%Y-%m-%d %H:%M} UTC" if embargo else ", readable by members now"
    )
    messages.success(
        request, f"Release {release.name} published: {frozen} result{'s' if frozen != 1 else ''}{when}."
    )
    for item in skipped:
        messages.info(request, f"Not in the release: {item.analysis} ({item.reason})")
    return redirect("portal:home")
