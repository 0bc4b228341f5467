"""The worker's entry point (``celery -A workers.celery worker``): Django set up, the platform's
Celery app configured (``apps/config/celery.py``, where its settings and their reasons live) and
the tasks of ``workers/tasks.py`` registered."""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.config.settings.local")
django.setup()

from apps.config.celery import configured_app  # noqa: E402  (needs Django set up)

app = configured_app()
app.autodiscover_tasks(["workers"], related_name="tasks", force=True)
