"""The text report of a multilevel or CHE model, in the style of metafor's ``print.rma.mv`` and
``robust()`` output; :mod:`workers.metaanalysis.report` adds it to the whole report."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .block_names import block_names
from .text import as_list, coefficients, fmt, p_clause, table

__all__ = ["dependent_section"]


def dependent_section(blocks: Mapping[str, Any]) -> list[str]:
    """A multilevel or CHE model, as metafor prints ``rma.mv`` and ``robust()``."""
    summary = blocks.get("summary") or {}
    dependence = summary.get("dependence")
    if dependence not in ("multilevel", "che"):
        return []
    names = block_names(str(dependence))
    fit = blocks.get(names["fit"])
    if not isinstance(fit, Mapping):
        return []
    k, p = fit.get("k"), fit.get("p", 1)
    rho = (
        ""
        if dependence == "multilevel"
        else f"; sampling errors correlated rho = {fmt(fit.get('rho'), 2)} within a study"
    )
    out = [f"Multivariate Meta-Analysis Model (k = {k}; method: {fit.get('method')}{rho})", ""]
    out += table(
        ["logLik", "deviance", "AIC", "BIC", "AICc"],
        [[fmt(fit.get(key)) for key in ("logLik", "deviance", "AIC", "BIC", "AICc")]],
    )
    sigma2, levels, i2 = as_list(fit.get("sigma2")), as_list(fit.get("s_nlevels")), as_list(fit.get("I2"))
    rows = [
        [
            fmt(v),
            fmt(math.sqrt(v) if isinstance(v, int | float) and v >= 0 else None),
            str(n),
            fmt(h, 2) + "%",
        ]
        for v, n, h in zip(sigma2, levels, i2, strict=False)
    ]
    out += ["", "Variance Components:", ""]
    out += table(
        ["estim", "sqrt", "nlvls", "I^2"],
        rows,
        row_names=["sigma^2.1  study", "sigma^2.2  study/es_id"][: len(rows)],
    )
    out += [
        "",
        "Test for Residual Heterogeneity:",
        f"QE(df = {k - p if isinstance(k, int) and isinstance(p, int) else 'NA'}) = {fmt(fit.get('QE'))}, {p_clause(fit.get('QEp'))}",
    ]
    level = fit.get("level")
    out += ["", f"Model Results ({fmt(level, 0)}% CI):", ""]
    out += coefficients(fit, tdist=fit.get("test") == "t")
    robust = blocks.get(names["CR2"])
    if isinstance(robust, Mapping):
        out += ["", f"Cluster-robust tests (CR2, Satterthwaite df; {robust.get('n_clusters')} studies):", ""]
        out += coefficients(robust, tdist=True)
        if "QM" in robust:
            qmdf = as_list(robust.get("QMdf"))
            out.append(
                f"HTZ test of moderators: F(df1 = {qmdf[0]}, df2 = {fmt(qmdf[1], 2)}) = {fmt(robust.get('QM'))}, {p_clause(robust.get('QMp'))}"
            )
    ci = blocks.get(names["confint"])
    if isinstance(ci, Mapping):
        rows = [[fmt(a), fmt(b), fmt(c)] for a, b, c in as_list(ci.get("sigma2"))]
        out += ["", "Profile-likelihood intervals of the variance components:", ""]
        out += table(["estimate", "ci.lb", "ci.ub"], rows, row_names=["sigma^2.1", "sigma^2.2"][: len(rows)])
    sens = blocks.get("rho_sensitivity")
    if isinstance(sens, Mapping):
        out += ["", "Pooled estimate by the assumed within-study correlation:", ""]
        out += table(
            ["rho", "estimate", "ci.lb", "ci.ub"],
            [
                [fmt(r, 1), fmt(e), fmt(lo), fmt(hi)]
                for r, e, lo, hi in zip(
                    sens["rho"], sens["estimate"], sens["ci_lb"], sens["ci_ub"], strict=False
                )
            ],
        )
    egger = blocks.get("egger_multilevel")
    if isinstance(egger, Mapping):
        out += [
            "",
            "Egger-type test (multilevel meta-regression on the standard error, CR2):",
            f"t = {fmt(as_list(egger.get('stat'))[0])}, df = {fmt(as_list(egger.get('dfs'))[0], 2)}, "
            f"{p_clause(as_list(egger.get('pval'))[0])}; limit estimate {fmt(as_list(egger.get('limit_estimate'))[0])}",
        ]
    out.append("")
    return out
