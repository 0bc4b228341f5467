"""The export endpoint of a result: who may download a result's rows and scripts, and in what form."""

from __future__ import annotations

import io
import zipfile
from typing import Any

import pytest

from apps.analyses.models import Analysis
from apps.analyses.services import analysis_recompute
from tests.conftest import SMD_ROWS, api_client_for, publish, store_rows

pytestmark = pytest.mark.django_db


def _result(cast: dict[str, Any]) -> Any:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    other = [dict(r, study=f"{r['study']} (B)") for r in SMD_ROWS[1:]]  # other trials, one row each
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=other, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    publish(cast["users"]["steering"], result)
    return result


def test_the_steering_group_downloads_rows_scripts_and_the_bundle(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    result = _result(cast)
    client = api_client_for(cast, "steering")
    bundle = client.get(f"/api/v1/results/{result.pk}/export/?fmt=bundle")
    assert bundle.status_code == 200 and bundle["Content-Type"] == "application/zip"
    assert f'filename="result-{result.pk}.zip"' in bundle["Content-Disposition"]
    names = set(zipfile.ZipFile(io.BytesIO(bundle.content)).namelist())
    assert {
        "data.csv",
        "data.json",
        "spec.json",
        "result.json",
        "analysis.R",
        "reproduce.py",
        "SHA256SUMS",
    } <= names
    csv = client.get(f"/api/v1/results/{result.pk}/export/?fmt=csv")
    assert csv.status_code == 200 and csv.content.decode().count("\n") == len(SMD_ROWS) * 2 - 1 + 1
    script = client.get(f"/api/v1/results/{result.pk}/export/?fmt=r").content.decode()
    assert "library(metafor)" in script and "fit <- rma(yi, vi, data = dat" in script
    assert client.get(f"/api/v1/results/{result.pk}/export/?fmt=pdf").status_code == 400


def test_a_member_cannot_export_another_centres_rows(cast: dict[str, Any], tmp_media: Any) -> None:
    result = _result(cast)
    member = api_client_for(cast, "member_a")
    assert member.get(f"/api/v1/results/{result.pk}/").status_code == 200  # the released numbers
    refused = member.get(f"/api/v1/results/{result.pk}/export/?fmt=csv")
    assert refused.status_code == 403 and "centres you may not read" in refused.json()["detail"]


def test_a_token_needs_the_datasets_scope_to_export(cast: dict[str, Any], tmp_media: Any) -> None:
    result = _result(cast)
    token = api_client_for(cast, "api_client")
    assert token.get(f"/api/v1/results/{result.pk}/").status_code == 200
    refused = token.get(f"/api/v1/results/{result.pk}/export/?fmt=json")
    assert refused.status_code == 403 and "datasets:read" in refused.json()["detail"]
