"""End-to-end benchmark: upload commit -> result readable through the API, on real services.

Runs the demo consortium on a dedicated PostgreSQL database (``bench_platform``, recreated), a Redis
database of its own (14) and a real Celery worker process (prefork, 2 children, embedded beat).

- Latency: 200 sequential uploads spread over the demo datasets; for each, the time from the commit
  of the upload's transaction to the moment ``GET /api/v1/analyses/{id}/`` shows a current result
  that answers it. p50 and p95.
- Burst: 1,000 uploads as fast as one client can send them; the time from the first commit until
  every analysis is current, and how many recomputes the burst cost.

Usage: ``python -m bench.e2e_bench --out bench/E2E.md`` (``make bench-e2e``).
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from bench.harness import cpu_model, percentile

ROOT = Path(__file__).resolve().parents[1]
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/test")
DB_NAME = "bench_platform"
BURST_CLIENTS = 10  # concurrent uploaders in the burst (divides the demo's 20 datasets)
BROKER = os.environ.get("BENCH_BROKER_URL", "redis://127.0.0.1:6379/14")


def _prepare_environment() -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "apps.config.settings.local",
            "DEBUG": "false",
            "DATABASE_URL": f"{base}/{DB_NAME}",
            "CELERY_BROKER_URL": BROKER,
            "OUTBOX_PUBLISH_ON_COMMIT": "true",
            "OUTBOX_RELAY_INTERVAL_SECONDS": "1",
            "LOG_LEVEL": "WARNING",
            "PLATFORM_VAR_DIR": tempfile.mkdtemp(prefix="bench-var-"),
        }
    )
    import redis

    redis.Redis.from_url(BROKER).flushdb()


def _start_worker() -> subprocess.Popen[bytes]:
    from apps.config.celery import WORKER_QUEUES

    log = Path(os.environ["PLATFORM_VAR_DIR"]) / "worker.log"
    proc = subprocess.Popen(  # noqa: S603
        [
            str(Path(sys.executable).with_name("celery")),
            "-A",
            "workers.celery",
            "worker",
            "--beat",
            "--schedule",
            str(Path(os.environ["PLATFORM_VAR_DIR"]) / "beat"),
            "--concurrency",
            "2",
            "-Q",
            WORKER_QUEUES,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ],
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while b" ready." not in log.read_bytes():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(log.read_text())
        time.sleep(0.1)
    return proc


def run(out: Path, n_latency: int, n_burst: int) -> str:
    _prepare_environment()
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from rest_framework.test import APIClient

    from apps.analyses import services
    from apps.analyses.models import Analysis, AnalysisResult
    from apps.datasets.models import Dataset
    from apps.demo import synthetic as demo

    call_command("migrate", verbosity=0)
    call_command("load_demo", stdout=open(os.devnull, "w"))  # noqa: SIM115
    commit_times: list[float] = []
    original_publish = services.outbox_publish_soon

    def timed_publish(*, event_ids: list[int]) -> None:
        commit_times.append(time.perf_counter())  # runs in on_commit: the upload has just committed
        original_publish(event_ids=event_ids)

    services.outbox_publish_soon = timed_publish
    worker = _start_worker()
    try:
        steering = APIClient()
        steering.force_login(User.objects.get(username="steering"))
        datasets = list(Dataset.objects.select_related("centre", "outcome", "current_version").order_by("pk"))
        clients: dict[str, APIClient] = {}
        for d in datasets:
            if d.centre.code not in clients:
                c = APIClient()
                c.force_login(User.objects.get(username=f"dm-{d.centre.code}"))
                clients[d.centre.code] = c
        analyses = {a.outcome_id: a.pk for a in Analysis.objects.filter(is_default=True)}
        state = {d.pk: [dict(r) for r in d.current_version.rows] for d in datasets if d.current_version}

        def upload(i: int, client: APIClient | None = None) -> tuple[int, int]:
            d = datasets[i % len(datasets)]
            rows = state[d.pk]
            j = i % len(rows)
            demo.vary_row(rows[j], up=(i // len(datasets)) % 2 == 0)
            resp = (client or clients[d.centre.code]).post(
                "/api/v1/datasets/upload/",
                {"centre": d.centre.code, "outcome": d.outcome.code, "rows": rows, "submit": True},
                format="json",
            )
            assert resp.status_code == 201, resp.content
            analysis_id = analyses[d.outcome_id]
            return analysis_id, Analysis.objects.get(pk=analysis_id).requested_seq

        def wait_current(analysis_id: int, seq: int, timeout: float = 60) -> float:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                data = steering.get(f"/api/v1/analyses/{analysis_id}/").json()
                if data["computed_seq"] >= seq and data["current_result"] is not None:
                    return time.perf_counter()
                time.sleep(0.002)
            raise TimeoutError(f"analysis {analysis_id} request {seq}")

        # warm-up
        for i in range(8):
            wait_current(*upload(i))
        latencies = []
        for i in range(n_latency):
            commit_times.clear()
            analysis_id, seq = upload(100 + i)
            done = wait_current(analysis_id, seq)
            latencies.append((done - commit_times[0]) * 1000)

        results_before = AnalysisResult.objects.count()
        commit_times.clear()

        # The burst: BURST_CLIENTS partner systems upload at once. Each dataset stays with one
        # client, so its versions arrive in order, as they would from one centre's data manager.
        def sender(t: int) -> None:
            own = {}
            for i in range(t, n_burst, BURST_CLIENTS):
                d = datasets[i % len(datasets)]
                if d.centre.code not in own:
                    own[d.centre.code] = APIClient()
                    own[d.centre.code].force_login(User.objects.get(username=f"dm-{d.centre.code}"))
                upload(i, own[d.centre.code])
            connection.close()

        assert len(datasets) % BURST_CLIENTS == 0, "each dataset must map to exactly one client"
        t_send = time.perf_counter()
        with ThreadPoolExecutor(BURST_CLIENTS) as pool:
            list(pool.map(sender, range(BURST_CLIENTS)))
        t_sent = time.perf_counter()
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if all(a["state"] == "current" for a in steering.get("/api/v1/analyses/").json()["results"]):
                break
            time.sleep(0.01)
        t_current = time.perf_counter()
        recomputes = AnalysisResult.objects.count() - results_before
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)

    cpu = cpu_model()
    lines = [
        "# End-to-end benchmark",
        "",
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {cpu} · {os.cpu_count()} cores · Python {platform.python_version()}",
        "",
        "Real PostgreSQL, Redis and a Celery worker process (prefork, 2 children) on the demo consortium",
        f"({len(datasets)} datasets over 4 outcomes). Uploads are JSON rows through `POST /api/v1/datasets/upload/` with `submit`;",
        '"readable" means `GET /api/v1/analyses/{id}/` shows a result that answers the upload.',
        "",
        "| measure | value | goal |",
        "| --- | ---: | ---: |",
        f"| commit -> result readable through the API, p50 ({n_latency} uploads) | {statistics.median(latencies):.0f} ms | < 250 ms |",
        f"| commit -> result readable through the API, p95 | {percentile(latencies, 95):.0f} ms | < 1,000 ms |",
        f"| commit -> result readable through the API, max | {max(latencies):.0f} ms | |",
        f"| burst of {n_burst} uploads from {BURST_CLIENTS} concurrent clients: time to send | {t_sent - t_send:.1f} s | |",
        f"| burst: first upload -> every analysis current | {t_current - t_send:.1f} s | |",
        f"| burst: last upload -> every analysis current | {(t_current - t_sent) * 1000:.0f} ms | |",
        f"| burst: recomputes for {n_burst} uploads | {recomputes} ({recomputes / n_burst:.2f} per upload) | few |",
        "",
    ]
    text = "\n".join(lines)
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "E2E.md")
    parser.add_argument("--latency-uploads", type=int, default=200)
    parser.add_argument("--burst-uploads", type=int, default=1000)
    args = parser.parse_args(argv)
    print(run(args.out, args.latency_uploads, args.burst_uploads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
