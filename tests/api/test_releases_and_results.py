"""Releases never change, and results are served as the bytes stored with them: conditional GETs,
one block at a time (compressed), lists without blocks."""

from __future__ import annotations

import gzip
import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from apps.analyses.models import Analysis, AnalysisResult, Release, ReleaseResult
from apps.analyses.releases import release_publish
from apps.analyses.services import analysis_recompute, analysis_update
from apps.api import serializers as s
from apps.api.documents import SUMMARY_FIELDS
from apps.audit.models import AuditEvent
from tests.conftest import SMD_ROWS, api_client_for, publish, store_rows

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cast: dict[str, Any], tmp_media: Any) -> dict[str, Any]:
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == AnalysisResult.Status.DONE
    return {**cast, "analysis": analysis, "result": result}


def test_a_release_freezes_current_results_and_names_what_it_left_out(world: dict[str, Any]) -> None:
    steering = world["users"]["steering"]
    # the second outcome has no data: its analysis waits for data
    failed = analysis_recompute(
        analysis_id=Analysis.objects.get(outcome=world["outcome2"], is_default=True).pk
    )
    assert failed is not None and failed.status == AnalysisResult.Status.EMPTY
    response = api_client_for(world, "steering").post(
        "/api/v1/releases/", {"name": "2026.1", "notes": "First release."}, format="json"
    )
    assert response.status_code == 201, response.content
    body = response.json()
    assert [(r["analysis"], r["result"]) for r in body["results"]] == [
        (world["analysis"].pk, world["result"].pk)
    ]
    assert body["skipped"] == [
        {"analysis": failed.analysis_id, "reason": "No centre has submitted data for it yet."}
    ]
    assert body["published_by"] == "steering" and body["readable"] is True
    event = AuditEvent.objects.get(action="release.publish")
    assert event.after["results"] == {str(world["analysis"].pk): world["result"].pk}

    # a new result afterwards does not change the release
    store_rows(centre=world["centre_b"], outcome=world["outcome"], rows=SMD_ROWS[:4], submit=True)
    newer = analysis_recompute(analysis_id=world["analysis"].pk)
    assert newer is not None and newer.pk != world["result"].pk
    assert list(Release.objects.get(name="2026.1").results.values_list("pk", flat=True)) == [
        world["result"].pk
    ]

    # never edited or deleted, by any code path
    release = Release.objects.get(name="2026.1")
    with pytest.raises(RuntimeError, match="never changed"):
        release.save()
    with pytest.raises(RuntimeError):
        release.delete()
    with pytest.raises(RuntimeError):
        ReleaseResult.objects.get(release=release).delete()
    again = api_client_for(world, "steering").post("/api/v1/releases/", {"name": "2026.1"}, format="json")
    assert again.status_code == 400 and "choose a new name" in again.json()["name"][0]
    assert steering  # the actor of every publication above


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "with space"}, "letters, digits"),
        ({"name": "../x"}, "letters, digits"),
        ({"name": "ok", "embargo_until": timezone.now() - timedelta(minutes=1)}, "in the future"),
        ({"name": "ok", "analyses": [999_999]}, "No analysis with id 999999"),
        ({"name": "ok", "notes": "a\x00b"}, "U+0000"),
    ],
)
def test_a_bad_release_is_refused_with_the_reason(
    world: dict[str, Any], fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        release_publish(actor=world["users"]["steering"], **fields)
    assert message in str(refused.value)
    assert not Release.objects.exists()


def test_only_the_steering_group_publishes(world: dict[str, Any]) -> None:
    from django.core.exceptions import PermissionDenied

    for who in ("dm_a", "member_a", "api_client"):
        with pytest.raises(PermissionDenied):
            release_publish(actor=world["users"][who], name="x")
    assert not Release.objects.exists()


def test_result_detail_is_the_stored_document_with_validators_and_304(world: dict[str, Any]) -> None:
    result = world["result"]
    client = api_client_for(world, "steering")
    response = client.get(f"/api/v1/results/{result.pk}/")
    assert response.status_code == 200
    assert response.content == result.detail_json.encode()
    etag, modified = response["ETag"], response["Last-Modified"]
    assert etag == f'"{result.etag}"' and "private" in response["Cache-Control"]
    assert client.get(f"/api/v1/results/{result.pk}/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert client.get(f"/api/v1/results/{result.pk}/", HTTP_IF_MODIFIED_SINCE=modified).status_code == 304
    assert client.get(f"/api/v1/results/{result.pk}/", HTTP_IF_NONE_MATCH='"other"').status_code == 200
    # a 304 never confirms a result to someone who may not read it (unreleased: members get 404)
    member = api_client_for(world, "member_a")
    assert member.get(f"/api/v1/results/{result.pk}/", HTTP_IF_NONE_MATCH=etag).status_code == 404
    publish(world["users"]["steering"], result)
    assert member.get(f"/api/v1/results/{result.pk}/", HTTP_IF_NONE_MATCH=etag).status_code == 304
    assert client.get("/api/v1/results/abc/").status_code == 404


def test_the_detail_lists_blocks_fetched_one_at_a_time_compressed(world: dict[str, Any]) -> None:
    # 42 studies: blocks of several kilobytes, worth compressing
    many = [
        dict(row, study=f"{row['study']} ({n})", m1i=row["m1i"] + 0.1 * n)
        for n in range(6)
        for row in SMD_ROWS
    ]
    store_rows(centre=world["centre_b"], outcome=world["outcome"], rows=many, submit=True)
    result = analysis_recompute(analysis_id=world["analysis"].pk)
    assert result is not None and result.k == len(many) + len(SMD_ROWS)
    client = api_client_for(world, "api_client")
    publish(world["users"]["steering"], result)
    detail = client.get(f"/api/v1/results/{result.pk}/").json()
    assert set(detail["blocks"]) == set(result.blocks)
    fit = detail["blocks"]["fit"]
    assert fit["url"] == f"/api/v1/results/{result.pk}/blocks/fit/"
    plain = client.get(fit["url"])
    assert plain.status_code == 200 and "Content-Encoding" not in plain
    assert json.loads(plain.content) == result.blocks["fit"] and len(plain.content) == fit["bytes"]
    # a large block, compressed for a client that accepts it; its ETag names the compressed form
    big = max(detail["blocks"], key=lambda name: detail["blocks"][name]["bytes"])
    zipped = client.get(detail["blocks"][big]["url"], HTTP_ACCEPT_ENCODING="gzip, br")
    assert zipped["Content-Encoding"] == "gzip" and len(zipped.content) < detail["blocks"][big]["bytes"]
    assert json.loads(gzip.decompress(zipped.content)) == result.blocks[big]
    again = client.get(
        detail["blocks"][big]["url"], HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=zipped["ETag"]
    )
    assert again.status_code == 304
    missing = client.get(f"/api/v1/results/{result.pk}/blocks/nothing/")
    assert missing.status_code == 404 and "no block 'nothing'" in missing.json()["detail"]


def test_lists_carry_the_stored_summaries_and_never_blocks(world: dict[str, Any]) -> None:
    result = world["result"]
    client = api_client_for(world, "steering")
    listed = client.get(f"/api/v1/results/?analysis__outcome__code={world['outcome'].code}").json()
    assert listed["count"] == 1 and listed["results"] == [json.loads(result.summary_json)]
    row = listed["results"][0]
    assert "blocks" not in row and row["pooled"] == result.pooled
    history = client.get(f"/api/v1/analyses/{world['analysis'].pk}/history/").json()
    assert history["results"] == listed["results"]
    analyses = client.get(f"/api/v1/analyses/?outcome__code={world['outcome'].code}").json()["results"]
    assert analyses[0]["current_result"] == row


def test_the_stored_documents_have_the_fields_the_schema_names(world: dict[str, Any]) -> None:
    """The serializers describe the stored documents in the OpenAPI schema: the keys agree."""
    summary = json.loads(world["result"].summary_json)
    detail = json.loads(world["result"].detail_json)
    assert tuple(summary) == SUMMARY_FIELDS == tuple(s.AnalysisResultSummarySerializer.Meta.fields)
    assert list(detail) == s.AnalysisResultSerializer.Meta.fields


def test_the_stored_detail_query_and_visible_to_agree(world: dict[str, Any]) -> None:
    """``stored_detail`` (one fixed statement, for speed) answers as ``visible_to`` (the rule's home)
    for unreleased, released, embargoed and formerly embargoed results."""
    from unittest.mock import patch

    from apps.api.documents import stored_detail

    steering, member = world["users"]["steering"], world["users"]["member_a"]
    unreleased = world["result"]
    store_rows(centre=world["centre_b"], outcome=world["outcome"], rows=SMD_ROWS[:4], submit=True)
    released = analysis_recompute(analysis_id=world["analysis"].pk)
    publish(steering, released)
    analysis_update(actor=steering, analysis=world["analysis"], changes={"level": 90.0})
    embargoed = analysis_recompute(analysis_id=world["analysis"].pk)
    ends = timezone.now() + timedelta(days=1)
    publish(steering, embargoed, embargo_until=ends)

    def agree(at: Any) -> list[bool]:
        with patch("django.utils.timezone.now", return_value=at):
            answers = []
            for result in (unreleased, released, embargoed):
                fast = stored_detail(result.pk, released_only=True) is not None
                rule = AnalysisResult.objects.visible_to(member).filter(pk=result.pk).exists()
                assert fast == rule, (result.pk, at)
                assert stored_detail(result.pk, released_only=False) is not None
                answers.append(fast)
            return answers

    assert agree(timezone.now()) == [False, True, False]
    assert agree(ends + timedelta(seconds=1)) == [False, True, True]
    assert stored_detail(10**9, released_only=False) is None
