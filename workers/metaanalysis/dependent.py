"""Several effects per study: the dependence model of an analysis and the blocks it reports.

:func:`~workers.metaanalysis.analysis.run_analysis` hands the rows in the model here when they are
clustered (a study with several rows) or when the specification asks for a dependence model. The
models (docs/engine.md, "Dependent effects", says when to use which):

- ``none``: rows are independent studies (``rma``); with several rows per study, only together
  with cluster-robust tests (a working-independence model with robust variance estimation,
  Hedges, Tipton & Johnson 2010);
- ``aggregate``: one effect per study under an assumed correlation rho, then ``rma``;
- ``multilevel``: the three-level model, estimates within studies (``rma.mv``);
- ``che``: the three-level model with sampling errors correlated rho within a study, the default
  Pustejovsky & Tipton (2022) recommend, with CR2 tests.

Each block is named as the reference files name it (``multilevel_fit``, ``robust_cr2``, the
``_vcalc`` suffix for the correlated model); the ``summary`` block says which blocks carry the
headline.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from .block_names import block_names
from .errors import EngineError
from .fit_result import EngineResult, FitResult, jsonable
from .multilevel.aggregate import aggregate
from .multilevel.fit import MultilevelFit, rma_mv
from .multilevel.profile import profile_confint
from .multilevel.robust import RobustResult, robust, working_model_of_rma
from .notes import Notes, add_block, safe
from .predict import predict, robust_prediction_interval
from .rma import rma
from .spec import RHO_SENSITIVITY, AnalysisSpec
from .weights import multilevel_weights

__all__ = [
    "Clustered",
    "block_names",
    "dependent_blocks",
    "resolve_dependence",
    "rma_robust_blocks",
    "summary_block",
]

#: Largest number of studies for the study-level leave-one-out: one refit per study, each
#: O(k s^2) (about 5 ms at k = 1,000); beyond it the block is skipped with a note.
LEAVE_ONE_STUDY_OUT_MAX = 500
#: Largest k for the profile-likelihood intervals of the variance components: each bound is a
#: root search over refits (about 60 refits a component).
PROFILE_MAX_K = 5_000


@dataclasses.dataclass(frozen=True, eq=False)
class Clustered:
    """The rows in the model with their study and estimate identifiers.

    ``studies`` and ``es_id`` are per model row; ``rows`` are the input rows' numbers.
    """

    spec: AnalysisSpec
    yi: np.ndarray
    vi: np.ndarray
    X: np.ndarray | None
    coef_names: tuple[str, ...] | None
    studies: list[str]
    es_id: list[object] | None
    rows: np.ndarray

    @property
    def largest_study(self) -> int:
        return max(Counter(self.studies).values(), default=0)


def resolve_dependence(spec: AnalysisSpec, studies: Sequence[str]) -> tuple[str, str]:
    """The dependence model to fit and why (``auto`` decided by the data)."""
    counts = Counter(studies)
    several = sum(1 for c in counts.values() if c > 1)
    if spec.dependence != "auto":
        return spec.dependence, "set in the analysis settings"
    if several:
        return "che", (
            f"{several} of {len(counts)} studies have more than one row: correlated and hierarchical "
            f"effects (rho = {spec.rho:g}) with cluster-robust tests"
        )
    return "none", "every study has one row: the rows are independent studies"


def rma_robust_blocks(fit: FitResult, data: Clustered, blocks: dict[str, Any], notes: Notes) -> None:
    """CR1 and CR2 tests of an ``rma`` fit whose rows cluster in studies."""
    wm = working_model_of_rma(fit, data.studies)
    for kind in ("CR1", "CR2"):
        add_block(blocks, notes, block_names("none")[kind], functools.partial(robust, wm, kind))


def _fit(data: Clustered, rho: float, mods: np.ndarray | None = None, names: Any = None) -> MultilevelFit:
    """The three-level model of ``data`` (its moderators, or ``mods`` named ``names``; the
    intercept is added) with sampling errors correlated ``rho`` within a study."""
    spec = data.spec
    if mods is None:
        mods, names = data.X, data.coef_names
    X = None if mods is None else np.column_stack([np.ones(len(data.yi)), mods])
    return rma_mv(
        data.yi,
        data.vi,
        data.studies,
        data.es_id,
        X=X,
        coef_names=None if X is None else ("intrcpt", *(names or ())),
        method=spec.method,
        test="t" if spec.test in ("t", "knha") else "z",
        level=spec.level,
        rho=rho,
    )


def dependent_blocks(dependence: str, data: Clustered, blocks: dict[str, Any], notes: Notes) -> bool:
    """Fit a ``multilevel`` or ``che`` model and add its blocks; False when it cannot be fitted."""
    spec = data.spec
    names = block_names(dependence)
    rho = spec.rho if dependence == "che" else 0.0
    fit: MultilevelFit | None = safe(notes, names["fit"], lambda: _fit(data, rho))
    if fit is None:
        notes.add("model", "no_model", "the model could not be fitted: every block that needs it is absent")
        return False
    blocks[names["fit"]] = fit
    for msg in fit.notes:
        notes.add(names["fit"], "fit_note", msg)
    blocks[names["weights"]] = multilevel_weights(fit)
    if fit.p == 1:
        blocks[names["predict"]] = predict(fit)
    else:
        notes.add(names["predict"], "not_applicable", "a meta-regression has no single pooled estimate")
    if fit.k > PROFILE_MAX_K:
        notes.add(
            names["confint"],
            "too_many_rows",
            f"profile-likelihood intervals are computed up to k = {PROFILE_MAX_K} rows (k = {fit.k})",
        )
    else:
        add_block(blocks, notes, names["confint"], lambda: profile_confint(fit), reasons=True)
    for kind in ("CR1", "CR2"):
        add_block(blocks, notes, names[kind], functools.partial(robust, fit, kind))
    blocks["aggregated"] = aggregate(data.yi, data.vi, data.studies, rho, row_numbers=data.rows)
    if spec.sensitivity and fit.p == 1:
        add_block(blocks, notes, "leave1out_study", lambda: leave_one_study_out(data, fit))
    if spec.bias and fit.p == 1:
        add_block(blocks, notes, "egger_multilevel", lambda: egger_multilevel(data, rho))
    if dependence == "che" and fit.p == 1:
        add_block(blocks, notes, "rho_sensitivity", lambda: rho_sensitivity(data, dependence))
    return True


@dataclasses.dataclass(frozen=True, eq=False)
class StudyRows(EngineResult):
    """One row per study (or per value of rho), as table columns: ``to_dict()`` gives lists."""

    columns: dict[str, list[Any]]
    inference: str

    def to_dict(self) -> dict[str, Any]:
        return jsonable({**self.columns, "inference": self.inference})


def _headline(fit: MultilevelFit, use_robust: bool) -> tuple[MultilevelFit | RobustResult, str]:
    if use_robust:
        return robust(fit, "CR2"), "CR2"
    return fit, "model"


def leave_one_study_out(data: Clustered, fit: MultilevelFit) -> StudyRows:
    """The model refitted without each study in turn (all its rows): ``leave1out`` by cluster.

    Each refit starts from the full model's variance components, so it takes a few Newton steps.
    Tests are the headline's: CR2 when the analysis reports robust tests.
    """
    studies = list(dict.fromkeys(data.studies))
    if len(studies) > LEAVE_ONE_STUDY_OUT_MAX:
        raise EngineError(
            f"leave-one-study-out refits the model once per study; skipped above "
            f"{LEAVE_ONE_STUDY_OUT_MAX} studies ({len(studies)})",
            code="too_many_studies",
        )
    labels = np.array(data.studies, dtype=object)
    cols: dict[str, list[Any]] = {k: [] for k in ("study", "k", "estimate", "se", "pval", "ci_lb", "ci_ub")}
    cols["sigma2"] = []
    use_robust = data.spec.robust
    kind = "model"
    for s in studies:
        keep = labels != s
        sub = dataclasses.replace(
            data,
            yi=data.yi[keep],
            vi=data.vi[keep],
            X=None if data.X is None else data.X[keep],
            studies=[x for x, k in zip(data.studies, keep, strict=True) if k],
            es_id=None if data.es_id is None else [x for x, k in zip(data.es_id, keep, strict=True) if k],
        )
        cols["study"].append(s)
        cols["k"].append(int(keep.sum()))
        try:
            refit = _fit(sub, fit.rho)
            res, kind = _headline(refit, use_robust and len(set(sub.studies)) > 1)
            vals = (res.beta[0], res.se[0], res.pval[0], res.ci_lb[0], res.ci_ub[0])
            sigma2 = refit.sigma2.tolist()
        except EngineError:
            vals = (math.nan,) * 5
            sigma2 = [math.nan, math.nan]
        for key, v in zip(("estimate", "se", "pval", "ci_lb", "ci_ub"), vals, strict=True):
            cols[key].append(float(v))
        cols["sigma2"].append(sigma2)
    return StudyRows(columns=cols, inference=kind)


def egger_multilevel(data: Clustered, rho: float) -> StudyRows:
    """An Egger-type test for dependent effects: the model with the standard error as moderator,
    tested with CR2 (Rodgers & Pustejovsky 2021). The intercept is the effect of a study of
    infinite precision (the limit estimate)."""
    fit = _fit(data, rho, mods=np.sqrt(data.vi)[:, None], names=("sei",))
    res = robust(fit, "CR2")
    return StudyRows(
        columns={
            "limit_estimate": [float(res.beta[0])],
            "slope": [float(res.beta[1])],
            "se": [float(res.se[1])],
            "stat": [float(res.stat[1])],
            "dfs": [float(res.dfs[1])],
            "pval": [float(res.pval[1])],
        },
        inference="CR2",
    )


def rho_sensitivity(data: Clustered, dependence: str) -> StudyRows:
    """The pooled estimate at each assumed correlation in :data:`~.spec.RHO_SENSITIVITY`."""
    cols: dict[str, list[Any]] = {k: [] for k in ("rho", "estimate", "ci_lb", "ci_ub", "pval", "sigma2")}
    kind = "model"
    for rho in RHO_SENSITIVITY:
        if dependence == "aggregate":
            agg = aggregate(data.yi, data.vi, data.studies, rho)
            f = rma(agg.yi, agg.vi, method=data.spec.method, test=data.spec.test, level=data.spec.level)
            vals = (f.beta[0], f.ci_lb[0], f.ci_ub[0], f.pval[0])
            het: Any = f.tau2
        else:
            fit = _fit(data, rho)
            res, kind = _headline(fit, data.spec.robust)
            vals = (res.beta[0], res.ci_lb[0], res.ci_ub[0], res.pval[0])
            het = fit.sigma2.tolist()
        cols["rho"].append(rho)
        for key, v in zip(("estimate", "ci_lb", "ci_ub", "pval"), vals, strict=True):
            cols[key].append(float(v))
        cols["sigma2"].append(het)
    return StudyRows(columns=cols, inference=kind)


def summary_block(
    dependence: str, why: str, spec: AnalysisSpec, blocks: dict[str, Any], n_studies: int
) -> dict[str, Any] | None:
    """The headline of a report, the same shape whatever the model: what dashboards, the API's
    result lists and webhooks read. None when no model could be fitted."""
    names = block_names(dependence)
    fit = blocks.get(names["fit"])
    if fit is None:
        return None
    fitd = fit.to_dict()
    clustered = names.get("CR2") in blocks
    inference = "CR2" if spec.robust and clustered else "model"
    source = blocks[names["CR2"]].to_dict() if inference == "CR2" else fitd
    pred = blocks.get(names["predict"])
    predd = pred.to_dict() if pred is not None else {}
    if inference == "CR2" and pred is not None:
        # the prediction interval follows the confidence interval's inference (CR2, t with the
        # robust df), as predict(robust(...)); the model-based one stays in the predict block
        pi_lb, pi_ub = robust_prediction_interval(fit, blocks[names["CR2"]], spec.level)
        predd = {"pi_lb": pi_lb, "pi_ub": pi_ub}
    if "sigma2" in fitd:
        heterogeneity = {"sigma2": fitd["sigma2"], "tau2": None, "I2": fitd.get("I2_total")}
    else:
        heterogeneity = {"sigma2": None, "tau2": fitd.get("tau2"), "I2": fitd.get("I2")}

    def first(value: Any) -> Any:
        return value[0] if isinstance(value, list) else value

    return jsonable(
        {
            "dependence": dependence,
            "dependence_reason": why,
            "rho": spec.rho if dependence in ("aggregate", "che") else None,
            "inference": inference,
            "fit_block": names["fit"],
            "inference_block": names["CR2"] if inference == "CR2" else names["fit"],
            "k": fitd.get("k"),
            "n_studies": n_studies,
            "estimate": first(source.get("beta")),
            "se": first(source.get("se")),
            "ci_lb": first(source.get("ci_lb")),
            "ci_ub": first(source.get("ci_ub")),
            "pval": first(source.get("pval")),
            "dfs": first(source.get("dfs")),
            "pi_lb": predd.get("pi_lb"),
            "pi_ub": predd.get("pi_ub"),
            "pi_inference": inference if pred is not None else None,
            "QE": fitd.get("QE"),
            "QEp": fitd.get("QEp"),
            **heterogeneity,
        }
    )
