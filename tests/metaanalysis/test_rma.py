"""Unit tests of rma(), predict() and confint() against metafor's results and definitions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.metaanalysis.conftest import CASES_DIR, close, load_case
from workers.metaanalysis.estimators import METHODS
from workers.metaanalysis.rma import confint, predict, rma


@pytest.mark.parametrize("method", list(METHODS))
def test_bcg_fit_matches_metafor(method: str, bcg) -> None:
    name = "bcg-RR-REML.json" if method == "REML" else f"bcg-RR-{method}.json"
    case = load_case(CASES_DIR / name)
    fit = rma(bcg["yi"], bcg["vi"], method=method)
    got = fit.to_dict()
    for key, val in case["expected"]["fit"].items():
        assert close(got[key], val), (key, got[key], val)
    if "predict" in case["expected"]:
        pd = predict(fit).to_dict()
        for key, val in case["expected"]["predict"].items():
            assert close(pd[key], val), (key, pd[key], val)
    if "confint" in case["expected"]:
        cd = confint(fit).to_dict()
        for key, val in case["expected"]["confint"].items():
            assert close(cd[key], val), (key, cd[key], val)


def test_meta_regression_matches_metafor(bcg) -> None:
    case = load_case(CASES_DIR / "bcg-RR-REML-mods.json")
    X = np.column_stack([bcg["ablat"], bcg["year"]])
    fit = rma(bcg["yi"], bcg["vi"], X=X, coef_names=["ablat", "year"])
    got = fit.to_dict()
    for key, val in case["expected"]["fit"].items():
        assert close(got[key], val), (key, got[key], val)


def test_knha_scales_the_variance(bcg) -> None:
    z = rma(bcg["yi"], bcg["vi"])
    kh = rma(bcg["yi"], bcg["vi"], test="knha")
    rss = float(np.sum((bcg["yi"] - z.beta[0]) ** 2 / (bcg["vi"] + z.tau2)))
    assert kh.s2w == pytest.approx(rss / 12, rel=1e-12)
    assert kh.se[0] == pytest.approx(z.se[0] * math.sqrt(kh.s2w), rel=1e-12)
    assert kh.dfs == 12
