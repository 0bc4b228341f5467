"""The outcome page's figures and tables: drawn from the stored result, once, for those who may read it."""

from __future__ import annotations

import csv
import io
import math
import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest
from django.test import Client

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.services import analysis_create, analysis_recompute, analysis_update
from apps.consortium.models import Outcome
from apps.portal.figures import catalog, store
from tests.portal.conftest import signed_in

pytestmark = pytest.mark.django_db
SVG = "{http://www.w3.org/2000/svg}"


def _figures(html: str) -> dict[str, str]:
    """The page's figures: name -> the SVG's address."""
    return {name: src for src, name in re.findall(r'<img src="(/results/\d+/figures/(\w+)\.svg[^"]*)"', html)}


def _texts(svg: bytes) -> list[str]:
    root = ET.fromstring(svg)
    return ["".join(t.itertext()).strip() for t in root.iter(f"{SVG}text")]


def _csv(client: Client, url: str) -> list[dict[str, str]]:
    resp = client.get(url)
    assert resp.status_code == 200 and resp["Content-Type"].startswith("text/csv")
    return list(csv.DictReader(io.StringIO(resp.content.decode())))


def _current(code: str) -> AnalysisResult:
    result = Analysis.objects.get(outcome__code=code, is_default=True).current_result
    assert result is not None
    return result


def test_every_figure_of_every_demo_outcome_renders_as_svg_png_and_csv(demo_loaded: None) -> None:
    client = signed_in("steering")
    seen = set()
    for outcome in Outcome.objects.all():
        html = client.get(f"/outcomes/{outcome.code}/").content.decode()
        figures = _figures(html)
        assert {"forest", "funnel", "history"} <= set(figures), outcome.code
        for name, src in figures.items():
            svg = client.get(src)
            assert svg.status_code == 200 and svg["Content-Type"] == "image/svg+xml"
            root = ET.fromstring(svg.content)  # well-formed SVG
            assert root.tag == f"{SVG}svg"
            assert any(_texts(svg.content)), "text stays text"
            png = client.get(src.replace(".svg", ".png"))
            assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"
            table = src.replace("/figures/", "/tables/").replace(".svg", ".csv")
            assert _csv(client, table), (outcome.code, name)
            # each figure has a text alternative that says what it shows
            alt = re.search(rf'<img src="{re.escape(src)}" alt="([^"]+)"', html)
            assert alt is not None and len(alt.group(1)) > 30
            seen.add(name)
    assert {"forest", "funnel", "baujat", "influence", "cumulative", "history"} <= seen


def test_forest_plot_lists_every_study_with_the_engines_numbers_and_weights_summing_to_100(
    demo_loaded: None,
) -> None:
    result = _current("secure-attachment")
    client = signed_in("steering")
    svg = client.get(f"/results/{result.pk}/figures/forest.svg")
    texts = _texts(svg.content)
    es = result.blocks["effect_sizes"]
    for label in es["study"]:
        assert label in texts
    assert "Pooled (random effects)" in texts and "Prediction interval" in texts
    rows = _csv(client, f"/results/{result.pk}/tables/forest.csv")
    studies = [r for r in rows if r["kind"] == "study"]
    assert [r["label"] for r in studies] == es["study"]
    assert [float(r["yi"]) for r in studies] == es["yi"]  # the engine's numbers, at full precision
    assert math.isclose(sum(float(r["weight_percent"]) for r in studies), 100.0, rel_tol=1e-9)
    assert [float(r["weight_percent"]) for r in studies] == result.blocks["influence"]["weight"]
    # ratio measures are also given as ratios
    assert math.isclose(float(studies[0]["RR"]), math.exp(es["yi"][0]))
    alt = f"pooled RR {math.exp(result.pooled['estimate']):.2f}"
    assert alt in catalog.alt_text(_inputs(result), "forest")


def _inputs(result: AnalysisResult) -> Any:
    from apps.portal.figures import inputs_of

    outcome = result.analysis.outcome
    return inputs_of(result, measure=outcome.measure, direction=outcome.direction, rows=True)


def test_dependent_effects_forest_has_studies_with_their_effects_and_the_models_weights(
    demo_loaded: None,
) -> None:
    result = _current("postnatal-depression")
    client = signed_in("steering")
    rows = _csv(client, f"/results/{result.pk}/tables/forest.csv")
    studies = [r for r in rows if r["kind"] == "study"]
    assert len(studies) == result.pooled["n_studies"]
    assert len([r for r in rows if r["kind"] == "effect"]) > 0
    # the CHE model's study weights: they reproduce its estimate, so they are shown
    assert math.isclose(sum(float(r["weight_percent"]) for r in studies), 100.0, rel_tol=1e-9)
    pooled = rows[-1]
    assert pooled["kind"] == "pooled" and float(pooled["yi"]) == result.pooled["estimate"]
    # the plot draws at most MAX_PLOT_ROWS rows and says so; the CSV has them all
    texts = " ".join(_texts(client.get(f"/results/{result.pk}/figures/forest.svg").content))
    assert f"of {len(rows) - 1} rows; the CSV lists every row" in texts


def test_sorting_the_forest_plot_orders_its_studies(demo_loaded: None) -> None:
    result = _current("secure-attachment")
    client = signed_in("steering")
    by_effect = [
        r for r in _csv(client, f"/results/{result.pk}/tables/forest.csv?sort=effect") if r["kind"] == "study"
    ]
    yi = [float(r["yi"]) for r in by_effect]
    assert yi == sorted(yi)
    texts = _texts(client.get(f"/results/{result.pk}/figures/forest.svg?sort=effect").content)
    labels = [t for t in texts if t in {r["label"] for r in by_effect}]
    assert labels == [r["label"] for r in by_effect]
    by_weight = [
        r for r in _csv(client, f"/results/{result.pk}/tables/forest.csv?sort=weight") if r["kind"] == "study"
    ]
    weights = [float(r["weight_percent"]) for r in by_weight]
    assert weights == sorted(weights, reverse=True)
    by_year = [
        r for r in _csv(client, f"/results/{result.pk}/tables/forest.csv?sort=year") if r["kind"] == "study"
    ]
    years = [int(r["year"]) for r in by_year]
    assert years == sorted(years) and len(set(years)) > 1
    by_centre = [
        r["centre"]
        for r in _csv(client, f"/results/{result.pk}/tables/forest.csv?sort=centre")
        if r["kind"] == "study"
    ]
    assert by_centre == sorted(by_centre)
    page = client.get("/outcomes/secure-attachment/?sort=year").content.decode()
    assert f'src="/results/{result.pk}/figures/forest.svg?sort=year"' in page


def test_funnel_plot_shows_trim_and_fill_studies_as_open_markers(demo_loaded: None) -> None:
    result = _current("secure-attachment")
    k0 = result.blocks["trimfill"]["k0"]
    assert k0 > 0
    svg = signed_in("steering").get(f"/results/{result.pk}/figures/funnel.svg").content
    root = ET.fromstring(svg)
    groups = {g.get("id"): g for g in root.iter(f"{SVG}g")}
    assert len(list(groups["imputed"].iter(f"{SVG}use"))) == k0
    assert len(list(groups["observed"].iter(f"{SVG}use"))) == result.k
    texts = _texts(svg)
    assert "Egger's regression line" in texts  # reproduced from the stored test, so drawn
    assert {"p > 0.10", "0.05 < p < 0.10", "0.01 < p < 0.05", "p < 0.01"} <= set(texts)


def test_baujat_coordinates_are_metafors(demo_loaded: None) -> None:
    """metafor's baujat(): x = (y_i - mu)^2 / (tau2 + v_i), y = (mu_(-i) - mu)^2 / se_(-i)^2."""
    result = _current("secure-attachment")
    rows = _csv(signed_in("steering"), f"/results/{result.pk}/tables/baujat.csv")
    fit, loo, es = result.blocks["fit"], result.blocks["leave1out"], result.blocks["effect_sizes"]
    mu, tau2 = fit["beta"][0], fit["tau2"]
    assert len(rows) == result.k
    for i, row in enumerate(rows):
        assert math.isclose(
            float(row["heterogeneity_contribution"]), (es["yi"][i] - mu) ** 2 / (tau2 + es["vi"][i])
        )
        assert math.isclose(float(row["influence"]), (loo["estimate"][i] - mu) ** 2 / loo["se"][i] ** 2)


def test_a_figure_is_drawn_once_and_then_served_from_the_store(demo_loaded: None, monkeypatch: Any) -> None:
    result = _current("secure-attachment")
    client = signed_in("steering")
    path = store.path_for(
        result.pk, "forest", "weight-rows", "svg"
    )  # drawn with the rows the steering group reads
    assert not path.exists()
    first = client.get(f"/results/{result.pk}/figures/forest.svg?sort=weight")
    assert first.status_code == 200 and path.read_bytes() == first.content
    stamp = path.stat().st_mtime_ns

    def no_drawing(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("drawn again")

    monkeypatch.setattr(catalog, "build", no_drawing)
    again = client.get(f"/results/{result.pk}/figures/forest.svg?sort=weight")
    assert again.status_code == 200 and again.content == first.content
    assert path.stat().st_mtime_ns == stamp
    assert again["ETag"] == first["ETag"] and "private" in again["Cache-Control"]
    assert again["Content-Disposition"].startswith("inline;")
    assert client.get(f"/results/{result.pk}/figures/forest.svg?sort=weight&download=1")[
        "Content-Disposition"
    ].startswith("attachment;")
    not_modified = client.get(
        f"/results/{result.pk}/figures/forest.svg?sort=weight", HTTP_IF_NONE_MATCH=first["ETag"]
    )
    assert not_modified.status_code == 304
    # another order is another rendering
    with pytest.raises(AssertionError, match="drawn again"):
        client.get(f"/results/{result.pk}/figures/forest.svg?sort=year")


def test_the_same_result_always_gives_the_same_svg_bytes(demo_loaded: None) -> None:
    from apps.portal.figures import draw

    inp = _inputs(_current("secure-attachment"))
    one = draw.save(catalog.build(inp, "funnel"), "svg", "t")
    two = draw.save(catalog.build(inp, "funnel"), "svg", "t")
    assert one == two and b"<dc:date>" not in one


def _unreleased_result() -> AnalysisResult:
    outcome = Outcome.objects.get(code="secure-attachment")
    analysis = analysis_create(
        actor=None, outcome=outcome, data={"name": "By intervention", "subgroup": "intervention"}
    )
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done"
    return result


def test_who_may_not_read_a_result_gets_404_for_its_figures_and_tables(demo_loaded: None) -> None:
    unreleased = _unreleased_result()
    released = _current("secure-attachment")
    for username in ("member-north", "dm-north"):
        client = signed_in(username)
        assert client.get(f"/results/{unreleased.pk}/figures/forest.svg").status_code == 404
        assert client.get(f"/results/{unreleased.pk}/figures/history.png").status_code == 404
        assert client.get(f"/results/{unreleased.pk}/tables/forest.csv").status_code == 404
        assert client.get(f"/outcomes/secure-attachment/?result={unreleased.pk}").status_code == 404
        assert client.get(f"/results/{released.pk}/figures/forest.svg").status_code == 200
    steering = signed_in("steering")
    assert steering.get(f"/results/{unreleased.pk}/figures/forest.svg").status_code == 200
    anonymous = Client().get(f"/results/{released.pk}/figures/forest.svg")
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]


def test_unknown_figures_formats_and_orders_are_refused_with_4xx(demo_loaded: None) -> None:
    client = signed_in("steering")
    rr, smd = _current("secure-attachment"), _current("postnatal-depression")
    assert client.get(f"/results/{rr.pk}/figures/nope.svg").status_code == 404
    assert client.get(f"/results/{rr.pk}/figures/forest.gif").status_code == 404
    assert client.get(f"/results/{rr.pk}/figures/forest.svg.svg").status_code == 404
    assert client.get(f"/results/{rr.pk}/tables/nope.csv").status_code == 404
    assert client.get(f"/results/{rr.pk}/figures/bubble.svg").status_code == 404  # no meta-regression
    assert client.get(f"/results/{smd.pk}/figures/baujat.svg").status_code == 404  # a CHE model
    assert client.get(f"/results/{rr.pk + 10_000}/figures/forest.svg").status_code == 404
    bad = client.get(f"/results/{rr.pk}/figures/forest.svg?sort=bogus")
    assert bad.status_code == 400 and b"sort must be one of" in bad.content
    assert client.get(f"/results/{rr.pk}/tables/forest.csv?sort=bogus").status_code == 400
    assert client.get("/outcomes/secure-attachment/?result=abc").status_code == 404
    assert client.get("/outcomes/secure-attachment/?sort=bogus").status_code == 200


def test_subgroups_and_meta_regression_have_their_figures(demo_loaded: None) -> None:
    grouped = _unreleased_result()
    client = signed_in("steering")
    page = client.get(f"/outcomes/secure-attachment/?analysis={grouped.analysis_id}").content.decode()
    assert "subgroups" in _figures(page)
    texts = _texts(client.get(f"/results/{grouped.pk}/figures/forest.svg").content)
    levels = grouped.blocks["subgroups"]["levels"]
    for level in levels:
        assert f"intervention: {level}" in texts
    summary = _csv(client, f"/results/{grouped.pk}/tables/subgroups.csv")
    assert [float(r["estimate"]) for r in summary] == [
        g["beta"] for g in grouped.blocks["subgroups"]["groups"]
    ]

    outcome = Outcome.objects.get(code="secure-attachment")
    analysis = analysis_create(actor=None, outcome=outcome, data={"name": "Year", "mods": ["year"]})
    regression = analysis_recompute(analysis_id=analysis.pk)
    assert regression is not None and regression.status == "done"
    page = client.get(f"/outcomes/secure-attachment/?analysis={analysis.pk}").content.decode()
    assert "bubble" in _figures(page)
    svg = client.get(f"/results/{regression.pk}/figures/bubble.svg")
    assert svg.status_code == 200 and "year" in _texts(svg.content)
    bubble = _csv(client, f"/results/{regression.pk}/tables/bubble.csv")
    assert len(bubble) == regression.k
    assert math.isclose(sum(float(r["weight_percent"]) for r in bubble), 100.0)
    # a meta-regression has no pooled estimate to draw
    assert "Pooled (random effects)" not in _texts(
        client.get(f"/results/{regression.pk}/figures/forest.svg").content
    )


def test_history_shows_each_result_with_a_link_to_its_snapshot(demo_loaded: None) -> None:
    analysis = Analysis.objects.get(outcome__code="secure-attachment", is_default=True)
    first = analysis.current_result
    assert first is not None
    analysis_update(actor=None, analysis=analysis, changes={"method": "DL"})
    second = analysis_recompute(analysis_id=analysis.pk)
    assert second is not None and second.status == "done"
    client = signed_in("steering")
    page = client.get("/outcomes/secure-attachment/").content.decode()
    history = _figures(page)["history"]
    assert history == f"/results/{second.pk}/figures/history.svg"
    texts = _texts(client.get(history).content)
    assert str(first.pk) in texts and str(second.pk) in texts  # labelled by result, as in the API
    rows = _csv(client, f"/results/{second.pk}/tables/history.csv")
    assert [int(r["result"]) for r in rows] == [first.pk, second.pk]
    assert rows[0]["dataset_versions"].count(":v") == len(first.dataset_versions)
    table = page.split('id="result-history"')[1].split("</table>")[0]
    assert f'href="?analysis={analysis.pk}&amp;result={first.pk}"' in table
    earlier = client.get(f"/outcomes/secure-attachment/?result={first.pk}").content.decode()
    assert 'id="earlier-result"' in earlier and f"/results/{first.pk}/figures/forest.svg" in earlier
    # members read only released results: their history is the released one alone
    member = signed_in("member-north")
    assert member.get(f"/results/{second.pk}/figures/history.svg").status_code == 404
    member_rows = _csv(member, f"/results/{first.pk}/tables/history.csv")
    assert [int(r["result"]) for r in member_rows] == [first.pk]


def test_every_table_on_the_page_can_be_downloaded(demo_loaded: None) -> None:
    client = signed_in("steering")
    for code in ("secure-attachment", "postnatal-depression"):
        page = client.get(f"/outcomes/{code}/").content.decode()
        links = set(re.findall(r'href="(/results/\d+/tables/\w+\.csv[^"]*)"', page))
        names = {re.search(r"/tables/(\w+)\.csv", link).group(1) for link in links}  # type: ignore[union-attr]
        assert {"forest", "funnel", "effect_sizes", "provenance", "history"} <= names
        for link in links:
            assert client.get(link.replace("&amp;", "&")).status_code == 200, link
    result = _current("secure-attachment")
    effects = _csv(client, f"/results/{result.pk}/tables/effect_sizes.csv")
    assert len(effects) == len(result.blocks["effect_sizes"]["yi"])
    provenance = _csv(client, f"/results/{result.pk}/tables/provenance.csv")
    assert [r["checksum"] for r in provenance] == [v["checksum"] for v in result.dataset_versions]


@pytest.mark.django_db
def test_a_reader_who_may_not_read_every_centres_rows_gets_the_figures_without_them(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    """Years, moderators and subgroups are the centres' data: a member of one centre reading a
    released result gets its figures and tables without another centre's rows (as the API's
    export refuses them), the steering group with them; the two renderings are stored apart."""
    from tests.conftest import SMD_ROWS, publish, store_rows

    rows = [dict(r, study=f"Trial {'ABCD'[i]}", year=1991 + i) for i, r in enumerate(SMD_ROWS)]
    store_rows(centre=cast["centre_b"], outcome=cast["outcome"], rows=rows, submit=True)
    steering = cast["users"]["steering"]
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_update(actor=steering, analysis=analysis, changes={"mods": ["year"]})
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None
    publish(steering, result)

    def years(who: Any, name: str) -> set[str]:
        client = Client()
        client.force_login(who)
        response = client.get(f"/results/{result.pk}/tables/{name}.csv")
        assert response.status_code == 200, (name, response.status_code)
        table = list(csv.DictReader(io.StringIO(response.content.decode())))
        return {str(v) for row in table for k, v in row.items() if k in ("year", "moderator") and v}

    member = cast["users"]["member_a"]
    assert years(steering, "forest") >= {"1991", "1994"}
    assert not years(member, "forest") & {"1991", "1992", "1993", "1994", "1991.0"}
    member_client = Client()
    member_client.force_login(member)
    assert member_client.get(f"/results/{result.pk}/tables/bubble.csv").status_code == 404
    assert member_client.get(f"/results/{result.pk}/figures/forest.svg?sort=year").status_code == 200
    svg = member_client.get(f"/results/{result.pk}/figures/forest.svg").content.decode()
    assert "1991" not in svg


@pytest.mark.django_db
def test_a_label_with_dollar_signs_is_drawn_as_written(cast: dict[str, Any], tmp_media: Any) -> None:
    """A "$" in a study label is text, not a formula: the figures draw it as written (a formula
    parser would fail on one label and set another in italics)."""
    from tests.conftest import SMD_ROWS, store_rows

    labels = ["Adams $\\frac$ 2015", "Baker $5 vs $6", "Chen 2019", "Diaz 2020"]
    rows = [dict(r, study=label) for r, label in zip(SMD_ROWS, labels, strict=True)]
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=rows, submit=True)
    result = analysis_recompute(analysis_id=Analysis.objects.get(outcome=cast["outcome"], is_default=True).pk)
    assert result is not None
    client = Client()
    client.force_login(cast["users"]["steering"])
    for name in ("forest", "baujat", "funnel"):
        for fmt in ("svg", "png"):
            response = client.get(f"/results/{result.pk}/figures/{name}.{fmt}")
            assert response.status_code == 200, (name, fmt)
    texts = _texts(client.get(f"/results/{result.pk}/figures/forest.svg").content)
    assert "Adams $\\frac$ 2015" in texts and "Baker $5 vs $6" in texts


@pytest.mark.django_db
@pytest.mark.parametrize("dependence", ["multilevel", "che"])
def test_a_multilevel_model_of_one_row_per_study_weighs_each_study_as_its_own(
    cast: dict[str, Any], tmp_media: Any, dependence: str
) -> None:
    """Studies labelled 1..4 (labels that look like row numbers), one row each: each row carries its
    own study's weight, and the weights sum to 100."""
    from tests.conftest import SMD_ROWS, store_rows

    rows = [dict(r, study=str(i + 1)) for i, r in enumerate(SMD_ROWS)]
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=rows, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_update(actor=cast["users"]["steering"], analysis=analysis, changes={"dependence": dependence})
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None
    client = Client()
    client.force_login(cast["users"]["steering"])
    table = [r for r in _csv(client, f"/results/{result.pk}/tables/forest.csv") if r["kind"] == "study"]
    weights = {r["label"]: float(r["weight_percent"]) for r in table}
    assert set(weights) == {"1", "2", "3", "4"}
    assert math.isclose(sum(weights.values()), 100.0, rel_tol=1e-9)
    # more precise studies weigh more: ordered as their inverse variances
    vi = {r["label"]: float(r["vi"]) for r in table}
    assert sorted(weights, key=weights.__getitem__) == sorted(vi, key=lambda s: -vi[s])


def test_the_page_names_the_model_and_the_tests_the_result_used(demo_loaded: None) -> None:
    client = signed_in("steering")
    che = client.get("/outcomes/postnatal-depression/").content.decode()
    line = che.split('id="analysis-line"')[1].split("</p>")[0]
    assert "cluster-robust (CR2) tests" in line and "z test" not in line
    assert "Correlated and hierarchical effects" in che and "k = 77 <span" in che
    assert "No cumulative meta-analysis and no Baujat plot" in che.split('id="figures-not-drawn"')[1]
    independent = client.get("/outcomes/secure-attachment/").content.decode()
    assert "Random effects, one row per study" in independent and 'id="figures-not-drawn"' not in independent
    assert "z test" in independent.split('id="analysis-line"')[1].split("</p>")[0]


def test_the_history_is_revalidated_and_a_gone_page_says_what_may_have_happened(demo_loaded: None) -> None:
    """The history's points follow the results a reader may see (a release, an embargo's end), so
    it is never served from a browser's cache unchecked; the figures of a result are."""
    client = signed_in("member-north")
    result = _current("secure-attachment")
    assert client.get(f"/results/{result.pk}/figures/history.svg")["Cache-Control"] == "private, no-cache"
    assert "max-age=3600" in client.get(f"/results/{result.pk}/figures/forest.svg")["Cache-Control"]
    gone = client.get("/upload/" + "0" * 32 + "/")
    assert gone.status_code == 404 and "an upload preview ends when it is confirmed" in gone.content.decode()


def test_a_result_stored_before_the_engine_kept_the_figure_blocks_is_drawn_without_them(
    demo_loaded: None,
) -> None:
    """Weights, Baujat's coordinates and Egger's line are the engine's blocks: a result stored
    without them gets its figures without them, each saying so, and nothing is recomputed."""
    from apps.portal.figures import draw
    from apps.portal.views_outcome import _not_drawn

    stored = _current("secure-attachment")
    blocks = {k: v for k, v in stored.blocks.items() if k not in ("weights", "baujat")}
    blocks["funnel"] = {k: v for k, v in blocks["funnel"].items() if k != "egger_line"}
    kept = ("analysis", "spec", "studies", "dataset_versions", "labels")
    older = AnalysisResult(blocks=blocks, **{name: getattr(stored, name) for name in kept})
    inp = _inputs(older)
    assert "baujat" not in catalog.available(inp) and "funnel" in catalog.available(inp)
    assert "recomputing the analysis adds them" in _not_drawn(older)
    forest = catalog.table(inp, "forest")
    weights = [row[forest.columns.index("weight_percent")] for row in forest.rows if row[1] == "study"]
    assert weights and all(w is None for w in weights)
    texts = " ".join(_texts(draw.save(catalog.build(inp, "forest"), "svg", "t")))
    assert "the model's weights are not stored for this result" in texts
    texts = " ".join(_texts(draw.save(catalog.build(inp, "funnel"), "svg", "t")))
    assert "Egger's line is not drawn: this result was stored before the engine kept it" in texts
    assert "Egger's regression line" not in texts


def test_the_figures_compute_no_statistics_of_their_own() -> None:
    """The figures adapt the engine's blocks: no module of apps/portal/figures imports a model fit
    (``rma``, ``rma.mv``), the sensitivity analyses or the bias tests."""
    import ast
    from pathlib import Path

    fits = ("rma", "multilevel", "sensitivity", "bias", "weights", "egger_line", "one_level", "dependent")
    folder = Path(__file__).resolve().parents[2] / "apps" / "portal" / "figures"
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("workers.metaanalysis"):
                module = (node.module or "").split(".")
                assert not set(module[2:3]) & set(fits), (path.name, node.module)


@pytest.mark.django_db
def test_a_multilevel_meta_regression_draws_its_forest_without_study_weights(
    cast: dict[str, Any], tmp_media: Any
) -> None:
    """A multilevel model with moderators has no row-sum weights (metafor: only for intercept-only
    models), so its forest has no study weights, and says so."""
    from tests.conftest import SMD_ROWS, store_rows

    rows = [dict(r, study=f"Trial {i}", year=2000 + i) for i, r in enumerate(SMD_ROWS * 2)]
    store_rows(centre=cast["centre_a"], outcome=cast["outcome"], rows=rows, submit=True)
    analysis = Analysis.objects.get(outcome=cast["outcome"], is_default=True)
    analysis_update(
        actor=cast["users"]["steering"],
        analysis=analysis,
        changes={"dependence": "multilevel", "mods": ["year"]},
    )
    result = analysis_recompute(analysis_id=analysis.pk)
    assert result is not None and result.status == "done"
    assert result.blocks["multilevel_weights"]["study_weight"] is None
    client = Client()
    client.force_login(cast["users"]["steering"])
    table = _csv(client, f"/results/{result.pk}/tables/forest.csv")
    assert [r["weight_percent"] for r in table if r["kind"] == "study"] == [""] * 8
    texts = " ".join(_texts(client.get(f"/results/{result.pk}/figures/forest.svg").content))
    assert "the model's weights are not stored for this result" in texts
