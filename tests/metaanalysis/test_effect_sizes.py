"""Effect sizes against metafor (escalc) and against hand-derived values at the edges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tests.metaanalysis.reference_cases import assert_matches, columns_of, load_cases
from workers.metaanalysis.effect_sizes import (
    InvalidStudyDataError,
    add_to_zero_cells,
    compute_effect_sizes,
)
from workers.metaanalysis.errors import InvalidInputError


@pytest.mark.parametrize("case", load_cases("effect_sizes"))
def test_matches_metafor_escalc(case):
    result = compute_effect_sizes(case["measure"], columns_of(case))

    expected = case["expected"]["effect_sizes"]
    assert_matches(result.yi, expected["yi"], "yi")
    assert_matches(result.vi, expected["vi"], "vi")
    # every NA carries a reason, and only NAs do
    na_rows = {
        i
        for i, (y, v) in enumerate(zip(expected["yi"], expected["vi"], strict=True))
        if y is None or v is None
    }
    assert set(result.na_reasons) == na_rows


def test_matches_metafor_unit_tests_rom_and_correlations():
    # metafor 3.8-1 tests/testthat/test_misc_escalc.r, given to 4 decimals: ROM on rows 1-4 of
    # dat.normand1999, and COR/ZCOR on rows 1, 13, 33, 102 of dat.mcdaniel1994
    normand = {
        "m1i": [55, 27, 64, 66],
        "sd1i": [47, 7, 17, 20],
        "n1i": [155, 31, 75, 18],
        "m2i": [75, 29, 119, 137],
        "sd2i": [64, 4, 29, 48],
        "n2i": [156, 32, 71, 18],
    }
    rom = compute_effect_sizes("ROM", normand)
    np.testing.assert_allclose(rom.yi, [-0.3102, -0.0715, -0.6202, -0.7303], atol=5e-5)
    np.testing.assert_allclose(rom.vi, [0.0094, 0.0028, 0.0018, 0.0119], atol=5e-5)

    mcdaniel = {"ri": [0.0, 0.62, 0.99, -0.13], "ni": [123, 15, 6, 41]}
    cor = compute_effect_sizes("COR", mcdaniel)
    np.testing.assert_allclose(cor.vi, [0.0082, 0.0271, 0.0001, 0.0242], atol=5e-5)
    zcor = compute_effect_sizes("ZCOR", mcdaniel)
    np.testing.assert_allclose(zcor.yi, [0.0000, 0.7250, 2.6467, -0.1307], atol=5e-5)
    np.testing.assert_allclose(zcor.vi, [0.0083, 0.0833, 0.3333, 0.0263], atol=5e-5)


# ---------------------------------------------------------------------------------------------
# zero cells


def test_zero_cell_gets_one_half_in_that_table_only():
    tables = {"ai": [0, 10], "bi": [10, 20], "ci": [5, 4], "di": [5, 30]}

    result = compute_effect_sizes("OR", tables)

    a, b, c, d = 0.5, 10.5, 5.5, 5.5
    assert result.yi[0] == pytest.approx(math.log(a * d / (b * c)), rel=1e-12)
    assert result.vi[0] == pytest.approx(1 / a + 1 / b + 1 / c + 1 / d, rel=1e-12)
    assert result.yi[1] == pytest.approx(math.log(10 * 30 / (20 * 4)), rel=1e-12)


def test_without_zero_cell_correction_the_log_ratio_is_missing_with_reason():
    tables = {"ai": [0, 10], "bi": [10, 20], "ci": [5, 4], "di": [5, 30]}

    result = compute_effect_sizes("RR", tables, to="none")

    assert np.isnan(result.yi[0]) and np.isnan(result.vi[0])
    assert "zero cell" in result.na_reasons[0]
    assert np.isfinite(result.yi[1])


def test_if0all_corrects_every_table_when_one_has_a_zero():
    tables = {"ai": [0, 10], "bi": [10, 20], "ci": [5, 4], "di": [5, 30]}

    result = compute_effect_sizes("OR", tables, to="if0all")

    assert result.yi[1] == pytest.approx(math.log(10.5 * 30.5 / (20.5 * 4.5)), rel=1e-12)


def test_double_zero_tables_are_kept_by_default_and_dropped_with_drop00():
    tables = {"ai": [0, 3], "bi": [20, 17], "ci": [0, 6], "di": [25, 14]}

    kept = compute_effect_sizes("OR", tables)
    dropped = compute_effect_sizes("OR", tables, drop00=True)

    assert kept.yi[0] == pytest.approx(math.log(0.5 * 25.5 / (20.5 * 0.5)), rel=1e-12)
    assert np.isnan(dropped.yi[0]) and np.isnan(dropped.vi[0])
    assert "drop00" in dropped.na_reasons[0]
    assert dropped.yi[1] == kept.yi[1]


def test_add_to_zero_cells_leaves_missing_values_missing():
    ai, ci = add_to_zero_cells([np.array([0.0, np.nan]), np.array([3.0, 4.0])], 0.5, "only0")

    np.testing.assert_array_equal(ai, [0.5, np.nan])
    np.testing.assert_array_equal(ci, [3.5, 4.0])  # row 2 has no zero among its known cells


def test_proportion_with_no_events_is_corrected():
    result = compute_effect_sizes("PR", {"xi": [0], "ni": [20]})

    assert result.yi[0] == pytest.approx(0.5 / 21, rel=1e-12)
    assert result.vi[0] == pytest.approx((0.5 / 21) * (20.5 / 21) / 21, rel=1e-12)


def test_peto_log_odds_ratio_is_observed_minus_expected_over_variance():
    a, b, c, d = 12, 30, 7, 41
    n1, n2, n = a + b, c + d, a + b + c + d
    expected = (a + c) * n1 / n
    variance = (a + c) * (b + d) * n1 * n2 / (n**2 * (n - 1))

    result = compute_effect_sizes("PETO", {"ai": [a], "bi": [b], "ci": [c], "di": [d]})

    assert result.yi[0] == pytest.approx((a - expected) / variance, rel=1e-12)
    assert result.vi[0] == pytest.approx(1 / variance, rel=1e-12)


# ---------------------------------------------------------------------------------------------
# where metafor gives NA, and why


def test_correlation_variance_needs_more_than_three_observations():
    result = compute_effect_sizes("ZCOR", {"ri": [0.3, 0.3, 1.0], "ni": [3, 10, 20]})

    # metafor keeps yi but not vi for ni <= 3; Fisher's z of |r| = 1 is infinite: both missing
    assert result.yi[0] == pytest.approx(math.atanh(0.3), rel=1e-12)
    assert np.isnan(result.vi[0])
    assert "ni > 3" in result.na_reasons[0]
    assert result.vi[1] == pytest.approx(1 / 7, rel=1e-12)
    assert np.isnan(result.yi[2]) and np.isnan(result.vi[2])
    assert "|ri| = 1" in result.na_reasons[2]


def test_raw_correlation_with_tiny_sample_keeps_its_value():
    result = compute_effect_sizes("COR", {"ri": [0.5], "ni": [2]})

    assert result.yi[0] == 0.5
    assert np.isnan(result.vi[0])


def test_hedges_g_needs_more_than_three_participants():
    result = compute_effect_sizes(
        "SMD", {"m1i": [1.0], "sd1i": [1.0], "n1i": [2], "m2i": [0.0], "sd2i": [1.0], "n2i": [1]}
    )

    assert np.isnan(result.yi[0]) and np.isnan(result.vi[0])
    assert "n1i + n2i > 3" in result.na_reasons[0]


def test_hedges_correction_is_exact_and_does_not_overflow_for_large_samples():
    # m = 2000 > 344, where gamma(m/2) overflows; c(m) = 1 - 3/(4m - 1) + O(m^-2)
    result = compute_effect_sizes(
        "SMD", {"m1i": [1.0], "sd1i": [2.0], "n1i": [1001], "m2i": [0.0], "sd2i": [2.0], "n2i": [1001]}
    )

    assert result.yi[0] == pytest.approx(0.5 * (1 - 3 / (4 * 2000 - 1)), rel=1e-7)


def test_ratio_of_means_of_opposite_sign_is_missing_but_same_sign_is_not():
    result = compute_effect_sizes(
        "ROM",
        {
            "m1i": [-2.0, -2.0],
            "sd1i": [1.0, 1.0],
            "n1i": [10, 10],
            "m2i": [4.0, -4.0],
            "sd2i": [1, 1],
            "n2i": [10, 10],
        },
    )

    assert np.isnan(result.yi[0])
    assert "same sign" in result.na_reasons[0]
    assert result.yi[1] == pytest.approx(math.log(0.5), rel=1e-12)


def test_missing_input_propagates_only_to_what_depends_on_it():
    md = compute_effect_sizes(
        "MD", {"m1i": [5.0], "sd1i": [None], "n1i": [10], "m2i": [3.0], "sd2i": [1.0], "n2i": [10]}
    )
    # the mean difference does not need the SDs: metafor keeps yi, only vi is NA
    assert md.yi[0] == 2.0
    assert np.isnan(md.vi[0])
    assert md.na_reasons[0] == "missing value in sd1i"

    irr = compute_effect_sizes("IRR", {"x1i": [4], "t1i": [None], "x2i": [2], "t2i": [50.0]})
    # and the variance of the log rate ratio needs only the counts
    assert np.isnan(irr.yi[0])
    assert irr.vi[0] == pytest.approx(1 / 4 + 1 / 2, rel=1e-12)


def test_to_dict_gives_none_for_missing_values():
    result = compute_effect_sizes("GEN", {"yi": [0.1, None], "vi": [0.01, 0.02]})

    out = result.to_dict()

    assert out["yi"] == [0.1, None]
    assert out["vi"] == [0.01, 0.02]
    assert out["na_reasons"] == {"1": "missing value in yi"}


def test_result_arrays_are_read_only():
    result = compute_effect_sizes("GEN", {"yi": [0.1], "vi": [0.01]})

    with pytest.raises(ValueError, match="read-only"):
        result.yi[0] = 1.0


# ---------------------------------------------------------------------------------------------
# alternative inputs


def test_group_sizes_can_replace_non_events():
    by_cells = compute_effect_sizes("RR", {"ai": [4, 6], "bi": [119, 300], "ci": [11, 29], "di": [128, 274]})
    by_sizes = compute_effect_sizes(
        "RR", {"ai": [4, 6], "n1i": [123, 306], "ci": [11, 29], "n2i": [139, 303]}
    )

    np.testing.assert_array_equal(by_cells.yi, by_sizes.yi)
    np.testing.assert_array_equal(by_cells.vi, by_sizes.vi)


def test_standard_error_can_replace_variance():
    result = compute_effect_sizes("GEN", {"yi": [0.2], "sei": [0.3]})

    assert result.vi[0] == pytest.approx(0.09, rel=1e-12)


def test_pandas_frame_is_accepted():
    import pandas as pd

    # nullable dtypes hand over pd.NA rather than NaN
    frame = pd.DataFrame(
        {
            "ri": pd.array([0.2, None], dtype="Float64"),
            "ni": pd.array([50, 60], dtype="Int64"),
            "study": ["a", "b"],
        }
    )

    result = compute_effect_sizes("ZCOR", frame)

    assert result.yi[0] == pytest.approx(math.atanh(0.2), rel=1e-12)
    assert result.na_reasons == {1: "missing value in ri"}


# ---------------------------------------------------------------------------------------------
# invalid input


def test_every_invalid_row_is_reported_at_once():
    tables = {"ai": [5, -1, 30], "n1i": [20, 20, 20], "ci": [3, 3, 3], "di": [10, 10, 10]}

    with pytest.raises(InvalidStudyDataError) as caught:
        compute_effect_sizes("OR", tables)

    problems = {(p.row, p.column) for p in caught.value.problems}
    assert problems == {(1, "ai"), (2, "ai")}
    assert (caught.value.row, caught.value.column) == (1, "ai")
    assert len(caught.value.to_dict()["problems"]) == 2


def test_total_contradicting_the_cells_is_an_error():
    with pytest.raises(InvalidStudyDataError) as caught:
        compute_effect_sizes("OR", {"ai": [5], "bi": [10], "n1i": [16], "ci": [3], "di": [9]})

    assert (caught.value.row, caught.value.column) == (0, "n1i")


@pytest.mark.parametrize(
    ("measure", "data", "column"),
    [
        ("COR", {"ri": [1.2], "ni": [10]}, "ri"),
        ("COR", {"ri": [0.2], "ni": [0]}, "ni"),
        ("MD", {"m1i": [1], "sd1i": [-1], "n1i": [5], "m2i": [1], "sd2i": [1], "n2i": [5]}, "sd1i"),
        ("SMD", {"m1i": [1], "sd1i": [1], "n1i": [0], "m2i": [1], "sd2i": [1], "n2i": [5]}, "n1i"),
        ("IRR", {"x1i": [1], "t1i": [0], "x2i": [1], "t2i": [10]}, "t1i"),
        ("PLO", {"xi": [12], "ni": [10]}, "xi"),
        ("GEN", {"yi": [0.1], "vi": [-0.01]}, "vi"),
        ("GEN", {"yi": [0.1], "vi": [float("inf")]}, "vi"),
        ("GEN", {"yi": ["0.1"], "vi": [0.01]}, "yi"),
    ],
)
def test_values_outside_their_domain_are_refused(measure, data, column):
    with pytest.raises(InvalidStudyDataError) as caught:
        compute_effect_sizes(measure, data)

    assert caught.value.column == column
    assert caught.value.row == 0


def test_unknown_measure_and_absent_column_are_refused():
    with pytest.raises(InvalidInputError) as unknown:
        compute_effect_sizes("XYZ", {"yi": [1]})
    with pytest.raises(InvalidInputError) as absent:
        compute_effect_sizes("OR", {"ai": [1], "bi": [2], "ci": [3]})

    assert unknown.value.code == "unknown_measure"
    assert (absent.value.code, absent.value.column) == ("missing_column", "di")


def test_columns_of_different_lengths_are_refused():
    with pytest.raises(InvalidInputError) as caught:
        compute_effect_sizes("COR", {"ri": [0.1, 0.2], "ni": [10]})

    assert caught.value.code == "ragged_columns"


def test_unknown_zero_cell_rule_is_refused():
    with pytest.raises(InvalidInputError):
        compute_effect_sizes("OR", {"ai": [1], "bi": [2], "ci": [3], "di": [4]}, to="sometimes")  # type: ignore[arg-type]


def test_the_zero_cell_helpers_are_still_reached_through_effect_sizes():
    from workers.metaanalysis import effect_sizes, kernels

    # the kernels moved to kernels.py; mantel_haenszel, the CLI and callers import from here
    assert effect_sizes.add_to_zero_cells is kernels.add_to_zero_cells
    assert effect_sizes.ZERO_CELL_RULES == kernels.ZERO_CELL_RULES == ("all", "only0", "if0all", "none")
