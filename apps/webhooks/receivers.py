"""Receivers of the analyses app's signals (connected in ``WebhooksConfig.ready``).

Both run inside the transaction that makes the change and only write delivery rows: nothing here
waits on the network or the broker, and a delivery commits or rolls back with the change.
"""

from __future__ import annotations

from typing import Any

from apps.webhooks.services import payloads


def on_result_stored(*, result: Any, previous_id: int | None = None, **_: Any) -> None:
    """``apps.analyses.signals.result_stored``: an analysis has a new current result."""
    payloads.deliveries_record_result(result=result, previous_id=previous_id)


def on_result_released(*, result: Any, **_: Any) -> None:
    """``apps.analyses.signals.result_released``: members and partners may read ``result`` now."""
    payloads.deliveries_record_result(result=result, previous_id=None, released=True)


def on_release_published(*, release: Any, **_: Any) -> None:
    """``apps.analyses.signals.release_published``: the steering group published ``release``."""
    payloads.deliveries_record_release(release=release)
