#!/bin/sh
# Web: apply migrations (safe to run concurrently: Django takes a lock per migration), then serve
# with gunicorn behind nginx (platform/nginx/platform.conf), which is the only way in.
set -eu

# Settings are checked before anything runs, as strictly as the platform's own.
case "${LOAD_DEMO:-false}" in
  true | false) ;;
  *)
    echo "LOAD_DEMO must be true or false, not '${LOAD_DEMO}'." >&2
    exit 1
    ;;
esac
case "${FORWARDED_ALLOW_IPS:-}" in
  *'*'*)
    echo "FORWARDED_ALLOW_IPS must list the proxy's addresses or networks, not '*'." >&2
    exit 1
    ;;
esac

python manage.py migrate --noinput

if [ "${LOAD_DEMO:-false}" = "true" ]; then
  # This image runs the production settings, where load_demo refuses to run unless told
  # --allow-production. With it, each demo account gets a random password and the demo API client
  # a random token, printed once to this log when the account is created: never the public demo
  # password or token from the README (see docs/operations.md).
  python manage.py load_demo --allow-production
fi

# gunicorn's own limits (nginx, in front of it, has its own: platform/nginx/platform.conf):
#   --limit-request-line 4094: longest request line (method, path and query) in bytes;
#   --limit-request-fields 64, --limit-request-field_size 8190: header count, longest header;
#   --timeout 60: a worker busy on one request for 60 s is killed (nginx waits 70 s for it);
#   --forwarded-allow-ips: the peers whose X-Forwarded-Proto sets the request's scheme. By default
#     only this machine (an nginx on the same host); docker-compose.yml sets FORWARDED_ALLOW_IPS
#     to the network that only nginx and web share. Never "*" (refused above).
exec gunicorn apps.config.wsgi:application \
  --bind 0.0.0.0:8000 \
  --workers "${WEB_CONCURRENCY:-3}" \
  --timeout 60 \
  --graceful-timeout 30 \
  --limit-request-line 4094 \
  --limit-request-fields 64 \
  --limit-request-field_size 8190 \
  --forwarded-allow-ips "${FORWARDED_ALLOW_IPS:-127.0.0.1,::1}" \
  --access-logfile -
