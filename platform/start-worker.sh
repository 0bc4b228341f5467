#!/bin/sh
# Worker: recomputes analyses. Scale out with `docker compose up --scale worker=N`.
set -eu
exec celery -A workers.celery worker --concurrency "${WORKER_CONCURRENCY:-2}" --loglevel INFO \
  --without-gossip --without-mingle -Q recompute
