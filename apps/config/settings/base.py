"""Settings shared by every environment, read from the environment with strict parsers.

With nothing set the platform runs on an embedded default that needs no server: SQLite and a
Celery broker on the local filesystem, served by a real worker process. Setting
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to PostgreSQL and Redis.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import dj_database_url

from apps.config.env import env_bool, env_int, env_list, env_rate, env_str

BASE_DIR = Path(__file__).resolve().parents[3]
VAR_DIR = Path(env_str("PLATFORM_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")
# Local state of the embedded default (SQLite file, filesystem broker, beat schedule, uploads).
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_str("SECRET_KEY", "insecure-local-development-key-do-not-use-in-production")
DEBUG = env_bool("DEBUG", False)
# Production settings set this; commands that would be unsafe there (the demo loader) check it.
PRODUCTION = False
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # DRF's plain-text tokens: kept only so that migrations can hash existing tokens into ApiToken
    "rest_framework.authtoken",
    "knox",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "axes",
    "csp",
    "apps.common",
    "apps.security",
    "apps.consortium",
    "apps.audit",
    "apps.datasets",
    "apps.analyses",
    "apps.api",
    "apps.portal",
    "apps.webhooks",
    "apps.demo",
]

MIDDLEWARE = [
    # First: a request body over the limit is refused from its declared length, before any
    # middleware or view reads it (see apps/security/middleware.py).
    "apps.security.middleware.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's session middleware, except that a page's own polling (live updates) never renews
    # the session, and the sign-in page learns when a session ended after the idle timeout.
    "apps.portal.session_middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last: turns a locked-out sign-in into the lock-out page (429).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "apps.config.urls"
WSGI_APPLICATION = "apps.config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "apps.portal.context.navigation",
            ],
        },
    },
]

DATABASE_URL = env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'platform.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL or "", conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (web, worker) share the file: wait for locks instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# A cache shared by every web process holds the API's rate-limit counters: `redis://host:6379/1`
# in production (each gunicorn worker would otherwise count on its own), `locmem://` for one
# process (`make run`, tests).
CACHE_URL = env_str("CACHE_URL", "locmem://") or "locmem://"
if CACHE_URL.startswith(("redis://", "rediss://")):
    CACHES = {"default": {"BACKEND": "apps.config.cache.PooledRedisCache", "LOCATION": CACHE_URL}}
elif CACHE_URL == "locmem://":
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
else:
    from django.core.exceptions import ImproperlyConfigured

    raise ImproperlyConfigured(f"CACHE_URL must be redis://... or locmem://, not {CACHE_URL!r}.")

AUTHENTICATION_BACKENDS = [
    # First, so that a locked-out username and address is refused before any password is hashed.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
    "guardian.backends.ObjectPermissionBackend",
]
ANONYMOUS_USER_NAME = None  # guardian: anonymous visitors hold no object permissions
GUARDIAN_RAISE_403 = False
GUARDIAN_RENDER_403 = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
# Sign-in lock-out (django-axes): after LOGIN_FAILURE_LIMIT wrong passwords for one username from
# one address, that pair is refused for LOGIN_COOLOFF_MINUTES without checking the password. Keyed
# on the pair so that an attacker cannot lock a colleague out from elsewhere. Administrators unlock
# early in the admin (Axes > Access attempts) or with `manage.py axes_reset_username NAME`.
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_COOLOFF_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
# A sign-in tried during the pause does not extend it (axes' default would restart the cool-off):
# otherwise anyone at the same address could keep a person locked out by knocking, and the
# "try again at HH:MM" the sign-in page gives would not hold.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_LOCKOUT_CALLABLE = "apps.security.lockout.lockout_response"
AXES_CLIENT_IP_CALLABLE = "apps.security.client.client_ip"
AXES_VERBOSE = False

# A proxy in front of the platform (nginx in docker-compose) is trusted for the client's address
# and scheme only when this says one is there: otherwise anyone could claim to be on HTTPS or to
# come from another address, and walk round the sign-in lock-out and the API's rate limits.
BEHIND_PROXY = env_bool("BEHIND_PROXY", False)
if BEHIND_PROXY:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

# Sessions end after SESSION_IDLE_TIMEOUT_SECONDS without a request (each request renews them,
# except the requests an open page makes by itself to follow live updates).
SESSION_COOKIE_AGE = env_int("SESSION_IDLE_TIMEOUT_SECONDS", 30 * 60, minimum=60)
SESSION_SAVE_EVERY_REQUEST = True
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "portal:home"
LOGOUT_REDIRECT_URL = "portal:home"

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Uploaded files are kept outside the web root and are never served directly.
MEDIA_ROOT = Path(env_str("UPLOAD_ROOT", str(VAR_DIR / "uploads")) or VAR_DIR / "uploads")

# Upload limits (see docs/uploads.md).
UPLOAD_MAX_BYTES = env_int("UPLOAD_MAX_BYTES", 5 * 1024 * 1024, minimum=1024)
UPLOAD_MAX_ROWS = env_int("UPLOAD_MAX_ROWS", 10_000, minimum=1)
UPLOAD_MAX_XLSX_UNCOMPRESSED_BYTES = env_int(
    "UPLOAD_MAX_XLSX_UNCOMPRESSED_BYTES", 50 * 1024 * 1024, minimum=1024
)
# A consortium row uses under 40 columns (identity, statistics, moderators, notes); 100 is generous
# and, with UPLOAD_MAX_ROWS, bounds a spreadsheet at about a million cells (see docs/uploads.md).
UPLOAD_MAX_COLUMNS = env_int("UPLOAD_MAX_COLUMNS", 100, minimum=10)
# Every request body: an upload plus 1 MiB for multipart framing and the form fields. Checked on
# the declared length before anything is read; nginx's client_max_body_size is the same number.
REQUEST_MAX_BYTES = UPLOAD_MAX_BYTES + 1024 * 1024
DATA_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
FILE_UPLOAD_MAX_MEMORY_SIZE = REQUEST_MAX_BYTES
# JSON bodies nest no deeper than this (upload rows are 3 levels deep); deeper ones are refused
# before they can exhaust the parser's recursion.
API_JSON_MAX_DEPTH = env_int("API_JSON_MAX_DEPTH", 32, minimum=4)

REST_FRAMEWORK = {
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
    "DEFAULT_VERSION": "v1",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request gets 401 with a WWW-Authenticate challenge.
        "apps.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": [
        "rest_framework.permissions.IsAuthenticated",
        "apps.api.permissions.TokenScopes",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    # JSON everywhere (form encodings cannot carry the nested fields of outcomes and analyses);
    # the upload endpoint also takes multipart files.
    "DEFAULT_PARSER_CLASSES": ["apps.api.parsers.BoundedJSONParser"],
    "DEFAULT_PAGINATION_CLASS": "apps.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_THROTTLE_CLASSES": [
        "apps.api.throttling.TokenRateThrottle",
        "apps.api.throttling.SessionRateThrottle",
        "apps.api.throttling.AnonymousRateThrottle",
    ],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "apps.api.errors.exception_handler",
}
# API tokens (django-rest-knox with the platform's token model): SHA-512 digests, a recognisable
# prefix for secret scanners, and expiry chosen per token up to API_TOKEN_MAX_DAYS.
# knox's own migrations create a table for its (swapped-out) AuthToken model; without migrations
# Django's syncdb skips a swapped model, so no orphan table holds a key to the users table.
MIGRATION_MODULES = {"knox": None}
KNOX_TOKEN_MODEL = "api.ApiToken"  # noqa: S105 - a model name, not a secret
REST_KNOX = {
    "TOKEN_MODEL": "api.ApiToken",
    "TOKEN_PREFIX": "evp_",
    "AUTH_TOKEN_CHARACTER_LENGTH": 64,
    "TOKEN_TTL": None,
    "AUTO_REFRESH": False,
    "AUTH_HEADER_PREFIX": "Token",
}
API_TOKEN_DEFAULT_DAYS = env_int("API_TOKEN_DEFAULT_DAYS", 90, minimum=1)
API_TOKEN_MAX_DAYS = env_int("API_TOKEN_MAX_DAYS", 365, minimum=1)

SPECTACULAR_SETTINGS = {
    "TITLE": "Evidence Platform API",
    "DESCRIPTION": (
        "Read and contribute consortium study data and read provenance-tracked meta-analysis results. "
        "Authenticate with `Authorization: Token <key>`."
    ),
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "apps.api.schema.add_error_responses",
    ],
    "ENUM_NAME_OVERRIDES": {
        "DatasetStatusEnum": "apps.datasets.models.Dataset.Status",
        "ResultStatusEnum": "apps.analyses.models.AnalysisResult.Status",
    },
}

# API rate limits ("N/second|minute|hour|day"). A token and a signed-in person each have their own
# budget; requests without credentials share one per address. Failed token authentications are
# counted per address: past the limit, even a right token is answered 429 until the window passes,
# so guessing tokens costs the attacker the window, not one request.
API_THROTTLE_RATES = {
    "token": env_rate("API_RATE_TOKEN", "1200/minute"),
    "session": env_rate("API_RATE_SESSION", "1200/minute"),
    "anonymous": env_rate("API_RATE_ANONYMOUS", "120/minute"),
    "failed_auth": env_rate("API_RATE_FAILED_AUTH", "20/minute"),
    "live": env_rate("PORTAL_RATE_LIVE", "120/minute"),
}

# Content-Security-Policy (django-csp): no inline script anywhere, every asset from this site
# (the API docs' assets are vendored), no framing. Inline style attributes stay allowed: the SVG
# plots and the vendored API docs use them, and they cannot run code.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'", "'unsafe-inline'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        # The vendored ReDoc builds its search index in a worker it creates from a blob.
        "worker-src": ["'self'", "blob:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "form-action": ["'self'"],
        "frame-ancestors": ["'none'"],
    }
}

# Celery. The embedded default is a broker on the local filesystem, served by a real worker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
BROKER_IS_FILESYSTEM = (CELERY_BROKER_URL or "").startswith("filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=5)
# A relay tick publishes pending outbox events; the sweep re-queues stale work.
OUTBOX_RELAY_INTERVAL_SECONDS = env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 2, minimum=1)
# While the broker refuses a recompute request, the relay retries it after 2, 4, 8, ... seconds, at
# most this long apart.
OUTBOX_BACKOFF_MAX_SECONDS = env_int("OUTBOX_BACKOFF_MAX_SECONDS", 60, minimum=1)
RECOMPUTE_SWEEP_INTERVAL_SECONDS = env_int("RECOMPUTE_SWEEP_INTERVAL_SECONDS", 30, minimum=1)
# Re-queue an analysis whose request has waited this long without a result (lost message, dead worker).
RECOMPUTE_STALE_AFTER_SECONDS = env_int("RECOMPUTE_STALE_AFTER_SECONDS", 60, minimum=1)
# Publish outbox events right after the commit that wrote them (the relay is the safety net).
OUTBOX_PUBLISH_ON_COMMIT = env_bool("OUTBOX_PUBLISH_ON_COMMIT", True)

# Read one a line like the Celery block above: each setting has its own variable, default and bound.
# Webhooks (docs/webhooks.md). Deliveries are retried with exponential backoff: the first retry after
# WEBHOOKS_BACKOFF_SECONDS, doubling, at most WEBHOOKS_BACKOFF_MAX_SECONDS apart, until
# WEBHOOKS_MAX_ATTEMPTS attempts have failed (then the delivery is marked failed).
WEBHOOKS_MAX_ATTEMPTS = env_int("WEBHOOKS_MAX_ATTEMPTS", 10, minimum=1)
WEBHOOKS_BACKOFF_SECONDS = env_int("WEBHOOKS_BACKOFF_SECONDS", 15, minimum=1)
WEBHOOKS_BACKOFF_MAX_SECONDS = env_int("WEBHOOKS_BACKOFF_MAX_SECONDS", 3600, minimum=1)
# An attempt holds its delivery this long (more than the 13 s an attempt may take: 3 s to connect,
# 10 s to answer); the sweep, every WEBHOOKS_SWEEP_INTERVAL_SECONDS, re-queues a delivery still held
# after it (its worker died) and one published a lease ago but never started (a lost message).
WEBHOOKS_LEASE_SECONDS = env_int("WEBHOOKS_LEASE_SECONDS", 60, minimum=15)
WEBHOOKS_SWEEP_INTERVAL_SECONDS = env_int("WEBHOOKS_SWEEP_INTERVAL_SECONDS", 30, minimum=1)
# Receivers on private, loopback, link-local, multicast or reserved addresses are refused (at
# registration and at every delivery) unless this is true: a closed network, or the test suite.
WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOKS_ALLOW_PRIVATE_ADDRESSES", False)
# Production delivers over https only unless this is true (elsewhere http is allowed).
WEBHOOKS_ALLOW_HTTP = env_bool("WEBHOOKS_ALLOW_HTTP", False)
WEBHOOKS_MAX_PER_OWNER = env_int("WEBHOOKS_MAX_PER_OWNER", 20, minimum=1)
# Finished deliveries (delivered, failed, withheld) and their attempts are kept this long.
WEBHOOKS_LOG_RETENTION_DAYS = env_int("WEBHOOKS_LOG_RETENTION_DAYS", 90, minimum=1)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env_str("LOG_LEVEL", "INFO")},
    "loggers": {
        # The relay and sweep run every few seconds: log problems, not every tick.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        "celery.beat": {"level": "WARNING"},
        # kombu's filesystem transport warns about the missing hostname on every connection.
        "kombu.connection": {"level": "ERROR"},
        # django-axes logs every sign-in; lock-outs are in the audit trail.
        "axes": {"level": "WARNING"},
    },
}
