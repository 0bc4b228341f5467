"""Production: refuses to start without its secret and service URLs; passes ``check --deploy``."""

from apps.config.env import env_bool, env_int, env_str
from apps.config.settings.base import *  # noqa: F403
from apps.config.settings.base import BASE_DIR

SECRET_KEY = env_str("SECRET_KEY", required=True)
if SECRET_KEY is None or len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters with at least 5 distinct ones.")
env_str("DATABASE_URL", required=True)
env_str("CELERY_BROKER_URL", required=True)
# Rate-limit counters must be shared by every gunicorn worker: say where (redis://... normally).
env_str("CACHE_URL", required=True)
DEBUG = False
PRODUCTION = True

# SECURE_PROXY_SSL_HEADER is set in base.py only when BEHIND_PROXY says a proxy is there.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 31_536_000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
STATIC_ROOT = BASE_DIR / "var" / "static"
