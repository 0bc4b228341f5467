"""Mantel-Haenszel and Peto pooling against metafor, Stata's metan, statsmodels and closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.metaanalysis.reference_cases import assert_matches, columns_of, load_cases
from workers.metaanalysis.errors import InsufficientDataError, InvalidInputError
from workers.metaanalysis.mantel_haenszel import rma_mh, rma_peto

FIELDS = ("beta", "se", "stat", "pval", "ci_lb", "ci_ub", "QE", "QEp", "I2", "H2")

# dat.bcg (Colditz et al. 1994), as in the reference cases
BCG = {
    "ai": [4, 6, 3, 62, 33, 180, 8, 505, 29, 17, 186, 5, 27],
    "bi": [119, 300, 228, 13536, 5036, 1361, 2537, 87886, 7470, 1699, 50448, 2493, 16886],
    "ci": [11, 29, 11, 248, 47, 372, 10, 499, 45, 65, 141, 3, 29],
    "di": [128, 274, 209, 12619, 5761, 1079, 619, 87892, 7232, 1600, 27197, 2338, 17825],
}


@pytest.mark.parametrize("case", load_cases("mantel_haenszel"))
def test_mantel_haenszel_matches_metafor(case):
    result = rma_mh(case["measure"], columns_of(case), level=case["level"])

    for name in FIELDS:
        assert_matches(getattr(result, name), case["expected"]["mantel_haenszel"][name], name)


@pytest.mark.parametrize("case", load_cases("peto"))
def test_peto_matches_metafor(case):
    result = rma_peto(columns_of(case), level=case["level"])

    for name in FIELDS:
        assert_matches(getattr(result, name), case["expected"]["peto"][name], name)


def test_mantel_haenszel_risk_ratio_matches_stata_metan():
    # metafor's tests/testthat/test_misc_metan_vs_rma.mh_with_dat.bcg.r: Stata's metan, 4 decimals
    result = rma_mh("RR", BCG)

    assert result.beta == pytest.approx(-0.4537, abs=5e-5)
    assert result.ci_lb == pytest.approx(-0.5308, abs=5e-5)
    assert result.ci_ub == pytest.approx(-0.3766, abs=5e-5)
    assert result.stat == pytest.approx(-11.5338, abs=5e-5)
    assert abs(result.QE - 152.5676) < 5e-5


# Computed with statsmodels 0.15 (StratifiedTable: test_null_odds(correction=True) for the
# CMH test, test_equal_odds(adjust=False / True) for Breslow-Day / Tarone, logodds_pooled_se),
# an implementation independent of metafor. li2007 has zero cells and shows the tests on sparse data.
STATSMODELS = {
    "bcg": {
        "se": 0.04100777840423145,
        "MH": 135.68894372390633,
        "BD": 171.7653665793899,
        "TA": 171.7566729938651,
    },
    "li2007": {
        "se": 0.0272621795647501,
        "MH": 0.21791369598143404,
        "MHp": 0.6406341959944384,
        "BD": 64.96327449038219,
        "TA": 64.96327408725509,
        "TAp": 2.202553994190559e-06,
    },
}


@pytest.mark.parametrize("name", ["bcg", "li2007"])
def test_odds_ratio_tests_match_statsmodels(name):
    if name == "bcg":
        data = BCG
    else:
        (case,) = (p.values[0] for p in load_cases("peto") if p.id == "li2007-OR-PM")
        data = columns_of(case)

    result = rma_mh("OR", data)

    for field, value in STATSMODELS[name].items():
        assert getattr(result, field) == pytest.approx(value, rel=1e-9), field
    assert result.k_pos == result.k


# ---------------------------------------------------------------------------------------------
# one table: the pooled estimators reduce to the table's own estimate and variance

A, B, C, D = 12, 30, 7, 41
N1, N2 = A + B, C + D
ONE_TABLE = {"ai": [A], "bi": [B], "ci": [C], "di": [D]}


@pytest.mark.parametrize(
    ("measure", "estimate", "variance"),
    [
        ("OR", math.log(A * D / (B * C)), 1 / A + 1 / B + 1 / C + 1 / D),
        ("RR", math.log(A / N1 / (C / N2)), 1 / A - 1 / N1 + 1 / C - 1 / N2),
        ("RD", A / N1 - C / N2, A / N1 * (1 - A / N1) / N1 + C / N2 * (1 - C / N2) / N2),
    ],
)
def test_single_table_reduces_to_its_own_estimate(measure, estimate, variance):
    result = rma_mh(measure, ONE_TABLE)

    assert result.beta == pytest.approx(estimate, rel=1e-12)
    assert result.se**2 == pytest.approx(variance, rel=1e-12)
    # one study: no heterogeneity test, reported as metafor does
    assert (result.QE, result.QEp, result.I2, result.H2) == (0.0, 1.0, 0.0, 1.0)


def test_single_person_time_study_reduces_to_its_own_estimate():
    x1, t1, x2, t2 = 9, 120.0, 4, 150.0
    data = {"x1i": [x1], "t1i": [t1], "x2i": [x2], "t2i": [t2]}

    irr = rma_mh("IRR", data)
    ird = rma_mh("IRD", data)

    assert irr.beta == pytest.approx(math.log(x1 / t1 / (x2 / t2)), rel=1e-12)
    assert irr.se**2 == pytest.approx(1 / x1 + 1 / x2, rel=1e-12)
    assert ird.beta == pytest.approx(x1 / t1 - x2 / t2, rel=1e-12)
    assert ird.se**2 == pytest.approx(x1 / t1**2 + x2 / t2**2, rel=1e-12)
    assert not np.isnan(irr.MH) and np.isnan(ird.MH)
    assert ird.na_reasons["MH"] == "computed for OR and IRR only"


def test_single_table_peto_is_observed_minus_expected_over_variance():
    n = N1 + N2
    expected = (A + C) * N1 / n
    variance = (A + C) * (B + D) * N1 * N2 / (n**2 * (n - 1))

    result = rma_peto(ONE_TABLE)

    assert result.beta == pytest.approx((A - expected) / variance, rel=1e-12)
    assert result.se == pytest.approx(1 / math.sqrt(variance), rel=1e-12)
    assert (result.QEp, result.I2, result.H2) == (1.0, 0.0, 1.0)


def test_identical_tables_give_the_same_estimate_with_variance_divided_by_k():
    one = rma_mh("OR", ONE_TABLE)
    four = rma_mh("OR", {name: values * 4 for name, values in ONE_TABLE.items()})

    assert four.beta == pytest.approx(one.beta, rel=1e-12)
    assert four.se**2 == pytest.approx(one.se**2 / 4, rel=1e-12)
    assert abs(four.QE) < 1e-12
    assert four.I2 == 0.0


# ---------------------------------------------------------------------------------------------
# sparse and missing data


def test_incomplete_tables_are_left_out_and_double_zero_tables_only_leave_the_q_test():
    data = {name: [*values, 0 if name in ("ai", "ci") else 50] for name, values in BCG.items()}
    data["di"][0] = None

    result = rma_mh("OR", data)
    without = rma_mh("OR", {name: values[1:13] for name, values in BCG.items()})

    # as in metafor, drop00 applies to the per-study effect sizes (the Q test) by default, not to
    # the pooled tables: the double-zero table is pooled, and adds nothing to the MH sums
    assert result.k == 13
    assert result.k_yi == 12
    assert result.rows_used == tuple(range(1, 14))
    assert result.omitted == {0: "missing value in di"}
    for name in FIELDS:
        assert getattr(result, name) == pytest.approx(getattr(without, name), rel=1e-12), name


def test_drop00_for_the_pooled_tables_lists_them():
    data = {"ai": [4, 0], "bi": [20, 30], "ci": [7, 0], "di": [17, 25]}

    result = rma_mh("OR", data, drop00=(True, True))

    assert result.k == 1
    assert "drop00" in result.omitted[1]


def test_odds_ratio_without_events_in_one_arm_is_undefined_with_reasons():
    data = {"ai": [0, 0], "bi": [20, 30], "ci": [3, 5], "di": [17, 25]}

    result = rma_mh("OR", data)

    assert np.isnan(result.beta) and np.isnan(result.QE)
    assert "0 or infinite" in result.na_reasons["beta"]
    assert result.to_dict()["beta"] is None
    # the test of OR = 1 still exists: there are events
    assert np.isfinite(result.MH)


def test_zero_standard_error_gives_no_test_rather_than_certainty():
    # risks of exactly 0 and 1 in every table, corrections off: the SGR variance is 0
    data = {"ai": [0, 10], "bi": [10, 0], "ci": [0, 10], "di": [10, 0]}

    result = rma_mh("RD", data, to=("none", "none"))

    assert result.beta == 0.0 and result.se == 0.0
    assert np.isnan(result.stat) and np.isnan(result.pval)
    assert "standard error is 0" in result.na_reasons["pval"]


def test_zero_sampling_variance_makes_q_undefined_not_zero():
    data = {"ai": [0, 3], "bi": [10, 7], "ci": [0, 5], "di": [10, 5]}

    result = rma_mh("RD", data, to=("none", "none"), drop00=(False, False))

    assert result.k_yi == 2
    assert np.isfinite(result.beta)
    assert np.isnan(result.QE) and np.isnan(result.I2)
    assert "sampling variance 0" in result.na_reasons["QE"]


def test_nothing_left_to_pool_is_an_error():
    data = {"ai": [None, 3], "bi": [20, None], "ci": [0, 5], "di": [17, 25]}

    with pytest.raises(InsufficientDataError):
        rma_mh("RR", data)
    with pytest.raises(InsufficientDataError):
        rma_peto(data)


def test_peto_needs_both_outcomes_somewhere():
    data = {"ai": [0, 0], "bi": [20, 30], "ci": [0, 0], "di": [17, 25]}

    with pytest.raises(InsufficientDataError) as caught:
        rma_peto(data)

    assert caught.value.code == "no_information"


# ---------------------------------------------------------------------------------------------
# options


def test_level_sets_the_width_of_the_interval():
    result = rma_mh("OR", BCG, level=90)

    assert result.ci_ub - result.beta == pytest.approx(1.6448536269514722 * result.se, rel=1e-12)


@pytest.mark.parametrize("level", [0, 100, -5])
def test_level_outside_zero_to_hundred_is_refused(level):
    with pytest.raises(InvalidInputError):
        rma_mh("OR", BCG, level=level)


def test_measure_without_a_mantel_haenszel_estimator_is_refused():
    with pytest.raises(InvalidInputError) as caught:
        rma_mh("SMD", BCG)

    assert caught.value.code == "unknown_measure"


def test_continuity_correction_only_changes_the_tests():
    corrected = rma_mh("OR", BCG)
    plain = rma_mh("OR", BCG, correct=False)

    assert plain.beta == corrected.beta
    assert plain.MH > corrected.MH
