"""Guessing passwords and tokens, as an attacker would: through the real sign-in page and API.

Reproduces finding 1 of the security review: after 100 wrong passwords the right one signed in,
and 300 wrong API tokens got 300 x 401, never a 429.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client

from apps.audit.models import AuditEvent

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def _sign_in(
    client: Client, username: str, password: str, address: str = "198.51.100.7", **extra: Any
) -> Any:
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address, **extra)


def test_wrong_passwords_lock_the_account_from_that_address_even_for_the_right_password(
    cast: dict[str, Any], settings: Any
) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert _sign_in(client, "admin", "wrong").status_code == 200  # the form again, with an error
    assert _sign_in(client, "admin", "wrong").status_code == 429  # the last allowed failure locks
    resp = _sign_in(client, "admin", "pw-admin")
    assert resp.status_code == 429
    assert "Sign-in paused" in resp.content.decode()
    assert f"paused for {settings.AXES_COOLOFF_TIME.seconds // 60} minutes" in resp.content.decode()
    assert int(resp["Retry-After"]) == int(settings.AXES_COOLOFF_TIME.total_seconds())
    assert "_auth_user_id" not in client.session
    lockout = AuditEvent.objects.get(action="auth.lockout")
    assert lockout.after == {"username": "admin", "address": "198.51.100.7"}


def test_a_locked_out_attempt_never_checks_the_password(
    cast: dict[str, Any], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The expensive hash is what let 8 parallel guesses hold both web workers: once locked, no
    attempt gets that far."""
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "admin", "wrong")
    checked: list[str] = []
    original = User.check_password
    monkeypatch.setattr(User, "check_password", lambda self, raw: checked.append(raw) or original(self, raw))
    for password in ("wrong", "pw-admin", "another"):
        assert _sign_in(client, "admin", password).status_code == 429
    assert checked == []


def test_the_lock_holds_the_pair_not_the_account_or_the_address(cast: dict[str, Any], settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "admin", "wrong", address="198.51.100.7")
    # The real administrator, elsewhere, still signs in: an attacker cannot lock a colleague out.
    assert _sign_in(Client(), "admin", "pw-admin", address="203.0.113.9").status_code == 302
    # Other people at the attacker's address are not locked out either.
    assert _sign_in(Client(), "steering", "pw-steering", address="198.51.100.7").status_code == 302


def test_a_forged_forwarded_for_header_does_not_escape_the_lock(cast: dict[str, Any], settings: Any) -> None:
    assert settings.BEHIND_PROXY is False
    client = Client()
    for i in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(client, "admin", "wrong", HTTP_X_FORWARDED_FOR=f"10.0.0.{i}")
    assert _sign_in(client, "admin", "pw-admin", HTTP_X_FORWARDED_FOR="10.9.9.9").status_code == 429


def test_behind_a_declared_proxy_the_address_it_appended_counts(cast: dict[str, Any], settings: Any) -> None:
    settings.BEHIND_PROXY = True
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        # The client forges the first entry; the proxy appends the real address last.
        _sign_in(client, "admin", "wrong", address="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7")
    assert (
        _sign_in(
            client, "admin", "pw-admin", address="10.0.0.2", HTTP_X_FORWARDED_FOR="5.6.7.8, 198.51.100.7"
        ).status_code
        == 429
    )
    assert (
        _sign_in(
            Client(), "admin", "pw-admin", address="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.9"
        ).status_code
        == 302
    )


def test_an_administrator_lifts_a_lock_out_in_the_admin_and_it_is_audited(
    cast: dict[str, Any], settings: Any
) -> None:
    from axes.models import AccessAttempt

    for _ in range(settings.AXES_FAILURE_LIMIT):
        _sign_in(Client(), "steering", "wrong")
    assert _sign_in(Client(), "steering", "pw-steering").status_code == 429
    admin = Client()
    admin.force_login(cast["users"]["admin"])
    attempt = AccessAttempt.objects.get(username="steering")
    resp = admin.post(f"/admin/axes/accessattempt/{attempt.pk}/delete/", {"post": "yes"})
    assert resp.status_code == 302
    unlock = AuditEvent.objects.get(action="auth.unlock")
    assert unlock.actor_username == "admin" and unlock.object_id == "steering"
    assert _sign_in(Client(), "steering", "pw-steering").status_code == 302


def test_a_successful_sign_in_clears_earlier_failures(cast: dict[str, Any], settings: Any) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "steering", "wrong")
    assert _sign_in(Client(), "steering", "pw-steering").status_code == 302
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        _sign_in(client, "steering", "wrong")
    assert _sign_in(Client(), "steering", "pw-steering").status_code == 302


# --- API tokens ---------------------------------------------------------------------------------


def _limit(rate: str) -> int:
    return int(rate.split("/")[0])


def test_guessing_tokens_is_answered_429_with_retry_after(cast: dict[str, Any], settings: Any) -> None:
    client = Client()
    limit = _limit(settings.API_THROTTLE_RATES["failed_auth"])
    statuses = [
        client.get(
            "/api/v1/results/", HTTP_AUTHORIZATION=f"Token guess{i:035d}", REMOTE_ADDR="198.51.100.7"
        ).status_code
        for i in range(limit + 5)
    ]
    assert statuses[:limit] == [401] * limit
    assert statuses[limit:] == [429] * 5
    resp = client.get(
        "/api/v1/results/", HTTP_AUTHORIZATION="Token " + cast["token"], REMOTE_ADDR="198.51.100.7"
    )
    # Inside the window even the right token is refused: a lucky guess is not confirmed.
    assert resp.status_code == 429
    assert 0 < int(resp["Retry-After"]) <= 60
    assert "Too many failed authentications" in resp.json()["detail"]
    # The real client, from its own address, is unaffected.
    ok = client.get(
        "/api/v1/results/", HTTP_AUTHORIZATION="Token " + cast["token"], REMOTE_ADDR="203.0.113.9"
    )
    assert ok.status_code == 200


def test_each_token_has_a_request_budget(cast: dict[str, Any], settings: Any) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "token": "5/minute"}
    client = Client()
    statuses = [
        client.get("/api/v1/outcomes/", HTTP_AUTHORIZATION="Token " + cast["token"]).status_code
        for _ in range(7)
    ]
    assert statuses == [200] * 5 + [429] * 2
    resp = client.get("/api/v1/outcomes/", HTTP_AUTHORIZATION="Token " + cast["token"])
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0
    # A person signed in through the portal has a budget of their own.
    person = Client()
    person.force_login(cast["users"]["steering"])
    assert person.get("/api/v1/outcomes/").status_code == 200


def test_requests_without_credentials_share_a_budget_per_address(settings: Any, db: Any) -> None:
    """The OpenAPI schema is public and costly to build: anonymous callers have a budget."""
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "anonymous": "3/minute"}
    client = Client()
    statuses = [client.get("/api/schema/", REMOTE_ADDR="198.51.100.7").status_code for _ in range(5)]
    assert statuses == [200] * 3 + [429] * 2
    assert client.get("/api/schema/", REMOTE_ADDR="203.0.113.9").status_code == 200
