#!/bin/sh
# Worker: recomputes analyses and delivers webhooks (queues recompute and webhooks; a worker
# started with -Q webhooks delivers only). Scale out with `docker compose up --scale worker=N`.
set -eu
exec celery -A workers.celery worker --concurrency "${WORKER_CONCURRENCY:-2}" --loglevel INFO \
  --without-gossip --without-mingle -Q recompute,webhooks
