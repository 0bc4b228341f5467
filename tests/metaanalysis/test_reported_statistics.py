"""Effect sizes from reported statistics and the change-score, SMDH and MN measures.

The oracle below writes the formulas of ``/work/shared/reference/README.md`` ("Effect sizes from
reported statistics") plainly, one row at a time with ``math``, and picks each row's input form
by the README's order of precedence; the engine (vectorised numpy) must agree with it on random
tables that mix every form. The reference cases (metafor 3.8-1) are checked by
``test_effect_sizes.test_matches_metafor_escalc`` and ``test_reference_cases``.
"""

from __future__ import annotations

import io
import json
import math
import random
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from tests.metaanalysis.reference_cases import CASES_DIR
from workers.metaanalysis import cli, effects, measures
from workers.metaanalysis.effect_sizes import InvalidStudyDataError, compute_effect_sizes
from workers.metaanalysis.errors import InvalidInputError

NAN = math.nan
Row = dict[str, Any]


# ---------------------------------------------------------------------------------------------
# the oracle: the README's table, written out


def J(m: float) -> float:
    """J(m) = Gamma(m/2) / (sqrt(m/2) Gamma((m - 1)/2)); undefined for m <= 1."""
    if m <= 1:
        return NAN
    return math.gamma(m / 2) / (math.sqrt(m / 2) * math.gamma((m - 1) / 2))


def smd_from_d(d: float, n1: float, n2: float) -> tuple[float, float]:
    yi = J(n1 + n2 - 2) * d
    return yi, 1 / n1 + 1 / n2 + yi**2 / (2 * (n1 + n2))


def smd(r: Row) -> tuple[float, float]:
    n1, n2 = r["n1i"], r["n2i"]
    sp = math.sqrt(((n1 - 1) * r["sd1i"] ** 2 + (n2 - 1) * r["sd2i"] ** 2) / (n1 + n2 - 2))
    return smd_from_d((r["m1i"] - r["m2i"]) / sp, n1, n2)


def smdh(r: Row) -> tuple[float, float]:
    n1, n2, sd1, sd2 = r["n1i"], r["n2i"], r["sd1i"], r["sd2i"]
    j = J(n1 + n2 - 2)
    s2 = (sd1**2 + sd2**2) / 2
    yi = j * (r["m1i"] - r["m2i"]) / math.sqrt(s2)
    vi = j**2 * (
        yi**2 * (sd1**4 / (n1 - 1) + sd2**4 / (n2 - 1)) / (2 * (sd1**2 + sd2**2) ** 2)
        + (sd1**2 / (n1 - 1) + sd2**2 / (n2 - 1)) / s2
    )
    return yi, vi


def sdd2(r: Row) -> float:
    return r["sd1i"] ** 2 + r["sd2i"] ** 2 - 2 * r["ri"] * r["sd1i"] * r["sd2i"]


def smcr(r: Row) -> tuple[float, float]:
    ni = r["ni"]
    yi = J(ni - 1) * (r["m1i"] - r["m2i"]) / r["sd1i"]
    return yi, 2 * (1 - r["ri"]) / ni + yi**2 / (2 * ni)


def smcc(r: Row) -> tuple[float, float]:
    ni = r["ni"]
    yi = J(ni - 1) * (r["m1i"] - r["m2i"]) / math.sqrt(sdd2(r))
    return yi, 1 / ni + yi**2 / (2 * ni)


def mc(r: Row) -> tuple[float, float]:
    return r["m1i"] - r["m2i"], sdd2(r) / r["ni"]


def mn(r: Row) -> tuple[float, float]:
    return r["mi"], r["sdi"] ** 2 / r["ni"]


RAW: dict[str, tuple[tuple[str, ...], Callable[[Row], tuple[float, float]]]] = {
    "SMD": (("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"), smd),
    "SMDH": (("m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i"), smdh),
    "SMCR": (("m1i", "m2i", "sd1i", "ni", "ri"), smcr),
    "SMCC": (("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"), smcc),
    "MC": (("m1i", "m2i", "sd1i", "sd2i", "ni", "ri"), mc),
    "MN": (("mi", "sdi", "ni"), mn),
}


def oracle(measure: str, r: Row) -> tuple[str | None, float, float]:
    """(form, yi, vi) of one row: the first complete input set, in the README's order."""

    def has(*names: str) -> bool:
        return all(r.get(n) is not None for n in names)

    if has("yi", "vi"):
        return "yi_vi", r["yi"], r["vi"]
    if has("yi", "sei"):
        return "yi_sei", r["yi"], r["sei"] ** 2
    if measure == "SMD" and has("di", "n1i", "n2i"):
        return "di", *smd_from_d(r["di"], r["n1i"], r["n2i"])
    if measure == "SMD" and has("ti", "n1i", "n2i"):
        return "ti", *smd_from_d(r["ti"] * math.sqrt(1 / r["n1i"] + 1 / r["n2i"]), r["n1i"], r["n2i"])
    columns, formula = RAW[measure]
    if has(*columns):
        return "raw", *formula(r)
    return None, NAN, NAN


# ---------------------------------------------------------------------------------------------
# random tables mixing every form


def _raw_values(measure: str, rng: random.Random) -> Row:
    if measure in ("SMD", "SMDH"):
        return {
            "m1i": rng.gauss(10, 3),
            "sd1i": rng.uniform(0.5, 4),
            "n1i": rng.randint(2, 150),
            "m2i": rng.gauss(9, 3),
            "sd2i": rng.uniform(0.5, 4),
            "n2i": rng.randint(2, 150),
        }
    if measure == "MN":
        return {"mi": rng.gauss(5, 3), "sdi": rng.uniform(0.1, 4), "ni": rng.randint(2, 300)}
    return {
        "m1i": rng.gauss(30, 8),
        "m2i": rng.gauss(25, 8),
        "sd1i": rng.uniform(1, 10),
        "sd2i": rng.uniform(1, 10),
        "ni": rng.randint(3, 300),
        "ri": rng.uniform(-0.95, 0.99),
    }


def random_table(measure: str, k: int, seed: int) -> list[Row]:
    """k rows; each gives a random subset of the forms, so that forms overlap and mix."""
    rng = random.Random(seed)
    rows = []
    for _ in range(k):
        full = {
            **_raw_values(measure, rng),
            "yi": rng.gauss(0.2, 0.8),
            "vi": rng.uniform(0.005, 0.5),
            "sei": rng.uniform(0.05, 0.7),
            "di": rng.gauss(0.3, 0.8),
            "ti": rng.gauss(1, 2.5),
        }
        raw_columns = RAW[measure][0]
        groups = [("yi", "vi"), ("yi", "sei"), ("di",), ("ti",), raw_columns]
        kept: set[str] = set()
        for group in groups:
            if rng.random() < 0.35:
                kept.update(group)
        if rng.random() < 0.15:  # a partial set: one column of a form, never the whole form
            kept.add(rng.choice([*raw_columns, "yi", "vi", "sei", "di", "ti"]))
        if measure == "SMD" and kept & {"di", "ti"} and rng.random() < 0.8:
            kept.update(("n1i", "n2i"))
        rows.append({name: (value if name in kept else None) for name, value in full.items()})
    return rows


def columns_of(rows: list[Row]) -> dict[str, list[Any]]:
    return {name: [r[name] for r in rows] for name in rows[0]}


@pytest.mark.parametrize("measure", list(RAW))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_engine_agrees_with_the_oracle_on_mixed_tables(measure: str, seed: int) -> None:
    rows = random_table(measure, 60, seed)

    es = compute_effect_sizes(measure, columns_of(rows))

    assert len(es.forms) == len(es.derivations) == len(rows)
    for i, row in enumerate(rows):
        form, yi, vi = oracle(measure, row)
        assert es.forms[i] == form, (i, row)
        if form is None:
            assert not es.usable[i] and i in es.na_reasons
            continue
        assert es.yi[i] == pytest.approx(yi, rel=1e-12, abs=1e-14), (i, form)
        assert es.vi[i] == pytest.approx(vi, rel=1e-12, abs=1e-14), (i, form)
    # every form the precedence can pick occurs in these tables
    assert {"yi_vi", "yi_sei", "raw", None} <= set(es.forms)


def test_random_smd_tables_use_cohens_d_and_t() -> None:
    forms = set()
    for seed in (1, 2, 3):
        forms |= set(compute_effect_sizes("SMD", columns_of(random_table("SMD", 60, seed))).forms)
    assert {"di", "ti"} <= forms


# ---------------------------------------------------------------------------------------------
# precedence and derivations


def smd_rows(*rows: Row) -> dict[str, list[Any]]:
    names = ("yi", "vi", "sei", "di", "ti", "m1i", "sd1i", "n1i", "m2i", "sd2i", "n2i")
    return {name: [r.get(name) for r in rows] for name in names}


MEANS = {"m1i": 10.0, "sd1i": 2.0, "n1i": 20, "m2i": 9.0, "sd2i": 2.5, "n2i": 22}


def test_a_given_effect_size_wins_over_every_other_input() -> None:
    es = compute_effect_sizes(
        "SMD",
        smd_rows(
            {"yi": 0.31, "vi": 0.0144, "di": 0.45, "ti": 2.1, **MEANS}, {"yi": 0.31, "sei": 0.12, **MEANS}
        ),
    )

    assert es.forms == ("yi_vi", "yi_sei")
    assert es.yi.tolist() == [0.31, 0.31]
    assert es.vi[0] == 0.0144
    assert es.vi[1] == pytest.approx(0.12**2, rel=1e-15)
    assert es.derivations == ("given yi = 0.31 with variance 0.0144", "given yi = 0.31 with SE 0.12")


def test_cohens_d_wins_over_t_and_t_over_the_means() -> None:
    es = compute_effect_sizes("SMD", smd_rows({"di": 0.45, "ti": 2.1, **MEANS}, {"ti": 2.1, **MEANS}, MEANS))

    assert es.forms == ("di", "ti", "raw")
    assert (es.yi[0], es.vi[0]) == pytest.approx(smd_from_d(0.45, 20, 22), rel=1e-13)
    d = 2.1 * math.sqrt(1 / 20 + 1 / 22)
    assert (es.yi[1], es.vi[1]) == pytest.approx(smd_from_d(d, 20, 22), rel=1e-13)
    assert (es.yi[2], es.vi[2]) == pytest.approx(smd(MEANS), rel=1e-13)
    assert es.derivations == (
        "SMD from Cohen's d = 0.45, n = 20/22",
        "SMD from t = 2.1, n = 20/22",
        "SMD from means and SDs",
    )


def test_a_form_missing_its_group_sizes_falls_through_to_the_next() -> None:
    es = compute_effect_sizes(
        "SMD",
        {"di": [0.5, 0.5], "ti": [1.2, None], "n1i": [None, 15], "n2i": [None, 16]},
    )

    # row 0 has d and t but no group sizes: no form is complete; row 1 has d with its sizes
    assert es.forms == (None, "di")
    assert np.isnan(es.yi[0]) and np.isnan(es.vi[0])


def test_sentence_numbers_have_at_most_four_significant_digits() -> None:
    es = compute_effect_sizes(
        "SMD",
        smd_rows({"ti": 2.10, "n1i": 20, "n2i": 22}, {"di": -0.123456, "n1i": 120, "n2i": 1500}),
    )
    given = compute_effect_sizes("GEN", {"yi": [0.3, 1 / 3, 12.5], "sei": [0.1200, 0.00012345, 2.0]})

    assert es.derivations == ("SMD from t = 2.1, n = 20/22", "SMD from Cohen's d = -0.1235, n = 120/1500")
    assert given.derivations == (
        "given yi = 0.3 with SE 0.12",
        "given yi = 0.3333 with SE 0.0001234",
        "given yi = 12.5 with SE 2",
    )
    assert given.forms == ("yi_sei",) * 3


def test_raw_sentences_name_the_inputs_of_each_family() -> None:
    change = {"m1i": [38.5], "m2i": [30.6], "sd1i": [15.0], "sd2i": [11.6], "ni": [20], "ri": [0.47]}

    assert compute_effect_sizes("SMCC", change).derivations == ("SMCC from pre/post means and SDs",)
    assert compute_effect_sizes("MN", {"mi": [0.2], "sdi": [1.4], "ni": [209]}).derivations == (
        "MN from a mean and SD",
    )
    assert compute_effect_sizes("OR", {"ai": [1], "bi": [9], "ci": [2], "di": [8]}).derivations == (
        "OR from a 2x2 table",
    )


def test_every_measure_takes_a_given_effect_size_row_by_row() -> None:
    es = compute_effect_sizes(
        "OR",
        {
            "ai": [4, None],
            "bi": [119, None],
            "ci": [11, None],
            "di": [128, None],
            "yi": [None, -0.5],
            "vi": [None, 0.04],
        },
    )

    assert es.forms == ("raw", "yi_vi")
    assert es.yi[0] == pytest.approx(math.log(4 * 128 / (119 * 11)), rel=1e-12)
    assert (es.yi[1], es.vi[1]) == (-0.5, 0.04)


def test_to_dict_lists_forms_and_derivations() -> None:
    out = compute_effect_sizes("SMD", smd_rows({"di": 0.45, "n1i": 20, "n2i": 22}, {"n1i": 5})).to_dict()

    assert out["forms"] == ["di", None]
    assert out["derivations"][0] == "SMD from Cohen's d = 0.45, n = 20/22"
    assert out["yi"][1] is None


# ---------------------------------------------------------------------------------------------
# rows with no complete input


def test_a_row_with_no_complete_input_is_left_out_with_what_to_give() -> None:
    es = compute_effect_sizes("SMD", smd_rows({"di": 0.45, "n1i": 20, "n2i": 22}, {"n1i": 6, "n2i": 8}))

    assert es.forms == ("di", None)
    assert np.isnan(es.yi[1]) and np.isnan(es.vi[1])
    want = (
        "no complete input: give yi with vi or sei, di with n1i and n2i, ti with n1i and n2i, "
        "or m1i, sd1i, n1i, m2i, sd2i, n2i"
    )
    assert es.na_reasons == {1: want}
    assert es.derivations[1] == want
    (omitted,) = effects.omitted_rows(es)
    assert (omitted.row, omitted.code, omitted.reason) == (1, "missing_value", want)


def test_a_table_of_one_form_names_the_missing_values() -> None:
    es = compute_effect_sizes("MN", {"mi": [0.2, None], "sdi": [1.4, None], "ni": [209, 100]})

    assert es.na_reasons == {1: "missing value in mi, sdi"}
    assert es.forms == ("raw", None)


def test_a_missing_input_propagates_only_to_what_depends_on_it_as_in_metafor() -> None:
    # metafor keeps the mean change without the SDs or the correlation; only vi is NA
    es = compute_effect_sizes(
        "MC", {"m1i": [38.5], "m2i": [30.6], "sd1i": [15.0], "sd2i": [11.6], "ni": [20], "ri": [None]}
    )

    assert es.yi[0] == pytest.approx(7.9, rel=1e-12)
    assert np.isnan(es.vi[0]) and not es.usable[0]
    assert es.forms == (None,)


def test_data_without_any_complete_form_are_refused_naming_the_inputs() -> None:
    with pytest.raises(InvalidInputError) as caught:
        compute_effect_sizes("SMD", {"n1i": [10], "n2i": [12]})

    assert (caught.value.code, caught.value.column) == ("missing_column", "m1i")
    assert "di with n1i and n2i" in caught.value.message


# ---------------------------------------------------------------------------------------------
# domains and NaN rules of the new measures


CHANGE = {"m1i": [12.0], "m2i": [10.0], "sd1i": [4.0], "sd2i": [5.0], "ni": [30], "ri": [0.6]}


@pytest.mark.parametrize("measure", ["SMCR", "SMCC", "MC"])
@pytest.mark.parametrize(("column", "value"), [("ri", 1.01), ("ri", -1.2), ("ni", 0), ("sd1i", -1.0)])
def test_change_score_values_metafor_refuses(measure: str, column: str, value: float) -> None:
    with pytest.raises(InvalidStudyDataError) as caught:
        compute_effect_sizes(measure, {**CHANGE, column: [value]})

    assert (caught.value.row, caught.value.column) == (0, column)


@pytest.mark.parametrize(
    ("measure", "data", "column"),
    [
        ("SMCC", {**CHANGE, "sd2i": [-0.1]}, "sd2i"),
        ("MC", {**CHANGE, "sd2i": [-0.1]}, "sd2i"),
        ("SMDH", {**{k: [v] for k, v in MEANS.items()}, "sd2i": [-2.0]}, "sd2i"),
        ("SMDH", {**{k: [v] for k, v in MEANS.items()}, "n2i": [0]}, "n2i"),
        ("MN", {"mi": [1.0], "sdi": [-1.0], "ni": [10]}, "sdi"),
        ("MN", {"mi": [1.0], "sdi": [1.0], "ni": [0]}, "ni"),
        ("SMD", {"yi": [0.1], "vi": [-0.01], "n1i": [5], "n2i": [5]}, "vi"),
        ("SMD", {"di": [0.1], "sei": [-0.1], "yi": [0.2], "n1i": [5], "n2i": [5]}, "sei"),
        ("SMD", {"di": [float("inf")], "n1i": [5], "n2i": [5]}, "di"),
    ],
)
def test_values_outside_their_domain_are_refused(
    measure: str, data: dict[str, list[Any]], column: str
) -> None:
    with pytest.raises(InvalidStudyDataError) as caught:
        compute_effect_sizes(measure, data)

    assert (caught.value.row, caught.value.column) == (0, column)


def test_standardised_mean_changes_need_more_than_two_participants() -> None:
    data = {name: values * 4 for name, values in CHANGE.items()} | {"ni": [1, 2, 3, 4]}

    for measure in ("SMCR", "SMCC"):
        es = compute_effect_sizes(measure, data)
        assert np.isnan(es.yi[:2]).all() and np.isnan(es.vi[:2]).all()
        assert es.na_reasons[0] == es.na_reasons[1] == "the bias correction J(ni - 1) needs ni > 2"
        assert np.isfinite(es.yi[2:]).all() and np.isfinite(es.vi[2:]).all()
    # the raw mean change needs no correction: one participant still gives numbers
    mean_change = compute_effect_sizes("MC", data)
    assert mean_change.usable.all()
    assert mean_change.vi[0] == pytest.approx(
        mc({k: v[0] for k, v in CHANGE.items()} | {"ni": 1})[1], rel=1e-12
    )


def test_zero_standard_deviations_give_no_standardised_change() -> None:
    smcr_es = compute_effect_sizes("SMCR", {**CHANGE, "sd1i": [0.0]})
    # equal SDs and a perfect correlation: the change scores do not vary
    smcc_es = compute_effect_sizes("SMCC", {**CHANGE, "sd2i": [4.0], "ri": [1.0]})

    assert smcr_es.na_reasons == {0: "the pre-test standard deviation (sd1i) is 0"}
    assert smcc_es.na_reasons == {0: "the standard deviation of the change scores is 0"}


def test_smdh_needs_two_participants_per_group() -> None:
    es = compute_effect_sizes("SMDH", {**{k: [v] for k, v in MEANS.items()}, "n1i": [1]})

    assert np.isnan(es.yi[0]) and np.isnan(es.vi[0])
    assert es.na_reasons == {0: "the variance of SMDH needs at least 2 per group"}


def test_smdh_and_smd_agree_when_the_groups_have_the_same_size_and_sd() -> None:
    same = {"m1i": [3.0], "sd1i": [2.0], "n1i": [15], "m2i": [1.0], "sd2i": [2.0], "n2i": [15]}

    g, h = compute_effect_sizes("SMD", same), compute_effect_sizes("SMDH", same)

    assert h.yi[0] == pytest.approx(g.yi[0], rel=1e-13)


# ---------------------------------------------------------------------------------------------
# the registry and the command line


def test_the_registry_lists_the_forms_in_order() -> None:
    assert [f.code for f in measures.get("SMD").forms] == ["yi_vi", "yi_sei", "di", "ti", "raw"]
    assert [f.code for f in measures.get("GEN").forms] == ["yi_vi", "yi_sei"]
    for code in ("SMDH", "SMCR", "SMCC", "MC", "MN", "MD", "OR"):
        assert [f.code for f in measures.get(code).forms] == ["yi_vi", "yi_sei", "raw"], code
    assert measures.get("SMCR").forms[-1].columns == ("m1i", "m2i", "sd1i", "ni", "ri")
    assert measures.get("SMCR").min_n == measures.get("SMCC").min_n == 3


def test_the_command_line_reads_a_file_of_t_statistics() -> None:
    text = "study,ti,n1i,n2i\nA,-3.14,155,156\nB,-1.4,31,32\nC,0.9,57,52\nD,1.13,34,33\n"

    rows = cli.rows_from_frame(cli.read_table("-", stdin=io.StringIO(text), measure="SMD"), "SMD")
    es = compute_effect_sizes("SMD", {name: [r[name] for r in rows] for name in ("ti", "n1i", "n2i")})

    assert es.forms == ("ti",) * 4
    assert es.yi[0] == pytest.approx(smd_from_d(-3.14 * math.sqrt(1 / 155 + 1 / 156), 155, 156)[0], rel=1e-13)


def test_a_missing_variance_falls_back_to_the_standard_error() -> None:
    es = compute_effect_sizes(
        "GEN", {"yi": [0.1, 0.2, 0.3], "vi": [0.01, None, None], "sei": [0.5, 0.2, None]}
    )

    assert es.forms == ("yi_vi", "yi_sei", None)
    assert es.vi[:2].tolist() == [0.01, pytest.approx(0.04, rel=1e-15)]
    assert es.na_reasons == {2: "no complete input: give yi with vi or sei"}


# ---------------------------------------------------------------------------------------------
# the oracle on metafor's mixed-input case


def test_the_oracle_and_the_engine_agree_with_metafor_on_mixed_inputs() -> None:
    case = json.loads((CASES_DIR / "lehmann2018-SMD-mixed-inputs-REML.json").read_text(encoding="utf-8"))
    rows = [{name: row.get(name) for name in case["columns"]} for row in case["rows"]]
    expected = case["expected"]["effect_sizes"]

    es = compute_effect_sizes("SMD", columns_of(rows))

    for i, row in enumerate(rows):
        form, yi, vi = oracle("SMD", row)
        assert es.forms[i] == form
        if form is None:
            assert expected["yi"][i] is None and expected["vi"][i] is None
            continue
        assert (yi, vi) == pytest.approx((expected["yi"][i], expected["vi"][i]), rel=1e-6, abs=1e-9)
        assert (es.yi[i], es.vi[i]) == pytest.approx((yi, vi), rel=1e-12)
    assert set(es.forms) == {"raw", "di", "ti", "yi_sei", None}
