"""Security benchmark: what the attacks of the security review cost a real gunicorn deployment.

Starts the platform under gunicorn (2 sync workers, production-like: DEBUG off, PBKDF2 passwords)
on a SQLite database of its own, then measures, in one run:

- Memory: the resident memory a 300 MB multipart upload adds to the web workers, beside an
  accepted 4 MiB upload (read from /proc while each request is in flight).
- Spreadsheets: the time and memory to refuse the 2.5-million-cell workbook (``bench.payloads``)
  with and without a truthful <dimension>, in the reader and through HTTP.
- Sign-in: the latency of a trivial page, idle and while 8 clients guess one account's password
  in parallel; how many guesses reached the password hasher.
- Tokens: 300 wrong API tokens from one address: how many were answered 401 and how many 429.

Usage: ``python -m bench.security_bench --out bench/SECURITY.md`` (``make bench-security``).
"""

from __future__ import annotations

import argparse
import functools
import http.client
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.harness import free_port, percentile, time_repeated

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "bench-password-7d1e"  # noqa: S105  (a throwaway database of the benchmark)
TOKEN = "bench0token0data0manager000000000000001"  # noqa: S105
MIB = 1024 * 1024
CACHE_URL = os.environ.get("BENCH_CACHE_URL", "redis://127.0.0.1:6379/13")


def _prepare() -> dict[str, str]:
    var = tempfile.mkdtemp(prefix="bench-security-")
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "apps.config.settings.local",
        "DEBUG": "false",
        "PLATFORM_VAR_DIR": var,
        "DATABASE_URL": f"sqlite:///{var}/bench.sqlite3",
        "CELERY_BROKER_URL": "filesystem://",
        "OUTBOX_PUBLISH_ON_COMMIT": "false",
        "LOG_LEVEL": "ERROR",
        # As in production: rate-limit counters shared by both workers (a Redis database of its own).
        "CACHE_URL": CACHE_URL,
    }
    import redis

    redis.Redis.from_url(CACHE_URL).flushdb()
    python = sys.executable
    subprocess.run([python, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env, check=True)  # noqa: S603
    setup = f"""
import django; django.setup()
from django.contrib.auth.models import User
from rest_framework.authtoken.models import Token
from apps.consortium.models import Centre, Outcome
from apps.consortium.services import membership_set
from apps.analyses.services import analysis_create_default
centre = Centre.objects.create(code="alpha", name="Alpha")
outcome = Outcome.objects.create(code="rf", name="RF", measure="SMD",
    moderators=[{{"name": "year", "kind": "numeric"}}])
analysis_create_default(outcome=outcome)
dm = User.objects.create_user("dm", password="{PASSWORD}")
User.objects.create_user("admin", password="{PASSWORD}", is_staff=True, is_superuser=True)
membership_set(actor=None, user=dm, centre=centre, role="data_manager")
Token.objects.create(user=dm, key="{TOKEN}")
"""
    subprocess.run([python, "-c", setup], cwd=ROOT, env=env, check=True)  # noqa: S603
    return env


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        gunicorn = str(Path(sys.executable).with_name("gunicorn"))
        self.proc = subprocess.Popen(  # noqa: S603
            [
                gunicorn,
                "apps.config.wsgi:application",
                "--workers",
                "2",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--timeout",
                "120",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.request("GET", "/accounts/login/")[0] == 200:
                    break
            except OSError:
                time.sleep(0.2)
        else:
            raise RuntimeError("gunicorn did not start")

    def workers(self) -> list[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return [int(pid) for pid in children]

    def rss_mib(self) -> float:
        total = 0
        for pid in self.workers():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        return total / 1024

    def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


class PeakRss:
    """Samples the workers' resident memory every 5 ms while a request is in flight."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.peak = 0.0
        self._stop = threading.Event()

    def __enter__(self) -> PeakRss:
        self.base = self.server.rss_mib()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.server.rss_mib())
            time.sleep(0.005)

    def __exit__(self, *exc: Any) -> None:
        time.sleep(0.2)
        self._stop.set()
        self._thread.join()

    @property
    def added(self) -> float:
        return max(0.0, self.peak - self.base)


def _multipart(size: int, filename: str, content: bytes | None = None) -> tuple[Iterator[bytes], int, str]:
    boundary = "benchboundary7d1e"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="centre"\r\n\r\nalpha\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="outcome"\r\n\r\nrf\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    body_size = len(content) if content is not None else size

    def chunks() -> Iterator[bytes]:
        yield head
        if content is not None:
            yield content
        else:
            block = b"study,yi,vi\n" + b"0" * (MIB - 12)
            sent = 0
            while sent < size:
                piece = block[: min(MIB, size - sent)]
                sent += len(piece)
                yield piece
        yield tail

    return chunks(), len(head) + body_size + len(tail), boundary


def _upload(server: Server, size: int, filename: str, content: bytes | None = None) -> tuple[int, float, str]:
    chunks, length, boundary = _multipart(size, filename, content)
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
    t0 = time.perf_counter()
    status, text = 0, ""
    try:
        conn.putrequest("POST", "/api/v1/datasets/upload/")
        conn.putheader("Authorization", f"Token {TOKEN}")
        conn.putheader("Content-Type", f"multipart/form-data; boundary={boundary}")
        conn.putheader("Content-Length", str(length))
        conn.endheaders()
        try:
            for chunk in chunks:
                conn.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed without reading the rest: the point
        resp = conn.getresponse()
        status, text = resp.status, resp.read().decode(errors="replace")
    finally:
        conn.close()
    code = re.search(r'"code":\s*"([a-z_]+)"', text)
    return status, time.perf_counter() - t0, code.group(1) if code else ""


def memory_rows(server: Server) -> list[list[str]]:
    from bench.payloads import wide_workbook

    rows = []
    for label, size, filename, content in [
        ("300 MB multipart upload (refused)", 300 * MIB, "huge.csv", None),
        ("4 MiB CSV upload (read and validated)", 4 * MIB, "big.csv", None),
        ("2.5 M-cell XLSX, 3.5 MiB (refused)", 0, "wide.xlsx", wide_workbook()),
    ]:
        for _ in range(2):  # warm both workers' code paths
            server.request("GET", "/api/v1/outcomes/", headers={"Authorization": f"Token {TOKEN}"})
        with PeakRss(server) as peak:
            status, seconds, code = _upload(server, size, filename, content)
        rows.append([label, str(status), code, f"{seconds * 1000:.0f}", f"{peak.added:.1f}"])
    return rows


def _refusal_code(content: bytes, spec: Any) -> str:
    """The code the reader refuses a workbook with ("" when it reads it)."""
    from apps.datasets.ingest import UploadRejected, parse_upload

    try:
        parse_upload(content, filename="wide.xlsx", spec=spec)
    except UploadRejected as exc:
        return str(exc.errors[0].code)
    return ""


def workbook_rows() -> list[list[str]]:
    from apps.datasets.ingest.spec import UploadSpec
    from bench.payloads import wide_workbook

    spec = UploadSpec(outcome_code="rf", measure="SMD")
    rows = []
    for label, content in [
        ("declared dimension A1:IP10001", wide_workbook()),
        ("no dimension", wide_workbook(declare=False)),
        ("dimension lies (A1:I4)", wide_workbook(declared_ref="A1:I4")),
    ]:
        tracemalloc.start()
        codes, times = time_repeated(functools.partial(_refusal_code, content, spec), 3)
        code = codes[-1]
        peak = tracemalloc.get_traced_memory()[1] / MIB
        tracemalloc.stop()
        rows.append(
            [
                label,
                f"{len(content) / MIB:.1f}",
                code,
                f"{statistics.median(times) * 1000:.0f}",
                f"{peak:.1f}",
            ]
        )
    return rows


def _csrf_login(server: Server, username: str, password: str) -> int:
    status, headers, body = server.request("GET", "/accounts/login/")
    cookie = re.search(r"csrftoken=([^;]+)", headers.get("Set-Cookie", ""))
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', body)
    assert cookie and token
    form = f"csrfmiddlewaretoken={token.group(1).decode()}&username={username}&password={password}"
    status, _, _ = server.request(
        "POST",
        "/accounts/login/",
        form,
        {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"csrftoken={cookie.group(1)}"},
    )
    return status


def _latencies(server: Server, n: int) -> list[float]:
    """Milliseconds of each of n requests for a static file."""
    _, seconds = time_repeated(functools.partial(server.request, "GET", "/static/portal/site.css"), n)
    return [t * 1000 for t in seconds]


def sign_in_rows(server: Server) -> tuple[list[list[str]], dict[str, int]]:
    idle = _latencies(server, 60)
    statuses: dict[str, int] = {}
    stop = threading.Event()
    lock = threading.Lock()

    def attacker() -> None:
        while not stop.is_set():
            status = _csrf_login(server, "admin", "wrong-guess")
            with lock:
                statuses[str(status)] = statuses.get(str(status), 0) + 1

    threads = [threading.Thread(target=attacker, daemon=True) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(1.0)
    attacked = _latencies(server, 60)
    stop.set()
    for t in threads:
        t.join()
    right = _csrf_login(server, "admin", PASSWORD)
    base = statistics.median(idle)
    rows = [
        ["idle", f"{base:.1f}", f"{percentile(idle, 95):.1f}", "1.0"],
        [
            "8 parallel wrong sign-ins",
            f"{statistics.median(attacked):.1f}",
            f"{percentile(attacked, 95):.1f}",
            f"{statistics.median(attacked) / base:.1f}",
        ],
    ]
    statuses["right password afterwards"] = right
    return rows, statuses


def token_rows(server: Server) -> dict[str, float]:
    counts: dict[str, float] = {}
    t0 = time.perf_counter()
    for i in range(300):
        status, _, _ = server.request(
            "GET", "/api/v1/results/", headers={"Authorization": f"Token guess{i:035d}"}
        )
        counts[str(status)] = counts.get(str(status), 0) + 1
    counts["requests per second"] = round(300 / (time.perf_counter() - t0))
    return counts


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def run(out: Path) -> str:
    env = _prepare()
    server = Server(env)
    try:
        memory = memory_rows(server)
        sign_in, statuses = sign_in_rows(server)
        tokens = token_rows(server)
    finally:
        server.stop()
    workbook = workbook_rows()
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"],  # noqa: S607
        cwd=ROOT,
        capture_output=True,
        text=True,
    ).stdout.strip()
    text = f"""# Security benchmark

Run {datetime.now(UTC):%Y-%m-%d %H:%M} UTC at commit `{commit}` on {platform.machine()}, {os.cpu_count()} cores,
Python {platform.python_version()}; gunicorn with 2 sync workers, DEBUG off, Django's default PBKDF2
password hasher. `python -m bench.security_bench` (`make bench-security`).

## Request bodies: memory added to the web workers while the request is in flight

Peak resident memory of both workers during the request, minus their memory just before it.

{_table(["request", "status", "code", "ms", "MiB added"], memory)}

## The 2.5-million-cell workbook in the reader (median of 3; peak Python allocations)

{_table(["workbook", "MiB", "code", "ms to refuse", "peak MiB"], workbook)}

## Sign-in under a password-guessing attack

Latency (ms) of a static file served by the same workers, idle and while 8 clients guess the
`admin` password in parallel (each guess a real CSRF-protected form post).

{_table(["load", "p50 ms", "p95 ms", "p50 / idle p50"], sign_in)}

Guesses answered: {", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()) if k.isdigit())}; the right
password from the attacker's address afterwards: {statuses["right password afterwards"]} (429: paused).

## 300 wrong API tokens from one address

{", ".join(f"{k}: {v:g}" for k, v in tokens.items())}
"""
    out.write_text(text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "SECURITY.md")
    args = parser.parse_args(argv)
    print(run(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
