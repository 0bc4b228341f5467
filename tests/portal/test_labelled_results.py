"""Every number labelled with what was analysed, on the scale readers read, under the names it was
computed with: the headline names the time point, instruments, model and tests; a ratio outcome is
never shown as an unlabelled log; an outcome edited after a release does not relabel what it froze."""

from __future__ import annotations

import math
import re
from html import unescape

import pytest

from apps.analyses.models import Analysis
from apps.consortium.models import Outcome
from tests.portal.conftest import signed_in

pytestmark = pytest.mark.django_db


def _two(value: float) -> str:
    return f"{value:.2f}".replace("-", "\u2212")


def test_the_headline_names_time_point_instruments_model_tests_and_counts(demo_loaded: None) -> None:
    result = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True).current_result
    pooled = result.pooled
    assert pooled["dependence"] == "che" and pooled["inference"] == "CR2"
    page = signed_in("steering").get("/outcomes/postnatal-depression/").content.decode()
    headline = re.search(r'<p class="headline" id="headline">([^<]+)</p>', page)
    assert headline is not None
    *first, last = result.labels["instruments"]
    instruments = f"{', '.join(first)} and {last}" if first else last
    assert result.labels["instruments"] and result.labels["timepoint"] == "post"
    assert unescape(headline.group(1)) == (
        f"SMD {_two(pooled['estimate'])} (95% CI {_two(pooled['ci_lb'])} to {_two(pooled['ci_ub'])}), "
        f"post, {instruments}, CHE \u03c1 = 0.6 (REML) with CR2 tests, "
        f"{pooled['k']} effects in {pooled['n_studies']} studies"
    )


def test_a_ratio_outcome_shows_no_unlabelled_log_value(demo_loaded: None) -> None:
    analysis = Analysis.objects.get(outcome__code="secure-attachment", is_default=True)
    result = analysis.current_result
    client = signed_in("steering")
    page = client.get("/outcomes/secure-attachment/").content.decode()
    assert "Risk ratio (RR), pooled on the log scale" in page and "Log risk ratio ·" not in page
    assert re.search(r'id="headline">RR \d\.\d\d \(95% CI', page)
    tf = result.blocks.get("trimfill")
    if tf:  # trim-and-fill's adjusted estimate as a ratio, its log labelled
        assert f"adjusted estimate RR {math.exp(tf['beta']):.3f}" in page
        assert f"(log RR {tf['beta']:.3f})" in page
    # the result history: the ratio, named
    history = page.split('id="result-history"')[1].split("</table>")[0]
    assert f"RR {math.exp(result.pooled['estimate']):.3f}" in history
    # leave-one-out: the log columns say log, the ratio columns are there
    if result.blocks.get("leave1out"):
        loo = page.split("Estimate without each study")[1].split("</table>")[0]
        assert "log RR estimate" in loo and ">RR<" in loo and ">RR CI lower<" in loo
    # the review table and the dashboard card
    home = client.get("/").content.decode()
    row = home.split('id="review-summary"')[1].split("Secure parent-child attachment")[1].split("</tr>")[0]
    assert f"RR {math.exp(result.pooled['estimate']):.2f}" in row


def test_the_prediction_interval_shown_is_the_robust_one(demo_loaded: None) -> None:
    result = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True).current_result
    pooled, model_based = result.pooled, result.blocks["predict_vcalc"]
    assert pooled["pi_inference"] == "CR2"
    # wider than the model-based one: t with few robust df, and the CR2 SE
    assert pooled["pi_lb"] != pytest.approx(model_based["pi_lb"])
    page = signed_in("steering").get("/outcomes/postnatal-depression/").content.decode()
    assert f"{pooled['pi_lb']:.2f} to {pooled['pi_ub']:.2f}" in page


def test_editing_an_outcome_after_a_release_does_not_relabel_what_it_froze(demo_loaded: None) -> None:
    analysis = Analysis.objects.get(outcome__code="postnatal-depression", is_default=True)
    released = analysis.current_result
    assert released.labels["direction"] == "lower" and released.pooled["ci_ub"] < 0
    member = signed_in("member-north")

    def favours() -> str:
        home = signed_in("steering").get("/").content.decode()
        return (
            home.split('id="review-summary"')[1].split("/outcomes/postnatal-depression/")[1].split("</tr>")[0]
        )

    assert "favours intervention" in favours()
    steering_api = signed_in("steering")
    changed = steering_api.patch(
        "/api/v1/outcomes/postnatal-depression/",
        {"direction": "higher", "name": "Maternal mood"},
        content_type="application/json",
    )
    assert changed.status_code == 200, changed.content
    assert Outcome.objects.get(code="postnatal-depression").direction == "higher"
    # the frozen result is read as it was computed: lower is better, so it favours the intervention
    assert "favours intervention" in favours()
    page = member.get(f"/outcomes/postnatal-depression/?result={released.pk}").content.decode()
    assert "Maternal mood" in page  # the page is today's outcome ...
    assert released.labels["outcome"] == "Postnatal depression (parent)"  # ... the result keeps its name
    forest = re.search(r'<img src="(/results/\d+/figures/forest\.svg)"', page)
    assert forest is not None
    texts = _svg_texts(member.get(forest.group(1)).content)
    # lower is better, as when it was computed: the left of no effect favours the intervention
    assert "\u2190 favours intervention" in texts and "favours control \u2192" in texts


def _svg_texts(svg: bytes) -> list[str]:
    import xml.etree.ElementTree as ET

    root = ET.fromstring(svg)
    return ["".join(t.itertext()).strip() for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_the_demo_keeps_every_mean_on_its_scale_and_aligns_asq_se(demo_loaded: None) -> None:
    from apps.datasets.models import Dataset

    for dataset in Dataset.objects.select_related("outcome", "current_version"):
        scales = dataset.outcome.instrument_scales
        for row in dataset.current_version.rows:
            scale = scales.get(row.get("instrument") or "")
            for name in ("m1i", "m2i"):
                if scale and row.get(name) is not None:
                    assert scale["min"] <= row[name] <= scale["max"], (dataset, row)
    infant = Outcome.objects.get(code="infant-social-emotional")
    assert infant.reversed_instruments() == ["ASQ:SE"]
    result = Analysis.objects.get(outcome=infant, is_default=True).current_result
    es = result.blocks["effect_sizes"]
    aligned = [a for a, ins in zip(es["aligned"], es["instrument"], strict=True) if ins == "ASQ:SE"]
    assert (
        aligned
        and all(aligned)
        and not any(a for a, i in zip(es["aligned"], es["instrument"], strict=True) if i != "ASQ:SE")
    )
    assert result.pooled["estimate"] > 0  # the intervention helps, read the outcome's way
    page = signed_in("steering").get("/outcomes/infant-social-emotional/").content.decode()
    assert 'id="sign-aligned"' in page and "ASQ:SE" in page.split('id="sign-aligned"')[1].split("</p>")[0]
