"""The page a locked-out sign-in gets (django-axes calls ``lockout_response``)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from axes.helpers import get_client_username
from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max
from django.http import HttpResponse
from django.shortcuts import render
from django.utils import timezone


def retry_at(request: Any, credentials: Any = None) -> datetime:
    """When the pause on this username from this address ends: the cool-off counts from the last
    recorded failure (``AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT`` is off, so the attempts
    refused during the pause do not extend it)."""
    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None)
    last = (
        AccessAttempt.objects.filter(username=username, ip_address=address)
        .aggregate(last=Max("attempt_time"))
        .get("last")
    )
    return (last or timezone.now()) + settings.AXES_COOLOFF_TIME


def lockout_response(request: Any, original_response: Any = None, credentials: Any = None) -> HttpResponse:
    until = retry_at(request, credentials)
    seconds = max(1, math.ceil((until - timezone.now()).total_seconds()))
    response = render(
        request,
        "registration/locked_out.html",
        {
            "retry_at": until,
            "retry_minutes": max(1, math.ceil(seconds / 60)),
            "cooloff_minutes": max(1, int(settings.AXES_COOLOFF_TIME.total_seconds()) // 60),
            "failure_limit": settings.AXES_FAILURE_LIMIT,
            "username": get_client_username(request, credentials) or "",
        },
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
