"""One call that runs every analysis the platform reports for an outcome: :func:`run_analysis`.

The worker recomputes on every data upload: it builds an :class:`AnalysisSpec` from the
outcome's settings and passes the study rows. The report holds one block per analysis, named and
shaped like the reference files (see ``tests/metaanalysis/cases``). A block that cannot be
computed, or does not apply to the model, is absent and a note says why; rows left out of the
model are listed with the reason. Nothing is ever a silent NaN.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import ENGINE_VERSION, effects
from .dependent import Clustered, dependent_blocks, resolve_dependence, summary_block
from .design import is_missing
from .errors import InvalidInputError
from .jsonable import ResultBase, to_jsonable
from .model_rows import all_rows_left_out, es_ids, moderators, study_labels, usable_rows
from .notes import Notes
from .one_level import run_aggregated, run_independent
from .spec import AnalysisSpec, spec_hash

__all__ = [
    "AnalysisReport",
    "AnalysisSpec",
    "ModelPlan",
    "all_rows_left_out",
    "model_plan",
    "run_analysis",
    "spec_hash",
]

#: Columns besides the study that identify a row (one effect), carried into ``effect_sizes``.
ROW_IDENTITY: tuple[str, ...] = ("comparison", "instrument", "timepoint")


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
        Blocks (when they apply): ``effect_sizes`` (escalc), ``fit`` (rma), ``weights``,
        ``predict``, ``confint`` (Q-profile), ``egger`` (regtest), ``rank`` (ranktest), ``fsn``
        (Rosenthal), ``trimfill``, ``leave1out``, ``cumulative``, ``influence``, ``baujat``,
        ``mantel_haenszel`` (OR, RR, RD), ``peto`` (OR), ``subgroups``, ``funnel`` (with Egger's
        line); for several effects per study the blocks of :mod:`.dependent`.

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
    labels = study_labels(rows)
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
    usable, omitted = usable_rows(spec, rows, labels, es)
    studies_usable = [labels[i] for i in np.flatnonzero(usable)]
    dependence, why = resolve_dependence(spec, studies_usable)
    blocks["model"] = {"dependence": dependence, "reason": why, "rho": spec.rho, "robust": spec.robust}

    if dependence == "aggregate":
        idx = run_aggregated(spec, rows, labels, es, usable, blocks, notes, omitted)
    else:
        in_model, X, coef_names = moderators(spec, rows, usable, list(range(len(rows))), labels, omitted)
        idx = np.flatnonzero(in_model)
        clustered = Clustered(
            spec=spec,
            yi=es.yi[idx],
            vi=es.vi[idx],
            X=X,
            coef_names=None if coef_names is None else tuple(coef_names),
            studies=[labels[i] for i in idx],
            es_id=es_ids(rows, idx),
            rows=idx,
        )
        if dependence == "none":
            run_independent(spec, rows, data, clustered, labels, blocks, notes)
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
    labels = study_labels(rows)
    es = effects.escalc(spec.measure, effects.columns_of(rows))
    usable, omitted = usable_rows(spec, rows, labels, es)
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
