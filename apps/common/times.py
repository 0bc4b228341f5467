"""How the platform writes a moment in its JSON (API documents, webhook payloads)."""

from __future__ import annotations

from datetime import datetime


def iso_time(value: datetime | None) -> str | None:
    """A time as the API writes it: ISO 8601, ``Z`` for UTC (as DRF's renderer writes it)."""
    if value is None:
        return None
    text = value.isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text
