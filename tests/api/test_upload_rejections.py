"""Every malformed file is rejected through the real upload endpoint with a 4xx and exactly its
error codes, and a rejected upload changes nothing and queues nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from apps.analyses.models import Analysis, AnalysisResult, OutboxEvent
from apps.analyses.services import analysis_create_default
from apps.audit.models import AuditEvent
from apps.consortium.models import Outcome
from apps.datasets.models import Dataset, DatasetVersion, Study
from tests.conftest import api_client_for
from tests.datasets.malformed import (
    CORPUS_INSTRUMENTS,
    CORPUS_MODERATORS,
    CORPUS_OUTCOME,
    CORPUS_RANGES,
    CORPUS_TIMEPOINTS,
    MalformedCase,
    ValidCase,
    malformed_cases,
    valid_cases,
)

pytestmark = pytest.mark.django_db


def _outcome(measure: str) -> Outcome:
    outcome = Outcome.objects.create(
        code=CORPUS_OUTCOME,
        name="Depression",
        measure=measure,
        direction="lower",
        instruments=sorted(CORPUS_INSTRUMENTS),
        timepoints=sorted(CORPUS_TIMEPOINTS),
        moderators=[{"name": m.name, "kind": m.kind} for m in CORPUS_MODERATORS],
        instrument_scales={
            name: {"direction": "lower", "min": low, "max": high} for name, low, high in CORPUS_RANGES
        },
    )
    analysis_create_default(outcome=outcome)
    return outcome


def _snapshot() -> dict[str, Any]:
    return {
        "datasets": Dataset.objects.count(),
        "versions": DatasetVersion.objects.count(),
        "studies": Study.objects.count(),
        "outbox": OutboxEvent.objects.count(),
        "results": AnalysisResult.objects.count(),
        "audit": AuditEvent.objects.count(),
        "requested": sorted(Analysis.objects.values_list("pk", "requested_seq")),
    }


def _files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


@pytest.mark.parametrize("case", malformed_cases, ids=[c.name for c in malformed_cases])
def test_malformed_upload_is_rejected_and_changes_nothing(
    case: MalformedCase, cast: Any, tmp_media: Path, django_capture_on_commit_callbacks: Any
) -> None:
    _outcome(case.measure)
    before, files_before = _snapshot(), _files(tmp_media)
    client = api_client_for(cast, "dm_a")
    upload = SimpleUploadedFile(
        case.filename, case.content, content_type=case.content_type or "application/octet-stream"
    )
    with django_capture_on_commit_callbacks() as callbacks:
        resp = client.post(
            "/api/v1/datasets/upload/",
            {"centre": "alpha", "outcome": CORPUS_OUTCOME, "file": upload},
            format="multipart",
        )
    assert 400 <= resp.status_code < 500, resp.content[:500]
    body = resp.json()
    codes = {e["code"] for e in body["errors"]}
    assert codes == set(case.expected_codes), body["errors"][:5]
    for row, column, code in case.locations:
        assert any(e["row"] == row and e["column"] == column and e["code"] == code for e in body["errors"]), (
            row,
            column,
            code,
            body["errors"][:5],
        )
    if case.expected_count is not None:
        assert len(body["errors"]) == case.expected_count
    assert all(e["message"] for e in body["errors"])
    # Nothing changed, nothing stored, nothing queued.
    assert _snapshot() == before
    assert _files(tmp_media) == files_before
    assert callbacks == []


@pytest.mark.parametrize("case", valid_cases, ids=[c.name for c in valid_cases])
def test_messy_but_valid_upload_is_stored_with_its_mapping(
    case: ValidCase, cast: Any, tmp_media: Path
) -> None:
    _outcome(case.measure)
    client = api_client_for(cast, "dm_a")
    upload = SimpleUploadedFile(case.filename, case.content, content_type=case.content_type or "text/csv")
    resp = client.post(
        "/api/v1/datasets/upload/",
        {"centre": "alpha", "outcome": CORPUS_OUTCOME, "file": upload, "reason": case.name},
        format="multipart",
    )
    assert resp.status_code == 201, resp.content[:800]
    body = resp.json()
    version = DatasetVersion.objects.get(pk=body["version"]["id"])
    assert version.row_count == len(case.expected_rows)
    assert version.source_format == case.source_format
    mapping = {m["source"]: m["target"] for m in body["mapping"]}
    for source, target in case.expected_mapping.items():
        assert mapping.get(source) == target
    # the original file is kept, byte for byte, outside the web root
    stored = tmp_media / version.stored_file
    assert stored.read_bytes() == case.content
    # re-uploading the same content creates no new version
    again = client.post(
        "/api/v1/datasets/upload/",
        {
            "centre": "alpha",
            "outcome": CORPUS_OUTCOME,
            "file": SimpleUploadedFile(case.filename, case.content),
        },
        format="multipart",
    )
    assert again.status_code == 200 and again.json()["created"] is False
    assert DatasetVersion.objects.count() == 1


def test_export_neutralises_spreadsheet_formulas(cast: Any, tmp_media: Path) -> None:
    import io

    import openpyxl

    from apps.datasets.ingest import ParsedUpload
    from apps.datasets.services import dataset_version_create
    from tests.conftest import SMD_ROWS

    # Uploads refuse formula-like cells, so store such rows directly (as older data or an import
    # might hold them): the export must neutralise whatever is stored.
    rows = [dict(r) for r in SMD_ROWS]
    rows[0]["setting"] = '=HYPERLINK("http://evil")'
    rows[1]["setting"] = "@SUM(A1)"
    rows[2]["setting"] = "+cmd"
    rows[3]["setting"] = "home"
    columns = (*SMD_ROWS[0].keys(), "setting")
    parsed = ParsedUpload(
        rows=tuple(rows),
        columns=columns,
        mapping=(),
        warnings=(),
        source_format="json",
        encoding=None,
        delimiter=None,
    )
    version, _ = dataset_version_create(
        actor=None,
        centre=cast["centre_a"],
        outcome=cast["outcome"],
        parsed=parsed,
        content=None,
        filename="import.json",
    )
    dataset = version.dataset
    client = api_client_for(cast, "dm_a")
    text = client.get(f"/api/v1/datasets/{dataset.pk}/export/?fmt=csv").content.decode("utf-8-sig")
    assert "'=HYPERLINK" in text and "'@SUM(A1)" in text and "'+cmd" in text
    assert "\n=HYPERLINK" not in text and ",=HYPERLINK" not in text
    xlsx = client.get(f"/api/v1/datasets/{dataset.pk}/export/?fmt=xlsx").content
    sheet = openpyxl.load_workbook(io.BytesIO(xlsx)).active
    values = [c.value for row in sheet.iter_rows() for c in row]
    assert '\'=HYPERLINK("http://evil")' in values
    assert not any(isinstance(v, str) and v.startswith("=") for v in values)
    assert 12.1 in values  # numbers stay numbers


def test_an_oversized_json_request_is_refused_from_its_declared_length(
    cast: Any, tmp_media: Path, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    import json

    from tests.conftest import SMD_ROWS

    settings.REQUEST_MAX_BYTES = 64 * 1024
    rows = [dict(SMD_ROWS[0], study=f"Study {i}") for i in range(2000)]
    body = json.dumps({"centre": "alpha", "outcome": "rf", "rows": rows})
    assert len(body) > settings.REQUEST_MAX_BYTES
    before = _snapshot()
    with django_capture_on_commit_callbacks() as callbacks:
        resp = api_client_for(cast, "dm_a").post(
            "/api/v1/datasets/upload/", body, content_type="application/json"
        )
    assert resp.status_code == 413
    assert [e["code"] for e in resp.json()["errors"]] == ["request_too_large"]
    assert "larger than the limit" in resp.json()["detail"]
    assert _snapshot() == before and callbacks == []
