"""The Celery application: configuration for no loss, routing and the periodic relay and sweep.

It lives with the project's configuration so that the services publish through it without
importing the worker package: imports run from ``workers`` to ``apps``, never back. The worker
process starts from ``workers/celery.py`` (``celery -A workers.celery``), which sets Django up,
configures this app and registers the tasks.

No-loss settings and why:
- ``task_acks_late`` + ``task_reject_on_worker_lost``: a task is acknowledged only after it ran, and a
  worker child killed mid-task (OOM, kill -9) puts its message back on the queue.
- ``worker_prefetch_multiplier = 1``: a worker holds no more unacknowledged work than it runs, so a
  crash strands nothing extra and work spreads across workers.
- Redis ``visibility_timeout`` above the longest task: an unacknowledged message is redelivered only
  after the task could no longer be running.
- Time limits end a stuck computation; retries with backoff cover transient errors only (see tasks).
"""

from __future__ import annotations

import threading

from celery import Celery

#: the queues: recomputes, and webhook deliveries (``-Q recompute,webhooks`` consumes both)
RECOMPUTE_QUEUE = "recompute"
WEBHOOKS_QUEUE = "webhooks"
WORKER_QUEUES = f"{RECOMPUTE_QUEUE},{WEBHOOKS_QUEUE}"

app = Celery("platform")
app.config_from_object("django.conf:settings", namespace="CELERY")
_configured = False
_lock = threading.Lock()


def configured_app() -> Celery:
    """The app with the platform's settings applied (once, on first use, after Django is set up)."""
    global _configured
    with _lock:
        if not _configured:
            _configure()
            _configured = True
    return app


def _configure() -> None:
    from django.conf import settings

    transport_options: dict[str, object] = {
        "visibility_timeout": settings.CELERY_TASK_TIME_LIMIT * 2 + 60,
        "socket_timeout": 5,
        "socket_connect_timeout": 2,
    }
    if settings.BROKER_IS_FILESYSTEM:
        folder = settings.CELERY_BROKER_FOLDER
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        transport_options = {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            "store_processed": False,
            "control_folder": str(folder / "control"),
        }
    # One setting a line, each named in full: acks_late, reject_on_worker_lost and a prefetch of
    # one are what "a crashed worker delays a result, never drops it" rests on.
    app.conf.update(
        broker_url=settings.CELERY_BROKER_URL,
        broker_transport_options=transport_options,
        broker_connection_timeout=2,
        broker_connection_retry_on_startup=True,
        result_backend=None,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        task_time_limit=settings.CELERY_TASK_TIME_LIMIT,
        task_soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT,
        task_default_queue=RECOMPUTE_QUEUE,
        # webhook deliveries wait on partners' receivers (up to 10 s each): a queue of their own,
        # so that a slow receiver never holds up a recompute; workers consume both by default
        task_routes={"workers.tasks.deliver_webhook": {"queue": WEBHOOKS_QUEUE}},
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule={
            # a relay tick that waits too long is dropped (the next one does its work); a sweep is
            # dropped after two intervals, an hourly job after an hour
            "outbox-relay": _every("relay_outbox", settings.OUTBOX_RELAY_INTERVAL_SECONDS, expires_after=5),
            "recompute-sweep": _every("sweep_stale", settings.RECOMPUTE_SWEEP_INTERVAL_SECONDS),
            # webhook deliveries: the same relay interval; the sweep re-queues expired attempt leases
            "webhooks-relay": _every(
                "relay_webhooks", settings.OUTBOX_RELAY_INTERVAL_SECONDS, expires_after=5
            ),
            # embargoed releases are announced within a minute of the embargo's end
            "releases-announce": _every("announce_releases", 60),
            "webhooks-sweep": _every("sweep_webhooks", settings.WEBHOOKS_SWEEP_INTERVAL_SECONDS),
            # expired upload previews and expired sessions
            "housekeeping": _every("housekeeping", 3600, expires_after=1),
        },
        beat_schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule"),
    )


def _every(task: str, seconds: float, *, expires_after: float = 2) -> dict[str, object]:
    """A periodic run of ``workers.tasks.<task>`` every ``seconds``; a run still queued after
    ``expires_after`` intervals is dropped (a later one does the same work)."""
    return {
        "task": f"workers.tasks.{task}",
        "schedule": float(seconds),
        "options": {"expires": float(seconds) * expires_after},
    }
