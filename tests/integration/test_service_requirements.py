"""Under CI a missing service fails an integration test; elsewhere it skips it, with the reason.

These tests need no service: they point ``TEST_BROKER_URL`` at a port where nothing listens (or at a
listener of their own) and call the same ``require_services`` that every integration test calls.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from tests.conftest import ci_requires_services, require_services

CI_TRUE = ["true", "1", "yes", "on", "TRUE", "Yes", " true "]
CI_FALSE = ["", "false", "0", "no", "off", "FALSE"]


def _closed_port() -> int:
    """A local port where nothing listens (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def listener() -> Iterator[int]:
    """A local port where something accepts connections, standing in for a running Redis."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


@pytest.mark.parametrize("value", CI_TRUE)
def test_under_ci_a_missing_redis_fails_the_test(value: str, monkeypatch: Any, settings: Any) -> None:
    monkeypatch.setenv("CI", value)
    settings.TEST_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/14"
    # Catch both outcomes: a Skipped escaping pytest.raises(Failed) would only mark this test skipped.
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        require_services()
    assert outcome.type is pytest.fail.Exception, f"CI={value!r} skipped instead of failing: {outcome.value}"
    assert "Redis (redis://127.0.0.1:" in str(outcome.value)
    assert "CI requires it" in str(outcome.value)


@pytest.mark.parametrize("value", CI_FALSE)
def test_outside_ci_a_missing_redis_skips_with_the_reason(
    value: str, monkeypatch: Any, settings: Any
) -> None:
    monkeypatch.setenv("CI", value)
    settings.TEST_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/14"
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        require_services()
    assert outcome.type is pytest.skip.Exception, f"CI={value!r} failed instead of skipping: {outcome.value}"
    assert "Redis (redis://127.0.0.1:" in str(outcome.value)


def test_without_ci_set_a_missing_redis_skips(monkeypatch: Any, settings: Any) -> None:
    monkeypatch.delenv("CI", raising=False)
    settings.TEST_BROKER_URL = f"redis://127.0.0.1:{_closed_port()}/14"
    with pytest.raises((pytest.fail.Exception, pytest.skip.Exception)) as outcome:
        require_services()
    assert outcome.type is pytest.skip.Exception


def test_a_reachable_redis_is_not_reported_missing(listener: int, monkeypatch: Any, settings: Any) -> None:
    monkeypatch.setenv("CI", "1")
    settings.TEST_BROKER_URL = f"redis://:secret@127.0.0.1:{listener}/14"  # credentials parse too
    try:
        require_services()
    except pytest.fail.Exception as exc:  # only if PostgreSQL is missing here
        assert "Redis" not in str(exc)
        assert "PostgreSQL" in str(exc)


def test_a_ci_value_that_is_neither_true_nor_false_is_an_error(monkeypatch: Any) -> None:
    """Read as the test settings read it: a typo must not silently turn the requirement off."""
    monkeypatch.setenv("CI", "ture")
    with pytest.raises(ImproperlyConfigured):
        ci_requires_services()
