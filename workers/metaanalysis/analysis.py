"""One call that runs every analysis the platform reports for an outcome: :func:`run_analysis`.

The worker recomputes on every data upload: it builds an :class:`AnalysisSpec` from the
outcome's settings and passes the study rows. The report holds one block per analysis, named and
shaped like the reference files (see ``tests/metaanalysis/cases``). A block that cannot be
computed, or does not apply to the model, is absent and a note says why; rows left out of the
model are listed with the reason. Nothing is ever a silent NaN.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import ENGINE_VERSION, effects
from .bias import EggerResult, TrimfillResult, egger, fsn, funnel, rank_test, trimfill
from .dependent import (
    Clustered,
    dependent_blocks,
    resolve_dependence,
    rho_sensitivity,
    rma_robust_blocks,
    summary_block,
)
from .design import build_design, is_missing
from .errors import InvalidInputError
from .measures import REGISTRY
from .multilevel.aggregate import aggregate
from .notes import Notes, add_block, safe, with_labels
from .results import ResultBase, to_jsonable
from .rma import FitResult, confint, predict, rma
from .selection import select_rows
from .sensitivity import cumulative, influence, leave1out, loo_fits
from .spec import AnalysisSpec, spec_hash
from .subgroups import subgroups

__all__ = ["AnalysisReport", "AnalysisSpec", "ModelPlan", "model_plan", "run_analysis", "spec_hash"]


#: The column that identifies an estimate within its study (metafor's ``es_id`` in
#: ``random = ~ 1 | study/es_id``); without it every row is its own estimate.
ES_ID = "es_id"

#: Columns besides the study that identify a row (one effect), carried into ``effect_sizes``.
ROW_IDENTITY: tuple[str, ...] = ("comparison", "instrument", "timepoint")

#: Largest k for the cumulative meta-analysis: its k models over growing prefixes cost O(k^2)
#: (about 1 s at k = 10^4); leave-one-out and influence are O(k) per model and have no limit.
CUMULATIVE_MAX_K = 20_000


@dataclasses.dataclass(frozen=True, eq=False)
class AnalysisReport(ResultBase):
    """Everything computed for one outcome; ``to_dict()`` is what the platform stores."""

    engine_version: str
    spec: AnalysisSpec
    k: int
    blocks: dict[str, Any]
    omitted: list[dict[str, Any]]
    notes: list[dict[str, str]]

    def no_estimate_reason(self) -> str | None:
        """Why the report has no pooled estimate, in words a steering group can act on; None when
        it has one. A report without an estimate is never a finished result (the platform stores
        it as failed with this reason, and keeps showing the last result that had one)."""
        if "summary" in self.blocks:
            return None
        if self.k == 0:
            return all_rows_left_out(self.omitted)
        # the model's own refusal: the first note on a fit block, else the dependence note
        model_notes = [n for n in self.notes if n["code"] != "no_model"]
        fit_notes = [n for n in model_notes if "fit" in n["block"]]
        found = fit_notes or [n for n in model_notes if n["block"] == "model"]
        why = found[0]["message"] if found else "the engine gave no reason"
        return f"No pooled estimate: the model could not be fitted to the {self.k} rows ({why})."

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine_version": self.engine_version,
            "spec": self.spec.to_dict(),
            "k": self.k,
            "blocks": to_jsonable(self.blocks),
            "omitted": to_jsonable(self.omitted),
            "notes": list(self.notes),
        }


def all_rows_left_out(omitted: Sequence[Mapping[str, Any]]) -> str:
    """That no row enters the model, with the reasons rows are left out, most frequent first (at
    most three of them)."""
    if not omitted:
        return "No row enters the model."
    counts = Counter(str(o["reason"]) for o in omitted)
    parts = [f"{n} row{'s' if n != 1 else ''}: {reason}" for reason, n in counts.most_common(3)]
    if len(counts) > 3:
        parts.append(f"{sum(n for _, n in counts.most_common()[3:])} for other reasons")
    n = len(omitted)
    return (
        f"No row enters the model; all {n} row{'s are' if n != 1 else ' is'} left out ({'; '.join(parts)})."
    )


def _study_labels(rows: Sequence[Mapping[str, object]]) -> list[str]:
    out = []
    for i, r in enumerate(rows):
        s = r.get("study")
        out.append(f"Study {i + 1}" if s is None or is_missing(s) else str(s))
    return out


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


def run_analysis(spec: AnalysisSpec, rows: Sequence[Mapping[str, object]]) -> AnalysisReport:
    """Run every analysis of ``spec`` on the study rows.

    Parameters
    ----------
    spec : AnalysisSpec
    rows : sequence of mappings
        One mapping per study: metafor's column names for the measure (``ai bi ci di``,
        ``m1i sd1i n1i m2i sd2i n2i``, ``ri ni``, ``xi ni``, ``x1i t1i x2i t2i``, ``yi vi``),
        ``study`` (label) and the moderator/subgroup/order columns.

    Returns
    -------
    AnalysisReport
        ``to_dict()`` gives ``{"engine_version", "spec", "k", "blocks", "omitted", "notes"}``.
        Blocks (when they apply): ``effect_sizes`` (escalc), ``fit`` (rma), ``predict``,
        ``confint`` (Q-profile), ``egger`` (regtest), ``rank`` (ranktest), ``fsn`` (Rosenthal),
        ``trimfill``, ``leave1out``, ``cumulative``, ``influence``, ``mantel_haenszel`` (OR, RR,
        RD), ``peto`` (OR), ``subgroups``, ``funnel``.

    Raises
    ------
    InvalidInputError
        The study table cannot be read (missing columns, values metafor rejects, bad
        moderators): the data manager has to fix the upload. Model-level problems (too few
        studies, singular moderators, non-convergence) do not raise: the report then holds the
        effect sizes and notes saying why the model blocks are absent.
    """
    if not isinstance(spec, AnalysisSpec):
        raise InvalidInputError("spec must be an AnalysisSpec", code="invalid_spec")
    rows = list(rows)
    notes = Notes()
    blocks: dict[str, Any] = {}
    labels = _study_labels(rows)
    data = effects.columns_of(rows)
    es = effects.escalc(spec.measure, data)
    es, aligned = _align(spec, data, es, notes)
    # each row's input form and how its effect was derived ("SMD from t = 2.1, n = 20/22"), shown
    # wherever the row's effect is shown
    blocks["effect_sizes"] = {
        "study": labels,
        "yi": es.yi,
        "vi": es.vi,
        "form": list(es.forms),
        "derivation": list(es.derivations),
    }
    if aligned is not None:
        blocks["effect_sizes"]["aligned"] = aligned
    # what each row is (beside its study), so that a row's effect can be shown with it
    for name in ROW_IDENTITY:
        if name in data:
            blocks["effect_sizes"][name] = [None if is_missing(v) else str(v) for v in data[name]]
    usable, omitted = _usable_rows(spec, rows, labels, es)
    studies_usable = [labels[i] for i in np.flatnonzero(usable)]
    dependence, why = resolve_dependence(spec, studies_usable)
    blocks["model"] = {"dependence": dependence, "reason": why, "rho": spec.rho, "robust": spec.robust}

    if dependence == "aggregate":
        idx = _run_aggregated(spec, rows, labels, es, usable, blocks, notes, omitted)
    else:
        in_model, X, coef_names = _moderators(spec, rows, usable, list(range(len(rows))), labels, omitted)
        idx = np.flatnonzero(in_model)
        clustered = Clustered(
            spec=spec,
            yi=es.yi[idx],
            vi=es.vi[idx],
            X=X,
            coef_names=None if coef_names is None else tuple(coef_names),
            studies=[labels[i] for i in idx],
            es_id=_es_ids(rows, idx),
            rows=idx,
        )
        if dependence == "none":
            _run_independent(spec, rows, data, clustered, labels, blocks, notes)
        else:
            dependent_blocks(dependence, clustered, blocks, notes)
    k = int(idx.size)
    in_model = np.zeros(len(rows), dtype=bool)
    in_model[idx] = True
    blocks["effect_sizes"]["in_model"] = in_model
    omitted.sort(key=lambda o: o["row"])
    summary = summary_block(dependence, why, spec, blocks, len(set(studies_usable)))
    if summary is not None:
        blocks["summary"] = summary
    return AnalysisReport(
        engine_version=ENGINE_VERSION, spec=spec, k=k, blocks=blocks, omitted=omitted, notes=notes.items
    )


def _align(
    spec: AnalysisSpec, data: Mapping[str, list[object]], es: Any, notes: Notes
) -> tuple[Any, list[bool] | None]:
    """The effect sizes with the rows on ``spec.reverse_instruments`` negated, so that every row's
    sign means the same, and which rows were (None when the specification reverses none)."""
    if not spec.reverse_instruments:
        return es, None
    instruments = data.get("instrument") or [None] * len(es.yi)
    flip = [not is_missing(v) and str(v) in spec.reverse_instruments for v in instruments]
    if any(flip):
        yi = np.array(es.yi, dtype=float)
        yi[np.asarray(flip)] *= -1.0
        yi.setflags(write=False)
        es = dataclasses.replace(es, yi=yi)
        names = ", ".join(sorted({str(v) for v, f in zip(instruments, flip, strict=True) if f}))
        notes.add(
            "effect_sizes",
            "sign_aligned",
            f"{sum(flip)} effect(s) on {names} reversed: on that scale a higher score means the opposite "
            "of the outcome's direction, so the sign is aligned before pooling",
        )
    return es, flip


def _usable_rows(
    spec: AnalysisSpec, rows: Sequence[Mapping[str, object]], labels: list[str], es: Any
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The rows the specification selects and whose effect can be computed, and every other row
    with the reason it is left out (``{"row", "study", "code", "reason"}``)."""
    selected, not_selected = select_rows(spec, rows, labels)
    usable = np.asarray(effects.included(es), dtype=bool) & selected
    omitted: list[dict[str, Any]] = [
        {"row": i, "study": labels[i], "code": "not_selected", "reason": why}
        for i, why in not_selected.items()
    ]
    omitted += [
        {"row": o.row, "study": labels[o.row], "code": o.code, "reason": o.reason}
        for o in effects.omitted_rows(es)
        if selected[o.row]
    ]
    return usable, omitted


@dataclasses.dataclass(frozen=True)
class ModelPlan:
    """What :func:`run_analysis` would fit to these rows, decided before fitting anything: the
    dependence model and why, how many rows and studies enter, and the most rows one study has."""

    dependence: str
    reason: str
    k: int
    n_studies: int
    largest_study: int
    omitted: list[dict[str, Any]]


def model_plan(spec: AnalysisSpec, rows: Sequence[Mapping[str, object]]) -> ModelPlan:
    """The model ``run_analysis(spec, rows)`` would fit (see :class:`ModelPlan`); raises
    ``InvalidInputError`` where it would. Costs the effect sizes, never a fit: settings are checked
    against the data with it before they are saved."""
    rows = list(rows)
    labels = _study_labels(rows)
    es = effects.escalc(spec.measure, effects.columns_of(rows))
    usable, omitted = _usable_rows(spec, rows, labels, es)
    studies = [labels[i] for i in np.flatnonzero(usable)]
    dependence, why = resolve_dependence(spec, studies)
    counts = Counter(studies)
    return ModelPlan(
        dependence=dependence,
        reason=why,
        k=len(studies),
        n_studies=len(counts),
        largest_study=max(counts.values(), default=0),
        omitted=sorted(omitted, key=lambda o: o["row"]),
    )


def _moderators(
    spec: AnalysisSpec,
    rows: Sequence[Mapping[str, object]],
    usable: np.ndarray,
    row_numbers: Sequence[int],
    labels: Sequence[str],
    omitted: list[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The rows in the model, the moderator matrix and its column names (None without moderators).

    A usable row with a missing moderator is left out and listed in ``omitted`` under its uploaded
    row number (``row_numbers``) and study (``labels``).
    """
    if not spec.mods:
        return usable.copy(), None, None
    design = build_design(rows, spec.mods, usable)
    for i in sorted(design.missing):
        if usable[i]:
            omitted.append(
                {
                    "row": int(row_numbers[i]),
                    "study": labels[i],
                    "code": "missing_moderator",
                    "reason": "missing moderator value: " + ", ".join(design.missing[i]),
                }
            )
    return design.complete, design.X[design.complete], list(design.coef_names)


def _es_ids(rows: Sequence[Mapping[str, object]], idx: np.ndarray) -> list[object] | None:
    """The estimate identifiers of the model rows (column ``es_id``); None when the data have none,
    and then every row is its own estimate."""
    if not any(ES_ID in rows[i] for i in idx):
        return None
    return [rows[i].get(ES_ID) if not is_missing(rows[i].get(ES_ID)) else f"row {i}" for i in idx]


def _run_independent(
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
    blocks["fit"] = fit
    for msg in fit.notes:
        notes.add("fit", "fit_note", msg)
    model = _Model(spec, fit, rows, clustered.rows, [labels[i] for i in clustered.rows])
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


def _run_aggregated(
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
    in_model, X, coef_names = _moderators(spec, study_rows, everyone, first, list(agg.study), omitted)
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
    blocks["aggregated_fit"] = fit
    for msg in fit.notes:
        notes.add("aggregated_fit", "fit_note", msg)
    _model_blocks(_Model(spec, fit, study_rows, sidx, [agg.study[i] for i in sidx]), blocks, notes)
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
    from . import mh

    cells = {name: data.get(name) for name in ("ai", "bi", "ci", "di")}
    # tables given as events and group sizes (ai, n1i, ci, n2i), as escalc accepts them
    for part, total, events in (("bi", "n1i", "ai"), ("di", "n2i", "ci")):
        ev = cells[events]
        if cells[part] is None and total in data and ev is not None:
            cells[part] = [
                None if is_missing(n) or is_missing(a) else n - a  # type: ignore[operator]
                for n, a in zip(data[total], ev, strict=True)
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
        lambda: mh.mantel_haenszel(
            spec.measure, cells["ai"], cells["bi"], cells["ci"], cells["di"], level=spec.level
        ),
    )
    if measure.peto:
        add_block(
            blocks,
            notes,
            "peto",
            lambda: mh.peto(cells["ai"], cells["bi"], cells["ci"], cells["di"], level=spec.level),
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
