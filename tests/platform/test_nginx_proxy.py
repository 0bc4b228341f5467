"""platform/nginx/platform.conf, served by a real nginx in front of an upstream that echoes what it
receives: the limits and headers the deployment relies on, observed rather than read.

Needs an nginx binary (Debian's ``nginx-light`` is enough); skipped where there is none. Only two
lines of the file change for the test: nginx listens on a loopback port instead of :80, and the
upstream is the echo server instead of the compose service ``web``. Everything runs on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.platform.nginx_config import NGINX_CONF, server, size

NGINX = shutil.which("nginx") or next(
    (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if Path(p).exists()), None
)


@pytest.fixture(scope="module", autouse=True)
def _nginx_present() -> None:
    """CI installs nginx (.ci/run): there its absence fails the test; elsewhere it skips."""
    if NGINX is None:
        if os.environ.get("CI", "").strip().lower() in ("true", "1", "yes"):
            pytest.fail("CI=true requires an nginx binary (apt-get install nginx-light)")
        pytest.skip("no nginx binary (apt-get install nginx-light)")


HOST = "evidence.example.org"


class Echo(BaseHTTPRequestHandler):
    """Answers every request with what it received: method, path, headers, body length."""

    seen: list[dict] = []

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        record = {
            "method": self.command,
            "path": self.path,
            "headers": {k.lower(): v for k, v in self.headers.items()},
            "body_length": len(body),
        }
        Echo.seen.append(record)
        payload = json.dumps(record).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def log_message(self, format: str, *args: object) -> None:
        pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory, _nginx_present: None) -> Iterator[int]:
    """nginx with the platform's server block, in front of the echo server; yields nginx's port."""
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    tmp = tmp_path_factory.mktemp("nginx")
    port = _free_port()
    text = NGINX_CONF.read_text()
    for original, replacement in (
        ("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;"),
        ("set $platform_web http://web:8000;", f"set $platform_web http://127.0.0.1:{upstream.server_port};"),
    ):
        assert text.count(original) == 1, original
        text = text.replace(original, replacement)
    (tmp / "platform.conf").write_text(text)
    temp_paths = "\n".join(
        f"    {kind}_temp_path {tmp / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp / "nginx.conf").write_text(
        f"""daemon off;
master_process off;
worker_processes 1;
pid {tmp / "nginx.pid"};
error_log {tmp / "error.log"} warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
{temp_paths}
    include {tmp / "platform.conf"};
}}
"""
    )
    command = [str(NGINX), "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(tmp / "nginx.conf")]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True, check=False, timeout=30)
    assert check.returncode == 0, check.stderr
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, (tmp / "error.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "nginx did not start"
                time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=20)
        upstream.shutdown()
        upstream.server_close()


def _request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request(method, path, body=body, headers={"Host": HOST, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def _raw(port: int, head: bytes) -> bytes:
    """Sends a request head as given and returns the start of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        return sock.recv(4096)


def test_forwarding_headers_are_nginx_s_not_the_client_s(proxy: int) -> None:
    status, body = _request(
        proxy,
        "GET",
        "/api/v1/",
        headers={
            "X-Forwarded-Proto": "https",
            "X-Forwarded-For": "203.0.113.9",
            "X-Forwarded-Host": "attacker.example",
            "X-Forwarded-Ssl": "on",
            "X-Forwarded-Protocol": "ssl",
            "Forwarded": "for=203.0.113.9;proto=https",
        },
    )
    assert status == 200
    seen = json.loads(body)["headers"]
    assert seen["x-forwarded-proto"] == "http", "the scheme is the one nginx was reached with"
    assert seen["x-forwarded-for"] == "127.0.0.1", "the client's claimed address is dropped"
    assert seen["host"] == HOST
    for dropped in ("x-forwarded-host", "x-forwarded-ssl", "x-forwarded-protocol", "forwarded"):
        assert dropped not in seen, dropped


def test_a_body_over_the_limit_is_refused_before_it_is_read(proxy: int) -> None:
    limit = size(server().one("client_max_body_size").args[0])
    before = len(Echo.seen)
    answer = _raw(
        proxy,
        f"POST /api/v1/datasets/upload/ HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: {limit + 1}\r\n\r\n".encode(),
    )
    assert answer.startswith(b"HTTP/1.1 413"), answer[:80]
    assert len(Echo.seen) == before, "gunicorn never sees it"
    # A body of exactly the limit goes through, whole.
    status, body = _request(proxy, "POST", "/api/v1/datasets/upload/", body=b"x" * limit)
    assert status == 200
    assert json.loads(body)["body_length"] == limit


def test_requests_reach_the_upstream_whole_with_their_length(proxy: int) -> None:
    head = (
        f"POST /upload/ HTTP/1.1\r\nHost: {HOST}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    answer = _raw(proxy, head.encode() + b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200"), answer[:80]
    seen = Echo.seen[-1]
    assert seen["body_length"] == 11
    assert seen["headers"]["content-length"] == "11"
    assert "transfer-encoding" not in seen["headers"], "nginx buffered the chunked body first"


def test_overlong_request_lines_are_refused(proxy: int) -> None:
    status, _ = _request(proxy, "GET", "/api/v1/?" + "q" * 9000)
    assert status == 414


def test_sign_in_attempts_are_rate_limited_per_address_but_the_form_is_not(proxy: int) -> None:
    for _ in range(12):
        assert _request(proxy, "GET", "/accounts/login/")[0] == 200
    statuses = [
        _request(proxy, "POST", "/accounts/login/", body=b"username=a&password=b")[0] for _ in range(10)
    ]
    # One attempt plus a burst of 5 at once; the rest are refused until the rate allows more.
    assert statuses[:6] == [200] * 6
    assert set(statuses[6:]) == {429}
    # The admin's sign-in form shares the budget: same address, same zone.
    assert _request(proxy, "POST", "/admin/login/", body=b"username=a&password=b")[0] == 429
    # Other POSTs are not limited here (the API has its own rate limits).
    assert _request(proxy, "POST", "/api/v1/datasets/upload/", body=b"{}")[0] == 200


def test_health_endpoint_answers_locally(proxy: int) -> None:
    status, body = _request(proxy, "GET", "/-/nginx-health")
    assert (status, body) == (200, b"ok\n")
