"""The portal's API tokens page: a person lists, creates and revokes their own tokens.

The rules (who may hold which scope, the expiry bounds, the audit records) are the token services'
(``apps.api.tokens``), shared with the API; this page only collects the form and shows the answer.
A new token's secret is shown in the answer to the POST that created it, once, and never again.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from apps.api.models import ApiToken
from apps.api.tokens import allowed_scopes, token_create, token_is_live, token_revoke, tokens_of
from apps.consortium import roles


def _context(request: HttpRequest, **extra: Any) -> dict[str, Any]:
    tokens = list(tokens_of(request.user))
    for token in tokens:
        token.live = token_is_live(token)
    labels = dict(ApiToken.Scope.choices)
    return {
        "tokens": tokens,
        "scopes": [(scope, labels[scope]) for scope in allowed_scopes(request.user)],
        "default_days": settings.API_TOKEN_DEFAULT_DAYS,
        "max_days": settings.API_TOKEN_MAX_DAYS,
        "service_account": roles.api_client_of(request.user) is not None,
        **extra,
    }


@login_required
def tokens(request: HttpRequest) -> HttpResponse:
    """List your tokens; POST creates one and shows its secret this once."""
    if request.method != "POST":
        return render(request, "portal/tokens.html", _context(request))
    days_text = request.POST.get("expires_in_days", "")
    form = {
        "name": request.POST.get("name", ""),
        "scopes": request.POST.getlist("scopes"),
        # a malformed number goes to the service as text, which refuses it with the rule
        "expires_in_days": int(days_text)
        if days_text.isascii() and days_text.isdigit() and len(days_text) < 6
        else days_text,
    }
    try:
        token, secret = token_create(actor=request.user, user=request.user, data=form)
    except PermissionDenied as exc:
        messages.error(request, str(exc))
        return render(request, "portal/tokens.html", _context(request, form=form), status=403)
    except ValidationError as exc:
        errors = exc.message_dict if hasattr(exc, "error_dict") else {"name": exc.messages}
        return render(request, "portal/tokens.html", _context(request, form=form, errors=errors), status=400)
    response = render(request, "portal/tokens.html", _context(request, created=token, secret=secret))
    response["Cache-Control"] = "no-store"  # the secret must not stay in a cache
    return response


@login_required
@require_POST
def token_revoke_view(request: HttpRequest, key: str) -> HttpResponse:
    """Revoke one of your tokens (its public prefix names it)."""
    token = get_object_or_404(tokens_of(request.user), token_key=key)
    token_revoke(actor=request.user, token=token)
    messages.success(
        request, f"The token “{token.name}” ({token.token_key}…) is revoked; it no longer works."
    )
    return redirect("portal:tokens")
