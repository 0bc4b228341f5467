"""The cast reused across the suite, and the real services the integration tests need.

Cast: a data manager and a member of centre A, a data manager of centre B, a steering-group member,
an API client (token, read-only scopes), an administrator and an anonymous visitor.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import pytest
from django.conf import settings

SMD_ROWS = [
    {
        "study": "Adams 2015",
        "m1i": 12.1,
        "sd1i": 4.2,
        "n1i": 30,
        "m2i": 10.4,
        "sd2i": 4.0,
        "n2i": 31,
        "year": 2015,
    },
    {
        "study": "Baker 2017",
        "m1i": 20.5,
        "sd1i": 6.1,
        "n1i": 45,
        "m2i": 18.0,
        "sd2i": 5.9,
        "n2i": 44,
        "year": 2017,
    },
    {
        "study": "Chen 2019",
        "m1i": 8.3,
        "sd1i": 2.5,
        "n1i": 25,
        "m2i": 7.9,
        "sd2i": 2.6,
        "n2i": 27,
        "year": 2019,
    },
    {
        "study": "Diaz 2020",
        "m1i": 15.0,
        "sd1i": 5.0,
        "n1i": 60,
        "m2i": 12.2,
        "sd2i": 5.2,
        "n2i": 58,
        "year": 2020,
    },
]


def ci_requires_services() -> bool:
    """Whether a missing service must fail the run: ``CI`` set to a true value (true, 1, yes, on, in
    any case), read exactly as the test settings read it, so that PostgreSQL and Redis are required
    under the same values. A value that is neither true nor false is a configuration error."""
    from apps.config.env import env_bool

    return env_bool("CI", False)


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def missing_services() -> list[str]:
    """The services integration tests need that are not there: PostgreSQL (the test database) and
    the Redis of ``TEST_BROKER_URL``."""
    missing = []
    if settings.DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        missing.append("PostgreSQL (DATABASE_URL)")
    redis_url = settings.TEST_BROKER_URL
    parts = urlsplit(redis_url)
    if not _reachable(parts.hostname or "127.0.0.1", parts.port or 6379):
        missing.append(f"Redis ({redis_url})")
    return missing


def require_services() -> None:
    """Integration tests need PostgreSQL and Redis. Under CI their absence fails the test; elsewhere
    it skips it, with the reason."""
    missing = missing_services()
    if missing:
        message = "integration test needs " + ", ".join(missing)
        if ci_requires_services():
            pytest.fail(message + " and CI requires it")
        pytest.skip(message + " (set CI=true to make this a failure)")


@pytest.fixture
def cast(db: Any) -> dict[str, Any]:
    return make_cast()


def make_cast() -> dict[str, Any]:
    from django.contrib.auth.models import User

    from apps.analyses.services import analysis_create_default
    from apps.api.tokens import token_create
    from apps.consortium.models import ApiClient, Centre, ConsortiumRole, Membership, Outcome
    from apps.consortium.services import membership_set

    centre_a = Centre.objects.create(code="alpha", name="Centre Alpha")
    centre_b = Centre.objects.create(code="beta", name="Centre Beta")
    mods = [{"name": "year", "kind": "numeric"}, {"name": "setting", "kind": "categorical"}]
    outcome = Outcome.objects.create(
        code="rf", name="Reflective functioning", measure="SMD", direction="higher", moderators=mods
    )
    outcome2 = Outcome.objects.create(
        code="dep", name="Depression", measure="SMD", direction="lower", moderators=mods
    )
    for o in (outcome, outcome2):
        analysis_create_default(outcome=o)
    users = {}
    for name in ("dm_a", "member_a", "dm_b", "steering", "api_client", "admin"):
        users[name] = User.objects.create_user(name, password="pw-" + name)
    users["admin"].is_superuser = users["admin"].is_staff = True
    users["admin"].save()
    membership_set(actor=None, user=users["dm_a"], centre=centre_a, role=Membership.Role.DATA_MANAGER)
    membership_set(actor=None, user=users["member_a"], centre=centre_a, role=Membership.Role.MEMBER)
    membership_set(actor=None, user=users["dm_b"], centre=centre_b, role=Membership.Role.DATA_MANAGER)
    ConsortiumRole.objects.create(user=users["steering"], role=ConsortiumRole.Role.STEERING)
    ApiClient.objects.create(user=users["api_client"], name="Tool", scopes=[ApiClient.Scope.RESULTS_READ])
    _, token = token_create(
        actor=users["admin"], user=users["api_client"], data={"name": "Tool", "scopes": ["results:read"]}
    )
    return {
        "centre_a": centre_a,
        "centre_b": centre_b,
        "outcome": outcome,
        "outcome2": outcome2,
        "users": users,
        "token": token,
    }


def store_rows(
    *, centre: Any, outcome: Any, rows: list[dict[str, Any]], submit: bool = False, actor: Any = None
) -> Any:
    """Create a dataset version through the same validation and service as an upload."""
    from apps.datasets.ingest import parse_json_rows
    from apps.datasets.models import Dataset
    from apps.datasets.services import dataset_set_status, dataset_version_create, upload_spec_for

    parsed = parse_json_rows(rows, spec=upload_spec_for(outcome))
    version, _ = dataset_version_create(
        actor=actor, centre=centre, outcome=outcome, parsed=parsed, content=None, filename="rows.json"
    )
    if submit:
        dataset_set_status(actor=actor, dataset=version.dataset, status=Dataset.Status.SUBMITTED)
    version.dataset.refresh_from_db()
    return version.dataset


def make_unfittable(cast: dict[str, Any], analysis: Any) -> Any:
    """Give ``analysis`` data its settings cannot fit, as when data arrive after a setting was
    saved: Paule-Mandel (accepted while every study reports one effect), then centre B's rows with
    two effects per study, which call for a multilevel model. Returns the recompute's result: failed,
    with no estimate and the reason."""
    from apps.analyses.services import analysis_recompute, analysis_update

    analysis_update(
        actor=cast["users"]["steering"], analysis=analysis, changes={"method": "PM"}, reason="test"
    )
    rows = [{**r, "study": r["study"] + " two", "instrument": i} for r in SMD_ROWS for i in ("A", "B")]
    store_rows(centre=cast["centre_b"], outcome=analysis.outcome, rows=rows, submit=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "failed", result
    return result


def publish(steering: Any, *results: Any, name: str | None = None, **options: Any) -> Any:
    """Publish a release freezing ``results`` (each its analysis's current result); the release."""
    from apps.analyses.models import Release
    from apps.analyses.releases import release_publish

    release, _ = release_publish(
        actor=steering,
        name=name or f"r{Release.objects.count() + 1}",
        analyses=[r.analysis_id for r in results],
        **options,
    )
    frozen = set(release.entries.values_list("result_id", flat=True))
    assert frozen == {r.pk for r in results}, "a published result was not its analysis's current one"
    return release


def api_client_for(cast: dict[str, Any], who: str) -> Any:
    """A DRF test client signed in as ``who`` (session for people, token for the API client)."""
    from rest_framework.test import APIClient

    client = APIClient()
    if who == "anonymous":
        return client
    if who == "api_client":
        client.credentials(HTTP_AUTHORIZATION="Token " + cast["token"])
        return client
    client.force_login(cast["users"][who])
    return client


@pytest.fixture
def tmp_media(tmp_path: Any, settings: Any) -> Iterator[Any]:
    settings.MEDIA_ROOT = tmp_path / "uploads"
    yield settings.MEDIA_ROOT


@pytest.fixture(autouse=True)
def _fresh_rate_limits() -> Iterator[None]:
    """Rate-limit counters live in the cache, which outlives a test's database transaction: each
    test starts with none, so one test's requests never throttle another's."""
    from django.core.cache import cache

    from apps.api import readcache

    cache.clear()
    readcache.clear_local()
    yield
    cache.clear()
    readcache.clear_local()


def dependent_trial_rows() -> list[dict[str, Any]]:
    """Six trials (SMD, seeded): four report two instruments, three at two time points as well; the
    rows at indices 1 and 5 are given as Cohen's d and the row at index 3 as a t statistic, as papers
    report them (with the group sizes)."""
    import math

    import numpy as np

    rng = np.random.default_rng(2026)
    rows = []
    for j in range(6):
        instruments = ["PRFQ", "RFS"] if j % 3 else ["PRFQ"]
        times = ["post", "6m"] if j % 2 else ["post"]
        for t in times:
            for ins in instruments:
                n1, n2 = int(rng.integers(20, 60)), int(rng.integers(20, 60))
                rows.append(
                    {
                        "study": f"Trial {j + 1}",
                        "instrument": ins,
                        "timepoint": t,
                        "m1i": round(float(50 + rng.normal(4, 3)), 2),
                        "sd1i": round(float(rng.uniform(8, 12)), 2),
                        "n1i": n1,
                        "m2i": round(float(50 + rng.normal(0, 3)), 2),
                        "sd2i": round(float(rng.uniform(8, 12)), 2),
                        "n2i": n2,
                        "year": 2010 + j,
                    }
                )
    for i, form in ((1, "di"), (3, "ti"), (5, "di")):
        r = rows[i]
        pooled_sd = math.sqrt(
            ((r["n1i"] - 1) * r["sd1i"] ** 2 + (r["n2i"] - 1) * r["sd2i"] ** 2) / (r["n1i"] + r["n2i"] - 2)
        )
        d = (r["m1i"] - r["m2i"]) / pooled_sd
        r[form] = round(d if form == "di" else d / math.sqrt(1 / r["n1i"] + 1 / r["n2i"]), 2)
        for name in ("m1i", "sd1i", "m2i", "sd2i"):
            del r[name]
    return rows
