"""One call that runs every analysis the platform reports for an outcome: :func:`run_analysis`.

The worker recomputes on every data upload: it builds an :class:`AnalysisSpec` from the
outcome's settings and passes the study rows. The report holds one block per analysis, named and
shaped like the reference files (see ``tests/metaanalysis/cases``). A block that cannot be
computed, or does not apply to the model, is absent and a note says why; rows left out of the
model are listed with the reason. Nothing is ever a silent NaN.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from . import ENGINE_VERSION
from .bias import EggerResult, TrimfillResult, egger, fsn, funnel, rank_test, trimfill
from .design import build_design, is_missing
from .errors import EngineError, InvalidInputError
from .estimators import METHODS, TESTS
from .measures import OUTCOME_MEASURES, REGISTRY
from .results import ResultBase, to_jsonable
from .rma import EngineResult, FitResult, confint, predict, rma
from .sensitivity import cumulative, influence, leave1out, loo_fits
from .subgroups import subgroups

__all__ = ["AnalysisReport", "AnalysisSpec", "run_analysis", "spec_hash"]

#: Largest k for the cumulative meta-analysis: its k models over growing prefixes cost O(k^2)
#: (about 1 s at k = 10^4); leave-one-out and influence are O(k) per model and have no limit.
CUMULATIVE_MAX_K = 20_000


@dataclasses.dataclass(frozen=True)
class AnalysisSpec:
    """What to compute for one outcome.

    Attributes
    ----------
    measure : str
        metafor's effect-size measure (``SMD``, ``OR``, ..., ``GEN`` for given yi/vi).
    method : str
        tau² estimator (``REML`` default; ``EE`` for the equal-effects model).
    test : str
        ``z`` or ``knha`` (Knapp-Hartung); ``t`` is accepted too.
    level : float
        Confidence level in percent.
    mods : tuple of str
        Moderator columns of a meta-regression (intercept added).
    subgroup : str or None
        Column defining subgroups for a subgroup analysis.
    cumulative_order : str or None
        Column to order the cumulative meta-analysis by (row order when None).
    sensitivity : bool
        Run leave-one-out, cumulative and influence diagnostics.
    bias : bool
        Run the publication-bias analyses (Egger, rank test, fail-safe N, trim-and-fill).
    """

    measure: str
    method: str = "REML"
    test: str = "z"
    level: float = 95.0
    mods: tuple[str, ...] = ()
    subgroup: str | None = None
    cumulative_order: str | None = None
    sensitivity: bool = True
    bias: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.measure, str) or self.measure not in OUTCOME_MEASURES:
            raise InvalidInputError(
                f"unknown measure {self.measure!r}; use one of {', '.join(OUTCOME_MEASURES)}",
                code="invalid_measure",
                column="measure",
            )
        if self.method not in METHODS:
            raise InvalidInputError(
                f"unknown method {self.method!r}; use one of {', '.join(METHODS)}",
                code="invalid_method",
                column="method",
            )
        if self.test not in TESTS:
            raise InvalidInputError(
                f"unknown test {self.test!r}; use one of {', '.join(TESTS)}",
                code="invalid_test",
                column="test",
            )
        lev = self.level
        if (
            isinstance(lev, bool)
            or not isinstance(lev, int | float)
            or not math.isfinite(lev)
            or not 0 < lev < 100
        ):
            raise InvalidInputError(
                f"level must be a percentage between 0 and 100, got {lev!r}",
                code="invalid_level",
                column="level",
            )
        object.__setattr__(self, "level", float(lev))
        if isinstance(self.mods, str):
            raise InvalidInputError(
                "mods must be a sequence of column names, not a string", code="invalid_mods", column="mods"
            )
        mods = tuple(self.mods)
        if not all(isinstance(m, str) and m for m in mods):
            raise InvalidInputError("mods must be non-empty column names", code="invalid_mods", column="mods")
        if len(set(mods)) != len(mods):
            raise InvalidInputError("mods lists a column twice", code="invalid_mods", column="mods")
        object.__setattr__(self, "mods", mods)
        for name in ("subgroup", "cumulative_order"):
            val = getattr(self, name)
            if val is not None and (not isinstance(val, str) or not val):
                raise InvalidInputError(
                    f"{name} must be a column name or None", code=f"invalid_{name}", column=name
                )
        for name in ("sensitivity", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false", code=f"invalid_{name}", column=name)

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-ready form of the spec."""
        return {
            "measure": self.measure,
            "method": self.method,
            "test": self.test,
            "level": self.level,
            "mods": list(self.mods),
            "subgroup": self.subgroup,
            "cumulative_order": self.cumulative_order,
            "sensitivity": self.sensitivity,
            "bias": self.bias,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AnalysisSpec:
        """Build a spec from its ``to_dict()`` form (unknown keys are refused)."""
        known = {f.name for f in dataclasses.fields(cls)}
        extra = set(data) - known
        if extra:
            raise InvalidInputError(f"unknown spec field(s): {', '.join(sorted(extra))}", code="invalid_spec")
        kwargs = dict(data)
        if "mods" in kwargs and kwargs["mods"] is not None and not isinstance(kwargs["mods"], str):
            kwargs["mods"] = tuple(kwargs["mods"])
        return cls(**kwargs)

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON (see :func:`spec_hash`)."""
        return spec_hash(self.to_dict())


def spec_hash(spec: Mapping[str, Any]) -> str:
    """sha256 of a specification's canonical JSON: sorted keys, no whitespace, ASCII.

    The one hash of a specification, for the engine and the platform alike, so that a stored
    result's ``spec_hash`` can be reproduced from its ``spec`` outside the platform.
    """
    canonical = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


@dataclasses.dataclass(frozen=True, eq=False)
class AnalysisReport(ResultBase):
    """Everything computed for one outcome; ``to_dict()`` is what the platform stores."""

    engine_version: str
    spec: AnalysisSpec
    k: int
    blocks: dict[str, Any]
    omitted: list[dict[str, Any]]
    notes: list[dict[str, str]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "engine_version": self.engine_version,
            "spec": self.spec.to_dict(),
            "k": self.k,
            "blocks": to_jsonable(self.blocks),
            "omitted": to_jsonable(self.omitted),
            "notes": list(self.notes),
        }


class _Notes:
    def __init__(self) -> None:
        self.items: list[dict[str, str]] = []

    def add(self, block: str, code: str, message: str) -> None:
        self.items.append({"block": block, "code": code, "message": message})


def _columns(rows: Sequence[Mapping[str, object]]) -> dict[str, list[object]]:
    names: dict[str, None] = {}
    for r in rows:
        for key in r:
            names.setdefault(key, None)
    return {name: [r.get(name) for r in rows] for name in names}


def _study_labels(rows: Sequence[Mapping[str, object]]) -> list[str]:
    out = []
    for i, r in enumerate(rows):
        s = r.get("study")
        out.append(f"Study {i + 1}" if s is None or is_missing(s) else str(s))
    return out


def _safe(notes: _Notes, block: str, fn: Callable[[], Any]) -> Any:
    """Run one block; an engine error becomes a note and the block is left out."""
    try:
        return fn()
    except EngineError as exc:
        notes.add(block, exc.code, exc.message)
        return None


def _add_block(
    blocks: dict[str, Any], notes: _Notes, block: str, fn: Callable[[], Any], *, reasons: bool = False
) -> Any:
    """Run one block and store it; with ``reasons``, its reasons for each NaN field become notes."""
    res = _safe(notes, block, fn)
    if res is not None:
        blocks[block] = res
        if reasons:
            for key, msg in res.na_reasons.items():
                notes.add(block, key, msg)
    return res


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
    from . import effects

    if not isinstance(spec, AnalysisSpec):
        raise InvalidInputError("spec must be an AnalysisSpec", code="invalid_spec")
    rows = list(rows)
    notes = _Notes()
    blocks: dict[str, Any] = {}
    labels = _study_labels(rows)
    data = _columns(rows)
    es = effects.escalc(spec.measure, data)
    usable = np.asarray(effects.included(es), dtype=bool)
    blocks["effect_sizes"] = {"study": labels, "yi": es.yi, "vi": es.vi}
    omitted: list[dict[str, Any]] = [
        {"row": o.row, "study": labels[o.row], "code": o.code, "reason": o.reason}
        for o in effects.omitted_rows(es)
    ]

    X = None
    coef_names = None
    design = None
    in_model = usable.copy()
    if spec.mods:
        design = build_design(rows, spec.mods, usable)
        for i in sorted(design.missing):
            if usable[i]:
                omitted.append(
                    {
                        "row": i,
                        "study": labels[i],
                        "code": "missing_moderator",
                        "reason": "missing moderator value: " + ", ".join(design.missing[i]),
                    }
                )
        in_model = design.complete
        X = design.X[in_model]
        coef_names = design.coef_names
    omitted.sort(key=lambda o: o["row"])
    idx = np.flatnonzero(in_model)
    yi = es.yi[idx]
    vi = es.vi[idx]
    k = int(idx.size)

    _table_blocks(spec, data, blocks, notes)

    fit: FitResult | None = _safe(
        notes,
        "fit",
        lambda: rma(yi, vi, method=spec.method, test=spec.test, level=spec.level, X=X, coef_names=coef_names),
    )
    if fit is None:
        notes.add("model", "no_model", "the model could not be fitted: every block that needs it is absent")
    else:
        blocks["fit"] = fit
        for msg in fit.notes:
            notes.add("fit", "fit_note", msg)
        _model_blocks(_Model(spec, fit, rows, idx, [labels[i] for i in idx]), blocks, notes)
    return AnalysisReport(
        engine_version=ENGINE_VERSION, spec=spec, k=k, blocks=blocks, omitted=omitted, notes=notes.items
    )


def _table_blocks(
    spec: AnalysisSpec, data: Mapping[str, list[object]], blocks: dict[str, Any], notes: _Notes
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
    _add_block(
        blocks,
        notes,
        "mantel_haenszel",
        lambda: mh.mantel_haenszel(
            spec.measure, cells["ai"], cells["bi"], cells["ci"], cells["di"], level=spec.level
        ),
    )
    if measure.peto:
        _add_block(
            blocks,
            notes,
            "peto",
            lambda: mh.peto(cells["ai"], cells["bi"], cells["ci"], cells["di"], level=spec.level),
        )


def _model_blocks(model: _Model, blocks: dict[str, Any], notes: _Notes) -> None:
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
        _add_block(blocks, notes, "confint", lambda: confint(fit), reasons=True)
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
            _add_block(
                blocks,
                notes,
                "subgroups",
                lambda: subgroups(
                    fit.yi, fit.vi, groups, method=spec.method, test=spec.test, level=spec.level
                ),
                reasons=True,
            )


def _bias_blocks(fit: FitResult, blocks: dict[str, Any], notes: _Notes) -> None:
    _add_block(blocks, notes, "egger", lambda: egger(fit), reasons=True)
    if fit.k < 2:
        notes.add("rank", "insufficient_data", "the rank correlation test needs at least 2 studies")
    else:
        res = _safe(notes, "rank", lambda: rank_test(fit))
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
    _add_block(blocks, notes, "fsn", lambda: fsn(fit.yi, fit.vi))
    if not fit.int_only:
        notes.add("trimfill", "not_applicable", "trim-and-fill applies to models without moderators only")
    else:
        # metafor picks the side from the sign of the sei slope of the same regression Egger's
        # test fits (only the convergence settings differ): reuse it unless the slope is ~0
        eg = blocks.get("egger")
        side = None
        if isinstance(eg, EggerResult) and abs(eg.stat) > 1e-3:
            side = "right" if eg.stat < 0 else "left"
        res = _safe(notes, "trimfill", lambda: trimfill(fit, side))
        if res is not None:
            blocks["trimfill"] = res
            if res.k0 > 0 and (fit.test != "z" or fit.level != 95.0):
                notes.add(
                    "trimfill",
                    "metafor_defaults",
                    "as metafor's trimfill(), the filled-in model uses the z test and a 95% interval",
                )


@dataclasses.dataclass(frozen=True, eq=False)
class _Labelled(EngineResult):
    """A per-study result with the study labels added when serialised."""

    result: ResultBase
    study: list[str]

    def to_dict(self) -> dict[str, Any]:
        out = self.result.to_dict()
        out["study"] = list(self.study)
        return out


def _with_labels(res: ResultBase, labels: list[str]) -> _Labelled:
    return _Labelled(result=res, study=labels)


def _sensitivity_blocks(model: _Model, blocks: dict[str, Any], notes: _Notes) -> None:
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
    loo = _safe(notes, "influence", lambda: loo_fits(fit)) if fit.k >= 2 else None
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
            res = _safe(notes, "cumulative", lambda: cumulative(fit, order))
        if res is not None:
            blocks["cumulative"] = _with_labels(res, [labs[i] for i in res.order])
            for i, msg in res.failed.items():
                notes.add("cumulative", "refit_failed", f"up to {labs[int(res.order[i])]}: {msg}")
    _add_leave_one_out_block(
        model, loo, blocks, notes, "influence", influence, "influence diagnostics need at least 2 studies"
    )


def _add_leave_one_out_block(
    model: _Model,
    loo: Any,
    blocks: dict[str, Any],
    notes: _Notes,
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
        res = _safe(notes, block, lambda: compute(fit, loo))
        if res is not None:
            blocks[block] = _with_labels(res, labs)
            for i, msg in res.failed.items():
                notes.add(block, "refit_failed", f"without {labs[i]}: {msg}")
