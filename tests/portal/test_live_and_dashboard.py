"""Live updates, "since your last visit", the review table's N and last change, and the notices
about an idle timeout and a sign-in lock-out, as each role meets them."""

from __future__ import annotations

import re
import time
from datetime import timedelta
from typing import Any

import pytest
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone
from django.utils.html import escape

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.selectors import analysis_results_shown
from apps.analyses.services import analysis_recompute
from apps.datasets.models import Dataset, DatasetVersion
from apps.datasets.services import dataset_set_status
from apps.portal.models import PortalVisit
from apps.portal.session_middleware import ACTIVE_COOKIE, activity_cookie
from apps.portal.views_live import live_states
from tests.conftest import SMD_ROWS, make_unfittable, publish, store_rows

pytestmark = pytest.mark.django_db

LIVE = "/live/"
PASSIVE = {"HTTP_X_LIVE": "1"}


def _client(user: Any) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _computed(cast: dict[str, Any], rows: list[dict[str, Any]] | None = None) -> AnalysisResult:
    """Centre A's rows for the first outcome, submitted and computed as a worker would."""
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=rows or SMD_ROWS, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done", result
    return result


def _newer(cast: dict[str, Any], centre: str = "centre_b") -> AnalysisResult:
    """Another centre's rows enter the analysis: a new (unreleased) result."""
    rows = [{**r, "study": r["study"] + " B", "m1i": r["m1i"] + 1} for r in SMD_ROWS]
    store_rows(centre=cast[centre], outcome=cast["outcome"], rows=rows, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done", result
    return result


def _entry(client: Client, analysis_id: int) -> dict[str, Any]:
    response = client.get(LIVE, **PASSIVE)
    assert response.status_code == 200, response.content
    return next(a for a in response.json()["analyses"] if a["id"] == analysis_id)


# --- the live endpoint -------------------------------------------------------------------------


def test_the_live_endpoint_needs_a_sign_in_and_explains_every_refusal(cast: dict[str, Any]) -> None:
    anonymous = Client().get(LIVE)
    assert anonymous.status_code == 401 and "Sign in" in anonymous.json()["detail"]
    steering = _client(cast["users"]["steering"])
    posted = steering.post(LIVE)
    assert posted.status_code == 405 and "GET" in posted.json()["detail"]
    for query in ("analysis=abc", "analysis=-3", "analysis=99999999999999999999", "renew=yes"):
        refused = steering.get(f"{LIVE}?{query}")
        assert refused.status_code == 400, query
        assert refused.json()["detail"], query
    assert steering.get(f"{LIVE}?analysis=999999").json() == {"analyses": []}


def test_polling_in_a_loop_is_refused_with_retry_after_per_person(
    cast: dict[str, Any], settings: Any
) -> None:
    settings.API_THROTTLE_RATES = {**settings.API_THROTTLE_RATES, "live": "3/minute"}
    steering = _client(cast["users"]["steering"])
    assert [steering.get(LIVE, **PASSIVE).status_code for _ in range(3)] == [200, 200, 200]
    refused = steering.get(LIVE, **PASSIVE)
    assert refused.status_code == 429 and "Too many" in refused.json()["detail"]
    assert 1 <= int(refused["Retry-After"]) <= 60
    # another person has a budget of their own
    assert _client(cast["users"]["member_a"]).get(LIVE, **PASSIVE).status_code == 200


def test_an_unchanged_state_costs_a_304_and_a_change_a_new_answer(cast: dict[str, Any]) -> None:
    result = _computed(cast)
    client = _client(cast["users"]["steering"])
    first = client.get(LIVE, **PASSIVE)
    assert first.status_code == 200 and first["ETag"]
    assert "private" in first["Cache-Control"] and "no-cache" in first["Cache-Control"]
    again = client.get(LIVE, HTTP_IF_NONE_MATCH=first["ETag"], **PASSIVE)
    assert again.status_code == 304 and again.content == b""
    assert again["ETag"] == first["ETag"]
    # a data change queues a recompute: the state moves, so the answer does
    _newer(cast)
    changed = client.get(LIVE, HTTP_IF_NONE_MATCH=first["ETag"], **PASSIVE)
    assert changed.status_code == 200 and changed["ETag"] != first["ETag"]
    entry = next(a for a in changed.json()["analyses"] if a["id"] == result.analysis_id)
    assert entry["result"]["id"] != result.pk


def test_the_fingerprint_follows_the_state_and_each_new_result(cast: dict[str, Any]) -> None:
    result = _computed(cast)
    analysis = result.analysis
    client = _client(cast["users"]["steering"])
    done = _entry(client, analysis.pk)
    assert done["state"] == "done" and done["result"] == {"id": result.pk, "seq": result.seq}
    assert done["label"] == cast["outcome"].name
    # new data: the analysis waits for a worker
    rows = [{**r, "study": r["study"] + " B"} for r in SMD_ROWS]
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=rows, submit=True)
    queued = _entry(client, analysis.pk)
    assert queued["state"] == "queued" and queued["fingerprint"] != done["fingerprint"]
    # a worker takes it
    Analysis.objects.filter(pk=analysis.pk).update(running_since=timezone.now())
    running = _entry(client, analysis.pk)
    assert running["state"] == "running" and running["fingerprint"] != queued["fingerprint"]
    Analysis.objects.filter(pk=analysis.pk).update(running_since=None)
    newer = analysis_recompute(analysis_id=analysis.pk)
    assert newer is not None
    stored = _entry(client, analysis.pk)
    assert stored["state"] == "done" and stored["result"] == {"id": newer.pk, "seq": newer.seq}
    assert stored["fingerprint"] not in (done["fingerprint"], queued["fingerprint"], running["fingerprint"])
    # every centre withdraws: the analysis waits for data, and says so beside the last good result
    for dataset in Dataset.objects.filter(outcome=cast["outcome"], status="submitted"):
        dataset_set_status(actor=None, dataset=dataset, status="withdrawn", reason="test")
    empty = analysis_recompute(analysis_id=analysis.pk)
    assert empty is not None and empty.status == "empty"
    after = _entry(client, analysis.pk)
    assert after["state"] == "waiting" and after["failed"]["id"] == empty.pk
    assert after["result"]["id"] == newer.pk
    # data come back that the settings cannot fit: no estimate, and the state says so
    failed = make_unfittable(cast, analysis)
    after = _entry(client, analysis.pk)
    assert after["state"] == "failed" and after["failed"]["id"] == failed.pk
    assert after["result"]["id"] == newer.pk


def test_a_member_never_learns_of_an_unreleased_result_through_the_live_endpoint(
    cast: dict[str, Any],
) -> None:
    steering_user = cast["users"]["steering"]
    released = _computed(cast)
    publish(steering_user, released)
    member, steering = _client(cast["users"]["member_a"]), _client(steering_user)
    analysis_id = released.analysis_id
    before_member, before_steering = _entry(member, analysis_id), _entry(steering, analysis_id)
    assert before_member["result"]["id"] == released.pk
    unreleased = _newer(cast)
    after_member, after_steering = _entry(member, analysis_id), _entry(steering, analysis_id)
    assert after_member == before_member  # same id, same state, same fingerprint
    answer = member.get(LIVE, **PASSIVE).json()["analyses"]
    named = {a[k]["id"] for a in answer for k in ("result", "failed") if a[k]}
    assert unreleased.pk not in named
    assert after_steering["result"]["id"] == unreleased.pk
    assert after_steering["fingerprint"] != before_steering["fingerprint"]
    # once released, the member hears of it
    publish(steering_user, unreleased)
    released_now = _entry(member, analysis_id)
    assert released_now["result"]["id"] == unreleased.pk
    assert released_now["fingerprint"] != before_member["fingerprint"]


@pytest.mark.parametrize("who", ["steering", "member_a", "dm_b", "admin"])
def test_the_live_state_shows_what_the_pages_show(cast: dict[str, Any], who: str) -> None:
    """The endpoint picks results by the rules of ``analysis_results_shown`` (which the pages
    use), including a failure beside the last good result."""
    released = _computed(cast)
    publish(cast["users"]["steering"], released)
    _newer(cast)
    # the second outcome: a good result, then one without an estimate
    store_rows(centre=cast["centre_a"], outcome=cast["outcome2"], rows=SMD_ROWS, submit=True)
    dep_analysis = Analysis.objects.get(outcome=cast["outcome2"])
    analysis_recompute(analysis_id=dep_analysis.pk)
    assert make_unfittable(cast, dep_analysis).status == "failed"
    user = cast["users"][who]
    for entry in live_states(user=user):
        shown, failed = analysis_results_shown(user=user, analysis=Analysis.objects.get(pk=entry["id"]))
        assert (entry["result"] or {}).get("id") == (shown.pk if shown else None), (who, entry)
        assert (entry["failed"] or {}).get("id") == (failed.pk if failed else None), (who, entry)


def test_polling_never_keeps_a_session_alive(cast: dict[str, Any]) -> None:
    client = _client(cast["users"]["steering"])
    client.get("/")
    key = client.session.session_key
    past = timezone.now() + timedelta(seconds=60)
    Session.objects.filter(session_key=key).update(expire_date=past)
    assert client.get(LIVE, **PASSIVE).status_code == 200
    assert client.get("/", **PASSIVE).status_code == 200  # a region refresh
    assert Session.objects.get(session_key=key).expire_date == past
    left = int(client.get(LIVE, **PASSIVE)["X-Idle-Seconds-Left"])
    assert 0 < left <= 1800
    client.get("/")  # the person's own request renews it
    assert Session.objects.get(session_key=key).expire_date > past + timedelta(seconds=600)
    Session.objects.filter(session_key=key).update(expire_date=past)
    client.get(f"{LIVE}?renew=1")  # "Stay signed in"
    assert Session.objects.get(session_key=key).expire_date > past + timedelta(seconds=600)


# --- since your last visit ---------------------------------------------------------------------


def _panel(client: Client) -> str:
    html = client.get("/").content.decode()
    return html.split('id="since-last-visit"', 1)[1].split("</section>", 1)[0]


def test_a_first_visit_says_so_and_the_visit_outlives_the_sign_in(cast: dict[str, Any]) -> None:
    user = cast["users"]["member_a"]
    client = _client(user)
    assert "This is your first visit" in _panel(client)
    seen = PortalVisit.objects.get(user=user).seen_at
    assert "This is your first visit" in _panel(client)  # the same sign-in keeps its baseline
    client.post("/accounts/logout/")
    again = _client(user)
    panel = _panel(again)
    assert "first visit" not in panel and "Nothing you can see has changed" in panel
    assert PortalVisit.objects.get(user=user).seen_at > seen
    # a page's own refresh records no visit
    latest = PortalVisit.objects.get(user=user).seen_at
    assert again.get("/", **PASSIVE).status_code == 200
    assert PortalVisit.objects.get(user=user).seen_at == latest


def test_since_your_last_visit_lists_what_each_reader_may_see(cast: dict[str, Any]) -> None:
    users = cast["users"]
    first = _computed(cast)
    publish(users["steering"], first, name="2026.0")
    long_ago = timezone.now() - timedelta(days=3)
    for who in ("steering", "member_a", "dm_b"):
        PortalVisit.objects.create(user=users[who], seen_at=timezone.now())
    # since then: centre B's data arrive (a new, unreleased result), centre A withdraws its second
    # outcome's data, and a recompute of that outcome fails
    newer = _newer(cast)
    store_rows(centre=cast["centre_a"], outcome=cast["outcome2"], rows=SMD_ROWS, submit=True)
    dep = Dataset.objects.get(centre=cast["centre_a"], outcome=cast["outcome2"])
    dataset_set_status(actor=users["dm_a"], dataset=dep, status="withdrawn", reason="consent withdrawn")
    failed = analysis_recompute(analysis_id=Analysis.objects.get(outcome=cast["outcome2"]).pk)
    assert failed is not None and failed.status == "empty"

    steering = _panel(_client(users["steering"]))
    before, after = first.pooled["estimate"], newer.pooled["estimate"]
    assert f"SMD {before:.2f} → {after:.2f}" in steering
    assert f"result {newer.pk}, before: result {first.pk}" in steering
    assert "consent withdrawn" in steering and "withdrawn" in steering
    assert "waiting for data" in steering and escape(failed.error["message"])[:60] in steering
    assert "version 1 of" in steering  # centre B's submitted version
    assert "2026.0" not in steering  # published before the last visit

    member = _panel(_client(users["member_a"]))
    assert "new result" not in member and f"result {newer.pk}" not in member  # not released
    assert "consent withdrawn" in member  # their own centre's dataset
    assert "waiting for data" not in member
    assert "Centre Beta" not in member  # another centre's data

    other = _panel(_client(users["dm_b"]))
    assert "consent withdrawn" not in other  # centre A's dataset is not theirs to see
    assert "Centre Beta" in other  # their own version

    # the steering group releases the new result: the member hears of the release and the result
    publish(users["steering"], newer, name="2026.1")
    PortalVisit.objects.filter(user=users["member_a"]).update(seen_at=long_ago)
    member = _panel(_client(users["member_a"]))
    assert "2026.1" in member and "2026.0" in member  # both readable since three days ago
    PortalVisit.objects.filter(user=users["member_a"]).update(
        seen_at=newer.created_at + timedelta(microseconds=1)
    )
    member = _panel(_client(users["member_a"]))
    assert "2026.1" in member and "2026.0" not in member
    assert f"SMD {before:.2f} → {after:.2f}" in member


def test_a_release_under_embargo_reaches_a_member_only_when_it_ends(cast: dict[str, Any]) -> None:
    users = cast["users"]
    result = _computed(cast)
    PortalVisit.objects.create(user=users["member_a"], seen_at=timezone.now())
    PortalVisit.objects.create(user=users["steering"], seen_at=timezone.now())
    publish(users["steering"], result, name="embargoed", embargo_until=timezone.now() + timedelta(days=1))
    assert "embargoed" not in _panel(_client(users["member_a"]))
    assert "embargoed until" in _panel(_client(users["steering"]))


# --- the review table --------------------------------------------------------------------------


def _review_row(html: str, name: str) -> str:
    table = html.split('id="review-summary"')[1].split("</table>")[0]
    return table.split(name)[1].split("</tr>")[0]


def test_n_in_the_review_table_is_the_demo_participants_of_each_outcome(demo_loaded: None) -> None:
    steering = Client()
    steering.force_login(_user("steering"))
    html = steering.get("/").content.decode()
    for analysis in Analysis.objects.filter(is_default=True).select_related("outcome", "current_result"):
        result = analysis.current_result
        assert result is not None
        timepoint = analysis.timepoint
        # each study once: the demo's rows of one study at one time point share their participants
        sizes: dict[tuple[str, str], int] = {}
        for dataset in Dataset.objects.filter(outcome=analysis.outcome, status="submitted"):
            version = DatasetVersion.objects.get(pk=dataset.submitted_version_id)
            for row in version.rows:
                if timepoint and row.get("timepoint") != timepoint:
                    continue
                if row.get("n1i") is not None:
                    n = row["n1i"] + row["n2i"]
                else:
                    n = row["ai"] + row["bi"] + row["ci"] + row["di"]
                sizes[(dataset.centre.code, row["study"])] = n
        assert len(sizes) == result.pooled["n_studies"]
        row = _review_row(html, analysis.outcome.name)
        assert f">{sum(sizes.values())}</span>" in row, (analysis.outcome.code, row)


def _user(name: str) -> Any:
    from django.contrib.auth.models import User

    return User.objects.get(username=name)


def test_n_is_a_dash_with_the_reason_when_the_input_has_no_sample_sizes(cast: dict[str, Any]) -> None:
    rows = [{"study": f"S{i}", "yi": 0.1 * i, "vi": 0.02 + 0.01 * i, "year": 2010 + i} for i in range(5)]
    _computed(cast, rows)
    row = _review_row(_client(cast["users"]["steering"]).get("/").content.decode(), cast["outcome"].name)
    assert "–</span>" in row and "5 studies in the model give no sample sizes" in row
    # two-group rows count both groups of each study
    other = _client(cast["users"]["steering"])
    store_rows(centre=cast["centre_b"], outcome=cast["outcome2"], rows=SMD_ROWS, submit=True)
    analysis_recompute(analysis_id=Analysis.objects.get(outcome=cast["outcome2"]).pk)
    row = _review_row(other.get("/").content.decode(), cast["outcome2"].name)
    assert f">{sum(r['n1i'] + r['n2i'] for r in SMD_ROWS)}</span>" in row


def test_the_review_table_shows_running_and_failed_recomputes_and_the_last_change(
    cast: dict[str, Any],
) -> None:
    result = _computed(cast)
    analysis = result.analysis
    client = _client(cast["users"]["steering"])
    row = _review_row(client.get("/").content.decode(), cast["outcome"].name)
    assert f"result {result.pk} stored" in row
    finished = timezone.localtime(result.finished_at)
    assert f'{finished:%Y-%m-%d}</span> <span class="when">{finished:%H:%M}' in row
    rows = [{**r, "study": r["study"] + " B"} for r in SMD_ROWS]
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=rows, submit=True)
    assert 'badge queued">queued' in _review_row(client.get("/").content.decode(), cast["outcome"].name)
    assert "recompute requested" in _review_row(client.get("/").content.decode(), cast["outcome"].name)
    Analysis.objects.filter(pk=analysis.pk).update(running_since=timezone.now())
    row = _review_row(client.get("/").content.decode(), cast["outcome"].name)
    assert 'badge running">running' in row and "recompute started" in row
    Analysis.objects.filter(pk=analysis.pk).update(running_since=None)
    failed = make_unfittable(cast, analysis)
    row = _review_row(client.get("/").content.decode(), cast["outcome"].name)
    assert "no estimate" in row and escape(failed.error["message"]) in row
    for dataset in Dataset.objects.filter(outcome=cast["outcome"], status="submitted"):
        dataset_set_status(actor=None, dataset=dataset, status="withdrawn", reason="test")
    empty = analysis_recompute(analysis_id=analysis.pk)
    assert empty is not None and empty.status == "empty"
    row = _review_row(client.get("/").content.decode(), cast["outcome"].name)
    assert "waiting for data" in row and escape(empty.error["message"]) in row


def test_the_dashboard_marks_its_live_regions(cast: dict[str, Any]) -> None:
    _computed(cast)
    html = _client(cast["users"]["steering"]).get("/").content.decode()
    for analysis in Analysis.objects.filter(is_default=True):
        assert f'id="card-{analysis.pk}"' in html
        assert f'data-live-region data-live-analysis="{analysis.pk}"' in html
    assert 'id="review-region" data-live-region' in html
    assert 'id="live-status" class="live-status small" role="status" aria-live="polite"' in html
    assert 'src="/static/portal/live.js"' in html and "<script>" not in html


# --- idle timeout and lock-out -----------------------------------------------------------------


def _signed_in(cast: dict[str, Any]) -> Client:
    client = Client()
    response = client.post("/accounts/login/", {"username": "steering", "password": "pw-steering"})
    assert response.status_code == 302
    assert client.get("/").status_code == 200
    return client


IDLE = "You were signed out after 30 minutes without activity; sign in again."


def test_the_sign_in_page_says_when_a_session_ended_for_inactivity(cast: dict[str, Any]) -> None:
    client = _signed_in(cast)
    Session.objects.filter(session_key=client.session.session_key).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    response = client.get("/datasets/", follow=True)
    assert response.redirect_chain and response.redirect_chain[-1][0].startswith("/accounts/login/")
    assert IDLE in response.content.decode()
    # said once
    assert IDLE not in client.get("/accounts/login/").content.decode()
    # and not carried into the next sign-in
    client.post("/accounts/login/", {"username": "steering", "password": "pw-steering"})
    assert "signed out after" not in client.get("/").content.decode()


def test_the_notice_holds_when_expired_sessions_were_already_cleared(
    cast: dict[str, Any], settings: Any
) -> None:
    """``clearsessions`` deletes expired sessions: the time of the last activity still tells an
    idle timeout from a session ended early (a password changed elsewhere, sessions deleted)."""
    client = _signed_in(cast)
    Session.objects.filter(session_key=client.session.session_key).delete()
    client.cookies[ACTIVE_COOKIE] = activity_cookie(time.time() - settings.SESSION_COOKIE_AGE - 5)
    assert IDLE in client.get("/datasets/", follow=True).content.decode()

    ended_early = _signed_in(cast)
    Session.objects.filter(session_key=ended_early.session.session_key).delete()
    assert "signed out after" not in ended_early.get("/datasets/", follow=True).content.decode()
    # a forged time is refused, like no time at all
    forged = _signed_in(cast)
    Session.objects.filter(session_key=forged.session.session_key).delete()
    forged.cookies[ACTIVE_COOKIE] = "1000.0:forged"
    assert "signed out after" not in forged.get("/datasets/", follow=True).content.decode()


def test_signing_out_is_not_mistaken_for_an_idle_timeout(cast: dict[str, Any]) -> None:
    client = _signed_in(cast)
    client.post("/accounts/logout/")
    response = client.get("/datasets/", follow=True)
    assert "signed out after" not in response.content.decode()
    assert "signed out after" not in client.get("/").content.decode()


def test_the_lock_out_page_says_when_to_try_again_and_offers_the_form(
    cast: dict[str, Any], settings: Any
) -> None:
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = client.post("/accounts/login/", {"username": "admin", "password": "wrong"})
    assert response.status_code == 429
    page = response.content.decode()
    until = timezone.localtime(timezone.now() + settings.AXES_COOLOFF_TIME)
    assert re.search(r"Try again after \d\d:\d\d UTC", page)
    assert f"Try again after {until:%H:%M} UTC" in page or f"{until - timedelta(minutes=1):%H:%M}" in page
    assert 'role="alert"' in page and 'name="password"' in page and 'value="admin"' in page
    assert 800 <= int(response["Retry-After"]) <= 900


def test_knocking_during_the_lock_out_does_not_extend_it(cast: dict[str, Any], settings: Any) -> None:
    """Sign-ins tried during the pause, the right password included, leave its end where it was."""
    from axes.models import AccessAttempt

    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT):
        client.post("/accounts/login/", {"username": "admin", "password": "wrong"})
    # fourteen minutes into the fifteen-minute pause
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=14))
    again = client.post("/accounts/login/", {"username": "admin", "password": "pw-admin"})
    assert again.status_code == 429
    assert int(again["Retry-After"]) <= 60
