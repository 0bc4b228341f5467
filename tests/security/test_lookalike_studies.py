"""Lookalike study labels (finding 5), through the real upload view: one study, never two."""

from __future__ import annotations

from typing import Any

import pytest

from apps.datasets.models import DatasetVersion, Study
from tests.conftest import SMD_ROWS, api_client_for

pytestmark = pytest.mark.django_db

LOOKALIKES = {
    "NFD vs NFC": ("Mu\u0308ller 2015", "M\u00fcller 2015"),
    "Cyrillic e": ("Chen 2019", "Ch\u0435n 2019"),
    "fullwidth": ("Diaz 2020", "\uff24\uff49\uff41\uff5a 2020"),
}


@pytest.mark.parametrize("case", LOOKALIKES)
def test_a_file_with_two_lookalike_labels_is_refused_naming_both_rows(
    cast: dict[str, Any], tmp_media: Any, case: str
) -> None:
    first, second = LOOKALIKES[case]
    rows = [dict(SMD_ROWS[0], study=first), dict(SMD_ROWS[1], study=second)]
    resp = api_client_for(cast, "dm_a").post(
        "/api/v1/datasets/upload/", {"centre": "alpha", "outcome": "rf", "rows": rows}, format="json"
    )
    assert resp.status_code == 400, resp.content
    errors = [e for e in resp.json()["errors"] if e["code"] == "duplicate_row"]
    assert errors, resp.json()
    assert "1" in errors[0]["message"] and "2" in errors[0]["message"]
    assert DatasetVersion.objects.count() == 0


@pytest.mark.parametrize("label", ["Chen\u200b 2019", "Chen \u202e2019"])
def test_invisible_characters_in_a_label_are_refused(
    cast: dict[str, Any], tmp_media: Any, label: str
) -> None:
    rows = [dict(SMD_ROWS[0], study=label)]
    resp = api_client_for(cast, "dm_a").post(
        "/api/v1/datasets/upload/", {"centre": "alpha", "outcome": "rf", "rows": rows}, format="json"
    )
    assert resp.status_code == 400
    assert any(e["code"] == "invisible_character" and "U+20" in e["message"] for e in resp.json()["errors"])


def test_a_later_upload_spelling_a_study_alike_does_not_register_a_second_study(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    client = api_client_for(cast, "dm_a")
    first = [dict(SMD_ROWS[0], study="Chen 2019")]
    assert (
        client.post(
            "/api/v1/datasets/upload/", {"centre": "alpha", "outcome": "rf", "rows": first}, format="json"
        ).status_code
        == 201
    )
    alike = [dict(SMD_ROWS[0], study="CH\u0415N 2019", m1i=13.0)]  # capitals, Cyrillic E
    assert (
        client.post(
            "/api/v1/datasets/upload/", {"centre": "alpha", "outcome": "rf", "rows": alike}, format="json"
        ).status_code
        == 201
    )
    assert list(Study.objects.filter(centre=cast["centre_a"]).values_list("label", flat=True)) == [
        "Chen 2019"
    ]
