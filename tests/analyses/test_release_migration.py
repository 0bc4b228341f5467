"""Upgrading keeps every released result readable: the per-result flag becomes releases."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

# the data dictionary as it was then too: the outcomes below are created with its columns of the time
BEFORE = [
    ("analyses", "0003_dependence_and_row_selection"),
    ("consortium", "0003_outcome_measures_change_scores"),
]
AFTER = [("analyses", "0004_releases_and_stored_documents")]


@pytest.mark.django_db(transaction=True)
def test_released_flags_become_releases_and_every_result_gets_its_documents() -> None:
    executor = MigrationExecutor(connection)
    executor.migrate(BEFORE)
    try:
        _upgrade_from(executor)
    finally:
        # back to today's schema for the tests that follow, whatever happened above
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())


def _upgrade_from(executor: MigrationExecutor) -> None:
    old = executor.loader.project_state(BEFORE).apps
    Outcome = old.get_model("consortium", "Outcome")
    Analysis = old.get_model("analyses", "Analysis")
    AnalysisResult = old.get_model("analyses", "AnalysisResult")
    now = timezone.now()
    analyses = [
        Analysis.objects.create(outcome=Outcome.objects.create(code=code, name=code, measure="SMD"), name="A")
        for code in ("one", "two")
    ]

    def result(analysis: Any, seq: int, released: bool, minutes: int = 0) -> Any:
        return AnalysisResult.objects.create(
            analysis=analysis,
            seq=seq,
            status="done",
            blocks={"summary": {"estimate": 0.1 * seq, "k": 3}},
            k=3,
            spec={"measure": "SMD"},
            spec_hash="h",
            engine_version="1",
            input_fingerprint=f"f{seq}",
            started_at=now,
            finished_at=now,
            compute_ms=1.0,
            released=released,
            released_at=now + timedelta(minutes=minutes) if released else None,
        )

    first_one = result(analyses[0], 1, True, 1)
    second_one = result(analyses[0], 2, True, 5)
    hidden = result(analyses[0], 3, False)
    first_two = result(analyses[1], 1, True, 2)

    executor = MigrationExecutor(connection)
    executor.migrate(AFTER)
    new = executor.loader.project_state(AFTER).apps
    Release = new.get_model("analyses", "Release")
    ReleaseResult = new.get_model("analyses", "ReleaseResult")
    entries = {
        (e.release.name, e.result_id) for e in ReleaseResult.objects.select_related("release").order_by("pk")
    }
    # the n-th released result of each analysis is in release legacy-n; nothing unreleased is
    assert entries == {("legacy-1", first_one.pk), ("legacy-1", first_two.pk), ("legacy-2", second_one.pk)}
    assert hidden.pk not in {e[1] for e in entries}
    assert all(r.announced_at is not None for r in Release.objects.all())  # no webhook storm on upgrade
    NewResult = new.get_model("analyses", "AnalysisResult")
    for row in NewResult.objects.all():
        assert row.summary_json and row.detail_json and len(row.etag) == 32
    assert '"estimate":0.2' in NewResult.objects.get(pk=second_one.pk).summary_json
