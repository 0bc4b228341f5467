"""The blocks the figures draw, against metafor: each row's weight (``weights()`` of ``rma.uni`` and
``rma.mv``, and the row-sum weights summed per study), Baujat's coordinates (``baujat()``) and the
fitted line of the regression test (``regtest()$fit``; for a multilevel model ``rma.mv`` with the
standard error as moderator).

The expected values were computed by R's metafor 3.8-1 with ``figure_blocks/make_expected.R`` on
the data of the reference cases (``cases/``); the tests read them from ``figure_blocks/expected.json``
and never run R.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.metaanalysis.conftest import CASES_DIR, close, load_case
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis

EXPECTED: dict[str, dict[str, Any]] = json.loads(
    (Path(__file__).parent / "figure_blocks" / "expected.json").read_text(encoding="utf-8")
)
ONE_LEVEL = ["bcg-RR-REML", "bcg-RR-REML-knha", "bcg-RR-EE", "bcg-RR-REML-mods"]
MULTILEVEL = {"konstantopoulos2011-GEN-ML-REML": "multilevel", "assink2016-GEN-CHE-rho0.6": "che"}


def blocks_of(case_id: str, dependence: str = "none", **options: Any) -> dict[str, Any]:
    """The engine's report on the reference case's rows, as stored (JSON values)."""
    case = load_case(CASES_DIR / f"{case_id}.json")
    spec = AnalysisSpec(
        measure=case["measure"],
        method=case["method"],
        test=case["test"],
        level=float(case["level"]),
        mods=tuple(case["mods"]),
        dependence=dependence,
        rho=float(case.get("rho", 0.6)),
        **options,
    )
    blocks: dict[str, Any] = run_analysis(spec, case["rows"]).to_dict()["blocks"]
    return blocks


def assert_close(actual: Any, expected: Any, what: str) -> None:
    assert close(actual, expected), f"{what}: engine {actual}, metafor {expected}"


@pytest.mark.parametrize("case_id", ONE_LEVEL)
def test_one_level_weights_are_metafors(case_id: str) -> None:
    blocks = blocks_of(case_id)
    weights = blocks["weights"]
    assert_close(weights["weight"], EXPECTED[case_id]["weight"], "weights(fit)")
    assert weights["study"] == blocks["effect_sizes"]["study"]
    assert math.isclose(sum(weights["weight"]), 100.0)
    # the same numbers influence() reports (one definition)
    assert weights["weight"] == blocks["influence"]["weight"]


@pytest.mark.parametrize("case_id", ONE_LEVEL)
def test_baujat_coordinates_are_metafors(case_id: str) -> None:
    baujat = blocks_of(case_id)["baujat"]
    assert_close(baujat["x"], EXPECTED[case_id]["baujat_x"], "baujat x")
    assert_close(baujat["y"], EXPECTED[case_id]["baujat_y"], "baujat y")
    assert baujat["failed"] == {}


def test_baujat_x_adds_up_to_q_for_the_equal_effects_model() -> None:
    blocks = blocks_of("bcg-RR-EE")
    assert math.isclose(sum(blocks["baujat"]["x"]), blocks["fit"]["QE"], rel_tol=1e-12)


@pytest.mark.parametrize("case_id", ["bcg-RR-REML", "bcg-RR-REML-knha", "bcg-RR-EE"])
def test_the_funnel_carries_the_fitted_line_of_eggers_regression(case_id: str) -> None:
    blocks = blocks_of(case_id)
    line, expected = blocks["funnel"]["egger_line"], EXPECTED[case_id]
    assert_close(line["intercept"], expected["egger_intercept"], "regtest intercept")
    assert_close(line["slope"], expected["egger_slope"], "regtest slope")
    top = expected["max_sei"]
    assert_close(line["se"], [0.0, top], "the line's SE range")
    assert_close(
        line["estimate"],
        [expected["egger_intercept"], expected["egger_intercept"] + expected["egger_slope"] * top],
        "the line's two ends",
    )
    # the same regression as the stored test: its intercept is the limit estimate
    assert line["intercept"] == blocks["egger"]["limit_estimate"]


def test_a_meta_regression_has_weights_and_baujat_but_no_funnel_line() -> None:
    blocks = blocks_of("bcg-RR-REML-mods")
    assert "funnel" not in blocks and len(blocks["weights"]["weight"]) == blocks["fit"]["k"]


def test_without_sensitivity_or_bias_analyses_the_weights_stay() -> None:
    blocks = blocks_of("bcg-RR-REML", sensitivity=False, bias=False)
    assert_close(blocks["weights"]["weight"], EXPECTED["bcg-RR-REML"]["weight"], "weights(fit)")
    assert "baujat" not in blocks and "egger_line" not in blocks["funnel"]


@pytest.mark.parametrize("case_id", sorted(MULTILEVEL))
def test_multilevel_weights_are_metafors(case_id: str) -> None:
    dependence = MULTILEVEL[case_id]
    blocks = blocks_of(case_id, dependence, bias=True)
    suffix = "_vcalc" if dependence == "che" else ""
    weights, expected = blocks[f"multilevel_weights{suffix}"], EXPECTED[case_id]
    assert_close(weights["weight"], expected["weight"], "weights(fit)")
    assert_close(weights["rowsum"], expected["rowsum"], 'weights(fit, type = "rowsum")')
    assert_close(weights["study_weight"], expected["study_weight"], "row-sum weights per study")
    assert weights["study"] == [str(r["study"]) for r in load_case(CASES_DIR / f"{case_id}.json")["rows"]]
    assert weights["studies"] == list(dict.fromkeys(weights["study"]))
    # each study's share reproduces the pooled estimate: sum_j w_j ybar_j with ybar_j its rows'
    # row-sum-weighted mean
    yi = np.array(blocks["effect_sizes"]["yi"])
    estimate = float(np.dot(weights["rowsum"], yi)) / 100.0
    assert math.isclose(estimate, blocks[f"multilevel_fit{suffix}"]["beta"][0], rel_tol=1e-10)


@pytest.mark.parametrize("case_id", sorted(MULTILEVEL))
def test_the_multilevel_regression_line_is_metafors(case_id: str) -> None:
    dependence = MULTILEVEL[case_id]
    egger = blocks_of(case_id, dependence, bias=True)["egger_multilevel"]
    assert_close(egger["limit_estimate"], [EXPECTED[case_id]["egger_intercept"]], "intercept")
    assert_close(egger["slope"], [EXPECTED[case_id]["egger_slope"]], "slope")


def test_a_multilevel_meta_regression_has_no_row_sum_weights_and_says_why() -> None:
    case = load_case(CASES_DIR / "konstantopoulos2011-GEN-ML-REML.json")
    rows = [dict(r, year=1990 + i % 7) for i, r in enumerate(case["rows"])]
    spec = AnalysisSpec(measure="GEN", dependence="multilevel", mods=("year",))
    weights = run_analysis(spec, rows).to_dict()["blocks"]["multilevel_weights"]
    assert weights["rowsum"] is None and weights["study_weight"] is None
    assert "intercept-only" in weights["na_reasons"]["rowsum"]
    assert math.isclose(sum(weights["weight"]), 100.0)


def test_aggregated_studies_carry_their_weights_and_baujat_by_study() -> None:
    blocks = blocks_of("tannersmith2016-GEN-sei-aggregate-rho0.6", "aggregate", sensitivity=True)
    studies = blocks["aggregated"]["study"]
    assert blocks["weights"]["study"] == blocks["baujat"]["study"] == studies
    assert blocks["weights"]["weight"] == blocks["influence"]["weight"]
