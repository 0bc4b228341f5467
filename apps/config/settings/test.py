"""Settings for the test suite.

The database is ``DATABASE_URL`` when set (``make test`` and CI point it at PostgreSQL). With
``CI=true`` a missing service is an error, never a reason to fall back to SQLite.
"""

import os
import socket

import dj_database_url

from apps.config.env import env_bool
from apps.config.settings.base import *  # noqa: F403
from apps.config.settings.base import VAR_DIR

CI = env_bool("CI", False)
LOCAL_POSTGRES = "postgres://postgres@127.0.0.1:5432/test"
LOCAL_REDIS = "redis://127.0.0.1:6379/15"


def _reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


# The project's machines run PostgreSQL and Redis locally; use them when they answer. With CI=true
# they are required: a missing service is a failure, not a quiet fallback.
if not os.environ.get("DATABASE_URL"):
    if _reachable("127.0.0.1", 5432):
        os.environ["DATABASE_URL"] = LOCAL_POSTGRES
    elif CI:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("CI=true but PostgreSQL is not reachable on 127.0.0.1:5432.")
TEST_BROKER_URL = os.environ.get("TEST_BROKER_URL", LOCAL_REDIS)
# The suite publishes only in integration tests, to its own Redis database, consumed by the worker
# process those tests start.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", TEST_BROKER_URL)
BROKER_IS_FILESYSTEM = CELERY_BROKER_URL.startswith("filesystem://")
DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'test.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=0)}
if os.environ.get("TEST_DATABASE_NAME"):  # lets two suites run side by side on one server
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}
MEDIA_ROOT = VAR_DIR / "test-uploads"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# The API takes JSON (and multipart files on the upload endpoint only).
REST_FRAMEWORK = {**REST_FRAMEWORK, "TEST_REQUEST_DEFAULT_FORMAT": "json"}  # noqa: F405
# Unit tests keep outbox events in the database; integration tests turn publishing on.
OUTBOX_PUBLISH_ON_COMMIT = env_bool("OUTBOX_PUBLISH_ON_COMMIT", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
