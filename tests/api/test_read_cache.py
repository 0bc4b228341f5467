"""What the API's read path remembers between requests is never older than the data: a revoked
token, a lost role, a deactivated account, a new result, a published release and an ended embargo
all count from the next request. Run with the embedded cache and with Redis (production's)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute
from apps.api import readcache
from apps.api.tokens import token_create, token_revoke
from apps.consortium.models import ConsortiumRole
from tests.conftest import SMD_ROWS, publish, require_services, store_rows

pytestmark = pytest.mark.django_db

REDIS_CACHE = "redis://127.0.0.1:6379/12"


@pytest.fixture(params=["locmem", "redis"])
def shared_cache(request: Any, settings: Any) -> Iterator[str]:
    """The cache the counters and generations live in: one process's memory, or Redis."""
    if request.param == "redis":
        require_services()
        settings.CACHES = {
            "default": {"BACKEND": "apps.config.cache.PooledRedisCache", "LOCATION": REDIS_CACHE}
        }
    from django.core.cache import cache

    cache.clear()
    readcache.clear_local()
    yield request.param
    cache.clear()
    readcache.clear_local()


class MovedClock:
    """Time as the platform reads it, moved on without waiting: the wall clock (``timezone.now``,
    which decides whether an embargo has ended) and the read cache's monotonic clock (which decides
    whether a remembered answer has expired), both ``seconds_moved`` ahead of the real ones."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seconds_moved = 0.0
        real_now, real_monotonic = timezone.now, time.monotonic
        monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=self.seconds_moved))
        moved = SimpleNamespace(monotonic=lambda: real_monotonic() + self.seconds_moved, time_ns=time.time_ns)
        monkeypatch.setattr(readcache, "time", moved)

    def advance(self, *, seconds: float) -> None:
        self.seconds_moved += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> MovedClock:
    return MovedClock(monkeypatch)


def _token(user: Any, scopes: list[str]) -> tuple[Any, APIClient]:
    token, secret = token_create(actor=user, user=user, data={"name": "t", "scopes": scopes})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + secret)
    return token, client


@pytest.fixture
def world(cast: dict[str, Any], tmp_media: Any, shared_cache: str) -> dict[str, Any]:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None
    return {**cast, "analysis": analysis, "result": result}


def test_a_repeated_read_asks_the_database_nothing(
    world: dict[str, Any], django_assert_num_queries: Any
) -> None:
    _, client = _token(world["users"]["steering"], ["results:read"])
    url = f"/api/v1/results/{world['result'].pk}/"
    assert client.get(url).status_code == 200  # the token and the document are read once
    with django_assert_num_queries(0):
        assert client.get(url).status_code == 200
        assert client.get(url).status_code == 200


def test_a_revoked_token_and_a_deactivated_account_are_refused_at_once(world: dict[str, Any]) -> None:
    users = world["users"]
    token, client = _token(users["steering"], ["results:read"])
    assert client.get("/api/v1/results/").status_code == 200
    token_revoke(actor=users["steering"], token=token)
    assert client.get("/api/v1/results/").status_code == 401
    _, other = _token(users["dm_a"], ["results:read"])
    assert other.get("/api/v1/results/").status_code == 200
    users["dm_a"].is_active = False
    users["dm_a"].save()
    assert other.get("/api/v1/results/").status_code == 401


def test_losing_the_steering_role_hides_unreleased_results_at_once(world: dict[str, Any]) -> None:
    _, client = _token(world["users"]["steering"], ["results:read"])
    url = f"/api/v1/results/{world['result'].pk}/"
    assert client.get(url).status_code == 200
    assert [r["id"] for r in client.get("/api/v1/results/").json()["results"]] == [world["result"].pk]
    ConsortiumRole.objects.filter(user=world["users"]["steering"]).delete()
    assert client.get(url).status_code == 404
    assert client.get("/api/v1/results/").json()["results"] == []


def test_a_new_result_and_a_release_show_at_once(world: dict[str, Any]) -> None:
    users = world["users"]
    _, steering = _token(users["steering"], ["results:read"])
    _, member = _token(users["member_a"], ["results:read"])
    first = world["result"]
    assert member.get(f"/api/v1/results/{first.pk}/").status_code == 404
    assert member.get("/api/v1/results/").json()["count"] == 0
    assert steering.get("/api/v1/results/").json()["count"] == 1
    store_rows(centre=world["centre_b"], outcome=world["outcome"], rows=SMD_ROWS[:4], submit=True)
    second = analysis_recompute(analysis_id=world["analysis"].pk)
    assert second is not None
    assert [r["id"] for r in steering.get("/api/v1/results/").json()["results"]] == [second.pk, first.pk]
    publish(users["steering"], second)
    assert member.get(f"/api/v1/results/{second.pk}/").status_code == 200
    assert [r["id"] for r in member.get("/api/v1/results/").json()["results"]] == [second.pk]


def test_an_ended_embargo_shows_at_once(
    world: dict[str, Any], clock: MovedClock, django_assert_num_queries: Any
) -> None:
    users = world["users"]
    _, member = _token(users["member_a"], ["results:read"])
    publish(users["steering"], world["result"], embargo_until=timezone.now() + timedelta(seconds=10))
    url = f"/api/v1/results/{world['result'].pk}/"
    assert member.get(url).status_code == 404
    assert member.get("/api/v1/results/").json()["count"] == 0
    # A second before the embargo ends the hidden answers are still remembered ...
    clock.advance(seconds=9)
    with django_assert_num_queries(0):
        assert member.get(url).status_code == 404
    assert member.get("/api/v1/results/").json()["count"] == 0
    # ... and a second after it they are not: the result shows, long before the cache's own limit.
    clock.advance(seconds=2)
    assert clock.seconds_moved < readcache.MAX_AGE_SECONDS
    assert member.get(url).status_code == 200
    assert member.get("/api/v1/results/").json()["count"] == 1


def test_the_token_budget_is_counted_with_the_request(world: dict[str, Any], settings: Any) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "token": "3/minute"}
    _, client = _token(world["users"]["steering"], ["results:read"])
    statuses = [client.get("/api/v1/results/").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    refused = client.get("/api/v1/results/")
    assert 1 <= int(refused["Retry-After"]) <= 60
