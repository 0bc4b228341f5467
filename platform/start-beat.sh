#!/bin/sh
# Beat: the periodic outbox relay and stale-work sweep. Run exactly one.
set -eu
exec celery -A workers.celery beat --loglevel INFO --schedule /app/var/celerybeat-schedule
