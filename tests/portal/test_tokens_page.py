"""The portal's API tokens page: people create, see and revoke their own tokens; the secret is shown
once; the scopes offered and accepted are those the person may hold."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.api.models import ApiToken

pytestmark = pytest.mark.django_db


def _client(cast: dict[str, Any], who: str) -> Client:
    client = Client()
    client.force_login(cast["users"][who])
    return client


def test_a_data_manager_creates_a_token_sees_the_secret_once_and_uses_it(cast: dict[str, Any]) -> None:
    client = _client(cast, "dm_a")
    page = client.get("/tokens/").content.decode()
    # offered: the scopes a data manager may hold, not the steering group's
    assert 'value="datasets:write"' in page and 'value="analyses:write"' not in page
    created = client.post(
        "/tokens/",
        {"name": "R scripts", "scopes": ["results:read", "datasets:write"], "expires_in_days": "30"},
    )
    assert created.status_code == 200 and created["Cache-Control"] == "no-store"
    html = created.content.decode()
    token = ApiToken.objects.get(user=cast["users"]["dm_a"], name="R scripts")
    secret = html.split('id="token-secret">')[1].split("<")[0]
    assert secret.startswith(token.token_key) and token.scopes == ["datasets:write", "results:read"]
    # the secret works with the API, within its scopes
    api = Client(HTTP_AUTHORIZATION=f"Token {secret}")
    assert api.get("/api/v1/results/").status_code == 200
    refused = api.get("/api/v1/datasets/")  # reading datasets takes datasets:read
    assert refused.status_code == 403 and "datasets:read" in refused.json()["detail"]
    # never shown again: the list names the token by its public prefix only
    listed = client.get("/tokens/").content.decode()
    assert "R scripts" in listed and token.token_key in listed and secret not in listed


@pytest.mark.parametrize(
    ("who", "form", "message"),
    [
        ("member_a", {"name": "x", "scopes": ["datasets:write"]}, "not a scope this account may hold"),
        ("dm_a", {"name": "", "scopes": ["results:read"]}, "may not be empty"),
        ("dm_a", {"name": "x", "scopes": []}, "List the scopes"),
        ("dm_a", {"name": "x", "scopes": ["results:read"], "expires_in_days": "9999"}, "from 1 to 365"),
        ("dm_a", {"name": "x", "scopes": ["results:read"], "expires_in_days": "soon"}, "from 1 to 365"),
    ],
)
def test_a_refused_token_says_why_and_creates_nothing(
    cast: dict[str, Any], who: str, form: dict[str, Any], message: str
) -> None:
    response = _client(cast, who).post("/tokens/", form)
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not ApiToken.objects.filter(user=cast["users"][who]).exists()


def test_revoking_ends_the_token_and_only_the_owner_can(cast: dict[str, Any]) -> None:
    client = _client(cast, "dm_a")
    client.post("/tokens/", {"name": "laptop", "scopes": ["results:read"], "expires_in_days": "7"})
    token = ApiToken.objects.get(user=cast["users"]["dm_a"], name="laptop")
    # someone else's token is not found, whoever asks
    assert _client(cast, "dm_b").post(f"/tokens/{token.token_key}/revoke/").status_code == 404
    assert client.get(f"/tokens/{token.token_key}/revoke/").status_code == 405
    done = client.post(f"/tokens/{token.token_key}/revoke/", follow=True)
    assert "is revoked" in done.content.decode()
    assert not ApiToken.objects.filter(pk=token.pk).exists()


def test_service_accounts_and_strangers_do_not_create_tokens_here(cast: dict[str, Any]) -> None:
    assert Client().get("/tokens/").status_code == 302  # to the sign-in page
    service = _client(cast, "api_client")
    assert "created by an administrator" in service.get("/tokens/").content.decode()
    refused = service.post("/tokens/", {"name": "x", "scopes": ["results:read"]})
    assert refused.status_code == 403
    assert ApiToken.objects.filter(user=cast["users"]["api_client"]).count() == 1  # the cast's own
