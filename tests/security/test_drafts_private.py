"""Drafts stay with their centre (finding 8): once a dataset is submitted, the drafts that preceded
it (rows, reasons, who wrote them) are not readable by the steering group or API clients."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from apps.consortium.models import ApiClient
from apps.datasets.models import Dataset
from apps.datasets.services import dataset_set_status
from tests.conftest import SMD_ROWS, api_client_for, store_rows

pytestmark = pytest.mark.django_db

SECRET_REASON = "draft: the SDs of Baker 2017 were swapped, do not circulate"


def _history(cast: dict[str, Any]) -> Dataset:
    """v1 and v2 drafts (v2 with a telling reason), v3 submitted, then withdrawn and v4 drafted."""
    centre, outcome, dm = cast["centre_a"], cast["outcome"], cast["users"]["dm_a"]
    store_rows(centre=centre, outcome=outcome, rows=SMD_ROWS[:2], actor=dm)
    from apps.datasets.ingest import parse_json_rows
    from apps.datasets.services import dataset_version_create, upload_spec_for

    def version(rows: list[dict[str, Any]], reason: str) -> None:
        dataset_version_create(
            actor=dm,
            centre=centre,
            outcome=outcome,
            parsed=parse_json_rows(rows, spec=upload_spec_for(outcome)),
            content=None,
            filename="rows.json",
            reason=reason,
        )

    version(SMD_ROWS[:3], SECRET_REASON)
    version(SMD_ROWS, "complete")
    dataset = Dataset.objects.get(centre=centre, outcome=outcome)
    dataset_set_status(actor=dm, dataset=dataset, status=Dataset.Status.SUBMITTED)
    dataset_set_status(actor=dm, dataset=dataset, status=Dataset.Status.WITHDRAWN)
    version([dict(r, m1i=r["m1i"] + 1) for r in SMD_ROWS], "draft correction")
    dataset.refresh_from_db()
    assert dataset.current_version is not None and dataset.current_version.number == 4
    return dataset


def _datasets_reader(cast: dict[str, Any]) -> Any:
    from rest_framework.test import APIClient

    from apps.api.tokens import token_create

    client = cast["users"]["api_client"].api_client
    client.scopes = [ApiClient.Scope.RESULTS_READ, ApiClient.Scope.DATASETS_READ]
    client.save()
    _, secret = token_create(
        actor=cast["users"]["admin"],
        user=cast["users"]["api_client"],
        data={"name": "datasets", "scopes": ["results:read", "datasets:read"]},
    )
    reader = APIClient()
    reader.credentials(HTTP_AUTHORIZATION="Token " + secret)
    return reader


@pytest.mark.parametrize("who", ["steering", "api_client"])
def test_outsiders_see_only_submitted_versions(cast: dict[str, Any], tmp_media: Any, who: str) -> None:
    dataset = _history(cast)
    client = _datasets_reader(cast) if who == "api_client" else api_client_for(cast, who)
    listed = client.get(f"/api/v1/datasets/{dataset.pk}/versions/").json()
    assert [v["number"] for v in listed] == [3]
    assert SECRET_REASON not in str(listed)
    for number in (1, 2, 4):
        assert client.get(f"/api/v1/datasets/{dataset.pk}/versions/{number}/").status_code == 404
    assert client.get(f"/api/v1/datasets/{dataset.pk}/diff/?from=2&to=3").status_code == 404
    detail = client.get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert detail["current_version"]["number"] == 3
    assert client.get("/api/v1/datasets/").json()["results"][0]["current_version"]["number"] == 3
    export = client.get(f"/api/v1/datasets/{dataset.pk}/export/?fmt=csv")
    assert export.status_code == 200 and "-v3.csv" in export["Content-Disposition"]
    assert "13.1" not in export.content.decode()  # v4's corrected m1i (12.1 + 1)


@pytest.mark.parametrize("who", ["dm_a", "member_a", "admin"])
def test_the_centre_and_administrators_see_every_version(
    cast: dict[str, Any], tmp_media: Any, who: str
) -> None:
    dataset = _history(cast)
    client = api_client_for(cast, who)
    assert [v["number"] for v in client.get(f"/api/v1/datasets/{dataset.pk}/versions/").json()] == [
        4,
        3,
        2,
        1,
    ]
    assert client.get(f"/api/v1/datasets/{dataset.pk}/versions/2/").json()["reason"] == SECRET_REASON
    assert client.get(f"/api/v1/datasets/{dataset.pk}/").json()["current_version"]["number"] == 4


def test_the_portal_shows_outsiders_only_submitted_versions(cast: dict[str, Any], tmp_media: Any) -> None:
    dataset = _history(cast)
    steering = Client()
    steering.force_login(cast["users"]["steering"])
    html = steering.get(f"/datasets/{dataset.pk}/").content.decode()
    assert SECRET_REASON not in html and "draft correction" not in html
    assert "Current rows (version 3)" in html
    assert steering.get(f"/datasets/{dataset.pk}/?from=1&to=3").status_code == 404
    centre = Client()
    centre.force_login(cast["users"]["member_a"])
    html = centre.get(f"/datasets/{dataset.pk}/").content.decode()
    assert SECRET_REASON in html and "Current rows (version 4)" in html


def test_a_revision_of_a_submitted_dataset_stays_with_the_centre_until_it_is_submitted(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    dataset = store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS[:3], submit=True)
    dm = api_client_for(cast, "dm_a")
    dm.post("/api/v1/datasets/upload/", {"centre": "alpha", "outcome": "rf", "rows": SMD_ROWS}, format="json")
    steering = api_client_for(cast, "steering")
    listed = steering.get(f"/api/v1/datasets/{dataset.pk}/versions/").json()
    assert [v["number"] for v in listed] == [1]
    assert steering.get(f"/api/v1/datasets/{dataset.pk}/versions/2/").status_code == 404
    shown = steering.get(f"/api/v1/datasets/{dataset.pk}/").json()
    assert shown["current_version"]["number"] == 1 and shown["submitted_version"]["number"] == 1
    assert [v["number"] for v in dm.get(f"/api/v1/datasets/{dataset.pk}/versions/").json()] == [2, 1]
    dm.post(f"/api/v1/datasets/{dataset.pk}/submit/", {"reason": "checked"}, format="json")
    listed = steering.get(f"/api/v1/datasets/{dataset.pk}/versions/").json()
    assert [v["number"] for v in listed] == [2, 1]
