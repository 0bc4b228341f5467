"""API tokens: created by their owners (the secret shown once, stored hashed), scoped, expiring,
revocable, ended by a password change or a deactivation; service-account tokens by administrators."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from knox.crypto import hash_token
from rest_framework.test import APIClient

from apps.api.models import ApiToken
from apps.audit.models import AuditEvent
from tests.conftest import SMD_ROWS

pytestmark = pytest.mark.django_db


def basic(username: str, password: str) -> APIClient:
    client = APIClient()
    creds = base64.b64encode(f"{username}:{password}".encode()).decode()
    client.credentials(HTTP_AUTHORIZATION="Basic " + creds)
    return client


def with_token(secret: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + secret)
    return client


def create(who: str, scopes: list[str], **extra: Any) -> Any:
    return basic(who, "pw-" + who).post(
        "/api/v1/tokens/", {"name": f"{who}'s scripts", "scopes": scopes, **extra}, format="json"
    )


def test_a_token_is_shown_once_and_stored_only_as_a_digest(cast: dict[str, Any]) -> None:
    resp = create("dm_a", ["datasets:write", "results:read"], expires_in_days=30)
    assert resp.status_code == 201, resp.content
    body = resp.json()
    secret = body["secret"]
    assert secret.startswith("evp_") and len(secret) == 68
    stored = ApiToken.objects.get(token_key=body["id"])
    assert stored.digest == hash_token(secret) and secret not in (stored.digest, stored.token_key)
    assert stored.scopes == ["datasets:write", "results:read"]
    assert abs((stored.expiry - timezone.now()) - timedelta(days=30)) < timedelta(minutes=1)
    listed = basic("dm_a", "pw-dm_a").get("/api/v1/tokens/").json()["results"]
    assert [t["id"] for t in listed] == [body["id"]] and "secret" not in listed[0]
    event = AuditEvent.objects.get(action="token.create", object_id=body["id"])
    assert event.object_id == body["id"] and secret not in str(event.after)


def test_scopes_limit_what_a_token_may_do(cast: dict[str, Any], tmp_media: Any) -> None:
    reader = with_token(create("dm_a", ["results:read"]).json()["secret"])
    writer = with_token(create("dm_a", ["datasets:write", "datasets:read"]).json()["secret"])
    upload = {"centre": "alpha", "outcome": "rf", "rows": SMD_ROWS}
    refused = reader.post("/api/v1/datasets/upload/", upload, format="json")
    assert refused.status_code == 403 and "datasets:write" in refused.json()["detail"]
    assert reader.get("/api/v1/datasets/").status_code == 403
    assert reader.get("/api/v1/results/").status_code == 200
    assert writer.post("/api/v1/datasets/upload/", upload, format="json").status_code == 201
    assert writer.get("/api/v1/datasets/").status_code == 200
    assert writer.get("/api/v1/analyses/").status_code == 403
    # a webhook delivers results: without results:read a token neither lists nor registers one
    assert writer.get("/api/v1/webhooks/").status_code == 403
    hook = {"url": "https://receiver.example.org/hook", "events": ["result.changed"]}
    assert writer.post("/api/v1/webhooks/", hook, format="json").status_code == 403
    assert reader.get("/api/v1/webhooks/").status_code == 200
    # the scope never widens the person's rights: centre beta is not dm_a's
    other = writer.post("/api/v1/datasets/upload/", dict(upload, centre="beta"), format="json")
    assert other.status_code in (403, 404)


def test_a_service_accounts_token_without_the_results_scope_reads_no_results(cast: dict[str, Any]) -> None:
    admin = APIClient()
    admin.force_login(cast["users"]["admin"])
    cast["users"]["api_client"].api_client.scopes = ["results:read", "datasets:read"]
    cast["users"]["api_client"].api_client.save()
    made = admin.post(
        "/api/v1/tokens/",
        {"name": "dashboard", "scopes": ["datasets:read"], "service_account": "api_client"},
        format="json",
    )
    assert made.status_code == 201, made.content
    token = with_token(made.json()["secret"])
    assert token.get("/api/v1/results/").status_code == 403
    assert token.get("/api/v1/datasets/").status_code == 200
    # an administrator grants only what the account holds; the account cannot mint its own
    wider = admin.post(
        "/api/v1/tokens/",
        {"name": "x", "scopes": ["datasets:write"], "service_account": "api_client"},
        format="json",
    )
    assert wider.status_code == 400 and "datasets:write" in str(wider.json())
    own = with_token(cast["token"]).post(
        "/api/v1/tokens/", {"name": "x", "scopes": ["results:read"]}, format="json"
    )
    assert own.status_code == 403


def test_scopes_beyond_the_persons_rights_are_refused(cast: dict[str, Any]) -> None:
    member = create("member_a", ["datasets:write"])
    assert member.status_code == 400 and "datasets:write" in member.json()["scopes"][0]
    not_steering = create("dm_a", ["analyses:write"])
    assert not_steering.status_code == 400
    assert create("steering", ["analyses:write", "results:read"]).status_code == 201
    assert create("dm_a", ["results:read"], expires_in_days=400).status_code == 400
    assert create("dm_a", []).status_code == 400


def test_a_token_cannot_create_tokens(cast: dict[str, Any]) -> None:
    token = with_token(create("steering", ["results:read"]).json()["secret"])
    resp = token.post("/api/v1/tokens/", {"name": "more", "scopes": ["results:read"]}, format="json")
    assert resp.status_code == 403 and "cannot create tokens" in resp.json()["detail"]


def test_expired_tokens_are_refused_with_a_reason(cast: dict[str, Any]) -> None:
    secret = create("dm_a", ["results:read"]).json()["secret"]
    ApiToken.objects.update(expiry=timezone.now() - timedelta(seconds=1))
    resp = with_token(secret).get("/api/v1/results/")
    assert resp.status_code == 401 and "expired" in resp.json()["detail"]
    listed = basic("dm_a", "pw-dm_a").get("/api/v1/tokens/").json()["results"]
    assert listed[0]["expired"] is True


def test_revoking_ends_a_token_and_others_tokens_are_not_found(cast: dict[str, Any]) -> None:
    mine = create("dm_a", ["results:read"]).json()
    theirs = create("dm_b", ["results:read"]).json()
    client = with_token(mine["secret"])
    assert client.get(f"/api/v1/tokens/{theirs['id']}/").status_code == 404
    assert client.delete(f"/api/v1/tokens/{theirs['id']}/").status_code == 404
    assert client.delete(f"/api/v1/tokens/{mine['id']}/").status_code == 204
    assert client.get("/api/v1/results/").status_code == 401
    assert with_token(theirs["secret"]).get("/api/v1/results/").status_code == 200
    assert AuditEvent.objects.filter(action="token.revoke", object_id=mine["id"]).exists()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("change", ["password", "deactivation"])
def test_a_password_change_or_deactivation_ends_the_persons_tokens(change: str) -> None:
    from tests.conftest import make_cast

    cast = make_cast()
    secret = create("dm_a", ["results:read"]).json()["secret"]
    other = create("dm_b", ["results:read"]).json()["secret"]
    user = cast["users"]["dm_a"]
    if change == "password":
        user.set_password("a new password 2026")
    else:
        user.is_active = False
    user.save()
    assert with_token(secret).get("/api/v1/results/").status_code == 401
    assert not ApiToken.objects.filter(user=user).exists()
    assert with_token(other).get("/api/v1/results/").status_code == 200
    reason = "password changed" if change == "password" else "account deactivated"
    assert AuditEvent.objects.filter(action="token.end", after__reason=reason).exists()


def test_last_use_is_recorded(cast: dict[str, Any]) -> None:
    body = create("dm_a", ["results:read"]).json()
    assert body["last_used_at"] is None
    with_token(body["secret"]).get("/api/v1/results/")
    assert ApiToken.objects.get(token_key=body["id"]).last_used_at is not None


def test_tokens_from_before_hashing_keep_working_and_lose_their_plain_text(cast: dict[str, Any]) -> None:
    from importlib import import_module

    from django.apps import apps as django_apps
    from rest_framework.authtoken.models import Token

    old = Token.objects.create(user=cast["users"]["member_a"])
    migration = import_module("apps.api.migrations.0002_hash_plain_text_tokens")
    migration.hash_existing(django_apps, None)
    assert not Token.objects.exists()
    migrated = ApiToken.objects.get(user=cast["users"]["member_a"])
    assert migrated.digest == hash_token(old.key) and migrated.expiry is not None
    assert with_token(old.key).get("/api/v1/results/").status_code == 200


def test_wrong_passwords_for_a_token_are_locked_out_like_sign_ins(cast: dict[str, Any]) -> None:
    statuses = [
        basic("dm_a", f"wrong-{i}").post("/api/v1/tokens/", {}, format="json").status_code for i in range(6)
    ]
    assert statuses[0] == 401
    locked = basic("dm_a", "pw-dm_a").post(
        "/api/v1/tokens/", {"name": "n", "scopes": ["results:read"]}, format="json"
    )
    assert locked.status_code in (403, 429), locked.content
    assert not ApiToken.objects.filter(user=cast["users"]["dm_a"]).exists()


@pytest.mark.django_db(transaction=True)
def test_a_token_made_after_a_password_change_in_the_same_transaction_lives_on() -> None:
    """As the demo loader sets up an account and then installs its token, in one transaction."""
    from django.db import transaction

    from apps.api.tokens import token_create
    from tests.conftest import make_cast

    cast = make_cast()
    user = cast["users"]["dm_a"]
    before = create("dm_a", ["results:read"]).json()["secret"]
    with transaction.atomic():
        user.set_password("a new password 2026")
        user.save()
        _, after = token_create(actor=user, user=user, data={"name": "new", "scopes": ["results:read"]})
    assert with_token(before).get("/api/v1/results/").status_code == 401
    assert with_token(after).get("/api/v1/results/").status_code == 200
