"""The project's shape holds: no shadowing of the standard library, an engine free of Django,
a valid compose file, strict settings and a production configuration that passes --deploy checks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_import_platform_is_the_standard_library_module() -> None:
    import platform

    assert hasattr(platform, "python_version")
    assert "site-packages" not in (platform.__file__ or "")
    assert Path(platform.__file__).resolve().parent != ROOT / "platform"
    assert not list((ROOT / "platform").rglob("*.py")), "platform/ holds deployment files only"


def test_engine_imports_nothing_from_django() -> None:
    code = (
        "import sys, importlib, pkgutil, workers.metaanalysis as m\n"
        "for info in pkgutil.walk_packages(m.__path__, 'workers.metaanalysis.'):\n"
        "    if info.name.endswith('__main__'): continue\n"
        "    importlib.import_module(info.name)\n"
        "bad = sorted(n for n in sys.modules if n == 'django' or n.startswith('django.') or n.startswith('apps'))\n"
        "print(','.join(bad))\n"
        "sys.exit(1 if bad else 0)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, f"engine imported Django modules: {proc.stdout} {proc.stderr}"


def test_compose_file_defines_the_stack_with_health_checks_and_persistence() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"web", "worker", "beat", "db", "redis"} <= set(services)
    for name in ("web", "worker", "db", "redis"):
        assert "healthcheck" in services[name], name
    assert "gunicorn" in (ROOT / "platform/start-web.sh").read_text()
    assert any(str(v).startswith("pgdata:") for v in services["db"]["volumes"])
    assert "appendonly yes" in (ROOT / "platform/redis/redis.conf").read_text()
    assert any("redis.conf" in str(v) for v in services["redis"]["volumes"])
    for name in ("web", "worker", "beat"):
        deps = services[name]["depends_on"]
        assert deps["db"]["condition"] == "service_healthy"
        assert deps["redis"]["condition"] == "service_healthy"
        assert services[name]["build"]["dockerfile"] == "platform/Dockerfile"
    assert (ROOT / "platform/Dockerfile").exists()
    for script in ("start-web.sh", "start-worker.sh", "start-beat.sh"):
        assert (ROOT / "platform" / script).exists()


def _run_manage(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL"))
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**base, **env},
        check=False,
        timeout=120,
    )


def test_production_refuses_to_start_without_secret_and_services() -> None:
    proc = _run_manage(["check"], {"DJANGO_SETTINGS_MODULE": "apps.config.settings.production"})
    assert proc.returncode != 0
    assert "SECRET_KEY" in proc.stderr
    proc = _run_manage(
        ["check"],
        {
            "DJANGO_SETTINGS_MODULE": "apps.config.settings.production",
            "SECRET_KEY": "x" * 10 + "abcdefghijklmnopqrstuvwxyz0123456789ABCDEF",
        },
    )
    assert proc.returncode != 0
    assert "DATABASE_URL" in proc.stderr


def test_production_passes_check_deploy_without_warnings() -> None:
    proc = _run_manage(
        ["check", "--deploy", "--fail-level", "WARNING"],
        {
            "DJANGO_SETTINGS_MODULE": "apps.config.settings.production",
            "SECRET_KEY": "k3J9-vQ2!mZx8#pL0wR5tY7uI1oP4aS6dF_hG*jK+lZ9xC2vB5nM",
            "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/test",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
            "CACHE_URL": "redis://127.0.0.1:6379/1",
            "ALLOWED_HOSTS": "evidence.example.org",
        },
    )
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "no issues" in proc.stdout


@pytest.mark.parametrize("value", ["ture", "maybe", "2"])
def test_boolean_settings_reject_anything_but_true_or_false(
    value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from apps.config.env import env_bool

    monkeypatch.setenv("SOME_FLAG", value)
    with pytest.raises(ImproperlyConfigured, match="SOME_FLAG"):
        env_bool("SOME_FLAG", False)


def test_embedded_default_needs_no_server() -> None:
    code = (
        "from django.conf import settings; import django; django.setup();"
        "print(settings.DATABASES['default']['ENGINE'], settings.CELERY_BROKER_URL)"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "CELERY_BROKER_URL")}
    env["DJANGO_SETTINGS_MODULE"] = "apps.config.settings.local"
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["django.db.backends.sqlite3", "filesystem://"]


def test_migrations_are_complete() -> None:
    proc = _run_manage(
        ["makemigrations", "--check", "--dry-run"], {"DJANGO_SETTINGS_MODULE": "apps.config.settings.test"}
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_openapi_schema_is_valid_and_free_of_warnings() -> None:
    proc = _run_manage(
        ["spectacular", "--validate", "--fail-on-warn", "--file", os.devnull],
        {"DJANGO_SETTINGS_MODULE": "apps.config.settings.test"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize("value", ["abc", "10", "0/minute", "10/fortnight", "-1/second"])
def test_rate_settings_reject_anything_but_n_per_period(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from apps.config.env import env_rate

    monkeypatch.setenv("SOME_RATE", value)
    with pytest.raises(ImproperlyConfigured, match="SOME_RATE"):
        env_rate("SOME_RATE", "1/minute")
    monkeypatch.setenv("SOME_RATE", "30/hour")
    assert env_rate("SOME_RATE", "1/minute") == "30/hour"
