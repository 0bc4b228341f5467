"""Publication to the broker right after a commit, off the request thread.

Work that must reach the workers (a recompute request, a webhook delivery) is first written to an
outbox table in the transaction of the change; after the commit, :func:`publish_soon` hands the
publication to one background thread, so that a request never waits on the broker and a broker
outage never fails a request. Whatever the thread cannot publish stays pending in its table, and the
periodic relay (``workers.tasks.relay_outbox``, ``workers.tasks.relay_webhooks``) publishes it
later: this path is for speed, the relay for certainty.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import connection

logger = logging.getLogger(__name__)

_publisher: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def publish_soon(publish: Callable[[], object], *, what: str) -> None:
    """Run ``publish`` in the publisher thread (one thread: publications keep their order)."""
    global _publisher
    with _lock:
        if _publisher is None:
            _publisher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox")
        _publisher.submit(_run, publish, what)


def publisher_drain() -> None:
    """Wait until every publication handed over so far has been attempted (orderly shutdown, tests):
    whatever failed stays pending for the relay."""
    global _publisher
    with _lock:
        publisher, _publisher = _publisher, None
    if publisher is not None:
        publisher.shutdown(wait=True)


def _run(publish: Callable[[], object], what: str) -> None:
    try:
        publish()
    except Exception:  # the relay retries; never let the thread die noisily
        logger.exception("Publishing %s failed; the relay will retry.", what)
    finally:
        connection.close()
