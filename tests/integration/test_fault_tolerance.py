"""No crash, restart or outage drops a recompute.

Real processes throughout: PostgreSQL, Redis and Celery workers started as subprocesses. The worker
is killed with SIGKILL and the broker is stopped while uploads arrive.
"""

from __future__ import annotations

import os
import signal
import threading
from typing import Any

import pytest
from django.db import close_old_connections, connection

from apps.analyses import outbox, services
from apps.analyses.models import Analysis, AnalysisResult, OutboxEvent
from apps.analyses.services import analysis_inputs, analysis_recompute
from apps.datasets.models import Dataset
from apps.demo import synthetic as demo
from tests.conftest import SMD_ROWS, api_client_for, make_cast, store_rows
from tests.integration.conftest import all_analyses_current, recompute_state, wait_until
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis

pytestmark = pytest.mark.slow


def _assert_results_match_a_fresh_recompute(*, tol: float = 1e-12) -> None:
    """Every analysis's stored result includes every submitted version and equals a from-scratch run."""
    for analysis in Analysis.objects.select_related("outcome", "current_result"):
        rows, provenance = analysis_inputs(analysis=analysis)
        result = analysis.current_result
        if not provenance:
            continue
        assert result is not None, analysis
        assert [(v["version"], v["checksum"]) for v in result.dataset_versions] == [
            (v["version"], v["checksum"]) for v in provenance
        ]
        fresh = run_analysis(AnalysisSpec.from_dict(analysis.spec()), rows).to_dict()["blocks"]["summary"]
        stored = result.blocks["summary"]
        assert stored["estimate"] == pytest.approx(fresh["estimate"], rel=tol, abs=tol)
        assert stored["se"] == pytest.approx(fresh["se"], rel=tol, abs=tol)
        heterogeneity = "sigma2" if fresh["sigma2"] is not None else "tau2"
        assert stored[heterogeneity] == pytest.approx(fresh[heterogeneity], rel=tol, abs=tol)


def _assert_final_results_include(last_versions: dict[tuple[str, str], int]) -> None:
    """The current result of each outcome's default analysis is computed from the last version that
    each centre uploaded for it, as the upload responses named it."""
    for (centre, outcome), version_id in sorted(last_versions.items()):
        result = (
            Analysis.objects.select_related("current_result")
            .get(outcome__code=outcome, is_default=True)
            .current_result
        )
        assert result is not None, (centre, outcome)
        used = {v["centre"]: v["version"] for v in result.dataset_versions}
        assert used.get(centre) == version_id, (centre, outcome, used, version_id)


def _vary(rows: list[dict[str, Any]], i: int) -> list[dict[str, Any]]:
    out = [dict(r) for r in rows]
    out[i % len(out)]["m1i"] = round(out[i % len(out)]["m1i"] + 0.01 * (i + 1), 4)
    return out


def test_killing_a_worker_child_mid_recompute_never_loses_the_result(
    worker_factory: Any, tmp_media: Any
) -> None:
    cast = make_cast()
    dataset = store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    worker = worker_factory(concurrency=1, app="tests.integration.slow_worker")
    for trial in range(10):
        # Given a recompute in progress
        version = store_rows(
            centre=dataset.centre, outcome=dataset.outcome, rows=_vary(SMD_ROWS, trial), submit=True
        ).current_version
        seq = Analysis.objects.get(pk=analysis.pk).requested_seq
        wait_until(
            lambda: Analysis.objects.filter(pk=analysis.pk, running_since__isnull=False).exists(),
            timeout=30,
            what="the recompute to start",
        )
        # When the child computing it is killed
        children = worker.children()
        assert children, "the prefork pool has a child"
        for pid in children:
            os.kill(pid, signal.SIGKILL)
        # Then the result still lands (the wait fails the test otherwise), computed from the version
        # whose recompute was killed
        wait_until(
            lambda s=seq: Analysis.objects.filter(pk=analysis.pk, computed_seq__gte=s).exists(),
            timeout=60,
            what=f"trial {trial}: the result after the kill",
        )
        result = Analysis.objects.select_related("current_result").get(pk=analysis.pk).current_result
        assert result is not None and result.status == AnalysisResult.Status.DONE, (trial, result)
        assert [(v["version"], v["checksum"]) for v in result.dataset_versions] == [
            (version.pk, version.checksum)
        ], f"trial {trial}: the result after the kill is not computed from the upload that was in flight"
    _assert_results_match_a_fresh_recompute()


#: Uploads answered while the broker is down, before it comes back.
OUTAGE_UPLOADS = 40


def test_broker_outage_delays_but_never_fails_or_drops_uploads(
    private_redis: Any, worker_factory: Any, tmp_media: Any, monkeypatch: Any
) -> None:
    cast = make_cast()
    for outcome in (cast["outcome"], cast["outcome2"]):
        store_rows(centre=cast["centre_a"], outcome=outcome, rows=SMD_ROWS, submit=True)
        store_rows(centre=cast["centre_b"], outcome=outcome, rows=SMD_ROWS, submit=True)
    worker_env = {"CELERY_BROKER_URL": private_redis.url, "RECOMPUTE_STALE_AFTER_SECONDS": "5"}
    worker = worker_factory(extra_env=worker_env)
    wait_until(all_analyses_current, timeout=60, what="the initial results", state=recompute_state)
    clients = {"alpha": api_client_for(cast, "dm_a"), "beta": api_client_for(cast, "dm_b")}
    analyses = {a.outcome.code: a for a in Analysis.objects.filter(is_default=True).select_related("outcome")}

    # Every attempt of this process to hand a recompute to the broker, with the thread that made it
    # and whether the broker took it. (The worker process's relay publishes on its own.)
    broker_down = threading.Event()
    attempts: list[tuple[int, bool, bool]] = []  # (thread, broker was down, published)
    original_send = outbox._send

    def recording_send(analysis_id: int) -> None:
        down = broker_down.is_set()
        try:
            original_send(analysis_id)
        except Exception:
            attempts.append((threading.get_ident(), down, False))
            raise
        attempts.append((threading.get_ident(), down, True))

    monkeypatch.setattr(outbox, "_send", recording_send)

    statuses: list[int] = []
    # For each upload while the broker was down: (status, recompute requested exactly once, its
    # outbox event still unpublished when the response came back).
    during_outage: list[tuple[int, bool, bool]] = []
    last_versions: dict[tuple[str, str], int] = {}
    for i in range(300):
        if i == 20:
            private_redis.stop()  # the broker goes away while uploads keep arriving
            broker_down.set()
        if broker_down.is_set() and len(during_outage) == OUTAGE_UPLOADS:
            # It comes back once that many uploads have been answered and the publisher has found it gone
            wait_until(
                lambda: any(down and not ok for _, down, ok in attempts),
                timeout=60,
                what="the publisher to try the stopped broker",
            )
            private_redis.start()
            broker_down.clear()
            if worker.exited():  # the broker's loss may have ended it: started again, as deployed
                worker = worker_factory(extra_env=worker_env)
        centre = "alpha" if i % 2 == 0 else "beta"
        outcome = "rf" if (i // 2) % 2 == 0 else "dep"
        analysis = analyses[outcome]
        seq_before = Analysis.objects.values_list("requested_seq", flat=True).get(pk=analysis.pk)
        resp = clients[centre].post(
            "/api/v1/datasets/upload/",
            {"centre": centre, "outcome": outcome, "rows": _vary(SMD_ROWS, i), "submit": True},
            format="json",
        )
        statuses.append(resp.status_code)
        if resp.status_code == 201:
            last_versions[(centre, outcome)] = resp.json()["version"]["id"]
        if broker_down.is_set():
            seq = Analysis.objects.values_list("requested_seq", flat=True).get(pk=analysis.pk)
            event = OutboxEvent.objects.filter(analysis=analysis, seq=seq).order_by("id").first()
            during_outage.append(
                (resp.status_code, seq == seq_before + 1, event is not None and event.published_at is None)
            )

    # Then no upload failed, and those made while the broker was down were answered with their
    # recompute request recorded (in the outbox) but not yet handed to the broker
    assert statuses.count(201) == 300, {s: statuses.count(s) for s in set(statuses)}
    assert len(during_outage) == OUTAGE_UPLOADS, "the outage did not span OUTAGE_UPLOADS uploads"
    assert all(status == 201 for status, _, _ in during_outage), during_outage
    assert all(requested for _, requested, _ in during_outage), (
        "an upload did not request exactly one recompute"
    )
    assert all(pending for _, _, pending in during_outage), "an upload's recompute request was not pending"
    # And the publisher did try the broker while it was down, and failed, off the request thread: no
    # request ever waited on the broker
    assert any(down and not ok for _, down, ok in attempts), attempts
    request_thread = threading.get_ident()
    assert all(thread != request_thread for thread, _, _ in attempts), "a request published to the broker"
    # And once the broker is back, every analysis reflects every upload
    wait_until(
        all_analyses_current,
        timeout=120,
        interval=0.5,
        what="every analysis to catch up after the outage",
        state=recompute_state,
    )
    _assert_results_match_a_fresh_recompute()
    _assert_final_results_include(last_versions)


def test_burst_of_1000_uploads_with_a_worker_killed_ends_exactly_current(
    worker_factory: Any, tmp_media: Any, capsys: Any
) -> None:
    """1,000 uploads from 10 concurrent clients across the demo's four outcomes, on two worker
    processes, one of which is killed mid-burst: every upload requests its recompute, the final
    results are computed from each dataset's last upload and equal a from-scratch recompute, and the
    burst costs fewer recomputes than it requested."""
    from concurrent.futures import ThreadPoolExecutor

    from django.contrib.auth.models import User
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from apps.datasets.models import DatasetVersion

    call_command("load_demo", "--no-compute", stdout=open(os.devnull, "w"))  # noqa: SIM115
    datasets = list(Dataset.objects.select_related("centre", "outcome", "current_version").order_by("pk"))
    uploads, senders = 1000, min(10, len(datasets))
    # Each dataset belongs to one sender, so that its versions are uploaded (and numbered) in order.
    owned = [datasets[t::senders] for t in range(senders)]
    # Two worker processes on one broker (as `docker compose up --scale worker=2`); one dies mid-burst.
    first = worker_factory(concurrency=2)
    worker_factory(concurrency=1)
    results_before = AnalysisResult.objects.count()
    requested_before = sum(Analysis.objects.values_list("requested_seq", flat=True))
    versions_before = DatasetVersion.objects.count()

    def send(t: int) -> tuple[list[int], dict[tuple[str, str], int]]:
        statuses: list[int] = []
        last_versions: dict[tuple[str, str], int] = {}
        own: dict[str, APIClient] = {}
        rows_of = {d.pk: [dict(r) for r in d.current_version.rows] for d in owned[t]}
        for n, i in enumerate(range(t, uploads, senders)):
            d = owned[t][n % len(owned[t])]
            if d.centre.code not in own:
                own[d.centre.code] = APIClient()
                own[d.centre.code].force_login(User.objects.get(username=f"dm-{d.centre.code}"))
            rows = rows_of[d.pk]
            j = i % len(rows)
            demo.vary_row(rows[j], up=(i // 20) % 2 == 0)
            resp = own[d.centre.code].post(
                "/api/v1/datasets/upload/",
                {"centre": d.centre.code, "outcome": d.outcome.code, "rows": rows, "submit": True},
                format="json",
            )
            statuses.append(resp.status_code)
            if resp.status_code == 201:
                last_versions[(d.centre.code, d.outcome.code)] = resp.json()["version"]["id"]
        connection.close()
        return statuses, last_versions

    with ThreadPoolExecutor(senders) as pool:
        futures = [pool.submit(send, t) for t in range(senders)]
        wait_until(
            lambda: DatasetVersion.objects.count() - versions_before >= 400, timeout=300, what="400 uploads"
        )
        os.killpg(first.proc.pid, signal.SIGKILL)  # a whole worker dies mid-burst
        first.proc.wait()
        worker_factory(concurrency=2)
        sent = [f.result() for f in futures]
    statuses = [code for codes, _ in sent for code in codes]
    last_versions = {key: version for _, versions in sent for key, version in versions.items()}
    assert statuses.count(201) == uploads, {c: statuses.count(c) for c in set(statuses)}
    # Every upload (a new version of a submitted dataset) requested exactly one recompute
    requested = sum(Analysis.objects.values_list("requested_seq", flat=True)) - requested_before
    assert requested == uploads, (requested, uploads)
    wait_until(
        all_analyses_current,
        timeout=180,
        interval=0.5,
        what="every analysis to be current after the burst",
        state=recompute_state,
    )
    _assert_results_match_a_fresh_recompute()
    _assert_final_results_include(last_versions)
    recomputes = AnalysisResult.objects.count() - results_before
    with capsys.disabled():
        print(
            f"\n[burst] {uploads} uploads from {senders} clients over {len(datasets)} datasets "
            f"requested {requested} recomputes; {recomputes} were computed"
        )
    # Requests that arrive while an analysis is being computed are answered by its next computation
    assert recomputes < requested, (recomputes, requested)


@pytest.mark.django_db(transaction=True)
def test_a_stale_computation_never_overwrites_a_newer_result(monkeypatch: Any, tmp_media: Any) -> None:
    """A computation that started before a newer request and finishes after its result is discarded.

    The per-analysis lock normally keeps computations apart; here it is disabled, as if a worker had
    lost it (e.g. its database session was cut while it kept running), to exercise the guard behind it.
    """
    from contextlib import nullcontext

    from tests.conftest import require_services

    require_services()
    cast = make_cast()
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    monkeypatch.setattr(services, "_analysis_lock", lambda analysis_id: nullcontext())

    paused, resume = threading.Event(), threading.Event()
    original_inputs = services.analysis_inputs

    def slow_inputs(*, analysis: Analysis) -> Any:
        out = original_inputs(analysis=analysis)
        if threading.current_thread().name == "stale":
            paused.set()
            resume.wait(30)
        return out

    monkeypatch.setattr(services, "analysis_inputs", slow_inputs)
    outcome: dict[str, Any] = {}

    def stale_worker() -> None:
        close_old_connections()
        outcome["result"] = analysis_recompute(analysis_id=analysis.pk)
        connection.close()

    thread = threading.Thread(target=stale_worker, name="stale")
    thread.start()
    assert paused.wait(30)
    stale_seq = Analysis.objects.get(pk=analysis.pk).requested_seq
    # A newer upload arrives and is computed while the stale one is still running.
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=_vary(SMD_ROWS, 5), submit=True)
    newer = analysis_recompute(analysis_id=analysis.pk)
    assert newer is not None and newer.seq == stale_seq + 1
    resume.set()
    thread.join(30)
    analysis.refresh_from_db()
    assert analysis.current_result_id == newer.pk
    assert analysis.computed_seq == newer.seq
    assert not AnalysisResult.objects.filter(analysis=analysis, seq=stale_seq).exists()
    # the stale worker found nothing newer to store
    assert outcome["result"] is None or outcome["result"].seq > stale_seq


@pytest.mark.django_db(transaction=True)
def test_a_duplicate_task_is_a_no_op(tmp_media: Any) -> None:
    from workers.tasks import recompute_analysis

    cast = make_cast()
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    first = recompute_analysis.run(analysis.pk)
    assert first is not None
    count = AnalysisResult.objects.count()
    assert recompute_analysis.run(analysis.pk) is None
    assert AnalysisResult.objects.count() == count
