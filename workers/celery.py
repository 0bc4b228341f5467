"""The Celery application: configuration for no loss, routing and the periodic relay and sweep.

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

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.config.settings.local")

app = Celery("platform")
app.config_from_object("django.conf:settings", namespace="CELERY")


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
        task_default_queue="recompute",
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
        beat_schedule={
            "outbox-relay": {
                "task": "workers.tasks.relay_outbox",
                "schedule": float(settings.OUTBOX_RELAY_INTERVAL_SECONDS),
                "options": {"expires": float(settings.OUTBOX_RELAY_INTERVAL_SECONDS) * 5},
            },
            "recompute-sweep": {
                "task": "workers.tasks.sweep_stale",
                "schedule": float(settings.RECOMPUTE_SWEEP_INTERVAL_SECONDS),
                "options": {"expires": float(settings.RECOMPUTE_SWEEP_INTERVAL_SECONDS) * 2},
            },
        },
        beat_schedule_filename=str(settings.VAR_DIR / "celerybeat-schedule"),
    )


import django  # noqa: E402

django.setup()
_configure()
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
