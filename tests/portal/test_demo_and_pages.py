"""The demo consortium as a newcomer meets it: sign in as the steering group and see every outcome."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from apps.analyses.models import Analysis
from apps.consortium import demo
from apps.consortium.models import Centre, Membership, Outcome
from apps.datasets.models import Dataset, Study

pytestmark = pytest.mark.django_db


@pytest.fixture
def demo_loaded(tmp_media: Any) -> None:
    with open(os.devnull, "w") as out:
        call_command("load_demo", stdout=out)


def _login(username: str) -> Client:
    client = Client()
    assert client.login(username=username, password=demo.DEMO_PASSWORD)
    return client


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
    html = _login("steering").get("/").content.decode()
    for outcome in Outcome.objects.all():
        card = html.split(f'data-outcome="{outcome.code}"', 1)[1].split('<div class="card"', 1)[0]
        estimate = Analysis.objects.get(outcome=outcome, is_default=True).current_result.pooled["estimate"]
        assert f'<div class="big pooled-estimate">{estimate:.2f}</div>' in card
        assert "95% CI" in card and "I²" in card
    assert html.count("pooled-estimate") == 4
    # the log risk ratio is also shown as a risk ratio
    import math

    attachment = Analysis.objects.get(
        outcome__code="secure-attachment", is_default=True
    ).current_result.pooled
    assert f"RR {math.exp(attachment['estimate']):.2f} (95% CI {math.exp(attachment['ci_lb']):.2f}" in html


def test_outcome_page_has_forest_and_funnel_plots_and_provenance(demo_loaded: None) -> None:
    html = _login("steering").get("/outcomes/postnatal-depression/").content.decode()
    assert html.count("<svg") >= 2
    assert "favours intervention" in html
    # lower is better: the intervention side is on the left
    assert "← favours intervention" in html
    assert "Provenance" in html and "Leave-one-out" in html
    html_rf = _login("steering").get("/outcomes/reflective-functioning/").content.decode()
    assert "favours intervention →" in html_rf


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
