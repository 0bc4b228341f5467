"""Real services for integration tests: a Celery worker process on Redis, over the test PostgreSQL.

Every test under tests/integration is marked ``integration`` (``-m "not integration"`` leaves them
out), and the tests that start workers or a broker of their own live here: a test elsewhere that
asks for one of those fixtures is refused at collection.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from apps.config.celery import WORKER_QUEUES
from tests.conftest import require_services

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
CELERY = str(Path(sys.executable).with_name("celery"))
#: The fixtures that start real processes (a worker, a Redis server).
PROCESS_FIXTURES = frozenset({"worker_factory", "live_worker", "private_redis"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what lives here ``integration``; refuse a test elsewhere that starts real processes."""
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(pytest.mark.integration)
        elif PROCESS_FIXTURES & set(getattr(item, "fixturenames", ())):
            raise pytest.UsageError(f"{item.nodeid} starts real processes: move it to tests/integration")


def _database_url() -> str:
    d = connection.settings_dict
    auth = d["USER"] or "postgres"
    if d.get("PASSWORD"):
        auth += ":" + d["PASSWORD"]
    return f"postgres://{auth}@{d['HOST'] or '127.0.0.1'}:{d['PORT'] or 5432}/{d['NAME']}"


def purge_broker() -> None:
    import redis

    redis.Redis.from_url(settings.TEST_BROKER_URL).flushdb()


class WorkerProcess:
    """A real ``celery worker`` (prefork pool) with an embedded beat running the relay and sweep."""

    def __init__(
        self,
        tmp: Path,
        *,
        concurrency: int = 2,
        extra_env: dict[str, str] | None = None,
        app: str = "workers.celery",
    ) -> None:
        self.tmp = tmp
        self.app = app
        self.concurrency = concurrency
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = tmp / f"worker-{uuid.uuid4().hex[:6]}.log"

    def start(self, timeout: float = 60) -> WorkerProcess:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "apps.config.settings.test",
            "DATABASE_URL": _database_url(),
            "CELERY_BROKER_URL": settings.TEST_BROKER_URL,
            "OUTBOX_RELAY_INTERVAL_SECONDS": "1",
            "RECOMPUTE_SWEEP_INTERVAL_SECONDS": "3",
            "PLATFORM_VAR_DIR": str(self.tmp),
            **self.extra_env,
        }
        self._log_handle = self.log.open("ab")
        self.proc = subprocess.Popen(
            [
                CELERY,
                "-A",
                self.app,
                "worker",
                "--beat",
                "--schedule",
                str(self.tmp / "beat-schedule"),
                "--concurrency",
                str(self.concurrency),
                "--pool",
                "prefork",
                "-Q",
                WORKER_QUEUES,
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel",
                "INFO",
                "-n",
                f"test-{uuid.uuid4().hex[:8]}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"worker exited early:\n{self.log.read_text()}")
            if b" ready." in self.log.read_bytes():
                return self
            time.sleep(0.1)
        raise RuntimeError(f"worker did not become ready:\n{self.log.read_text()}")

    def exited(self) -> bool:
        """Whether the worker has ended without being stopped. kombu ends a worker that loses its
        broker while a message is unacknowledged (giving it back needs the broker); the deployment
        starts it again (compose: ``restart: unless-stopped``), and so do the outage tests."""
        return self.proc is not None and self.proc.poll() is not None

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True, check=False)
        return [int(p) for p in out.stdout.split()]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self._log_handle.close()
        self.proc = None


@pytest.fixture
def services(transactional_db: Any, settings: Any) -> Iterator[None]:
    """PostgreSQL and Redis must be there (CI=true fails otherwise); publishing after commit is on."""
    from apps.config.publisher import publisher_drain

    require_services()
    settings.OUTBOX_PUBLISH_ON_COMMIT = True
    purge_broker()
    yield
    publisher_drain()  # no publication may outlive the test database


@pytest.fixture
def worker_factory(services: None, tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def factory(**kwargs: Any) -> WorkerProcess:
        w = WorkerProcess(tmp_path, **kwargs).start()
        started.append(w)
        return w

    yield factory
    for w in started:
        w.stop()
    connection.close()


@pytest.fixture
def live_worker(worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    return worker_factory()


def wait_until(
    predicate: Callable[[], Any],
    *,
    timeout: float,
    interval: float = 0.05,
    what: str = "",
    state: Callable[[], Any] | None = None,
) -> Any:
    """Poll ``predicate`` until it is true; on timeout fail, with ``state()`` in the message."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    message = f"timed out after {timeout}s waiting for {what or predicate}"
    if state is not None:
        message += f"; state: {state()}"
    raise AssertionError(message)


def all_analyses_current() -> bool:
    """Whether every analysis has computed what was last requested of it."""
    from django.db.models import F

    from apps.analyses.models import Analysis

    return not Analysis.objects.exclude(computed_seq=F("requested_seq")).exists()


def recompute_state() -> dict[str, Any]:
    """Where each analysis stands and what is still waiting in the outbox: for timeout messages."""
    from django.db.models import Count, Max

    from apps.analyses.models import Analysis, OutboxEvent

    return {
        "analyses": list(
            Analysis.objects.order_by("pk").values_list(
                "pk", "requested_seq", "computed_seq", "running_since"
            )
        ),
        "pending_outbox": list(
            OutboxEvent.objects.filter(published_at__isnull=True)
            .values("analysis")
            .annotate(events=Count("id"), attempts=Max("attempts"), next_attempt_at=Max("next_attempt_at"))
        ),
    }


def use_broker(url: str) -> None:
    """Point this process's Celery app (the publisher) at ``url``, dropping pooled connections: the
    connection pools (kombu's, per broker address, which the app's pool is one of) and the app's
    producer pool, which would otherwise keep publishing through a closed pool."""
    from kombu import pools

    from apps.config.celery import configured_app

    app = configured_app()
    settings.CELERY_BROKER_URL = url
    app.conf.broker_url = url
    pools.reset()
    app._pool = None
    app.amqp._producer_pool = None


class PrivateRedis:
    """A Redis server of the test's own, configured as deployed (append-only persistence), that the
    test may stop and start without disturbing anything else."""

    def __init__(self, tmp: Path, port: int) -> None:
        self.dir = tmp / f"redis-{port}"
        self.dir.mkdir(exist_ok=True)
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        import redis

        client = redis.Redis(port=self.port)
        wait_until(lambda: _ping(client), timeout=10, what=f"redis on {self.port}")
        # The answer must come from this server, not from another one that already had the port.
        assert self.proc.poll() is None, f"redis-server on {self.port} exited (port taken?)"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
        self.proc = None


def _free_port() -> int:
    """A local port nothing listens on: two suites on one machine never share a private Redis."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ping(client: Any) -> bool:
    try:
        return bool(client.ping())
    except Exception:
        return False


@pytest.fixture
def private_redis(services: None, tmp_path: Path) -> Iterator[PrivateRedis]:
    import shutil

    if shutil.which("redis-server") is None:
        pytest.fail("redis-server is not installed")
    server = PrivateRedis(tmp_path, _free_port())
    server.start()
    use_broker(server.url)
    yield server
    server.stop()
    use_broker(settings.TEST_BROKER_URL)
