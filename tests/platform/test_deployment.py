"""The deployment: docker-compose.yml against the Compose specification, nginx in front of web
with limits that agree with the platform's, and gunicorn started with its own limits."""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.platform import nginx_config
from tests.platform.nginx_config import MiB

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
START_WEB = ROOT / "platform" / "start-web.sh"
PRODUCTION_ENV = ROOT / "platform" / "env" / "production.env.example"
APP_SERVICES = ("web", "worker", "beat")


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def _default(value: str) -> str:
    """A compose value with ${NAME:-default} replaced by its default (as with NAME unset)."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", str(value))


def _check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    # check-jsonschema ships the Compose specification's own JSON schema (compose-spec.json, the
    # one docker compose validates against) as a built-in schema.
    if importlib.util.find_spec("check_jsonschema") is None:
        pytest.fail("check-jsonschema is not installed: it is in the dev extras (make install)")
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# -- docker-compose.yml -----------------------------------------------------------------------


def test_compose_file_follows_the_compose_specification() -> None:
    proc = _check_compose(COMPOSE)
    assert proc.returncode == 0, proc.stdout + proc.stderr


@pytest.mark.parametrize(
    ("original", "broken", "reported"),
    [
        # An unknown service attribute (a typo) is refused.
        ("    expose:\n", "    exposes:\n", "'exposes' was unexpected"),
        # A wrong type inside the shared x-app block is refused: the YAML merge keys are resolved
        # before validation, so what every app service inherits is checked too.
        (
            "  restart: unless-stopped\n\nservices:",
            "  restart: [unless-stopped]\n\nservices:",
            "$.services.worker.restart",
        ),
    ],
)
def test_the_compose_validator_refuses_a_broken_file(
    tmp_path: Path, original: str, broken: str, reported: str
) -> None:
    text = COMPOSE.read_text()
    assert text.count(original) == 1, original
    path = tmp_path / "docker-compose.yml"
    path.write_text(text.replace(original, broken))
    proc = _check_compose(path)
    assert proc.returncode != 0
    assert reported in proc.stdout + proc.stderr


def test_only_nginx_publishes_a_port_and_only_nginx_reaches_web() -> None:
    services = _compose()["services"]
    assert {name for name, service in services.items() if service.get("ports")} == {"nginx"}
    web = services["web"]
    assert "ports" not in web, "web must not publish a port: only nginx is reachable from outside"
    assert [str(port) for port in web["expose"]] == ["8000"]
    # The edge network joins nginx and web only; everything else talks on the backend network.
    on_edge = {name for name, service in services.items() if "edge" in service.get("networks", [])}
    assert on_edge == {"nginx", "web"}
    assert services["nginx"]["networks"] == ["edge"]
    for name in ("worker", "beat", "db", "redis"):
        assert services[name]["networks"] == ["backend"], name


def test_nginx_service_runs_the_platform_config_after_web_is_healthy() -> None:
    nginx = _compose()["services"]["nginx"]
    assert re.fullmatch(r"nginx:1\.\d+(\.\d+)?(-alpine)?", nginx["image"]), "a pinned stable nginx"
    assert "./platform/nginx/platform.conf:/etc/nginx/conf.d/default.conf:ro" in nginx["volumes"]
    assert nginx["depends_on"]["web"]["condition"] == "service_healthy"
    test = nginx["healthcheck"]["test"]
    assert "/-/nginx-health" in " ".join(test)
    health = nginx_config.server().location("=", "/-/nginx-health")
    assert health.one("return").args[0] == "200"
    assert [d.args for d in health.all("allow")] == [["127.0.0.1"]] and health.one("deny").args == ["all"]


def test_app_services_share_a_redis_cache_and_only_web_is_behind_the_proxy() -> None:
    compose = _compose()
    services = compose["services"]
    for name in APP_SERVICES:
        env = services[name]["environment"]
        assert env["CACHE_URL"] == "redis://redis:6379/1", name
        assert env["CELERY_BROKER_URL"] == "redis://redis:6379/0", name
    web = services["web"]["environment"]
    assert web["BEHIND_PROXY"] == "true"
    for name in ("worker", "beat"):
        assert "BEHIND_PROXY" not in services[name]["environment"], name
    # gunicorn believes X-Forwarded-Proto only from the edge network, whose subnet is fixed.
    subnet = compose["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    assert web["FORWARDED_ALLOW_IPS"] == subnet
    network = ipaddress.ip_network(_default(subnet))
    assert network.is_private and network.num_addresses <= 256, network


# -- nginx --------------------------------------------------------------------------------------


def test_nginx_body_limit_agrees_with_the_platform_request_limit() -> None:
    from django.conf import settings

    server = nginx_config.server()
    limit = nginx_config.size(server.one("client_max_body_size").args[0])
    assert limit == settings.UPLOAD_MAX_BYTES + MiB, "nginx and the platform must refuse the same bodies"
    if hasattr(settings, "REQUEST_MAX_BYTES"):
        assert limit == settings.REQUEST_MAX_BYTES
    # No location quietly raises it.
    for location in server.all("location"):
        assert not location.all("client_max_body_size"), location.args
    # The upload limit the stack and the example environment set agree with nginx too.
    compose_env = _compose()["x-app"]["environment"]
    assert int(compose_env["UPLOAD_MAX_BYTES"]) + MiB == limit
    example = dict(
        line.split("=", 1)
        for line in PRODUCTION_ENV.read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert int(example["UPLOAD_MAX_BYTES"]) + MiB == limit


def test_nginx_stops_slow_clients_and_buffers_whole_requests() -> None:
    server = nginx_config.server()
    for name in ("client_header_timeout", "client_body_timeout", "send_timeout"):
        assert nginx_config.seconds(server.one(name).args[0]) <= 30, name
    assert server.one("proxy_request_buffering").args == ["on"]
    assert server.one("proxy_buffering").args == ["on"]
    # gunicorn gives up on a request (and says so) before nginx stops waiting for it.
    assert nginx_config.seconds(server.one("proxy_read_timeout").args[0]) > _gunicorn_options()["--timeout"]


def test_nginx_sets_the_forwarding_headers_whatever_the_client_sent() -> None:
    server = nginx_config.server()
    headers = {d.args[0].lower(): d.args[1] for d in server.all("proxy_set_header")}
    assert headers["host"] == "$host"
    assert headers["x-forwarded-proto"] == "$scheme"
    assert headers["x-forwarded-for"] in ("$remote_addr", "$proxy_add_x_forwarded_for")
    for dropped in ("x-forwarded-host", "x-forwarded-ssl", "x-forwarded-protocol", "forwarded"):
        assert headers[dropped] == '""', dropped
    # proxy_set_header in a location would replace, not add to, these: none may have its own.
    for location in server.all("location"):
        assert not location.all("proxy_set_header"), location.args


def test_nginx_rate_limits_the_sign_in_forms_the_platform_serves() -> None:
    from django.urls import reverse

    config = nginx_config.config()
    zones = {d.args[1].split(":")[0].removeprefix("zone="): d.args for d in config.all("limit_req_zone")}
    assert "signin" in zones
    server = config.one("server")
    for path in (reverse("login"), reverse("admin:login")):
        location = server.location("=", path)
        limit = location.one("limit_req")
        assert limit.args[0] == "zone=signin", path
        assert location.one("proxy_pass").args == ["$platform_web"]
    assert server.one("limit_req_status").args == ["429"]
    assert server.one("set").args == ["$platform_web", "http://web:8000"]


# -- gunicorn (platform/start-web.sh) -----------------------------------------------------------

STUB = """#!/bin/sh
{ printf '%s' "$(basename "$0")"; for arg; do printf '\\037%s' "$arg"; done; printf '\\n'; } >>"$CALLS"
"""


def _run_start_web(tmp_path: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], list[list[str]]]:
    """Runs platform/start-web.sh with python and gunicorn replaced by stubs that log their calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    for name in ("python", "gunicorn"):
        (bin_dir / name).write_text(STUB)
        (bin_dir / name).chmod(0o755)
    calls = tmp_path / "calls"
    calls.unlink(missing_ok=True)
    proc = subprocess.run(
        ["sh", str(START_WEB)],
        cwd=ROOT,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "CALLS": str(calls), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    logged = [line.split("\x1f") for line in calls.read_text().splitlines()] if calls.exists() else []
    return proc, logged


def _gunicorn_args(tmp_path: Path, **env: str) -> list[str]:
    proc, calls = _run_start_web(tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert calls[-1][0] == "gunicorn"
    return calls[-1][1:]


def _gunicorn_options() -> dict[str, int]:
    """The numeric gunicorn options as written in start-web.sh."""
    text = START_WEB.read_text()
    return {name: int(value) for name, value in re.findall(r"(--[a-z_-]+) (\d+)\b", text)}


def test_start_web_migrates_then_serves(tmp_path: Path) -> None:
    proc, calls = _run_start_web(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert calls[0] == ["python", "manage.py", "migrate", "--noinput"]
    assert [call[0] for call in calls] == ["python", "gunicorn"], "no demo unless LOAD_DEMO=true"


def test_start_web_loads_the_demo_only_with_production_consent(tmp_path: Path) -> None:
    proc, calls = _run_start_web(tmp_path, LOAD_DEMO="true")
    assert proc.returncode == 0, proc.stderr
    assert calls[1] == ["python", "manage.py", "load_demo", "--allow-production"]
    assert calls[2][0] == "gunicorn"


def test_start_web_passes_only_options_its_management_commands_accept(tmp_path: Path) -> None:
    from django.core.management import get_commands, load_command_class

    _, calls = _run_start_web(tmp_path, LOAD_DEMO="true")
    manage_calls = [call[2:] for call in calls if call[:2] == ["python", "manage.py"]]
    assert [call[0] for call in manage_calls] == ["migrate", "load_demo"]
    commands = get_commands()
    for name, *options in manage_calls:
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        parser.parse_args(options)  # an unknown option raises CommandError


@pytest.mark.parametrize(
    ("name", "value"), [("LOAD_DEMO", "yes"), ("LOAD_DEMO", "True"), ("FORWARDED_ALLOW_IPS", "*")]
)
def test_start_web_refuses_a_malformed_setting_before_doing_anything(
    tmp_path: Path, name: str, value: str
) -> None:
    proc, calls = _run_start_web(tmp_path, **{name: value})
    assert proc.returncode != 0
    assert name in proc.stderr
    assert calls == []


def test_gunicorn_limits_requests_and_trusts_only_the_declared_proxy(tmp_path: Path) -> None:
    args = _gunicorn_args(tmp_path)
    options = dict(zip(args[1::2], args[2::2], strict=False))
    assert args[0] == "apps.config.wsgi:application"
    assert 0 < int(options["--limit-request-line"]) <= 8190
    assert 0 < int(options["--limit-request-fields"]) <= 100
    assert 0 < int(options["--limit-request-field_size"]) <= 8190
    assert 0 < int(options["--timeout"]) <= 120
    assert options["--forwarded-allow-ips"] == "127.0.0.1,::1", "without a declared proxy: this host only"
    compose_value = _default(_compose()["services"]["web"]["environment"]["FORWARDED_ALLOW_IPS"])
    args = _gunicorn_args(tmp_path, FORWARDED_ALLOW_IPS=compose_value)
    assert args[args.index("--forwarded-allow-ips") + 1] == compose_value


def test_gunicorn_accepts_the_start_script_options(tmp_path: Path) -> None:
    compose_value = _default(_compose()["services"]["web"]["environment"]["FORWARDED_ALLOW_IPS"])
    args = _gunicorn_args(tmp_path, FORWARDED_ALLOW_IPS=compose_value)
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "gunicorn"), *args, "--check-config"],
        cwd=ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "apps.config.settings.test"},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_web_health_check_passes_on_a_production_configuration(tmp_path: Path) -> None:
    """The compose health check against gunicorn as start-web.sh starts it, under the production
    settings with a real host name, HTTPS redirects on and the proxy declared: nginx waits for
    this check, so it must pass on a healthy server however the operator configured hosts."""
    port = _free_port()
    args = _gunicorn_args(tmp_path, FORWARDED_ALLOW_IPS="172.30.240.0/24")
    args[args.index("--bind") + 1] = f"127.0.0.1:{port}"
    args[args.index("--workers") + 1] = "1"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("DJANGO_", "DATABASE_URL", "CELERY_", "CACHE_URL", "SECRET_KEY", "ALLOWED_HOSTS")
        )
    }
    env.update(
        DJANGO_SETTINGS_MODULE="apps.config.settings.production",
        SECRET_KEY="health-check-test-key-0123456789-abcdefghijklmnopqrstuvwxyz",
        DATABASE_URL=f"sqlite:///{tmp_path / 'unused.sqlite3'}",
        CELERY_BROKER_URL="memory://",
        CACHE_URL="locmem://",
        ALLOWED_HOSTS="evidence.example.org,localhost",
        BEHIND_PROXY="true",
        PLATFORM_VAR_DIR=str(tmp_path / "var"),
    )
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "gunicorn"), *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, server.stderr.read() if server.stderr else ""
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        test = _compose()["services"]["web"]["healthcheck"]["test"]
        assert test[:3] == ["CMD", "python", "-c"]
        code = test[3]
        assert code.count("8000") == 1
        check = subprocess.run(
            [sys.executable, "-c", code.replace("8000", str(port))],
            env={**env, "PATH": os.environ["PATH"]},
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert check.stdout.strip() == "200"
    finally:
        server.terminate()
        server.wait(timeout=30)


# -- environment examples -------------------------------------------------------------------------


def test_production_env_example_names_every_required_setting() -> None:
    names = {
        line.split("=", 1)[0]
        for line in PRODUCTION_ENV.read_text().splitlines()
        if line and not line.startswith("#")
    }
    required = {"SECRET_KEY", "DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "ALLOWED_HOSTS"}
    assert required <= names
    assert {"BEHIND_PROXY", "FORWARDED_ALLOW_IPS", "LOAD_DEMO"} <= names
