"""The R code of an export's blocks beyond the model itself: for an ``rma`` fit its confidence
intervals, sensitivity, bias, subgroup and Mantel-Haenszel blocks; for an ``rma.mv`` fit its
profile intervals, aggregation, leave-one-study-out, Egger-type test and rho sensitivity.
``apps.analyses.exports.r_script`` writes the script around them."""

from __future__ import annotations

from collections.abc import Mapping

from apps.analyses.exports.r_syntax import _R, _first, _r_name, _r_num, _r_str, _r_vec
from apps.analyses.exports.rows import _export_name, _Snapshot
from workers.metaanalysis.measures import REGISTRY
from workers.metaanalysis.spec import RHO_SENSITIVITY

#: per-study numbers (leave-one-out) compared in the closing table: the first this many studies
MAX_ROW_CHECKS = 200


def r_one_level_extras(r: _R, snap: _Snapshot, data: str, common: str, dependence: str) -> None:
    """Confidence intervals, sensitivity, bias, subgroups and Mantel-Haenszel of an ``rma`` fit."""
    blocks, spec = snap.blocks, snap.spec
    if "confint" in blocks:
        r.block(
            "Block confint: Q-profile confidence intervals of tau^2, tau, I^2 and H^2.",
            "ci <- confint(fit, control = list(tol = 1e-10))  # uniroot's default tolerance is ~1e-4",
            "print(ci)",
        )
        for j, bound in ((2, "ci.lb"), (3, "ci.ub")):
            for field, row in (("tau2", "tau^2"), ("I2", "I^2(%)")):
                r.check(
                    f"confint.{field}[{j}]",
                    f"ci$random[{_r_str(row)}, {_r_str(bound)}]",
                    _first(blocks["confint"].get(field), j - 1),
                )
    if "leave1out" in blocks:
        r.block(
            "Block leave1out: the model without each study in turn.", "l1o <- leave1out(fit)", "print(l1o)"
        )
        for j, value in enumerate((blocks["leave1out"].get("estimate") or [])[:MAX_ROW_CHECKS]):
            r.check(f"leave1out.estimate[{j + 1}]", f"l1o$estimate[{j + 1}]", value)
    if "cumulative" in blocks:
        order = spec.get("cumulative_order")
        by = (
            f", order = {_r_name(_export_name(str(order)))}"
            if order and any(order in row for row in snap.rows)
            else ""
        )
        words = f"in increasing order of {order}" if by else "in row order"
        r.block(
            f"Block cumulative: the cumulative meta-analysis, studies added {words}.",
            f"print(cumul(fit{by}))",
        )
    if "influence" in blocks:
        r.block("Block influence: influence diagnostics.", "print(influence(fit))")
    if "egger" in blocks:
        r.block("Block egger: Egger's regression test (standard error as predictor).", "print(regtest(fit))")
    if "rank" in blocks:
        r.block("Block rank: the rank correlation test (Begg and Mazumdar).", "print(ranktest(fit))")
    if "fsn" in blocks:
        r.block(
            "Block fsn: Rosenthal's fail-safe N.",
            f'print(fsn(yi, vi, data = {data}, type = "Rosenthal"))',
        )
    if "trimfill" in blocks:
        r.block(
            "Block trimfill: trim-and-fill (estimator L0, side chosen as metafor chooses it).",
            "print(trimfill(fit))",
        )
    sub = spec.get("subgroup")
    if "subgroups" in blocks and sub:
        levels = blocks["subgroups"].get("levels") or []
        col = f"{data}[[{_r_str(_export_name(sub))}]]"
        r.block(
            f"Block subgroups: the model in each subgroup of {sub}, and the test of subgroup differences "
            "(the moderator test of the subgroups as a factor).",
            f"for (g in {_r_vec(levels)}) {{",
            '  cat("\\nSubgroup", g, "\\n")',
            f"  print(rma(yi, vi, data = {data}, subset = which({col} == g), {common}))",
            "}",
            f"{data}$.subgroup <- factor({col}, levels = {_r_vec(levels)})",
            f"print(rma(yi, vi, mods = ~ .subgroup, data = {data}, {common}))",
        )
    if "mantel_haenszel" in blocks or "peto" in blocks:
        measure = REGISTRY[str(spec.get("measure"))]
        cells, derived = [], []
        for index, group in enumerate(measure.groups):
            cells.append(f"{group[0]} = {group[0]}")
            if len(group) > 1 and index > 0:  # the non-events from a group size: n1i - ai
                cell, size, events = group[0], group[1], measure.groups[index - 1][0]
                derived.append(
                    f"{data}${cell} <- ifelse(is.na({data}${cell}), {data}${size} - {data}${events}, {data}${cell})"
                )
        r.block(
            "Blocks mantel_haenszel and peto: pooled straight from the tables of the rows in the model "
            "(the time point and instruments the analysis selects), as the platform pools them.",
            *derived,
        )
        if "mantel_haenszel" in blocks:
            r.add(
                f"mh <- rma.mh({', '.join(cells)}, measure = {_r_str(measure.code)}, data = {data}, level = level)",
                "print(mh)",
            )
            r.check("mantel_haenszel.beta", "mh$beta[1]", _first(blocks["mantel_haenszel"].get("beta")))
            r.check("mantel_haenszel.se", "mh$se[1]", _first(blocks["mantel_haenszel"].get("se")))
        if "peto" in blocks:
            r.add(f"peto <- rma.peto({', '.join(cells)}, data = {data}, level = level)", "print(peto)")
            r.check("peto.beta", "peto$beta[1]", _first(blocks["peto"].get("beta")))
            r.check("peto.se", "peto$se[1]", _first(blocks["peto"].get("se")))
    if "rho_sensitivity" in blocks and dependence == "aggregate":
        r.block(
            "Block rho_sensitivity: the pooled estimate at other assumed within-study correlations.",
            f"for (r in {_r_vec(RHO_SENSITIVITY, _r_num)}) {{",
            '  f <- rma(yi, vi, data = aggregate(dat, cluster = study, struct = "CS", rho = r),',
            "           method = method, test = test, level = level, control = ctl)",
            '  cat(sprintf("rho = %.1f: estimate %.6f [%.6f, %.6f], tau^2 %.6f\\n", r, f$beta[1], f$ci.lb, f$ci.ub, f$tau2))',
            "}",
        )


def r_dependent_extras(
    r: _R, snap: _Snapshot, names: Mapping[str, str], mods_formula: str, rho: float
) -> None:
    """Profile intervals, aggregation, leave-one-study-out, Egger-type test and rho sensitivity of
    an ``rma.mv`` fit."""
    blocks, spec = snap.blocks, snap.spec
    use_robust = bool(spec.get("robust", True))
    vmatrix = "vcalc(vi, cluster = study, obs = .position, rho = r, data = d)"
    r.block(
        "The model refitted on other rows or at another rho (the loops below).",
        "refit <- function(d, r, mods = ~ 1) {",
        f"  fit_mv(d, if (r == 0) d$vi else {vmatrix}, mods = mods)",
        "}",
        "headline <- function(f, d) {",
        "  if (" + ("TRUE" if use_robust else "FALSE") + " && length(unique(d$study)) > 1) "
        "robust(f, cluster = study, clubSandwich = TRUE) else f",
        "}",
    )
    if names["confint"] in blocks:
        r.block(
            f"Block {names['confint']}: profile-likelihood confidence intervals of the variance "
            "components (of the fit with both components free).",
            f"cm <- confint(fit_mv(dat, V, mods = {mods_formula}, boundary = FALSE), control = list(tol = 1e-10))",
            "print(cm)",
        )
        for i, component in enumerate(blocks[names["confint"]].get("sigma2") or []):
            for j, bound in ((2, "ci.lb"), (3, "ci.ub")):
                value = component[j - 1] if isinstance(component, list) and len(component) >= j else None
                r.check(
                    f"{names['confint']}.sigma2[{i + 1},{j}]",
                    f"cm[[{i + 1}]]$random[{_r_str(f'sigma^2.{i + 1}')}, {_r_str(bound)}]",
                    value,
                )
    if "aggregated" in blocks:
        r.block(
            f"Block aggregated: each study's rows pooled to one effect (compound symmetry, rho = {rho:g}).",
            f'print(aggregate(dat, cluster = study, struct = "CS", rho = {_r_num(rho)})[c("study", "yi", "vi")])',
        )
    inference = "CR2 tests" if use_robust else "model-based tests"
    if "leave1out_study" in blocks:
        r.block(
            f"Block leave1out_study: the model without each study (all its rows) in turn, {inference}.",
            "l1s <- c()",
            "for (s in unique(dat$study)) {",
            "  d <- dat[dat$study != s, ]",
            f"  h <- headline(refit(d, {_r_num(rho)}), d)",
            "  l1s <- c(l1s, h$beta[1])",
            '  cat(sprintf("without %s: estimate %.6f, se %.6f, p %.4g\\n", s, h$beta[1], h$se[1], h$pval[1]))',
            "}",
        )
        for j, value in enumerate((blocks["leave1out_study"].get("estimate") or [])[:MAX_ROW_CHECKS]):
            r.check(f"leave1out_study.estimate[{j + 1}]", f"l1s[{j + 1}]", value)
    if "egger_multilevel" in blocks:
        r.block(
            "Block egger_multilevel: an Egger-type test for dependent effects -- the model with the "
            "standard error as moderator, CR2 tests (the intercept is the limit estimate).",
            f"egger <- robust(refit(dat, {_r_num(rho)}, mods = ~ sqrt(vi)), cluster = study, clubSandwich = TRUE)",
            "print(egger)",
        )
    if "rho_sensitivity" in blocks:
        r.block(
            f"Block rho_sensitivity: the pooled estimate at other assumed within-study correlations, {inference}.",
            f"for (r in {_r_vec(RHO_SENSITIVITY, _r_num)}) {{",
            "  h <- headline(refit(dat, r), dat)",
            '  cat(sprintf("rho = %.1f: estimate %.6f [%.6f, %.6f], p %.4g\\n", r, h$beta[1], h$ci.lb[1], h$ci.ub[1], h$pval[1]))',
            "}",
        )
