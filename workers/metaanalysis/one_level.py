"""The one-level pipeline: ``rma`` on independent rows, or on one aggregated effect per study, and
every block read from that model (prediction, Q-profile intervals, weights, bias tests, funnel,
leave-one-out, cumulative, influence, Baujat, Mantel-Haenszel and Peto, subgroups).

:func:`~workers.metaanalysis.analysis.run_analysis` hands the rows here when the dependence model
is ``none`` (:func:`run_independent`) or ``aggregate`` (:func:`run_aggregated`).
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import domains
from .bias import EggerResult, TrimfillResult, egger, fsn, funnel, rank_test, trimfill
from .block_names import block_names
from .dependent import Clustered, rho_sensitivity, rma_robust_blocks
from .design import is_missing
from .egger_line import egger_line
from .measures import REGISTRY
from .model_rows import moderators
from .multilevel.aggregate import aggregate
from .notes import Notes, add_block, safe, with_labels
from .rma import FitResult, confint, predict, rma
from .sensitivity import baujat, cumulative, influence, leave1out, loo_fits
from .spec import AnalysisSpec
from .subgroups import subgroups
from .weights import rma_weights

__all__ = ["run_aggregated", "run_independent"]

#: Largest k for the cumulative meta-analysis: its k models over growing prefixes cost O(k^2)
#: (about 1 s at k = 10^4); leave-one-out and influence are O(k) per model and have no limit.
CUMULATIVE_MAX_K = 20_000


@dataclasses.dataclass(frozen=True)
class _Model:
    """The fitted model and the rows it came from: what every block after the fit reads.

    ``idx`` are the input rows in the model and ``labels`` their study labels, in model order.
    """

    spec: AnalysisSpec
    fit: FitResult
    rows: Sequence[Mapping[str, object]]
    idx: np.ndarray
    labels: list[str]


def _add_fit(block: str, fit: FitResult, labels: list[str], blocks: dict[str, Any], notes: Notes) -> None:
    """Store the fitted model as ``block`` with its notes, and its weights (metafor's
    ``weights()``) beside it, one per study of the model labelled ``labels``."""
    blocks[block] = fit
    for msg in fit.notes:
        notes.add(block, "fit_note", msg)
    blocks[block_names("none")["weights"]] = with_labels(rma_weights(fit), labels)


def run_independent(
    spec: AnalysisSpec,
    rows: Sequence[Mapping[str, object]],
    data: Mapping[str, list[object]],
    clustered: Clustered,
    labels: list[str],
    blocks: dict[str, Any],
    notes: Notes,
) -> None:
    """Rows as independent studies (``rma``); with several rows in a study, only with robust tests."""
    several = clustered.largest_study > 1
    if several and not spec.robust:
        counts = Counter(clustered.studies)
        worst = max(counts, key=lambda s: counts[s])
        notes.add(
            "model",
            "several_rows_per_study",
            f"study {worst} has {counts[worst]} rows in the model, but the dependence model 'none' "
            "treats every row as a separate study: choose aggregate, multilevel or che, select one "
            "time point and instrument, or use cluster-robust tests",
        )
        return
    if several:
        notes.add(
            "mantel_haenszel",
            "not_applicable",
            "Mantel-Haenszel and Peto pooling treat rows as independent studies: not with several rows per study",
        )
    else:
        # the tables of the rows in the model: not those another time point or instrument left out
        in_model = {name: [column[i] for i in clustered.rows] for name, column in data.items()}
        _table_blocks(spec, in_model, blocks, notes)
    fit: FitResult | None = safe(
        notes,
        "fit",
        lambda: rma(
            clustered.yi,
            clustered.vi,
            method=spec.method,
            test=spec.test,
            level=spec.level,
            X=clustered.X,
            coef_names=clustered.coef_names,
        ),
    )
    if fit is None:
        notes.add("model", "no_model", "the model could not be fitted: every block that needs it is absent")
        return
    model = _Model(spec, fit, rows, clustered.rows, [labels[i] for i in clustered.rows])
    _add_fit("fit", fit, model.labels, blocks, notes)
    if several:
        rma_robust_blocks(fit, clustered, blocks, notes)
        if fit.int_only:
            blocks["predict"] = predict(fit)
        notes.add(
            "sensitivity",
            "not_applicable",
            "row-level diagnostics (leave-one-out, influence, bias tests) assume independent rows: "
            "choose a dependence model for them",
        )
    else:
        _model_blocks(model, blocks, notes)


def run_aggregated(
    spec: AnalysisSpec,
    rows: Sequence[Mapping[str, object]],
    labels: list[str],
    es: Any,
    usable: np.ndarray,
    blocks: dict[str, Any],
    notes: Notes,
    omitted: list[dict[str, Any]],
) -> np.ndarray:
    """One effect per study (``aggregate``), then the one-level model and its blocks on the studies.

    Returns the rows pooled into the aggregated studies.
    """
    idx = np.flatnonzero(usable)
    agg = aggregate(es.yi[idx], es.vi[idx], [labels[i] for i in idx], spec.rho, row_numbers=idx)
    blocks["aggregated"] = agg
    # a study's row for moderators, subgroups and order: its first row (study-level columns)
    first = [int(m[0]) for m in agg.members]
    study_rows = [dict(rows[i]) for i in first]
    for name in (*spec.mods, spec.subgroup, spec.cumulative_order):
        if name is None:
            continue
        for s, members in zip(agg.study, agg.members, strict=True):
            values = {str(rows[m].get(name)) for m in members}
            if len(values) > 1:
                notes.add(
                    "model",
                    "varies_within_study",
                    f"{name} varies within study {s} ({', '.join(sorted(values))}): aggregating to one "
                    "effect per study needs study-level columns; use the multilevel or che model",
                )
                return idx
    everyone = np.ones(len(study_rows), dtype=bool)
    in_model, X, coef_names = moderators(spec, study_rows, everyone, first, list(agg.study), omitted)
    sidx = np.flatnonzero(in_model)
    fit: FitResult | None = safe(
        notes,
        "aggregated_fit",
        lambda: rma(
            agg.yi[sidx],
            agg.vi[sidx],
            method=spec.method,
            test=spec.test,
            level=spec.level,
            X=X,
            coef_names=coef_names,
        ),
    )
    if fit is None:
        notes.add("model", "no_model", "the model could not be fitted: every block that needs it is absent")
        return idx
    model = _Model(spec, fit, study_rows, sidx, [agg.study[i] for i in sidx])
    _add_fit("aggregated_fit", fit, model.labels, blocks, notes)
    _model_blocks(model, blocks, notes)
    if fit.int_only:
        data = Clustered(
            spec=spec,
            yi=es.yi[idx],
            vi=es.vi[idx],
            X=None,
            coef_names=None,
            studies=[labels[i] for i in idx],
            es_id=None,
            rows=idx,
        )
        add_block(blocks, notes, "rho_sensitivity", lambda: rho_sensitivity(data, "aggregate"))
    return idx


def _table_blocks(
    spec: AnalysisSpec, data: Mapping[str, list[object]], blocks: dict[str, Any], notes: Notes
) -> None:
    """Mantel-Haenszel and Peto pooling straight from the 2x2 tables."""
    measure = REGISTRY[spec.measure]
    # the report pools 2x2 tables only; person-time data have no Mantel-Haenszel block here
    if not (measure.mantel_haenszel and measure.family == "table"):
        return
    from .mantel_haenszel import rma_mh, rma_peto

    cells = {name: data.get(name) for name in ("ai", "bi", "ci", "di")}
    # tables given as events and group sizes (ai, n1i, ci, n2i), as escalc accepts them
    for t in domains.of(spec.measure).totals:
        ev = cells[t.events]
        if cells[t.part] is None and t.total in data and ev is not None:
            cells[t.part] = [
                None if is_missing(n) or is_missing(a) else n - a  # type: ignore[operator]
                for n, a in zip(data[t.total], ev, strict=True)
            ]
    if any(c is None for c in cells.values()):
        notes.add(
            "mantel_haenszel", "not_applicable", "Mantel-Haenszel pooling needs the columns ai, bi, ci, di"
        )
        return
    add_block(
        blocks,
        notes,
        "mantel_haenszel",
        lambda: rma_mh(spec.measure, cells, level=spec.level),
    )
    if measure.peto:
        add_block(
            blocks,
            notes,
            "peto",
            lambda: rma_peto(cells, level=spec.level),
        )


def _model_blocks(model: _Model, blocks: dict[str, Any], notes: Notes) -> None:
    """Every block computed from the fitted model."""
    spec, fit, rows, idx = model.spec, model.fit, model.rows, model.idx
    if fit.int_only:
        blocks["predict"] = predict(fit)
    else:
        notes.add(
            "predict",
            "not_applicable",
            "a meta-regression has no single pooled estimate: predict() would give per-study fitted values",
        )
    if fit.method == "EE":
        notes.add(
            "confint",
            "not_applicable",
            "the equal-effects model has no tau² to give a confidence interval for",
        )
    else:
        add_block(blocks, notes, "confint", lambda: confint(fit), reasons=True)
    if spec.bias:
        _bias_blocks(fit, blocks, notes)
    if fit.int_only:
        trim = blocks.get("trimfill")
        blocks["funnel"] = funnel(fit, trim if isinstance(trim, TrimfillResult) else None)
        test = blocks.get("egger")
        if isinstance(test, EggerResult):
            # the line of the regression Egger's test fitted, drawn on the funnel
            line = safe(notes, "funnel", lambda: egger_line(fit, test))
            if line is not None:
                blocks["funnel"]["egger_line"] = line
    else:
        notes.add("funnel", "not_applicable", "the funnel plot is drawn for models without moderators")
    if spec.sensitivity:
        _sensitivity_blocks(model, blocks, notes)
    if spec.subgroup is not None:
        groups = [rows[i].get(spec.subgroup) for i in idx]
        if not any(spec.subgroup in r for r in rows):
            notes.add("subgroups", "unknown_column", f"subgroup column {spec.subgroup!r} is not in the data")
        else:
            add_block(
                blocks,
                notes,
                "subgroups",
                lambda: subgroups(
                    fit.yi, fit.vi, groups, method=spec.method, test=spec.test, level=spec.level
                ),
                reasons=True,
            )


def _bias_blocks(fit: FitResult, blocks: dict[str, Any], notes: Notes) -> None:
    add_block(blocks, notes, "egger", lambda: egger(fit), reasons=True)
    if fit.k < 2:
        notes.add("rank", "insufficient_data", "the rank correlation test needs at least 2 studies")
    else:
        res = safe(notes, "rank", lambda: rank_test(fit))
        if res is not None:
            if math.isnan(res.tau):
                notes.add("rank", "not_computable", res.na_reasons.get("tau", "Kendall's tau is undefined"))
            else:
                blocks["rank"] = res
                if not res.exact:
                    notes.add(
                        "rank",
                        "normal_approximation",
                        "ties (or k > 400): the p-value uses the normal approximation, as cor.test",
                    )
    add_block(blocks, notes, "fsn", lambda: fsn(fit.yi, fit.vi))
    if not fit.int_only:
        notes.add("trimfill", "not_applicable", "trim-and-fill applies to models without moderators only")
    else:
        # metafor picks the side from the sign of the sei slope of the same regression Egger's
        # test fits (only the convergence settings differ): reuse it unless the slope is ~0
        eg = blocks.get("egger")
        side = None
        if isinstance(eg, EggerResult) and abs(eg.stat) > 1e-3:
            side = "right" if eg.stat < 0 else "left"
        res = safe(notes, "trimfill", lambda: trimfill(fit, side))
        if res is not None:
            blocks["trimfill"] = res
            if res.k0 > 0 and (fit.test != "z" or fit.level != 95.0):
                notes.add(
                    "trimfill",
                    "metafor_defaults",
                    "as metafor's trimfill(), the filled-in model uses the z test and a 95% interval",
                )


def _sensitivity_blocks(model: _Model, blocks: dict[str, Any], notes: Notes) -> None:
    spec, fit, rows, idx, labs = model.spec, model.fit, model.rows, model.idx, model.labels
    if not fit.int_only:
        notes.add(
            "leave1out", "not_applicable", "leave-one-out applies to models without moderators (as metafor)"
        )
        notes.add(
            "cumulative",
            "not_applicable",
            "cumulative meta-analysis applies to models without moderators (as metafor)",
        )
    loo = safe(notes, "influence", lambda: loo_fits(fit)) if fit.k >= 2 else None
    if fit.int_only:
        _add_leave_one_out_block(
            model, loo, blocks, notes, "leave1out", leave1out, "leave-one-out needs at least 2 studies"
        )
        order = None
        if spec.cumulative_order is not None:
            if not any(spec.cumulative_order in r for r in rows):
                notes.add(
                    "cumulative",
                    "unknown_column",
                    f"order column {spec.cumulative_order!r} is not in the data: row order used",
                )
            else:
                order = [rows[i].get(spec.cumulative_order) for i in idx]
        res = None
        if fit.k > CUMULATIVE_MAX_K:
            notes.add(
                "cumulative",
                "too_many_studies",
                f"cumulative meta-analysis costs O(k^2); skipped for k > {CUMULATIVE_MAX_K} (k = {fit.k})",
            )
        else:
            res = safe(notes, "cumulative", lambda: cumulative(fit, order))
        if res is not None:
            blocks["cumulative"] = with_labels(res, [labs[i] for i in res.order])
            for i, msg in res.failed.items():
                notes.add("cumulative", "refit_failed", f"up to {labs[int(res.order[i])]}: {msg}")
    _add_leave_one_out_block(
        model, loo, blocks, notes, "influence", influence, "influence diagnostics need at least 2 studies"
    )
    _add_leave_one_out_block(
        model, loo, blocks, notes, "baujat", baujat, "the Baujat plot needs at least 2 studies"
    )


def _add_leave_one_out_block(
    model: _Model,
    loo: Any,
    blocks: dict[str, Any],
    notes: Notes,
    block: str,
    compute: Callable[[FitResult, Any], Any],
    too_few: str,
) -> None:
    """A block read from the k leave-one-out fits ``loo`` (leave-one-out, influence), labelled by
    study; ``too_few`` is the note when the model has fewer than 2 studies."""
    fit, labs = model.fit, model.labels
    if fit.k < 2:
        notes.add(block, "insufficient_data", too_few)
    elif loo is not None:
        res = safe(notes, block, lambda: compute(fit, loo))
        if res is not None:
            blocks[block] = with_labels(res, labs)
            for i, msg in res.failed.items():
                notes.add(block, "refit_failed", f"without {labs[i]}: {msg}")
