"""The text report's test of the moderators: one line, the same wording for the model and for subgroups."""

from __future__ import annotations

import numpy as np

from workers.metaanalysis.report import format_report
from workers.metaanalysis.rma import rma
from workers.metaanalysis.subgroups import subgroups
from workers.metaanalysis.text import fmt, p_clause

YI = np.array([-0.89, -1.59, -1.35, -1.44, -0.22, -0.79, -1.62, 0.01, -0.47, -1.4, -0.34, 0.45])
VI = np.array([0.33, 0.19, 0.42, 0.02, 0.05, 0.01, 0.22, 0.004, 0.06, 0.27, 0.012, 0.53])
GROUP = ["a", "b", "c"] * 4


def _report(fit: dict, subgroup_block: dict | None = None) -> str:
    blocks = {"fit": fit} if subgroup_block is None else {"fit": fit, "subgroups": subgroup_block}
    return format_report({"spec": {"measure": "GEN", "subgroup": "arm"}, "k": fit["k"], "blocks": blocks})


def test_chi2_and_f_tests_of_the_moderators_of_a_model() -> None:
    X = np.column_stack([np.arange(12.0), np.arange(12.0) % 3])
    z = rma(YI, VI, X=X).to_dict()
    out = _report(z)
    assert "Test of Moderators (coefficients 2:3):" in out
    assert f"QM(df = 2) = {fmt(z['QM'])}, {p_clause(z['QMp'])}" in out
    f = rma(YI, VI, X=X, test="knha").to_dict()
    assert f"F(df1 = 2, df2 = 9) = {fmt(f['QM'])}, {p_clause(f['QMp'])}" in _report(f)


def test_the_subgroup_moderator_test_reads_as_the_models() -> None:
    fit = rma(YI, VI).to_dict()
    for test, stat in (("z", "QM(df = 2)"), ("knha", "F(df1 = 2, df2 = 9)")):
        block = subgroups(YI, VI, GROUP, test=test).to_dict()
        mods = block["moderator_test"]
        out = _report(fit, block)
        assert "Test of moderators (meta-regression on arm, common tau^2):" in out
        assert f"{stat} = {fmt(mods['QM'])}, {p_clause(mods['QMp'])}" in out
