"""A local webhook receiver, the documentation's verification snippet, and the integration fixtures.

The receiver is a real HTTP server (``http.server``) on 127.0.0.1 in a thread of the test process:
it records every request and answers from a script (status codes in order, then 200), optionally
holding a request for a while. Delivering to it needs ``WEBHOOKS_ALLOW_PRIVATE_ADDRESSES``.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "webhooks.md"


@dataclass
class Received:
    at: float
    path: str
    headers: Any  # email.message.Message: case-insensitive, like a web framework's
    body: bytes

    @property
    def delivery_id(self) -> str:
        return str(self.headers["X-Evidence-Delivery"])

    @property
    def event(self) -> str:
        return str(self.headers["X-Evidence-Event"])

    def json(self) -> Any:
        import json

        return json.loads(self.body)


@dataclass
class Scripted:
    """One answer: a status, headers, a body, and how long to hold the request first."""

    status: int = 200
    headers: dict[str, str] | None = None
    body: bytes = b"ok"
    hold: float = 0.0


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.script: list[Scripted] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Received(time.monotonic(), self.path, self.headers, body))
                    answer = receiver.script.pop(0) if receiver.script else Scripted()
                if answer.hold:
                    time.sleep(answer.hold)
                try:
                    self.send_response(answer.status)
                    for name, value in (answer.headers or {}).items():
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(answer.body)))
                    self.end_headers()
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the caller went away (a killed worker, a timeout)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/evidence"

    def answer(self, *answers: Scripted | int) -> None:
        with self._lock:
            self.script.extend(a if isinstance(a, Scripted) else Scripted(a) for a in answers)

    def of_event(self, event: str) -> list[Received]:
        return [r for r in list(self.requests) if r.event == event]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


@pytest.fixture
def private_allowed(settings: Any) -> None:
    """Deliveries from this process may go to 127.0.0.1 (the local receiver)."""
    settings.WEBHOOKS_ALLOW_PRIVATE_ADDRESSES = True


def docs_python_block(heading: str) -> str:
    """The first ```python block under ``heading`` in docs/webhooks.md."""
    text = DOCS.read_text()
    section = text.split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert match, f"no python block under {heading!r}"
    return match.group(1)


def docs_json_block(heading: str) -> Any:
    import json

    section = DOCS.read_text().split(f"\n## {heading}\n", 1)[1]
    match = re.search(r"```json\n(.*?)```", section, flags=re.S)
    assert match, f"no json block under {heading!r}"
    return json.loads(match.group(1))


@pytest.fixture(scope="session")
def docs_verify() -> Callable[..., bool]:
    """``verify(secret, headers, body)`` exactly as docs/webhooks.md gives it to receivers."""
    namespace: dict[str, Any] = {}
    exec(compile(docs_python_block("Verifying a delivery"), str(DOCS), "exec"), namespace)
    return namespace["verify"]  # type: ignore[no-any-return]


def subscribe(owner: Any, url: str, events: list[str], **fields: Any) -> tuple[Any, str]:
    """A webhook of ``owner``'s through the service (private addresses must be allowed for a local URL)."""
    from apps.webhooks.services.writes import webhook_create

    return webhook_create(actor=owner, data={"url": url, "events": events, **fields})
