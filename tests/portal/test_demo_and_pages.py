"""The demo consortium as a newcomer meets it: sign in as the steering group and see every outcome."""

from __future__ import annotations

import io
import os
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from apps.analyses.models import Analysis
from apps.consortium.models import Centre, Membership, Outcome
from apps.datasets.models import Dataset, Study
from apps.demo import synthetic as demo

pytestmark = pytest.mark.django_db


def _login(username: str) -> Client:
    """Sign in through the sign-in page, as a person would (and as the lock-out sees it)."""
    client = Client()
    resp = client.post("/accounts/login/", {"username": username, "password": demo.DEMO_PASSWORD})
    assert resp.status_code == 302, f"{username} could not sign in: {resp.status_code}"
    assert client.get("/").context["user"].username == username
    return client


README_SIGN_INS = ["steering", "admin"] + [
    f"{role}-{c[0]}" for role in ("dm", "member") for c in demo.CENTRES
]


@pytest.mark.parametrize("username", README_SIGN_INS)
def test_every_sign_in_the_readme_lists_works_through_the_sign_in_page(
    demo_loaded: None, username: str
) -> None:
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        readme = f.read()
    assert demo.DEMO_PASSWORD in readme
    assert f"`{username.rsplit('-', 1)[0]}" in readme
    _login(username)


def test_the_readme_api_token_reads_results(demo_loaded: None) -> None:
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "README.md")) as f:
        assert demo.API_TOKEN in f.read()
    resp = Client().get("/api/v1/results/", HTTP_AUTHORIZATION=f"Token {demo.API_TOKEN}")
    assert resp.status_code == 200 and resp.json()["count"] >= 4


def test_admin_signs_in_to_the_admin_site(demo_loaded: None) -> None:
    client = _login("admin")
    assert client.get("/admin/").status_code == 200


def test_demo_loader_refuses_production_settings(settings: Any, tmp_media: Any) -> None:
    from django.core.management.base import CommandError

    settings.PRODUCTION = True
    with pytest.raises(CommandError, match="allow-production"):
        call_command("load_demo", "--no-compute", stdout=io.StringIO())
    assert not get_user_model().objects.filter(username="steering").exists()


def test_demo_under_production_settings_never_gets_the_published_credentials(
    settings: Any, tmp_media: Any
) -> None:
    settings.PRODUCTION = True
    out = io.StringIO()
    call_command("load_demo", "--no-compute", "--allow-production", stdout=out)
    for username in README_SIGN_INS:
        user = get_user_model().objects.get(username=username)
        assert not user.check_password(demo.DEMO_PASSWORD)
        assert f"password of {username}: " in out.getvalue()
    secret = out.getvalue().split("API token of api-client: ", 1)[1].split()[0]
    assert secret != demo.API_TOKEN
    api = Client(HTTP_AUTHORIZATION="Token " + secret)
    assert api.get("/api/v1/results/").status_code == 200
    assert Client(HTTP_AUTHORIZATION="Token " + demo.API_TOKEN).get("/api/v1/results/").status_code == 401
    # The printed password works through the sign-in page.
    password = out.getvalue().split("password of steering: ", 1)[1].split()[0]
    resp = Client().post("/accounts/login/", {"username": "steering", "password": password})
    assert resp.status_code == 302


def test_an_admin_account_with_an_empty_password_hash_gets_the_demo_password(tmp_media: Any) -> None:
    get_user_model().objects.create(username="admin", password="", is_staff=True, is_superuser=True)
    call_command("load_demo", "--no-compute", stdout=io.StringIO())
    _login("admin")


def test_demo_is_shaped_like_the_review_and_loads_idempotently(demo_loaded: None) -> None:
    assert Centre.objects.count() == 5
    assert Study.objects.count() == 77
    assert 5500 <= demo.demo_participants() <= 5800
    assert set(Outcome.objects.values_list("measure", flat=True)) == {"SMD", "RR"}
    assert Outcome.objects.get(code="postnatal-depression").direction == "lower"
    assert all("synthetic" in c.name for c in Centre.objects.all())
    for centre in Centre.objects.all():
        roles = set(Membership.objects.filter(centre=centre).values_list("role", flat=True))
        assert roles == {"data_manager", "member"}
    counts = (Dataset.objects.count(), Analysis.objects.count(), get_user_model().objects.count())
    with open(os.devnull, "w") as out:
        call_command("load_demo", stdout=out)
    assert (Dataset.objects.count(), Analysis.objects.count(), get_user_model().objects.count()) == counts
    assert all(d.versions.count() == 1 for d in Dataset.objects.all())


def test_steering_dashboard_shows_pooled_results_for_all_four_outcomes(demo_loaded: None) -> None:
    import math

    html = _login("steering").get("/").content.decode()
    for outcome in Outcome.objects.all():
        card = html.split(f'data-outcome="{outcome.code}"', 1)[1].split('<div class="card"', 1)[0]
        estimate = Analysis.objects.get(outcome=outcome, is_default=True).current_result.pooled["estimate"]
        # each on its own scale: a log risk ratio as the risk ratio
        shown = (
            f"RR {math.exp(estimate):.2f}" if outcome.measure == "RR" else f"{outcome.measure} {estimate:.2f}"
        )
        assert f">{shown}</div>" in card
        assert "95% CI" in card and "I²" in card
    assert html.count("pooled-estimate") == 4


def test_outcome_page_has_forest_and_funnel_plots_and_provenance(demo_loaded: None) -> None:
    client = _login("steering")
    html = client.get("/outcomes/postnatal-depression/").content.decode()
    figures = dict(
        re.findall(r'<img src="(/results/\d+/figures/(\w+)\.svg)"', html)[i][::-1] for i in range(2)
    )
    assert set(figures) == {"forest", "funnel"}
    assert "Provenance" in html and "Leave-one-out" in html
    # lower is better: the intervention side is on the left
    forest = client.get(figures["forest"]).content.decode()
    assert "← favours intervention" in forest and "favours control →" in forest
    rf = client.get("/outcomes/reflective-functioning/").content.decode()
    src = re.search(r'<img src="(/results/\d+/figures/forest\.svg)"', rf)
    assert src is not None and "favours intervention →" in client.get(src.group(1)).content.decode()


def test_member_sees_released_results_and_only_their_centre_data(demo_loaded: None) -> None:
    client = _login("member-north")
    html = client.get("/").content.decode()
    assert html.count("pooled-estimate") == 4  # the demo's first results are released
    shown = set(re.findall(r'href="/datasets/(\d+)/"', html))
    own = {str(pk) for pk in Dataset.objects.filter(centre__code="north").values_list("pk", flat=True)}
    assert shown == own


def test_api_root_schema_and_docs_are_served_without_a_cdn(demo_loaded: None) -> None:
    client = Client(HTTP_AUTHORIZATION="Token " + demo.API_TOKEN)
    root = client.get("/api/v1/").json()
    assert {"centres", "outcomes", "datasets", "analyses", "results", "audit"} <= set(root)
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json").json()
    assert schema["openapi"].startswith("3.")
    assert "/api/v1/datasets/upload/" in schema["paths"]
    docs = Client().get("/api/docs/").content.decode()
    assert "swagger-ui" in docs
    external = [
        u for u in re.findall(r'(?:src|href)="([^"]+)"', docs) if u.startswith(("http:", "https:", "//"))
    ]
    assert external == []
    results = client.get("/api/v1/results/").json()
    assert results["count"] == 4


def test_a_ratio_outcome_is_headlined_on_its_own_scale_with_its_release(demo_loaded: None) -> None:
    """Secure attachment is pooled as a log risk ratio: the pages lead with the risk ratio (and
    its interval) and name the log scale where they show it; each result names its release."""
    import math

    from apps.analyses.models import Analysis

    analysis = Analysis.objects.get(outcome__code="secure-attachment", is_default=True)
    pooled = analysis.current_result.pooled
    rr, lb, ub = (math.exp(pooled[k]) for k in ("estimate", "ci_lb", "ci_ub"))
    client = _login("member-north")
    card = (
        client.get("/").content.decode().split('data-outcome="secure-attachment"')[1].split('class="card"')[0]
    )
    assert f"RR {rr:.2f}</div>" in card and f"95% CI {lb:.2f} to {ub:.2f}" in card
    assert f"log RR {pooled['estimate']:.3f}" in card
    assert "release demo-2026.1" in card
    page = client.get("/outcomes/secure-attachment/").content.decode()
    assert f'id="pooled-estimate">RR {rr:.3f}</div>' in page
    assert "On the log scale the model works on: log RR" in page
    forest = re.search(r'<img src="(/results/\d+/figures/forest\.svg)"', page)
    assert forest is not None  # the forest plot names its scale
    assert "Risk ratio (RR), log scale" in client.get(forest.group(1)).content.decode()
    assert "<td>demo-2026.1</td>" in page  # the result history names the release


def test_a_failed_recompute_shows_its_reason_beside_the_last_good_result(demo_loaded: None) -> None:
    from django.db.models import F
    from django.utils.html import escape

    from apps.analyses.models import Analysis
    from apps.analyses.services import analysis_recompute
    from apps.datasets.services import dataset_set_status

    analysis = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True)
    good = analysis.current_result
    # settings saved before the data called for a multilevel model (the service refuses them now)
    Analysis.objects.filter(pk=analysis.pk).update(method="PM", requested_seq=F("requested_seq") + 1)
    failed = analysis_recompute(analysis_id=analysis.pk)
    assert failed is not None and failed.status == "failed", failed
    assert "multilevel models use ML or REML, not 'PM'" in failed.error["message"]
    client = _login("steering")

    def shown() -> tuple[str, str]:
        page = client.get("/outcomes/postnatal-depression/").content.decode()
        home = client.get("/").content.decode()
        return page, home.split('data-outcome="postnatal-depression"')[1].split('class="card"')[0]

    page, card = shown()
    assert (
        f"The newest result ({failed.pk}) has no estimate:" in page
        and escape(failed.error["message"]) in page
    )
    assert f"the last result with an estimate, result {good.pk}" in page and 'id="pooled-estimate"' in page
    assert "no estimate" in card and "the last result with an estimate" in card and "pooled-estimate" in card
    # every centre withdraws its data: the analysis waits for data, the estimate stays
    for dataset in Dataset.objects.filter(outcome__code="postnatal-depression", status="submitted"):
        dataset_set_status(actor=None, dataset=dataset, status="withdrawn", reason="test")
    empty = analysis_recompute(analysis_id=analysis.pk)
    assert empty is not None and empty.status == "empty"
    page, card = shown()
    assert f"Waiting for data (result {empty.pk}):" in page and 'id="pooled-estimate"' in page
    assert "waiting for data" in card and "pooled-estimate" in card


def test_the_steering_dashboard_has_a_review_summary_table(demo_loaded: None) -> None:
    html = _login("steering").get("/").content.decode()
    table = html.split('id="review-summary"')[1].split("</table>")[0]
    assert table.count("<tr>") == 5  # the header and one row per outcome
    depression = table.split("Postnatal depression")[1].split("</tr>")[0]
    pooled = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True).current_result.pooled
    assert pooled["ci_ub"] < 0  # lower is better: an interval below zero favours the intervention
    assert "favours intervention" in depression and f"SMD {pooled['estimate']:.2f}" in depression
    assert 'id="review-summary"' not in _login("member-north").get("/").content.decode()
