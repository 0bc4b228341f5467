"""The page a locked-out sign-in gets (django-axes calls ``lockout_response``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponse
from django.shortcuts import render


def lockout_response(request: Any, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    cooloff = settings.AXES_COOLOFF_TIME
    seconds = int(cooloff.total_seconds())
    response = render(
        request,
        "registration/locked_out.html",
        {"cooloff_minutes": max(1, seconds // 60), "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
