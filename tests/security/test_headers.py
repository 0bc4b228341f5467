"""Headers and deployment settings (finding 9): a Content-Security-Policy without inline script on
every page, sessions that end when idle, a proxy header trusted only when a proxy is declared, and
task retries only for lost connections."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from tests.conftest import SMD_ROWS, store_rows

pytestmark = pytest.mark.django_db
ROOT = Path(__file__).resolve().parents[2]


class _InlineScriptFinder(HTMLParser):
    """Collects what a strict CSP would block: inline <script> bodies and on* handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        names = dict(attrs)
        for name, _ in attrs:
            if name.lower().startswith("on"):
                self.problems.append(f"<{tag} {name}=...>")
        if tag == "script" and "src" not in names and names.get("type") not in ("application/json",):
            self._in_inline_script = True

    def handle_data(self, data: str) -> None:
        if self._in_inline_script and data.strip():
            self.problems.append(f"inline script: {data.strip()[:60]}")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_inline_script = False


def _pages(cast: dict[str, Any]) -> list[str]:
    dataset = store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    return [
        "/",
        "/outcomes/rf/",
        "/datasets/",
        f"/datasets/{dataset.pk}/",
        "/upload/",
        "/audit/",
        "/api/docs/",
        "/api/redoc/",
        "/admin/",
        "/admin/consortium/outcome/",
        f"/admin/consortium/outcome/{cast['outcome'].pk}/change/",
        "/accounts/login/",
    ]


def test_every_page_has_a_strict_policy_and_no_inline_script(cast: dict[str, Any], tmp_media: Any) -> None:
    client = Client()
    client.force_login(cast["users"]["admin"])
    for path in _pages(cast):
        resp = client.get(path)
        assert resp.status_code == 200, path
        policy = dict(
            [*part.strip().split(" ", 1), ""][:2] for part in resp["Content-Security-Policy"].split(";")
        )
        assert policy["script-src"] == "'self'", path
        assert policy["default-src"] == "'self'" and policy["frame-ancestors"] == "'none'"
        finder = _InlineScriptFinder()
        finder.feed(resp.content.decode())
        assert finder.problems == [], (path, finder.problems)
        assert (
            "https://" not in re.sub(r'href="https://[^"]*"', "", resp.content.decode()).split("<body", 1)[0]
        ), (
            path,
            "an outside asset in <head>",
        )


def test_the_api_docs_load_their_script_from_the_site(cast: dict[str, Any]) -> None:
    client = Client()
    client.force_login(cast["users"]["steering"])
    html = client.get("/api/docs/").content.decode()
    script = re.findall(r'<script src="([^"]+\?[^"]*script=[^"]*)"', html)
    assert script, html
    resp = client.get(script[0].replace("&amp;", "&"))
    assert resp.status_code == 200 and "SwaggerUIBundle" in resp.content.decode()


def test_sessions_end_after_the_idle_timeout_and_each_request_renews_them(
    cast: dict[str, Any], settings: Any
) -> None:
    assert settings.SESSION_COOKIE_AGE == 30 * 60
    assert settings.SESSION_SAVE_EVERY_REQUEST is True
    from datetime import timedelta

    from django.contrib.sessions.models import Session
    from django.utils import timezone

    client = Client()
    client.post("/accounts/login/", {"username": "steering", "password": "pw-steering"})
    session = Session.objects.get()
    assert abs(session.expire_date - (timezone.now() + timedelta(minutes=30))) < timedelta(seconds=30)
    Session.objects.update(expire_date=timezone.now() + timedelta(minutes=1))
    client.get("/")  # any request renews the idle timeout
    assert Session.objects.get().expire_date > timezone.now() + timedelta(minutes=29)
    # Past the timeout the session is gone: the next page asks to sign in again.
    Session.objects.update(expire_date=timezone.now())
    assert client.get("/datasets/").status_code == 302


def _settings_value(expression: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if k not in ("BEHIND_PROXY", "DJANGO_SETTINGS_MODULE")}
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import django; django.setup(); from django.conf import settings; print({expression})",
        ],
        cwd=ROOT,
        env={**base, "DJANGO_SETTINGS_MODULE": "apps.config.settings.local", **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return proc.stdout.strip()


def test_the_forwarded_proto_header_is_trusted_only_behind_a_declared_proxy() -> None:
    assert _settings_value("getattr(settings, 'SECURE_PROXY_SSL_HEADER', None)") == "None"
    assert (
        _settings_value("settings.SECURE_PROXY_SSL_HEADER", BEHIND_PROXY="true")
        == "('HTTP_X_FORWARDED_PROTO', 'https')"
    )


def test_a_client_claiming_https_is_not_believed_without_a_proxy(cast: dict[str, Any], settings: Any) -> None:
    from django.http import HttpRequest

    from apps.security.client import client_ip

    request = HttpRequest()
    request.META = {
        "REMOTE_ADDR": "198.51.100.7",
        "HTTP_X_FORWARDED_PROTO": "https",
        "HTTP_X_FORWARDED_FOR": "1.1.1.1",
    }
    assert request.is_secure() is False
    assert client_ip(request) == "198.51.100.7"


@pytest.mark.parametrize(
    ("error", "retried"),
    [
        ("OperationalError", True),
        ("InterfaceError", True),
        ("IntegrityError", False),
        ("ProgrammingError", False),
        ("DataError", False),
    ],
)
def test_recomputes_are_retried_only_for_lost_connections(
    monkeypatch: pytest.MonkeyPatch, error: str, retried: bool
) -> None:
    import django.db

    import apps.analyses.services as services
    from workers.tasks import recompute_analysis

    calls: list[int] = []

    def fail(**kwargs: Any) -> None:
        calls.append(1)
        raise getattr(django.db, error)("simulated")

    monkeypatch.setattr(services, "analysis_recompute", fail)
    outcome = recompute_analysis.apply(args=[1])
    assert outcome.state == "FAILURE"
    # Eagerly applied, a retried task runs again at once until its retries are used up.
    assert len(calls) == (1 + recompute_analysis.max_retries if retried else 1)
