"""Settings shared by every environment, read from the environment with strict parsers.

With nothing set the platform runs on an embedded default that needs no server: SQLite and a
Celery broker on the local filesystem, served by a real worker process. Setting
``DATABASE_URL`` and ``CELERY_BROKER_URL`` switches to PostgreSQL and Redis.
"""

from __future__ import annotations

from pathlib import Path

import dj_database_url

from apps.config.env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parents[3]
VAR_DIR = Path(env_str("PLATFORM_VAR_DIR", str(BASE_DIR / "var")) or BASE_DIR / "var")
# Local state of the embedded default (SQLite file, filesystem broker, beat schedule, uploads).
VAR_DIR.mkdir(parents=True, exist_ok=True)

SECRET_KEY = env_str("SECRET_KEY", "insecure-local-development-key-do-not-use-in-production")
DEBUG = env_bool("DEBUG", False)
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
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "guardian",
    "apps.consortium",
    "apps.audit",
    "apps.datasets",
    "apps.analyses",
    "apps.api",
    "apps.portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
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

AUTHENTICATION_BACKENDS = [
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
DATA_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = UPLOAD_MAX_BYTES + 1024 * 1024

REST_FRAMEWORK = {
    "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.NamespaceVersioning",
    "DEFAULT_VERSION": "v1",
    "ALLOWED_VERSIONS": ["v1"],
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an unauthenticated request gets 401 with a WWW-Authenticate challenge.
        "apps.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
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
    "ENUM_NAME_OVERRIDES": {
        "DatasetStatusEnum": "apps.datasets.models.Dataset.Status",
        "ResultStatusEnum": "apps.analyses.models.AnalysisResult.Status",
    },
}

# Celery. The embedded default is a broker on the local filesystem, served by a real worker.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "filesystem://")
BROKER_IS_FILESYSTEM = (CELERY_BROKER_URL or "").startswith("filesystem://")
CELERY_BROKER_FOLDER = VAR_DIR / "broker"
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 300, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = env_int("CELERY_TASK_SOFT_TIME_LIMIT", 240, minimum=5)
# A relay tick publishes pending outbox events; the sweep re-queues stale work.
OUTBOX_RELAY_INTERVAL_SECONDS = env_int("OUTBOX_RELAY_INTERVAL_SECONDS", 2, minimum=1)
RECOMPUTE_SWEEP_INTERVAL_SECONDS = env_int("RECOMPUTE_SWEEP_INTERVAL_SECONDS", 30, minimum=1)
# Re-queue an analysis whose request has waited this long without a result (lost message, dead worker).
RECOMPUTE_STALE_AFTER_SECONDS = env_int("RECOMPUTE_STALE_AFTER_SECONDS", 60, minimum=1)
# Fault injection for resilience tests and drills only: pause each recompute this long (milliseconds)
# after it has started, so that a worker can be killed in the middle of one. Never set in production.
RECOMPUTE_FAULT_DELAY_MS = env_int("RECOMPUTE_FAULT_DELAY_MS", 0, minimum=0)
# Publish outbox events right after the commit that wrote them (the relay is the safety net).
OUTBOX_PUBLISH_ON_COMMIT = env_bool("OUTBOX_PUBLISH_ON_COMMIT", True)

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
    },
}
