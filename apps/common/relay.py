"""The outbox relay: hand the due rows of an outbox table to the broker, one round at a time.

An outbox row is written in the transaction of the change it announces, so a message exists if and
only if the change committed. A round takes the due rows (on PostgreSQL with ``SKIP LOCKED``, so
that relays running at once never take the same row), groups them into messages, sends each one and
marks what was sent, all in one transaction. A broker error stops the round at that message: the
broker is down for the others as well, and they stay pending for the next round.

The recompute requests (``apps.analyses.outbox``) and the webhook deliveries
(``apps.webhooks.services.dispatch``) are relayed by ``relay_round``; each says which rows are due,
how they make messages, how a message is sent and what is marked on success or failure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from django.db import connection, transaction
from django.db.models import QuerySet

logger = logging.getLogger(__name__)

Row = TypeVar("Row")
Message = TypeVar("Message")


def relay_round(
    due: QuerySet[Any, Row],
    *,
    messages: Callable[[list[Row]], Iterable[tuple[Message, list[Row]]]],
    send: Callable[[Message], None],
    mark_sent: Callable[[list[Row]], None],
    mark_failed: Callable[[list[Row], Exception], None] | None = None,
    limit: int = 500,
    what: str,
) -> int:
    """Send the first ``limit`` rows of ``due`` (ordered as they should go); return how many rows
    were sent.

    ``messages`` groups the rows into (message, its rows); ``send`` hands one message to the broker.
    ``mark_sent`` records the rows of every message the broker took; ``mark_failed`` the rows of the
    message it refused, where the round stops. ``what`` names a message in the log.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            due = due.select_for_update(skip_locked=True)
        rows = list(due[:limit])
        sent: list[Row] = []
        for message, group in messages(rows):
            try:
                send(message)
            except Exception as exc:
                logger.warning(
                    "Broker unavailable for %s %s (%s); the rest wait for the next round.", what, message, exc
                )
                if mark_failed is not None:
                    mark_failed(group, exc)
                break
            sent += group
        if sent:
            mark_sent(sent)
    return len(sent)


def one_message_each(rows: list[Row]) -> list[tuple[Row, list[Row]]]:
    """Each row a message of its own."""
    return [(row, [row]) for row in rows]


def backoff_seconds(doublings: int, *, first: float, maximum: float) -> int:
    """Seconds to wait: ``first``, doubled ``doublings`` times, at most ``maximum``."""
    return int(min(maximum, first * 2 ** min(doublings, 30)))
