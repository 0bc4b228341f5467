"""What the API's read path remembers between requests, and how it knows it is still true.

An API read costs little of its own (results are immutable and stored as their JSON), so per
request the platform would otherwise spend most of its time asking the same questions again: is
this token valid, whose is it, which results may they read. Each web process keeps the answers
(``LocalCache``), and one round trip to the shared cache per request checks that they still hold:
two *generation* counters there are bumped, after the commit, by every change that could alter an
answer (:func:`bump`):

- ``auth``: a token deleted (revoked, ended by a password change), a user saved (deactivated,
  made an administrator), a steering role or a service account granted, changed or removed;
- ``results``: a result stored, a release published.

The same round trip reads the address's failed-authentication count and counts the request against
the token's rate limit (:func:`request_counters`), so a request with a known token touches neither
the database nor the shared cache again. An embargo ending changes what members may read without
any write: entries that depend on releases also expire at the next embargo's end. Every entry also
expires after ``MAX_AGE_SECONDS``, a backstop for a change made outside the ORM's signals.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.db import transaction

AUTH = "api:generation:auth"
RESULTS = "api:generation:results"
MAX_AGE_SECONDS = 60.0


def _move(keys: tuple[str, ...]) -> None:
    for key in keys:
        try:
            cache.incr(key)
        except ValueError:  # first use, or evicted: a new value unlike any before
            cache.set(key, time.time_ns(), None)


def bump(*keys: str) -> None:
    """Move ``keys`` on, now and again when the current transaction commits: entries checked
    against them are stale from then on, in every process. (Now, so that the writing transaction's
    own later requests see it; after the commit, so that an entry another process computed from the
    old data between the two is stale too.)"""
    _move(keys)
    transaction.on_commit(lambda: _move(keys))


_LOCAL: list[LocalCache] = []


def clear_local() -> None:
    """Forget everything this process remembers (tests start each case afresh)."""
    for local in _LOCAL:
        local.clear()


class LocalCache:
    """A bounded map in one process (least recently used out first), each entry stamped with the
    generation it was computed under and a time after which it is not used."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[Any, tuple[Any, Any, float]] = OrderedDict()
        _LOCAL.append(self)

    def get(self, key: Any, generation: Any) -> Any:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, stamped, until = entry
        if stamped != generation or time.monotonic() >= until:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return value

    def put(self, key: Any, generation: Any, value: Any, *, ttl: float = MAX_AGE_SECONDS) -> None:
        self._entries[key] = (value, generation, time.monotonic() + min(ttl, MAX_AGE_SECONDS))
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()


@dataclass(frozen=True)
class Counters:
    """What one round trip to the shared cache told a request."""

    failed_auth: int
    auth: Any
    results: Any
    token_requests: int | None

    def with_count(self, count: int | None) -> Counters:
        return Counters(self.failed_auth, self.auth, self.results, count)


def request_counters(*, failed_key: str, token_key: str | None, token_ttl: int) -> Counters:
    """Read the failure count and both generations and count the request against ``token_key``'s
    window, in one round trip where the cache is Redis (``apps.config.cache``). A generation that
    is missing (first use, a flushed cache) is created, never read as "unchanged"."""
    pipeline = getattr(cache, "pipeline", None)
    if pipeline is not None:
        with pipeline() as pipe:
            for key in (failed_key, AUTH, RESULTS):
                pipe.get(cache.make_key(key))
            if token_key is not None:
                pipe.incr(cache.make_key(token_key))
                pipe.expire(cache.make_key(token_key), token_ttl)
            answers = pipe.execute()
        failed, auth, results = answers[:3]
        count = int(answers[3]) if token_key is not None else None
    else:
        found = cache.get_many([failed_key, AUTH, RESULTS])
        failed, auth, results = found.get(failed_key), found.get(AUTH), found.get(RESULTS)
        count = None
        if token_key is not None:
            cache.add(token_key, 0, token_ttl)
            count = int(cache.incr(token_key))
    if auth is None or results is None:
        _move(tuple(key for key, value in ((AUTH, auth), (RESULTS, results)) if value is None))
        return request_counters(failed_key=failed_key, token_key=None, token_ttl=token_ttl).with_count(count)
    return Counters(int(failed or 0), auth, results, count)
