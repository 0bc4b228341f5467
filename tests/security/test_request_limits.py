"""Bodies are refused from their declared size, and by permission, before anything reads them.

Reproduces finding 2: a 300 MB multipart upload added 300 MiB to the web worker before the 5 MiB
rejection, and the file was read before the permission check.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.test import Client

from apps.datasets.models import DatasetVersion

pytestmark = pytest.mark.django_db


class UnreadableBody(io.RawIOBase):
    """A request body that fails the test if anything reads it."""

    def __init__(self) -> None:
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        self.reads += 1
        raise AssertionError("the request body was read")

    readline = read
    readinto = read  # type: ignore[assignment]


def _client(cast: dict[str, Any], who: str) -> Client:
    client = Client()
    if who != "anonymous":
        client.force_login(cast["users"][who])
    return client


@pytest.mark.parametrize(
    "path", ["/api/v1/datasets/upload/", "/upload/", "/api/v1/analyses/", "/accounts/login/"]
)
def test_a_300_mb_body_is_refused_from_its_declared_length_without_being_read(
    cast: dict[str, Any], path: str
) -> None:
    body = UnreadableBody()
    resp = _client(cast, "dm_a").generic(
        "POST",
        path,
        b"",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(300 * 1024 * 1024),
        **{"wsgi.input": body},
    )
    assert resp.status_code == 413
    assert body.reads == 0
    assert resp["Connection"] == "close"
    if path.startswith("/api/"):
        assert resp.json()["errors"][0]["code"] == "request_too_large"
        assert "300.0 MiB" in resp.json()["detail"] and "6 MiB" in resp.json()["detail"]


def test_a_body_at_the_limit_is_read_normally(cast: dict[str, Any], settings: Any, tmp_media: Any) -> None:
    content = b"study,yi,vi\n" + b"x" * (settings.REQUEST_MAX_BYTES - 2048)
    resp = _client(cast, "dm_a").post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "file": io.BytesIO(content)},
    )
    # Under the request limit but over the file limit: the upload's own rejection, naming the file.
    assert resp.status_code == 400
    assert resp.json()["errors"][0]["code"] == "file_too_large"


def test_a_malformed_content_length_is_a_400(cast: dict[str, Any]) -> None:
    resp = _client(cast, "dm_a").generic(
        "POST", "/api/v1/analyses/", b"{}", content_type="application/json", CONTENT_LENGTH="12abc"
    )
    assert resp.status_code == 400


@pytest.mark.parametrize("who", ["member_a", "steering"])
@pytest.mark.parametrize("path", ["/api/v1/datasets/upload/", "/upload/"])
def test_someone_who_may_upload_nowhere_is_refused_before_the_body_is_read(
    cast: dict[str, Any], who: str, path: str
) -> None:
    body = UnreadableBody()
    resp = _client(cast, who).generic(
        "POST",
        path,
        b"",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(4 * 1024 * 1024),
        **{"wsgi.input": body},
    )
    assert resp.status_code == 403
    assert body.reads == 0


def test_an_api_client_token_is_refused_before_the_body_is_read(cast: dict[str, Any]) -> None:
    body = UnreadableBody()
    resp = Client().generic(
        "POST",
        "/api/v1/datasets/upload/",
        b"",
        content_type="multipart/form-data; boundary=xyz",
        CONTENT_LENGTH=str(1024 * 1024),
        HTTP_AUTHORIZATION="Token " + cast["token"],
        **{"wsgi.input": body},
    )
    assert resp.status_code == 403
    assert body.reads == 0


def test_a_data_manager_of_another_centre_gets_404_and_nothing_is_stored(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    from tests.conftest import SMD_ROWS

    resp = _client(cast, "dm_b").post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": "rf", "rows": SMD_ROWS},
        content_type="application/json",
    )
    assert resp.status_code == 404
    assert DatasetVersion.objects.count() == 0
    assert not tmp_media.exists() or not any(tmp_media.rglob("*"))
