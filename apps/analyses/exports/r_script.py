"""The R script of an export: metafor reproduces the result from the exported CSV."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from apps.analyses.exports.r_blocks import r_dependent_extras, r_one_level_extras
from apps.analyses.exports.r_syntax import (
    _R,
    _column_classes,
    _comment,
    _first,
    _model_kind,
    _moderator_levels,
    _r_name,
    _r_num,
    _r_str,
    _r_vec,
    _selection_words,
    _wrap,
)
from apps.analyses.exports.rows import (
    _ESCAPED_START,
    DATA_CSV,
    VALIDATED_AGAINST,
    ExportError,
    _escape,
    _export_columns,
    _export_name,
    _export_rows,
    _Snapshot,
    _snapshot,
)
from apps.analyses.models import AnalysisResult
from workers.metaanalysis.dependent import block_names
from workers.metaanalysis.measures import REGISTRY

#: Convergence settings for metafor: its defaults stop up to ~1e-6 (relative) short of the exact
#: optimum the engine iterates to; these are the settings the reference cases were computed with.
_RMA_CONTROL = "list(threshold = 1e-13, tol = 1e-13, maxiter = 10000)"
#: For rma.mv, metafor's own optimiser settings (nlminb): they agree with the engine's optimum to
#: ~1e-8 (relative) in the variance components; a tighter ``rel.tol`` (1e-12) moves nothing there
#: and stops with a convergence error when a variance component is 0.
_RMA_MV_CONTROL = "list()"


def _r_script(snap: _Snapshot, rows: Sequence[Mapping[str, Any]], data_file: str) -> str:
    if snap.status != AnalysisResult.Status.DONE:
        raise ExportError(
            "the result is a failed computation: there is no model to reproduce", code="no_model"
        )
    dependence = _model_kind(snap)
    names = block_names(dependence)
    blocks = snap.blocks
    fit_block = blocks.get(names["fit"])
    if not isinstance(fit_block, Mapping) or not isinstance(blocks.get("summary"), Mapping):
        raise ExportError("the result has no fitted model to reproduce", code="no_model")
    if not isinstance((blocks.get("effect_sizes") or {}).get("in_model"), list):
        raise ExportError(
            "the result does not record which rows entered its model (it predates in_model)",
            code="no_row_selection",
        )
    spec = snap.spec
    measure = REGISTRY.get(str(spec.get("measure")))
    if measure is None:
        raise ExportError(f"unknown measure {spec.get('measure')!r}", code="no_model")
    summary = blocks["summary"]
    method, test, level = str(spec.get("method", "REML")), str(spec.get("test", "z")), spec.get("level", 95.0)
    rho = float(spec.get("rho", 0.6))
    mods = [str(m) for m in spec.get("mods") or ()]
    robust_blocks = [kind for kind in ("CR2", "CR1") if kind in names and names[kind] in blocks]
    forms = {f for f in (blocks.get("effect_sizes") or {}).get("form") or () if f}
    classes = _column_classes(snap, rows)
    levels = _moderator_levels(snap)
    columns = _export_columns(snap)
    escaped = any(_escape(c) != c for c in columns) or any(
        isinstance(v, str) and v.startswith(_ESCAPED_START) for r in rows for v in r.values()
    )

    r = _R()
    title = f"result {snap.result_id}" if snap.result_id is not None else "a stored result"
    r.add(
        f"# analysis.R: reproduces {title} of the analysis {_comment(repr(snap.analysis))} "
        f"(outcome {_comment(snap.outcome)}) with metafor.",
        f"# The platform's meta-analysis engine {_comment(snap.engine_version)} computed it; the engine is "
        f"validated against R's metafor {VALIDATED_AGAINST['metafor']} and clubSandwich "
        f"{VALIDATED_AGAINST['clubSandwich']}.",
        f"# Run it where the exported rows are:  Rscript analysis.R [{data_file}]",
        '# Each call says which block of the platform\'s result (result.json, "blocks") it reproduces;',
        "# the end of the output lists R's numbers beside the platform's, with their relative difference.",
        "",
        "suppressPackageStartupMessages(library(metafor))",
    )
    if robust_blocks or dependence in ("multilevel", "che"):
        r.add("suppressPackageStartupMessages(library(clubSandwich))  # robust(..., clubSandwich = TRUE)")
    r.add(
        'cat("metafor", format(packageVersion("metafor")), "\\n")',
        "args <- commandArgs(trailingOnly = TRUE)",
        f"data_file <- if (length(args) > 0) args[1] else {_r_str(data_file)}",
        "",
        '# The settings of the analysis (result.json, "spec").',
        f"method <- {_r_str(method)}",
        f"test <- {_r_str(test)}",
        f"level <- {_r_num(float(level))}",
    )
    if dependence in ("aggregate", "che"):
        r.add(f"rho <- {_r_num(rho)}  # assumed correlation of two sampling errors of one study")
    if dependence in ("multilevel", "che"):
        r.add(
            "# rma.mv() with metafor's default optimiser (nlminb): it stops within ~1e-8 (relative) of the",
            "# exact optimum the platform's engine iterates to, ~1e-6 where the likelihood is flat. (A",
            "# tighter rel.tol moves the estimates no closer, and stops with a convergence error when a",
            "# variance component is 0: see fit_mv() below.)",
            f"ctl <- {_RMA_MV_CONTROL}",
        )
    else:
        r.add(
            "# Tighter convergence than metafor's defaults (threshold 1e-5), which stop up to ~1e-6",
            "# (relative) short of the exact optimum the platform's engine iterates to.",
            f"ctl <- {_RMA_CONTROL}",
        )

    # reading the rows
    class_items = ", ".join(f"{_r_str(_escape(c))} = {_r_str(classes[c])}" for c in columns)
    r.block(
        f"The rows the result was computed from, one per input row ({DATA_CSV} of the export). Text "
        "columns are read as text; an empty cell is a missing value.",
        f"classes <- c({class_items})",
        'dat <- read.csv(data_file, colClasses = classes, na.strings = "", check.names = FALSE,',
        '                encoding = "UTF-8", strip.white = FALSE)',
    )
    if escaped:
        r.block(
            "Text that a spreadsheet could run as a formula (or that starts with a quote) was written "
            "with one more leading quote: remove it.",
            'names(dat) <- sub("^\'", "", names(dat))',
            "text <- vapply(dat, is.character, logical(1))",
            'dat[text] <- lapply(dat[text], function(x) sub("^\'", "", x))',
        )

    # effect sizes
    generic = measure.family == "generic"
    args = (
        []
        if generic
        else list(
            dict.fromkeys([*measure.statistics, *(c for f in measure.reported_forms for c in f.columns)])
        )
    )
    given = forms & {"yi_vi", "yi_sei"}
    r.block(
        "Block effect_sizes: the effect size of every row, recomputed with escalc() from its inputs "
        "(the platform's values, the columns yi and vi, are compared with R's below).",
        'es_platform <- dat[c("yi", "vi")]',
        "dat$yi <- NULL",
        "dat$vi <- NULL",
    )
    needed = [*args, *(("input_yi", "input_vi", "sei") if given or generic else ())]
    if needed:
        r.add(
            f"for (v in {_r_vec(needed)}) if (is.null(dat[[v]])) dat[[v]] <- NA_real_  # columns no row has"
        )
    if given or generic:
        r.add(
            "# Rows that give an effect size with its variance (input_yi, input_vi) or its standard error",
            "# (input_yi, sei) use it as given (vi = sei^2, as escalc(yi = , sei = ) computes it)"
            + (";" if generic else "; escalc(replace = FALSE)"),
            "# below keeps these values"
            + (" (rows with neither have no effect size)." if generic else " and computes the other rows."),
            "given <- !is.na(dat$input_yi) & (!is.na(dat$input_vi) | !is.na(dat$sei))",
            "dat$yi <- ifelse(given, dat$input_yi, NA_real_)",
            "dat$vi <- ifelse(given, ifelse(!is.na(dat$input_vi), dat$input_vi, dat$sei^2), NA_real_)",
        )
    if generic:
        r.add(f"dat <- escalc(measure = {_r_str(measure.code)}, yi = yi, vi = vi, data = dat)")
    else:
        call_args = ", ".join(f"{a} = {a}" for a in args)
        replace = ", replace = FALSE" if given else ""
        if measure.reported_forms:
            words = " and ".join(f"{f.columns[0]} ({f.label})" for f in measure.reported_forms)
            r.add(
                *(
                    "# " + line
                    for line in _wrap(
                        f"{measure.code} from {words} where a row gives them (escalc's own arguments: "
                        "a given di replaces the means, ti fills a missing di), otherwise from the raw inputs."
                    )
                )
            )
        r.add(f"dat <- escalc(measure = {_r_str(measure.code)}, {call_args}, data = dat{replace})")
    reverse = [str(i) for i in spec.get("reverse_instruments") or []]
    if reverse:
        r.add(
            *(
                "# " + line
                for line in _wrap(
                    f"Sign alignment: on {', '.join(reverse)} a higher score means the opposite of the "
                    "outcome's direction, so the platform reverses those rows' effects before pooling."
                )
            ),
            f"if (!is.null(dat$instrument)) dat$yi <- ifelse(dat$instrument %in% {_r_vec(reverse)}, -dat$yi, dat$yi)",
        )
    r.add(
        'cat(sprintf("escalc() beside the platform\'s effect sizes: largest difference %.3g (yi), %.3g (vi); ",',
        "            max(abs(dat$yi - es_platform$yi), 0, na.rm = TRUE),",
        "            max(abs(dat$vi - es_platform$vi), 0, na.rm = TRUE)))",
        'cat(sprintf("%d row(s) missing in one but not the other\\n", sum(is.na(dat$yi) != is.na(es_platform$yi))))',
    )

    # the selection
    r.block(
        f"The rows in the model (column in_model of block effect_sizes): the analysis keeps "
        f"{_selection_words(spec)}, and leaves out rows without a usable effect size or moderator "
        "value. The platform's column in_model says which rows entered (omitted_reason says why "
        "the others did not): keep those.",
        "all_rows <- dat",
        "dat <- dat[dat$in_model, ]",
    )

    def coercions(frame: str) -> list[str]:
        out = []
        for name in mods:
            col = f"{frame}[[{_r_str(_export_name(name))}]]"
            if name in levels:
                out.append(f"{col} <- factor({col}, levels = {_r_vec(levels[name])})")
            else:
                out.append(f"{col} <- as.numeric({col})")
        return out

    if mods and dependence != "aggregate":
        r.block(
            "Moderators: numbers as numbers; text as factors whose first level (the reference) is the "
            "platform's (R's sort order of the values in the model).",
            *coercions("dat"),
        )
    mods_arg = f", mods = ~ {' + '.join(_r_name(_export_name(m)) for m in mods)}" if mods else ""
    common = "method = method, test = test, level = level, control = ctl"
    has_es_id = any("es_id" in row for row in snap.rows)
    if dependence in ("multilevel", "che"):
        r.block(
            "Estimates within a study (random = ~ 1 | study/es_id): "
            + (
                "the column es_id where a row gives one, otherwise the row."
                if has_es_id
                else "every row is its own estimate."
            ),
            (
                'dat$es_id <- ifelse(is.na(dat$es_id), paste("row", dat$row), as.character(dat$es_id))'
                if has_es_id
                else "dat$es_id <- dat$row"
            ),
        )
    if dependence == "che":
        r.add(
            "# vcalc()'s obs: a row's position within its study, so that every two rows of a study are",
            "# distinct observations whose sampling errors correlate rho.",
            "dat$.position <- as.character(ave(dat$row, dat$study, FUN = seq_along))",
        )

    model_data = "dat"
    if mods:
        kind_words = f"meta-regression ({'fixed' if method == 'EE' else 'mixed'}-effects model)"
    else:
        kind_words = f"{'equal' if method == 'EE' else 'random'}-effects model"
    if dependence == "aggregate":
        r.block(
            f"Block aggregated: one effect per study, its rows pooled under compound symmetry "
            f"(rho = {rho:g}).",
            'agg <- aggregate(dat, cluster = study, struct = "CS", rho = rho)',
            'print(agg[c("study", "yi", "vi")])',
        )
        if mods:
            r.block(
                "Moderators (study-level: the same in every row of a study), coded as the platform codes them.",
                *coercions("agg"),
            )
        model_data = "agg"
        r.block(
            f"Block aggregated_fit: the {kind_words} on "
            f"the studies (rma, method {method}, {test} test, {float(level):g}% intervals).",
            f"fit <- rma(yi, vi{mods_arg}, data = agg, {common})",
            "print(fit)",
        )
    elif dependence == "none":
        r.block(
            f"Block fit: the {kind_words}, every row an "
            f"independent study (rma, method {method}, {test} test, {float(level):g}% intervals).",
            f"fit <- rma(yi, vi{mods_arg}, data = dat, {common})",
            "print(fit)",
        )
    else:
        mods_formula = f"~ {' + '.join(_r_name(_export_name(m)) for m in mods)}" if mods else "~ 1"
        r.block(
            "rma.mv() with metafor's optimiser (nlminb, on the log scale of the variance components). "
            "Where a variance component is at its boundary, 0, the likelihood is flat in it and the "
            "optimiser stops up to ~1e-5 (relative) away in the other component: where one ends at "
            "~0, fit_mv() refits with it fixed at 0 -- the same optimum, then found directly -- and "
            "keeps whichever fit has the larger likelihood.",
            "fit_mv <- function(d, V, mods = ~ 1, boundary = TRUE) {",
            "  f <- rma.mv(yi, V, mods = mods, random = ~ 1 | study/es_id, data = d,",
            "              method = method, test = test, level = level, control = ctl)",
            "  zero <- f$sigma2 < 1e-6 * max(f$sigma2, mean(d$vi))",
            "  if (boundary && any(zero) && !all(zero)) {",
            "    g <- try(rma.mv(yi, V, mods = mods, random = ~ 1 | study/es_id, data = d, sigma2 = ifelse(zero, 0, NA),",
            "                    method = method, test = test, level = level, control = ctl), silent = TRUE)",
            '    if (!inherits(g, "try-error") && logLik(g) >= logLik(f)) return(g)',
            "  }",
            "  f",
            "}",
        )
        if dependence == "che":
            r.block(
                f"Block {names['fit']}: correlated and hierarchical effects -- sampling errors of one "
                f"study correlated rho = {rho:g} (vcalc; every pair of a study's rows), random effects "
                "of studies and of estimates within studies (rma.mv, random = ~ 1 | study/es_id).",
                "V <- vcalc(vi, cluster = study, obs = .position, rho = rho, data = dat)",
                f"fit <- fit_mv(dat, V, mods = {mods_formula})",
                "print(fit)",
            )
        else:
            r.block(
                f"Block {names['fit']}: the three-level model -- random effects of studies and of "
                "estimates within studies (rma.mv, random = ~ 1 | study/es_id), sampling errors independent.",
                "V <- dat$vi",
                f"fit <- fit_mv(dat, V, mods = {mods_formula})",
                "print(fit)",
            )
    for kind in robust_blocks:
        var = kind.lower()
        what = (
            "CR2 (bias-reduced) with Satterthwaite degrees of freedom, through clubSandwich"
            if kind == "CR2"
            else "CR1 with n - p degrees of freedom"
        )
        headline = " -- the headline inference of block summary" if summary.get("inference") == kind else ""
        r.block(
            f"Block {names[kind]}: cluster-robust tests by study, {what}{headline}.",
            f"{var} <- robust(fit, cluster = study{', clubSandwich = TRUE' if kind == 'CR2' else ''})",
            f"print({var})",
        )
    if names["predict"] in blocks:
        r.block(
            f"Block {names['predict']}: the pooled estimate with its confidence and prediction interval.",
            "pred <- predict(fit)",
            "print(pred)",
        )
    if dependence in ("multilevel", "che"):
        mods_formula = f"~ {' + '.join(_r_name(_export_name(m)) for m in mods)}" if mods else "~ 1"
        r_dependent_extras(r, snap, names, mods_formula, rho if dependence == "che" else 0.0)
    else:
        r_one_level_extras(r, snap, model_data, common, dependence)

    _r_comparisons(r, snap, names, robust_blocks)
    return "\n".join(r.lines) + "\n"


def _r_comparisons(r: _R, snap: _Snapshot, names: Mapping[str, str], robust_blocks: Sequence[str]) -> None:
    """The closing table: R's numbers beside the platform's stored ones."""
    blocks = snap.blocks
    fit = blocks[names["fit"]]
    summary = blocks["summary"]
    source = "fit"
    if summary.get("inference") in robust_blocks:
        source = str(summary["inference"]).lower()
    r.check("summary.estimate", f"{source}$beta[1]", summary.get("estimate"))
    r.check("summary.se", f"{source}$se[1]", summary.get("se"))
    r.check("summary.ci_lb", f"{source}$ci.lb[1]", summary.get("ci_lb"))
    r.check("summary.ci_ub", f"{source}$ci.ub[1]", summary.get("ci_ub"))
    r.check("summary.pval", f"{source}$pval[1]", summary.get("pval"))
    if summary.get("dfs") is not None:
        r.check("summary.dfs", f"{source}$dfs[1]", summary.get("dfs"))
    p = len(fit.get("beta") or [])
    for j in range(p):
        r.check(f"{names['fit']}.beta[{j + 1}]", f"fit$beta[{j + 1}]", _first(fit.get("beta"), j))
        r.check(f"{names['fit']}.se[{j + 1}]", f"fit$se[{j + 1}]", _first(fit.get("se"), j))
    # a variance component is compared relative to the typical sampling variance where it is ~0
    es = blocks.get("effect_sizes") or {}
    vi = [
        v for v, m in zip(es.get("vi") or [], es.get("in_model") or [], strict=False) if m and v is not None
    ]
    typical = float(np.mean(vi)) if vi else 0.0
    if "sigma2" in fit:
        for j in range(len(fit.get("sigma2") or [])):
            r.check(
                f"{names['fit']}.sigma2[{j + 1}]", f"fit$sigma2[{j + 1}]", _first(fit["sigma2"], j), typical
            )
    else:
        r.check(f"{names['fit']}.tau2", "fit$tau2", fit.get("tau2"), typical)
    r.check(f"{names['fit']}.QE", "fit$QE", fit.get("QE"))
    if "sigma2" not in fit:
        r.check(f"{names['fit']}.I2", "fit$I2", fit.get("I2"))
    if p > 1:
        r.check(f"{names['fit']}.QM", "fit$QM", fit.get("QM"))
    for kind in robust_blocks:
        block = blocks[names[kind]]
        var = kind.lower()
        for j in range(len(block.get("se") or [])):
            r.check(f"{names[kind]}.se[{j + 1}]", f"{var}$se[{j + 1}]", _first(block.get("se"), j))
            r.check(f"{names[kind]}.dfs[{j + 1}]", f"at({var}$dfs, {j + 1})", _first(block.get("dfs"), j))
    pred = blocks.get(names["predict"])
    if isinstance(pred, Mapping):
        for field, expr in (("pred", "pred$pred"), ("pi_lb", "pred$pi.lb"), ("pi_ub", "pred$pi.ub")):
            r.check(f"{names['predict']}.{field}", f"{expr}[1]", _first(pred.get(field)))
        if summary.get("pi_inference") in robust_blocks:
            # the headline's prediction interval follows its inference: predict(robust(...))
            var = str(summary["pi_inference"]).lower()
            r.check("summary.pi_lb", f"predict({var})$pi.lb[1]", summary.get("pi_lb"))
            r.check("summary.pi_ub", f"predict({var})$pi.ub[1]", summary.get("pi_ub"))
    if not r.checks:
        return
    width = max(len(check[0]) for check in r.checks)

    def vector(values: Sequence[str]) -> list[str]:
        return [*(f"  {v}," for v in values[:-1]), f"  {values[-1]}", ")"]

    r.block(
        "R's numbers beside the platform's (result.json). An index [j] is R's (from 1): coefficient j, "
        "or variance component j (study, then estimate within study). The relative difference is to "
        "the larger of the two numbers; for a variance component, to the typical sampling variance "
        "where that is larger (a component at 0 is met by one within ~1e-10).",
        "at <- function(x, j) x[min(j, length(x))]  # a value given once for every coefficient",
        "platform <- c(",
        *vector([f"{_r_str(name)} = {_r_num(value)}" for name, _, value, _ in r.checks]),
        "ours <- c(",
        *vector([f"{_r_str(name)} = {expr}" for name, expr, _, _ in r.checks]),
        f"scale <- {_r_vec((check[3] for check in r.checks), _r_num)}",
        "reldiff <- ifelse(ours == platform, 0, abs(ours - platform) / pmax(abs(ours), abs(platform), scale))",
        'cat("\\n== R beside the platform\'s stored result ==\\n")',
        f'cat(sprintf("%-{width}s %24s %24s %10s\\n", "quantity", "R", "platform", "rel.diff"))',
        f'cat(sprintf("%-{width}s %24.17g %24.17g %10.2e\\n", names(platform), ours, platform, reldiff), sep = "")',
        'cat(sprintf("largest relative difference: %.2e (%s)\\n", max(reldiff), names(platform)[which.max(reldiff)]))',
    )


def r_script(result: AnalysisResult, data_file: str = DATA_CSV) -> str:
    """An R script that reproduces ``result`` with metafor from the exported CSV (``data_file``).

    It reads the rows (:func:`rows_csv`), recomputes the effect sizes with ``escalc()`` (given
    ``yi``/``vi``/``sei``, Cohen's ``di`` and ``ti`` through escalc's own arguments), keeps the rows
    in the model (column ``in_model``), fits the model of the result (``rma``; ``aggregate`` then
    ``rma``; ``rma.mv`` with ``vcalc`` for CHE), the cluster-robust tests, ``predict()`` and the
    sensitivity and bias analyses the result holds, and ends with R's numbers beside the stored
    ones. Comments name the block of the result each call reproduces.

    Raises
    ------
    ExportError
        The result is a failed computation or holds no fitted model.
    """
    snap = _snapshot(result)
    return _r_script(snap, _export_rows(snap), data_file)
