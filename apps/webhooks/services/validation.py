"""What a webhook may say: its receiver URL (http(s), an address the platform may call), its events,
thresholds and flags, each field checked with every message collected."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError

from apps.common.text import FieldChecks, clean_text
from apps.webhooks import delivery as wire
from apps.webhooks import events
from apps.webhooks.models import Webhook

WEBHOOK_FIELDS = ("url", "description", "events", "i2_threshold", "estimate_threshold", "active")
URL_MAX_LENGTH = 2000
ESTIMATE_THRESHOLD_MAX = 1000.0


def allow_http() -> bool:
    """Plain http receivers: outside production, or where WEBHOOKS_ALLOW_HTTP says so."""
    return bool(settings.WEBHOOKS_ALLOW_HTTP or not settings.PRODUCTION)


def clean_url(value: Any) -> str:
    """An http(s) URL the platform may call. A host name is resolved and every address checked;
    a name that does not resolve (yet) is accepted, because every delivery resolves it again."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationError("Give the receiver's URL, e.g. https://tools.example.org/hooks/evidence.")
    url = value.strip()
    if len(url) > URL_MAX_LENGTH:
        raise ValidationError(f"The URL is longer than {URL_MAX_LENGTH} characters.")
    try:
        target = wire.parse(url, allow_http=allow_http())
        if not settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES:
            try:
                addresses = wire.resolve(target.host, target.port)
            except (OSError, UnicodeError):
                addresses = ()
            wire.check(target, allow_private=False, addresses=addresses)
    except wire.TargetRefusedError as exc:
        raise ValidationError(str(exc)) from exc
    return url


def _clean_events(value: Any) -> list[str]:
    choices = ", ".join(events.EVENTS)
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise ValidationError(f"List the events to deliver, one or more of: {choices}.")
    unknown = [v for v in value if v not in events.EVENTS]
    if unknown:
        raise ValidationError(f"{', '.join(map(repr, unknown))}: not an event; choose from {choices}.")
    return list(dict.fromkeys(value))  # each once, in the order given


def _number(*, low: float, high: float, what: str) -> Callable[[Any], float]:
    def clean(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValidationError(f"{what} is a number.")
        if not low <= value <= high:
            raise ValidationError(f"{what} is between {low:g} and {high:g}.")
        return float(value)

    return clean


def _flag(value: Any) -> bool:
    if not isinstance(value, bool):
        raise ValidationError("Give true or false.")
    return value


_CLEAN: dict[str, Callable[[Any], Any]] = {
    "url": clean_url,
    "description": lambda v: clean_text(
        "" if v is None else v, field="The description", max_length=200, blank=True
    ),
    "events": _clean_events,
    "i2_threshold": _number(low=0, high=100, what="The I² threshold (a percentage)"),
    "estimate_threshold": _number(low=0, high=ESTIMATE_THRESHOLD_MAX, what="The estimate threshold"),
    "active": _flag,
}


def webhook_validate(*, webhook: Webhook | None, data: dict[str, Any]) -> dict[str, Any]:
    """The cleaned fields that ``data`` sets: every field, with defaults, for a new webhook; only the
    fields given for a change (so that changing a description does not resolve the URL again).
    Raises ``ValidationError`` with the messages of every field."""
    given = {k: v for k, v in data.items() if k in WEBHOOK_FIELDS}
    if webhook is None:
        given = {
            "description": "",
            "i2_threshold": events.DEFAULT_I2_THRESHOLD,
            "estimate_threshold": events.DEFAULT_ESTIMATE_THRESHOLD,
            "active": True,
            **given,
        }
    checks = FieldChecks(given)
    for name in WEBHOOK_FIELDS:
        if name in given or webhook is None:
            checks.check(name, _CLEAN[name])
    return checks.result()
