#!/bin/sh
# Web: apply migrations (safe to run concurrently: Django takes a lock per migration), then serve.
set -eu
python manage.py migrate --noinput
if [ "${LOAD_DEMO:-false}" = "true" ]; then python manage.py load_demo; fi
exec gunicorn apps.config.wsgi:application --bind 0.0.0.0:8000 --workers "${WEB_CONCURRENCY:-3}" \
  --access-logfile - --timeout 60
