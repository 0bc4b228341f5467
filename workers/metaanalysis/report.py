"""The engine's report as text, in the style of metafor's ``print()``: the model, heterogeneity,
prediction and confidence intervals of the variance components, small-study tests, pooled tables,
subgroups and per-study tables. Used by the command line (``metaengine --format text``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from . import ENGINE_VERSION
from .block_names import block_names
from .measures import get, is_log_scale
from .report_dependent import dependent_section
from .text import as_list, coefficients, fmt, fmt_p, p_clause, row_label, table


def _model_title(spec: Mapping[str, Any], fit: Mapping[str, Any]) -> str:
    method = fit.get("method") or spec.get("method", "")
    k = fit.get("k")
    mods = int(fit.get("p", 1) or 1) > 1
    if method in ("EE", "FE"):
        kind = "Equal-Effects Model" if not mods else "Equal-Effects with Moderators Model"
        return f"{kind} (k = {k})"
    kind = "Mixed-Effects Model" if mods else "Random-Effects Model"
    return f"{kind} (k = {k}; tau^2 estimator: {method})"


def _fit_section(spec: Mapping[str, Any], fit: Mapping[str, Any]) -> list[str]:
    mods = int(fit.get("p", 1) or 1) > 1
    method = fit.get("method") or spec.get("method")
    test = fit.get("test") or spec.get("test", "z")
    out = [_model_title(spec, fit), ""]
    if method not in ("EE", "FE"):
        which = "residual heterogeneity" if mods else "total heterogeneity"
        tau2 = fit.get("tau2")
        se = fit.get("se_tau2")
        tau = math.sqrt(tau2) if isinstance(tau2, int | float) and tau2 >= 0 else None
        tau2_text = fmt(tau2) + (f" (SE = {fmt(se)})" if se is not None else "")
        rows = [
            (f"tau^2 (estimated amount of {which}):", tau2_text),
            ("tau (square root of estimated tau^2 value):", fmt(tau)),
        ]
        if mods:
            rows.append(
                ("I^2 (residual heterogeneity / unaccounted variability):", fmt(fit.get("I2"), 2) + "%")
            )
            rows.append(("H^2 (unaccounted variability / sampling variability):", fmt(fit.get("H2"), 2)))
            if "R2" in fit:
                rows.append(("R^2 (amount of heterogeneity accounted for):", fmt(fit.get("R2"), 2) + "%"))
        else:
            rows.append(("I^2 (total heterogeneity / total variability):", fmt(fit.get("I2"), 2) + "%"))
            rows.append(("H^2 (total variability / sampling variability):", fmt(fit.get("H2"), 2)))
        width = max(len(label) for label, _ in rows)
        out += [f"{label.ljust(width)}  {value}" for label, value in rows]
    else:
        out.append(f"I^2 (total heterogeneity / total variability):   {fmt(fit.get('I2'), 2)}%")
        out.append(f"H^2 (total variability / sampling variability):  {fmt(fit.get('H2'), 2)}")
    k, p = fit.get("k"), fit.get("p", 1)
    df = (k - p) if isinstance(k, int) and isinstance(p, int) else "NA"
    title = "Test for Residual Heterogeneity:" if mods else "Test for Heterogeneity:"
    q = "QE" if mods else "Q"
    out += ["", title, f"{q}(df = {df}) = {fmt(fit.get('QE'))}, {p_clause(fit.get('QEp'))}"]
    if mods and "QM" in fit:
        coefs = f"2:{p}" if isinstance(p, int) and p > 2 else "2"
        out += [
            "",
            f"Test of Moderators (coefficient{'s' if p > 2 else ''} {coefs}):",
            _moderator_test_line(fit),
        ]
    level = fit.get("level", spec.get("level"))
    out += ["", f"Model Results ({fmt(level, 0) if level is not None else ''}% CI):", ""]
    out += coefficients(fit, tdist=test in ("knha", "t"))
    out += ["", "---", "Signif. codes:  0 '***' 0.001 '**' 0.01 '*' 0.05 '.' 0.1 ' ' 1"]
    return out


def _predict_section(spec: Mapping[str, Any], pred: Mapping[str, Any], measure: str) -> list[str]:
    keys = ["pred", "se", "ci_lb", "ci_ub", "pi_lb", "pi_ub"]
    keys = [key for key in keys if key in pred]
    if not keys:
        return []
    titles = {"ci_lb": "ci.lb", "ci_ub": "ci.ub", "pi_lb": "pi.lb", "pi_ub": "pi.ub"}
    header = [titles.get(key, key) for key in keys]
    values = {key: as_list(pred[key]) for key in keys}
    n = max(len(v) for v in values.values())
    rows = [[fmt(values[key][i] if i < len(values[key]) else None) for key in keys] for i in range(n)]
    out = ["", "Pooled estimate with prediction interval:", ""]
    out += table(header, rows, row_names=[str(i + 1) for i in range(n)] if n > 1 else None)
    if is_log_scale(measure) and n == 1:
        back = get(measure).back_transform

        def exp(key: str) -> str:
            v = values.get(key, [None])[0]
            return fmt(back(v)) if isinstance(v, int | float) and math.isfinite(v) else "NA"

        out.append("")
        out.append(
            f"On the ratio scale: exp(pred) = {exp('pred')}, CI [{exp('ci_lb')}, {exp('ci_ub')}], "
            f"PI [{exp('pi_lb')}, {exp('pi_ub')}]"
        )
    return out


def _confint_section(ci: Mapping[str, Any]) -> list[str]:
    names = [("tau2", "tau^2"), ("tau", "tau"), ("I2", "I^2(%)"), ("H2", "H^2")]
    rows, labels = [], []
    for key, label in names:
        if key in ci:
            v = as_list(ci[key]) + [None] * 3
            rows.append([fmt(v[0]), fmt(v[1]), fmt(v[2])])
            labels.append(label)
    if not rows:
        return []
    return [
        "",
        "Confidence intervals of the heterogeneity (Q-profile):",
        "",
        *table(["estimate", "ci.lb", "ci.ub"], rows, row_names=labels),
    ]


def _bias_section(blocks: Mapping[str, Any], fit: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    egger = blocks.get("egger")
    if isinstance(egger, Mapping):
        test = fit.get("test", "z")
        stat = "t" if test in ("knha", "t") else "z"
        out += [
            "",
            "Regression Test for Funnel Plot Asymmetry (Egger; predictor: standard error):",
            f"test for funnel plot asymmetry: {stat} = {fmt(egger.get('stat'))}, "
            f"{p_clause(egger.get('pval')).replace('p-val', 'p')}",
        ]
        if "limit_estimate" in egger:
            out.append(f"limit estimate (as sei -> 0):   b = {fmt(egger.get('limit_estimate'))}")
    rank = blocks.get("rank")
    if isinstance(rank, Mapping):
        out += [
            "",
            "Rank Correlation Test for Funnel Plot Asymmetry:",
            f"Kendall's tau = {fmt(rank.get('tau'))}, {p_clause(rank.get('pval')).replace('p-val', 'p')}",
        ]
    tf = blocks.get("trimfill")
    if isinstance(tf, Mapping):
        k0 = tf.get("k0")
        side = tf.get("side") or "NA"
        out += ["", "Trim-and-Fill:", f"Estimated number of missing studies on the {side} side: {fmt(k0)}"]
        cells = [[fmt(tf.get(key)) for key in ("beta", "se", "ci_lb", "ci_ub", "tau2")]]
        out += [
            "Model with the filled-in studies:",
            *table(["estimate", "se", "ci.lb", "ci.ub", "tau^2"], cells, indent=2),
        ]
    fsn = blocks.get("fsn")
    if isinstance(fsn, Mapping):
        kind = fsn.get("type") or "Rosenthal"
        out += [
            "",
            f"Fail-safe N Calculation Using the {kind} Approach:",
            f"Fail-safe N: {fmt(fsn.get('fsnum'), 0)} (target significance level {fmt(fsn.get('alpha'), 2)})",
        ]
    return out


def _pooled_tables_section(blocks: Mapping[str, Any]) -> list[str]:
    rows, labels = [], []
    for key, label in (("mantel_haenszel", "Mantel-Haenszel"), ("peto", "Peto")):
        block = blocks.get(key)
        if isinstance(block, Mapping):
            rows.append(
                [
                    fmt(block.get("beta")),
                    fmt(block.get("se")),
                    fmt(block.get("stat")),
                    fmt_p(block.get("pval")),
                    fmt(block.get("ci_lb")),
                    fmt(block.get("ci_ub")),
                    fmt(block.get("QE")),
                    fmt_p(block.get("QEp")),
                    fmt(block.get("I2"), 2),
                ]
            )
            labels.append(label)
    if not rows:
        return []
    return [
        "",
        "Equal-effects models for 2x2 tables:",
        "",
        *table(
            ["estimate", "se", "zval", "pval", "ci.lb", "ci.ub", "Q", "Qp", "I^2"], rows, row_names=labels
        ),
    ]


def _subgroup_section(block: Any, spec: Mapping[str, Any]) -> list[str]:
    """The subgroup table (one random-effects model per level) and the tests of differences."""
    groups = block.get("groups") if isinstance(block, Mapping) else None
    if not isinstance(groups, list) or not groups:
        return []
    cols = [
        ("k", "k", 0),
        ("estimate", "beta", 4),
        ("se", "se", 4),
        ("pval", "pval", 4),
        ("ci.lb", "ci_lb", 4),
        ("ci.ub", "ci_ub", 4),
        ("tau^2", "tau2", 4),
        ("I^2", "I2", 2),
        ("Q", "QE", 4),
    ]
    rows, names = [], []
    for i, rec in enumerate(groups):
        if not isinstance(rec, Mapping):
            continue
        names.append(str(rec.get("level", i + 1)))
        cells = []
        for _title, key, digits in cols:
            v = rec.get(key)
            v = v[0] if isinstance(v, list) and v else v
            cells.append(fmt_p(v) if key == "pval" else fmt(v, digits))
        rows.append(cells)
    out = [
        "",
        f"Subgroups by {spec.get('subgroup')}:",
        "",
        *table([c[0] for c in cols], rows, row_names=names),
    ]
    # a heading and one line per test, as metafor prints each (the bias section's shape): other tests, other fields
    between = block.get("between_test")
    if isinstance(between, Mapping):
        out += [
            "",
            "Test for subgroup differences (Q between the subgroup estimates):",
            f"Q(df = {fmt(between.get('df'), 0)}) = {fmt(between.get('Q'))}, {p_clause(between.get('pval'))}",
        ]
    mods = block.get("moderator_test")
    if isinstance(mods, Mapping):
        out += [
            "",
            f"Test of moderators (meta-regression on {spec.get('subgroup')}, common tau^2):",
            _moderator_test_line(mods),
        ]
    return out


def _moderator_test_line(block: Mapping[str, Any]) -> str:
    """``QM(df = m) = ..., p-val = ...`` (chi²) or ``F(df1 = m, df2 = k - p) = ...`` (F), as metafor."""
    qmdf = as_list(block.get("QMdf"))
    df1 = qmdf[0] if qmdf else "NA"
    df2 = qmdf[1] if len(qmdf) > 1 else None
    stat = f"F(df1 = {df1}, df2 = {df2})" if df2 is not None else f"QM(df = {fmt(df1, 0)})"
    return f"{stat} = {fmt(block.get('QM'))}, {p_clause(block.get('QMp'))}"


def _per_study_section(
    title: str, block: Any, keys: Sequence[tuple[str, str, int]], labels: Sequence[str]
) -> list[str]:
    if not isinstance(block, Mapping):
        return []
    present = [(key, name, digits) for key, name, digits in keys if key in block]
    if not present:
        return []
    values = {key: as_list(block[key]) for key, _, _ in present}
    n = max(len(v) for v in values.values())
    rows = []
    for i in range(n):
        row = []
        for key, _, digits in present:
            v = values[key][i] if i < len(values[key]) else None
            row.append(fmt_p(v) if key == "pval" else fmt(v, digits))
        rows.append(row)
    block_labels = block.get("study") or block.get("slab") or block.get("labels")
    names = (
        [str(s) for s in block_labels]
        if isinstance(block_labels, list) and len(block_labels) == n
        else [labels[i] if i < len(labels) else str(i + 1) for i in range(n)]
    )
    return ["", title, "", *table([name for _, name, _ in present], rows, row_names=names)]


def model_labels(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Labels of the studies in the model (rows not omitted, in row order).

    Parameters
    ----------
    report : mapping
        ``AnalysisReport.to_dict()``.
    rows : sequence of mappings
        The rows given to the engine, each with a ``study`` label.

    Returns
    -------
    list of str
    """
    omitted = {int(o["row"]) for o in report.get("omitted", []) if isinstance(o, Mapping) and "row" in o}
    return [str(r.get("study", i + 1)) for i, r in enumerate(rows) if i not in omitted]


def format_report(report: Mapping[str, Any], rows: Sequence[Mapping[str, Any]] = ()) -> str:
    """The readable report of an analysis, in the style of metafor's ``print()`` output.

    Parameters
    ----------
    report : mapping
        ``AnalysisReport.to_dict()``.
    rows : sequence of mappings
        The rows the analysis ran on (for study labels in per-study tables and omitted rows).

    Returns
    -------
    str
        Model, k, tau² (SE), tau, I², H², the Q test, the coefficient table, the pooled estimate
        with its prediction interval, the moderator test and R² in a meta-regression, the
        Q-profile intervals, subgroups, Mantel-Haenszel and Peto estimates, bias tests,
        trim-and-fill, fail-safe N, leave-one-out and cumulative tables, omitted rows and notes.
        Blocks absent from the report are left out.
    """
    spec: Mapping[str, Any] = report.get("spec") or {}
    blocks: Mapping[str, Any] = report.get("blocks") or {}
    measure = str(spec.get("measure", ""))
    labels = [str(r.get("study", i + 1)) for i, r in enumerate(rows)]
    in_model = model_labels(report, rows)
    scale = " (log scale)" if is_log_scale(measure) else ""
    summary = blocks.get("summary") or {}
    studies = summary.get("n_studies")
    in_studies = f" in {studies} studies" if studies is not None and studies != report.get("k") else ""
    out = [
        f"Meta-analysis engine {report.get('engine_version', ENGINE_VERSION)} (metafor 3.8-1 definitions)",
        f"Measure: {measure}{scale}; rows: {len(rows) if rows else 'NA'}; effects in the model: "
        f"{report.get('k', 'NA')}{in_studies}",
        "",
    ]
    if summary.get("dependence") not in (None, "none"):
        out += [f"Dependence: {summary['dependence']} ({summary.get('dependence_reason')})", ""]
    fit = blocks.get("fit") or blocks.get("aggregated_fit")
    if isinstance(fit, Mapping):
        out += _fit_section(spec, fit)
    out += dependent_section(blocks)
    dependence = (blocks.get("summary") or {}).get("dependence") or "none"
    pred = blocks.get(block_names(str(dependence))["predict"])
    if isinstance(pred, Mapping):
        out += _predict_section(spec, pred, measure)
    ci = blocks.get("confint")
    if isinstance(ci, Mapping):
        out += _confint_section(ci)
    if blocks.get("subgroups"):
        out += _subgroup_section(blocks["subgroups"], spec)
    out += _pooled_tables_section(blocks)
    out += _bias_section(blocks, fit if isinstance(fit, Mapping) else {})
    out += _per_study_section(
        "Leave-One-Out Analysis (each row: the model without that study):",
        blocks.get("leave1out"),
        [
            ("estimate", "estimate", 4),
            ("se", "se", 4),
            ("zval", "zval", 4),
            ("pval", "pval", 4),
            ("ci_lb", "ci.lb", 4),
            ("ci_ub", "ci.ub", 4),
            ("Q", "Q", 4),
            ("tau2", "tau^2", 4),
            ("I2", "I^2", 2),
        ],
        in_model,
    )
    cumulative = blocks.get("cumulative")
    if isinstance(cumulative, Mapping):
        order = spec.get("cumulative_order")
        cum_labels = cumulative.get("study") or cumulative.get("slab")
        out += _per_study_section(
            f"Cumulative Meta-Analysis (studies added in {f'order of {order}' if order else 'row order'}):",
            cumulative,
            [
                ("estimate", "estimate", 4),
                ("se", "se", 4),
                ("ci_lb", "ci.lb", 4),
                ("ci_ub", "ci.ub", 4),
                ("Q", "Q", 4),
                ("tau2", "tau^2", 4),
                ("I2", "I^2", 2),
            ],
            in_model if not cum_labels else [str(s) for s in cum_labels],
        )
    omitted = [o for o in report.get("omitted", []) if isinstance(o, Mapping)]
    if omitted:
        out += ["", f"Rows left out of the model ({len(omitted)}):"]
        for o in omitted:
            row = o.get("row")
            where = row_label(int(row), labels) if isinstance(row, int) else "row ?"
            reason = o.get("reason") or o.get("message") or ""
            code = o.get("code")
            out.append(f"  {where}: {reason}" + (f" [{code}]" if code else ""))
    notes = [n for n in report.get("notes", []) if isinstance(n, Mapping)]
    if notes:
        out += ["", "Notes:"]
        for n in notes:
            block = n.get("block")
            out.append(f"  {block + ': ' if block else ''}{n.get('message', '')} [{n.get('code', '')}]")
    lines = [line for i, line in enumerate(out) if line or (i > 0 and out[i - 1])]  # no double blank lines
    return "\n".join(lines).rstrip() + "\n"


# ----------------------------------------------------------------------------------------------
# main
