"""API read benchmark: requests per second and latency of the read endpoints partners' tools call,
beside a bare Django view, in one run on one gunicorn.

Setup: the demo consortium plus one large outcome (k = 2,000 studies, so that a result's blocks
weigh megabytes) on a dedicated PostgreSQL database (``bench_api``, recreated), a Redis cache
database of its own (11) for the rate-limit counters as in production, and both results published
in releases so that the demo's API client (a service account, token authentication) reads them.
gunicorn serves it with 2 sync workers, DEBUG off, ``bench.bare_settings`` (the platform's URLs
plus ``/bench/bare/``, a view that does nothing behind the same middleware).

Each endpoint is loaded by ``CLIENTS`` client processes for ``SECONDS`` seconds (after a warm-up);
the table gives requests per second, p50 and p99 latency, the response size, and the ratio to the
bare view's requests per second.

Usage: ``python -m bench.api_bench --out bench/API.md`` (``make bench-api``).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import multiprocessing
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import free_port, percentile, time_for

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
DB_NAME = "bench_api"
CACHE_URL = os.environ.get("BENCH_API_CACHE_URL", "redis://127.0.0.1:6379/11")
CLIENTS = 4
SECONDS = 8.0
WARMUP_SECONDS = 1.5
BIG_K = 2_000
#: the rows the goal (at least half the bare view's requests per second) is about
GOAL_ROWS = ("result detail, k = 2,000", "results by outcome, k = 2,000")
GOAL = 0.5


def _environment() -> dict[str, str]:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "bench.bare_settings",
        "DEBUG": "false",
        "DATABASE_URL": f"{base}/{DB_NAME}",
        "CACHE_URL": CACHE_URL,
        "CELERY_BROKER_URL": "memory://",
        "OUTBOX_PUBLISH_ON_COMMIT": "false",
        "LOG_LEVEL": "ERROR",
        # the budget is counted on every request (that cost is measured) but never reached here
        "API_RATE_TOKEN": "10000000/minute",
        "PLATFORM_VAR_DIR": tempfile.mkdtemp(prefix="bench-api-"),
    }


def _prepare(env: dict[str, str]) -> dict[str, Any]:
    """Recreate the database, load the demo and the large outcome, publish; the ids to read."""
    import psycopg
    import redis

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    redis.Redis.from_url(CACHE_URL).flushdb()
    os.environ.update(env)
    import django

    django.setup()
    import numpy as np
    from django.contrib.auth import get_user_model
    from django.core.management import call_command

    from apps.analyses.models import Analysis
    from apps.analyses.releases import release_publish
    from apps.analyses.services import analysis_create_default, analysis_recompute
    from apps.consortium.models import Centre, Outcome
    from apps.datasets.ingest import parse_json_rows
    from apps.datasets.models import Dataset
    from apps.datasets.services import dataset_set_status, dataset_version_create, upload_spec_for

    call_command("migrate", "--noinput", verbosity=0)
    call_command("load_demo", verbosity=0)
    big = Outcome.objects.create(code="big", name="Large synthetic outcome", measure="SMD")
    analysis = analysis_create_default(outcome=big)
    rng = np.random.default_rng(11)
    n = rng.integers(20, 200, size=(BIG_K, 2))
    rows = [
        {
            "study": f"Trial {i + 1}",
            "m1i": round(float(rng.normal(10.3, 1.0)), 3),
            "sd1i": round(float(rng.uniform(3, 5)), 3),
            "n1i": int(n[i, 0]),
            "m2i": round(float(rng.normal(10.0, 1.0)), 3),
            "sd2i": round(float(rng.uniform(3, 5)), 3),
            "n2i": int(n[i, 1]),
        }
        for i in range(BIG_K)
    ]
    centre = Centre.objects.order_by("code").first()
    assert centre is not None
    version, _ = dataset_version_create(
        actor=None,
        centre=centre,
        outcome=big,
        parsed=parse_json_rows(rows, spec=upload_spec_for(big)),
        content=None,
        filename="big.json",
    )
    dataset_set_status(actor=None, dataset=version.dataset, status=Dataset.Status.SUBMITTED)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.k == BIG_K, result
    steering = get_user_model().objects.get(username="steering")
    release_publish(actor=steering, name="bench", analyses=[analysis.pk])
    demo_result = Analysis.objects.filter(is_default=True).exclude(outcome=big).order_by("pk").first()
    assert demo_result is not None and demo_result.current_result_id is not None
    return {
        "big_result": result.pk,
        "blocks_bytes": len(result.detail_json),
        "demo_result": demo_result.current_result_id,
        "demo_outcome": demo_result.outcome.code,
    }


def _request(port: int, path: str, headers: dict[str, str]) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, len(response.read())
    finally:
        conn.close()


def _client(args: tuple[int, str, dict[str, str], float, float]) -> tuple[list[float], int, set[int]]:
    port, path, headers, warmup, seconds = args
    answers, latencies = time_for(functools.partial(_request, port, path, headers), seconds, warmup=warmup)
    return latencies, answers[-1][1] if answers else 0, {status for status, _ in answers}


def _load(port: int, path: str, headers: dict[str, str]) -> dict[str, Any]:
    with multiprocessing.get_context("fork").Pool(CLIENTS) as pool:
        parts = pool.map(_client, [(port, path, headers, WARMUP_SECONDS, SECONDS)] * CLIENTS)
    latencies = [x for part, _, _ in parts for x in part]
    statuses = set().union(*(s for _, _, s in parts))
    return {
        "rps": len(latencies) / SECONDS,
        "p50": statistics.median(latencies) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "bytes": parts[0][1],
        "statuses": statuses,
    }


def run(out: Path) -> str:
    env = _environment()
    ids = _prepare(env)
    from apps.demo import synthetic as demo

    port = free_port()
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    server = subprocess.Popen(  # noqa: S603
        [gunicorn, "apps.config.wsgi:application", "--workers", "2", "--bind", f"127.0.0.1:{port}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if _request(port, "/bench/bare/", {})[0] == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
        token = {"Authorization": f"Token {demo.API_TOKEN}"}
        status, _ = _request(port, f"/api/v1/results/{ids['big_result']}/", token)
        assert status == 200, status
        etag_conn = http.client.HTTPConnection("127.0.0.1", port)
        etag_conn.request("GET", f"/api/v1/results/{ids['big_result']}/", headers=token)
        etag = etag_conn.getresponse().getheader("ETag") or ""
        etag_conn.close()
        cases = [
            ("bare Django view (no authentication)", "/bench/bare/", {}),
            ("result detail, k = 2,000", f"/api/v1/results/{ids['big_result']}/", token),
            ("result detail, demo (k = 20-ish)", f"/api/v1/results/{ids['demo_result']}/", token),
            (
                "result detail, conditional (304)",
                f"/api/v1/results/{ids['big_result']}/",
                {**token, "If-None-Match": etag},
            ),
            ("results by outcome, k = 2,000", "/api/v1/results/?analysis__outcome__code=big", token),
            (
                "results by outcome, demo",
                f"/api/v1/results/?analysis__outcome__code={ids['demo_outcome']}",
                token,
            ),
            ("analyses list", "/api/v1/analyses/", token),
            (
                "one block (leave1out, k = 2,000, gzip)",
                f"/api/v1/results/{ids['big_result']}/blocks/leave1out/",
                {**token, "Accept-Encoding": "gzip"},
            ),
        ]
        measured = [(label, path, _load(port, path, headers)) for label, path, headers in cases]
    finally:
        server.terminate()
        server.wait(timeout=30)
    bare = measured[0][2]["rps"]
    goal = {label: m["rps"] / bare for label, _, m in measured if label in GOAL_ROWS}
    rows = [
        f"| {label} | {m['rps']:,.0f} | {m['p50']:.1f} | {m['p99']:.1f} | {m['bytes']:,} | "
        f"{', '.join(map(str, sorted(m['statuses'])))} | {m['rps'] / bare:.2f}× |"
        for label, _, m in measured
    ]
    text = f"""# API read benchmark

{datetime.now(UTC):%Y-%m-%d %H:%M} UTC; Python {platform.python_version()}, {os.cpu_count()} cores;
gunicorn with 2 sync workers, DEBUG off, PostgreSQL (local), Redis for the rate-limit counters.
{CLIENTS} client processes per endpoint for {SECONDS:.0f} s each, after {WARMUP_SECONDS} s of warm-up;
a new connection per request (sync workers do not keep connections alive). Every API request is
authenticated with the demo's API token (a service account with `results:read`, hashed, checked
for expiry and scope, throttled per token) and scoped to the released results it may read.
The large outcome's result has k = {BIG_K:,} studies; its stored detail is {ids["blocks_bytes"]:,} bytes
(the blocks themselves are fetched one at a time).

| endpoint | requests/s | p50 ms | p99 ms | response bytes | statuses | vs bare view |
| --- | ---: | ---: | ---: | ---: | --- | ---: |
{chr(10).join(rows)}

Goal: result detail and results by outcome at least {GOAL}× the bare view:
{"; ".join(f"{label} {ratio:.2f}× ({'met' if ratio >= GOAL else 'not met'})" for label, ratio in goal.items())}.

Reproduce with `make bench-api` (`python -m bench.api_bench --out bench/API.md`).
"""
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "API.md")
    args = parser.parse_args(argv)
    print(run(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
