"""Calling a receiver: the signature, the address rules and one HTTP POST.

Nothing here touches the database; ``services`` decides what to send and records what happened.

The POST uses the standard library's ``http.client`` on a socket this module opens itself, to the
address it has just checked: the host name is resolved once, every address it resolves to must be
allowed, and the connection goes to one of those addresses (TLS still verifies the certificate
against the host name). A name that resolves to a public address when checked and to a private one
when connected (DNS rebinding) therefore cannot reach the private one. ``http.client`` never follows
redirects. The connect timeout is 3 s; the whole answer must arrive within 10 s of connecting, and
only its first 1 KiB is read.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import ipaddress
import json
import re
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

CONNECT_TIMEOUT = 3.0
READ_TIMEOUT = 10.0
RESPONSE_EXCERPT_BYTES = 1024
SIGNATURE_VERSION = "v1"
USER_AGENT = "EvidencePlatform-Webhooks/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class TargetRefusedError(Exception):
    """The URL may not be called: its scheme, its form, or an address its host resolves to."""


# --- the signature ----------------------------------------------------------------------------


def encode(payload: Any) -> bytes:
    """The body exactly as sent (and signed): compact JSON, keys sorted, UTF-8."""
    return json.dumps(
        payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode()


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``v1=`` and the hex HMAC-SHA256 of ``"{timestamp}.{body}"`` under the webhook's secret."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"{SIGNATURE_VERSION}={digest}"


def signed_headers(
    *, secret: str, event: str, delivery_id: str, body: bytes, timestamp: int
) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Evidence-Event": event,
        "X-Evidence-Delivery": delivery_id,
        "X-Evidence-Timestamp": str(timestamp),
        "X-Evidence-Signature": sign(secret, timestamp, body),
    }


# --- the address rules ------------------------------------------------------------------------


def address_allowed(address: IPAddress) -> bool:
    """Whether a receiver may be at ``address``: a globally routable unicast address, never private,
    loopback, link-local, multicast, reserved, unspecified or shared (carrier-grade NAT), including
    IPv4 addresses carried inside IPv6 ones (mapped, 6to4, Teredo, NAT64)."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded: list[ipaddress.IPv4Address] = []
        if address.ipv4_mapped is not None:
            embedded.append(address.ipv4_mapped)
        if address.sixtofour is not None:
            embedded.append(address.sixtofour)
        if address.teredo is not None:
            embedded.extend(address.teredo)
        if address in _NAT64:
            embedded.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if any(not address_allowed(inner) for inner in embedded):
            return False
    return address.is_global and not (
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
    )


@dataclass(frozen=True)
class Target:
    """Where a URL points: the pieces of the request and the addresses its host resolved to."""

    scheme: str
    host: str
    port: int
    path: str
    addresses: tuple[IPAddress, ...] = field(default=())

    @property
    def host_header(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        default = 443 if self.scheme == "https" else 80
        return host if self.port == default else f"{host}:{self.port}"


# Characters of an RFC 3986 URI (unreserved, reserved, and percent-escapes): whatever passes is a URI.
_URI = re.compile(r"(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})+")
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_DOTTED_NUMBERS = re.compile(r"[0-9.]+")


def _valid_host(host: str, *, bracketed: bool) -> bool:
    """An IP address literal, or a host name of labels of letters, digits and hyphens. (A name's length
    is left to DNS: a name too long for it does not resolve. What it resolves to is ``check``'s.)"""
    if bracketed or _DOTTED_NUMBERS.fullmatch(host):
        try:
            return ipaddress.ip_address(host).version == (6 if bracketed else 4)
        except ValueError:
            return False
    labels = host.split(".")
    return all(_LABEL.fullmatch(label) for label in labels)


def parse(url: str, *, allow_http: bool) -> Target:
    """The URL's parts; ``TargetRefusedError`` for anything but an http(s) URI with a host (a name or
    an address) and no credentials."""
    malformed = TargetRefusedError("Give an https:// URL, e.g. https://tools.example.org/hooks/evidence.")
    if not _URI.fullmatch(url):
        raise malformed
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise TargetRefusedError(f"The URL is not valid: {exc}.") from exc
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not url.lower().startswith(f"{scheme}://"):
        raise TargetRefusedError(
            "The URL must start with https:// (or http:// where the platform allows it)."
        )
    if scheme == "http" and not allow_http:
        raise TargetRefusedError("The URL must use https://: this platform does not deliver over plain http.")
    if parts.username is not None or parts.password is not None:
        raise TargetRefusedError(
            "The URL may not carry a user name or password: receivers authenticate the platform by "
            "the signature of each delivery."
        )
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise TargetRefusedError("The URL has no host.")
    if not _valid_host(host, bracketed="[" in parts.netloc) or port == 0:
        raise malformed
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return Target(scheme=scheme, host=host, port=port or (443 if scheme == "https" else 80), path=path)


def resolve(host: str, port: int) -> tuple[IPAddress, ...]:
    """Every address ``host`` stands for (itself, for an address literal); ``socket.gaierror`` if the
    name does not resolve."""
    try:
        return (ipaddress.ip_address(host),)
    except ValueError:
        pass
    found: list[IPAddress] = []
    for *_, sockaddr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in found:
            found.append(address)
    return tuple(found)


def _special_name(host: str) -> bool:
    lowered = host.lower()
    return lowered == "localhost" or lowered.endswith(".localhost")


def check(target: Target, *, allow_private: bool, addresses: tuple[IPAddress, ...]) -> Target:
    """``target`` with its addresses, or ``TargetRefusedError`` when any of them is not allowed."""
    if not allow_private:
        if _special_name(target.host):
            raise TargetRefusedError(f"{target.host} is this machine: receivers must be on the internet.")
        refused = [str(a) for a in addresses if not address_allowed(a)]
        if refused:
            raise TargetRefusedError(
                f"{target.host} resolves to {', '.join(refused)}: private, loopback, link-local, "
                "multicast and reserved addresses are not allowed."
            )
    return Target(target.scheme, target.host, target.port, target.path, addresses)


# --- the POST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """What one POST came to: the status code (None when there was no answer), how long it took, the
    error (empty for a 2xx), the first 1 KiB of the body, and whether trying again may help."""

    status_code: int | None
    duration_ms: float
    error: str
    body: bytes
    retry: bool

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


class _Watchdog:
    """Ends the exchange READ_TIMEOUT after connecting, however slowly the receiver trickles bytes."""

    def __init__(self, seconds: float) -> None:
        self.sock: socket.socket | None = None
        self.fired = threading.Event()
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True

    def start(self, sock: socket.socket) -> None:
        self.sock = sock
        self._timer.start()

    def _fire(self) -> None:
        self.fired.set()
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.shutdown(socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def _connect(target: Target) -> socket.socket:
    """A connection to the first of the target's (checked) addresses that accepts one."""
    last: OSError | None = None
    for address in target.addresses:
        family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(CONNECT_TIMEOUT)
        try:
            sock.connect((str(address), target.port))
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError(f"{target.host} has no address to connect to")


def post(target: Target, body: bytes, headers: dict[str, str]) -> Answer:
    """POST ``body`` to a checked ``target``. Never raises for what the network or the receiver does."""
    started = time.monotonic()

    def answer(status: int | None, error: str, excerpt: bytes = b"", retry: bool = True) -> Answer:
        return Answer(status, round((time.monotonic() - started) * 1000, 1), error[:1000], excerpt, retry)

    watchdog = _Watchdog(READ_TIMEOUT)
    connection: http.client.HTTPConnection | None = None
    sock: socket.socket | None = None
    try:
        sock = _connect(target)
        sock.settimeout(READ_TIMEOUT)
        watchdog.start(sock)
        if target.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=target.host)
            watchdog.sock = sock
        connection = http.client.HTTPConnection(target.host, target.port, timeout=READ_TIMEOUT)
        connection.sock = sock
        connection.request(
            "POST",
            target.path,
            body=body,
            headers={**headers, "Host": target.host_header, "Connection": "close"},
        )
        response = connection.getresponse()
        excerpt = response.read(RESPONSE_EXCERPT_BYTES)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if watchdog.fired.is_set() or isinstance(exc, TimeoutError):
            return answer(
                None,
                f"No answer within the time limit ({CONNECT_TIMEOUT:g} s to connect, {READ_TIMEOUT:g} s to answer).",
            )
        return answer(None, f"{type(exc).__name__}: {exc}")
    finally:
        watchdog.cancel()
        if connection is not None:
            connection.close()
        elif sock is not None:
            sock.close()
    status = response.status
    if 200 <= status < 300:
        return answer(status, "", excerpt)
    if 300 <= status < 400:
        location = (response.getheader("Location") or "")[:300]
        return answer(status, f"HTTP {status}: redirects are not followed (Location: {location}).", excerpt)
    return answer(status, f"HTTP {status}", excerpt)
