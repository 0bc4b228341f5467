"""The condition events, the signature and the address rules, without a database."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
import time
from typing import Any

import pytest

from apps.webhooks import delivery, events


def head(estimate: float, lb: float, ub: float, i2: float | None = 0.0) -> dict[str, Any]:
    return {"estimate": estimate, "ci_lb": lb, "ci_ub": ub, "I2": i2}


def fired(before: Any, after: Any, **kw: Any) -> dict[str, dict[str, Any]]:
    return events.conditions(before, after, **kw)


def test_a_first_result_whose_interval_excludes_the_null_fires_only_that() -> None:
    got = fired(None, head(0.4, 0.2, 0.6))
    assert set(got) == {events.CI_EXCLUDES_NULL}
    assert got[events.CI_EXCLUDES_NULL]["side"] == "above"
    assert got[events.CI_EXCLUDES_NULL]["previous_interval"] is None
    assert fired(None, head(0.1, -0.1, 0.3)) == {}


def test_interval_conditions_fire_on_the_change_only() -> None:
    excluded, included = head(0.4, 0.2, 0.6), head(0.14, -0.08, 0.37)
    assert set(fired(included, excluded)) >= {events.CI_EXCLUDES_NULL}
    assert events.CI_INCLUDES_NULL in fired(excluded, included)
    assert not {events.CI_EXCLUDES_NULL, events.CI_INCLUDES_NULL} & set(fired(excluded, head(0.5, 0.3, 0.7)))
    below = fired(included, head(-0.4, -0.6, -0.2))
    assert below[events.CI_EXCLUDES_NULL]["side"] == "below"
    # an interval that touches the null does not exclude it
    assert events.CI_INCLUDES_NULL in fired(excluded, head(0.2, 0.0, 0.4))


def test_i2_crossing_counts_above_the_threshold_as_over_it() -> None:
    assert fired(head(0, -1, 1, 40), head(0, -1, 1, 60))[events.I2_CROSSED]["direction"] == "up"
    assert fired(head(0, -1, 1, 60), head(0, -1, 1, 40))[events.I2_CROSSED]["direction"] == "down"
    assert events.I2_CROSSED not in fired(head(0, -1, 1, 50), head(0, -1, 1, 10))  # 50 is not above 50
    assert events.I2_CROSSED not in fired(head(0, -1, 1, 60), head(0, -1, 1, 70))
    assert events.I2_CROSSED in fired(head(0, -1, 1, 0), head(0, -1, 1, 4.4), i2_threshold=2)
    assert events.I2_CROSSED not in fired(head(0, -1, 1, None), head(0, -1, 1, 70))


def test_estimate_moved_uses_the_subscription_threshold() -> None:
    before, after = head(0.40, -1, 1), head(0.25, -1, 1)
    moved = fired(before, after)[events.ESTIMATE_MOVED]
    assert moved == {"threshold": 0.1, "before": 0.40, "after": 0.25, "change": pytest.approx(-0.15)}
    assert events.ESTIMATE_MOVED not in fired(before, after, estimate_threshold=0.2)


def test_direction_changed_is_the_sign() -> None:
    got = fired(head(0.4, 0.2, 0.6), head(-0.4, -0.6, -0.2))
    assert got[events.DIRECTION_CHANGED]["from"] == "positive"
    assert got[events.DIRECTION_CHANGED]["to"] == "negative"
    assert events.DIRECTION_CHANGED not in fired(head(0.4, 0.2, 0.6), head(0.1, -0.1, 0.3))


def test_a_failed_result_or_missing_numbers_fire_nothing() -> None:
    assert fired(head(0.4, 0.2, 0.6), None) == {}
    assert fired({"estimate": None, "ci_lb": None, "ci_ub": None}, {"estimate": float("nan")}) == {}


def test_signature_is_the_hmac_of_timestamp_dot_body(docs_verify: Any) -> None:
    body = delivery.encode({"b": 1, "a": "é"})
    assert body == '{"a":"é","b":1}'.encode()
    signature = delivery.sign("s3cret", 1_700_000_000, body)
    assert signature == "v1=" + hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    now = int(time.time())
    headers = delivery.signed_headers(
        secret="s3cret", event="ping", delivery_id="d", body=body, timestamp=now
    )
    assert docs_verify("s3cret", headers, body)
    assert not docs_verify("other", headers, body)
    assert not docs_verify("s3cret", headers, body + b" ")
    # the replay window: five minutes either way
    old = delivery.signed_headers(
        secret="s3cret", event="ping", delivery_id="d", body=body, timestamp=now - 301
    )
    assert not docs_verify("s3cret", old, body)
    assert docs_verify("s3cret", old, body, now=now - 1)
    assert not docs_verify("s3cret", {**headers, "X-Evidence-Timestamp": "١٧"}, body)
    several = {**headers, "X-Evidence-Signature": "v1=00, " + headers["X-Evidence-Signature"]}
    assert docs_verify("s3cret", several, body)


REFUSED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",  # cloud metadata
    "100.64.0.1",  # shared (carrier-grade NAT)
    "0.0.0.0",
    "224.0.0.1",
    "240.0.0.1",
    "255.255.255.255",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "ff02::1",
    "::ffff:127.0.0.1",  # IPv4-mapped
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
    "2001:db8::1",  # documentation
]
ALLOWED = ["93.184.215.14", "1.1.1.1", "2606:4700:4700::1111"]


@pytest.mark.parametrize("address", REFUSED)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    assert not delivery.address_allowed(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", ALLOWED)
def test_public_addresses_are_allowed(address: str) -> None:
    assert delivery.address_allowed(ipaddress.ip_address(address))


def test_a_name_is_refused_when_any_of_its_addresses_is(monkeypatch: pytest.MonkeyPatch) -> None:
    def fake(host: str, port: int, **_: Any) -> list[Any]:
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    target = delivery.parse("https://mixed.example.org/h", allow_http=False)
    addresses = delivery.resolve(target.host, target.port)
    with pytest.raises(delivery.TargetRefusedError, match=r"10\.0\.0\.7"):
        delivery.check(target, allow_private=False, addresses=addresses)
    assert delivery.check(target, allow_private=True, addresses=addresses).addresses == addresses


@pytest.mark.parametrize(
    ("url", "allow_http", "message"),
    [
        ("ftp://example.org/x", True, "https://"),
        ("http://example.org/x", False, "https://"),
        ("https://user:pw@example.org/x", True, "user name or password"),
        ("https:///x", True, "no host"),
        ("https://example.org:99999/x", True, "not valid"),
        ("https://exa mple.org/x", True, "Give an https"),
        ("https://bücher.example/x", True, "Give an https"),  # IDN: give it as xn--
        ("https://999.1.1.1/x", True, "Give an https"),
        ("https://0177.0.0.1/x", True, "Give an https"),
        ("https://[fe80::1%25eth0/x", True, "not valid"),
        ("https://-bad.example.org/x", True, "Give an https"),
        ("https://example.org:0/x", True, "Give an https"),
        ("https:example.org/x", True, "https://"),
        ("https://example.org/%zz", True, "Give an https"),
    ],
)
def test_url_forms_refused(url: str, allow_http: bool, message: str) -> None:
    with pytest.raises(delivery.TargetRefusedError, match=message):
        delivery.parse(url, allow_http=allow_http)


def test_a_name_too_long_for_dns_is_a_url_that_does_not_resolve() -> None:
    """A URI may have any length; DNS names stop at 253 characters, and such a name just never resolves."""
    host = "a" * 63 + ("." + "b" * 63) * 20
    target = delivery.parse(f"https://{host}/h", allow_http=False)
    with pytest.raises(OSError):
        delivery.resolve(target.host, target.port)


def test_parse_keeps_path_query_and_port() -> None:
    target = delivery.parse("https://Hooks.Example.org:8443/a/b?x=1#frag", allow_http=False)
    assert (target.host, target.port, target.path) == ("hooks.example.org", 8443, "/a/b?x=1")
    assert target.host_header == "hooks.example.org:8443"
    assert delivery.parse("http://[::1]/", allow_http=True).host_header == "[::1]"


def test_localhost_names_are_refused_whatever_they_resolve_to() -> None:
    for url in ("http://localhost:8000/", "http://api.localhost/"):
        target = delivery.parse(url, allow_http=True)
        with pytest.raises(delivery.TargetRefusedError):
            delivery.check(target, allow_private=False, addresses=())
