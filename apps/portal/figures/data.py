"""What each figure shows, read from a stored result: its blocks, its study labels and the
write-once dataset versions it names.

A figure draws the engine's numbers. Where a figure needs a number the engine does not store (a
CHE model's study weights, the slope of Egger's line, Baujat's coordinates), it is derived from
stored numbers only when the derivation is exact, and it is used only after it reproduces a number
the engine did store (the pooled estimate, Egger's statistic); otherwise the figure goes without it
and says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy import special

from apps.analyses.models import AnalysisResult, pooled_of
from apps.portal.scale import regression_of
from workers.metaanalysis import measures
from workers.metaanalysis.estimators import alpha_from_level

#: Rows a row plot (forest, cumulative, influence) draws at most; the CSV has every row.
MAX_PLOT_ROWS = 60
#: Orders of the forest plot's studies (``?sort=``); "input" keeps the uploaded order.
SORTS = ("input", "year", "weight", "effect", "centre")
#: Agreement asked of a derived number with the stored one it must reproduce.
_RTOL = 1e-6


def critical_value(level: float) -> float:
    """The two-sided normal critical value at ``level`` (percent), by the engine's convention for
    levels (metafor's ``.level()``), so that the plots' intervals are the ones in the tables."""
    return float(-special.ndtri(alpha_from_level(level) / 2.0))


def _close(a: float | None, b: float | None) -> bool:
    return a is not None and b is not None and math.isclose(a, b, rel_tol=_RTOL, abs_tol=1e-10)


def _finite(x: Any) -> bool:
    return isinstance(x, int | float) and math.isfinite(x)


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else value


@dataclass(frozen=True)
class Scale:
    """The axis of a measure: ratio measures are modelled as logs, drawn on a log axis whose ticks
    and text read as ratios."""

    measure: str
    log: bool
    ratio: str | None
    title: str

    @classmethod
    def of(cls, code: str) -> Scale:
        known = measures.REGISTRY.get(code)
        if known is None:
            return cls(code, False, None, code)
        if known.log_scale and known.ratio_label:
            return cls(code, True, known.ratio_label, known.label[:1].upper() + known.label[1:])
        return cls(code, False, None, known.label[:1].upper() + known.label[1:])

    def shown(self, v: float) -> float:
        """``v`` as readers read it: a ratio for ratio measures."""
        return math.exp(v) if self.log else v

    def fmt(self, v: float | None, digits: int = 2) -> str:
        if v is None or not math.isfinite(v):
            return "NA"
        return f"{self.shown(v):.{digits}f}"

    def interval(self, est: float | None, lb: float | None, ub: float | None) -> str:
        return f"{self.fmt(est)} ({self.fmt(lb)} to {self.fmt(ub)})"

    @property
    def short(self) -> str:
        return self.ratio or self.measure

    @property
    def axis_label(self) -> str:
        return f"{self.title}, log scale" if self.log else self.title


@dataclass
class Row:
    """One row of a row plot: a study, one of a study's effects, a subgroup heading or summary."""

    label: str
    est: float | None = None
    lb: float | None = None
    ub: float | None = None
    kind: str = "study"  # study, effect, heading, summary
    weight: float | None = None  # percent of the model's weight
    year: int | None = None
    centre: str = ""
    group: str = ""
    vi: float | None = None
    note: str = ""


@dataclass
class Inputs:
    """A result read for its figures: the model's rows, their labels, years and centres."""

    result: AnalysisResult
    scale: Scale
    direction: str
    level: float
    rows: list[dict[str, Any]] | None  # the engine's input rows, when the versions still match
    labels: list[str] = field(default_factory=list)
    centres: list[str] = field(default_factory=list)
    #: What is costly to derive (weights, Egger's line), once per read
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def blocks(self) -> dict[str, Any]:
        return self.result.blocks

    @property
    def pooled(self) -> dict[str, Any]:
        return pooled_of(self.blocks) or {}

    def year(self, i: int) -> int | None:
        if self.rows is None:
            return None
        value = self.rows[i].get("year")
        try:
            return int(value) if value is not None and str(value).strip() != "" else None
        except (TypeError, ValueError):
            return None

    def value(self, i: int, column: str) -> Any:
        return None if self.rows is None else self.rows[i].get(column)


def inputs_of(result: AnalysisResult, *, measure: str, direction: str, rows: bool) -> Inputs:
    """Read ``result`` for its figures. ``rows``: also read the input rows (years, moderators,
    subgroups) from the dataset versions the result names, which are never changed; only for a
    reader who may read them all (``selectors.result_rows_readable``), so no default."""
    es = result.blocks.get("effect_sizes") or {}
    n = len(es.get("yi") or [])
    labels = [str(s) for s in (es.get("study") or [])] or [f"Row {i + 1}" for i in range(n)]
    centres: list[str] = []
    for v in result.dataset_versions:
        centres += [str(v.get("centre", ""))] * int(v.get("rows") or 0)
    if len(centres) != n:
        centres = [""] * n
    spec_level = result.spec.get("level") if isinstance(result.spec, dict) else None
    stored = (result.blocks.get("fit") or {}).get("level")
    level: float = 95.0
    if isinstance(spec_level, int | float) and math.isfinite(spec_level):
        level = float(spec_level)
    elif isinstance(stored, int | float) and math.isfinite(stored):
        level = float(stored)
    return Inputs(
        result=result,
        scale=Scale.of(measure),
        direction=direction,
        level=level,
        rows=input_rows(result) if rows else None,
        labels=labels,
        centres=centres,
    )


def input_rows(result: AnalysisResult) -> list[dict[str, Any]] | None:
    """The rows the engine read, in its order: the named dataset versions' rows, each tagged with
    its centre. None when they no longer line up with the result's study labels."""
    from apps.datasets.models import DatasetVersion

    ids = [v.get("version") for v in result.dataset_versions]
    stored = dict(DatasetVersion.objects.filter(pk__in=ids).values_list("pk", "rows"))
    rows: list[dict[str, Any]] = []
    for v in result.dataset_versions:
        rows += [{**r, "centre": v.get("centre")} for r in stored.get(v.get("version"), [])]
    if len(rows) != len(result.studies) or any(
        f"{r.get('study')} [{r.get('centre')}]" != s for r, s in zip(rows, result.studies, strict=True)
    ):
        return None
    return rows


# -- the model's rows and weights --------------------------------------------------------------


def model_rows(inp: Inputs) -> list[int]:
    """Input rows in the model, in the engine's order."""
    es = inp.blocks.get("effect_sizes") or {}
    yi, vi = es.get("yi") or [], es.get("vi") or []
    in_model = es.get("in_model") or [True] * len(yi)
    return [i for i in range(len(yi)) if in_model[i] and _finite(yi[i]) and _finite(vi[i]) and vi[i] > 0]


def fit_block(inp: Inputs) -> dict[str, Any]:
    """The block of the model the headline comes from (``fit``, ``aggregated_fit`` or a multilevel fit)."""
    name = (inp.blocks.get("summary") or {}).get("fit_block")
    if name and isinstance(inp.blocks.get(name), dict):
        return dict(inp.blocks[name])
    for name in ("fit", "aggregated_fit"):
        if isinstance(inp.blocks.get(name), dict):
            return dict(inp.blocks[name])
    return {}


def dependent(inp: Inputs) -> bool:
    """Whether the forest shows studies with their several effects beneath (an aggregated block
    with a study of more than one row)."""
    members = (inp.blocks.get("aggregated") or {}).get("members") or []
    return any(len(m) > 1 for m in members)


def _study_weights(inp: Inputs) -> dict[str, float] | None:
    """Percent weight of each study (or of each model row, keyed by row number as text)."""
    if "weights" not in inp.cache:
        inp.cache["weights"] = _weights(inp)
    weights: dict[str, float] | None = inp.cache["weights"]
    return weights


def _weights(inp: Inputs) -> dict[str, float] | None:
    infl = inp.blocks.get("influence") or {}
    if infl.get("weight") and infl.get("study") and not dependent(inp):
        rows = model_rows(inp)
        if len(rows) == len(infl["weight"]):
            return {str(i): float(w) for i, w in zip(rows, infl["weight"], strict=True) if _finite(w)}
    dependence = (inp.blocks.get("model") or {}).get("dependence")
    if infl.get("weight") and infl.get("study") and dependence == "aggregate":
        return _keyed_as_shown(
            inp, {str(s): float(w) for s, w in zip(infl["study"], infl["weight"], strict=True) if _finite(w)}
        )
    if dependence in ("che", "multilevel"):
        return _keyed_as_shown(inp, _multilevel_weights(inp))
    return _random_effects_weights(inp)


def _keyed_as_shown(inp: Inputs, by_study: dict[str, float] | None) -> dict[str, float] | None:
    """Weights of studies keyed as the forest plot looks them up: by study when it shows studies
    with their effects beneath, by model row (as text) when every study has one row."""
    if by_study is None or dependent(inp):
        return by_study
    return {str(i): by_study[inp.labels[i]] for i in model_rows(inp) if inp.labels[i] in by_study}


def _random_effects_weights(inp: Inputs) -> dict[str, float] | None:
    """1/(v + tau²) of a model without moderators, used once they reproduce its estimate."""
    fit = fit_block(inp)
    if fit.get("p") != 1 or (inp.blocks.get("model") or {}).get("dependence") not in (None, "none"):
        return None
    es = inp.blocks["effect_sizes"]
    rows = model_rows(inp)
    tau2 = fit.get("tau2") if _finite(fit.get("tau2")) else 0.0
    w = np.array([1.0 / (es["vi"][i] + tau2) for i in rows])
    y = np.array([es["yi"][i] for i in rows])
    if not rows or not _close(float(w @ y / w.sum()), _first(fit.get("beta"))):
        return None
    return {str(i): float(100 * wi / w.sum()) for i, wi in zip(rows, w, strict=True)}


def _multilevel_weights(inp: Inputs) -> dict[str, float] | None:
    """Each study's share of a multilevel or CHE model's weight, ``1' M_j^-1 1`` with ``M_j`` the
    study's marginal covariance (sampling errors, correlated rho, plus the two variance components),
    built by the engine's own function. The estimate is ``sum_j 1' M_j^-1 y_j / sum_j 1' M_j^-1 1``
    for a model without moderators, so the weights are used only when that reproduces it."""
    from workers.metaanalysis.multilevel.fit import build_components

    fit = fit_block(inp)
    sigma2 = fit.get("sigma2") or []
    if fit.get("p") != 1 or len(sigma2) != 2:
        return None
    model = inp.blocks.get("model") or {}
    rho = float(model.get("rho") or 0.0) if model.get("dependence") == "che" else 0.0
    es = inp.blocks["effect_sizes"]
    rows = model_rows(inp)
    if not rows:
        return None
    es_id = None
    if inp.rows is not None and any("es_id" in inp.rows[i] for i in rows):
        es_id = [
            inp.rows[i].get("es_id") if inp.rows[i].get("es_id") not in (None, "") else f"row {i}"
            for i in rows
        ]
    yi = np.array([es["yi"][i] for i in rows], dtype=float)
    vi = np.array([es["vi"][i] for i in rows], dtype=float)
    comp = build_components(yi, vi, np.ones((len(rows), 1)), [inp.labels[i] for i in rows], es_id, rho)
    weights: dict[str, float] = {}
    num = 0.0
    for g, y, V, (D1, D2) in zip(comp.blocks.groups, comp.y, comp.V, comp.D, strict=True):
        Minv = np.linalg.inv(V + sigma2[0] * D1 + sigma2[1] * D2)
        w = Minv.sum(axis=(1, 2))
        num += float(np.einsum("nij,nj->", Minv, y))
        for c, wc in zip(g.clusters, w, strict=True):
            weights[str(comp.blocks.labels[c])] = float(wc)
    total = sum(weights.values())
    if not total or not _close(num / total, _first(fit.get("beta"))):
        return None
    return {s: 100 * w / total for s, w in weights.items()}


# -- forest ------------------------------------------------------------------------------------


def forest_rows(inp: Inputs, sort: str = "input") -> list[Row]:
    """The forest plot's rows in the order asked: studies (with their effects beneath when a study
    has several), grouped under their subgroup with its pooled row when the result has subgroups."""
    es = inp.blocks.get("effect_sizes") or {}
    z = critical_value(inp.level)
    weights = _study_weights(inp) or {}
    rows_in = model_rows(inp)

    def describe(i: int) -> str:
        parts = [str(es[key][i]) for key in ("instrument", "timepoint") if es.get(key) and es[key][i]]
        return " · ".join(parts) or f"row {i + 1}"

    def row_of(i: int, kind: str = "study") -> Row:
        y, v = es["yi"][i], es["vi"][i]
        se = math.sqrt(v)
        return Row(
            label=inp.labels[i] if kind == "study" else describe(i),
            est=y,
            lb=y - z * se,
            ub=y + z * se,
            kind=kind,
            weight=weights.get(str(i)),
            year=inp.year(i),
            centre=inp.centres[i],
            vi=v,
            note=(es.get("derivation") or [""] * (i + 1))[i] or "",
        )

    units: list[tuple[Row, list[Row], int]] = []  # (study row, effect rows beneath, first input row)
    if dependent(inp):
        agg = inp.blocks["aggregated"]
        usable = set(rows_in)
        for label, y, v, members in zip(agg["study"], agg["yi"], agg["vi"], agg["members"], strict=True):
            if not (_finite(y) and _finite(v) and v > 0):
                continue
            first = int(members[0])
            se = math.sqrt(v)
            head = Row(
                label=str(label),
                est=y,
                lb=y - z * se,
                ub=y + z * se,
                weight=weights.get(str(label)),
                year=inp.year(first),
                centre=inp.centres[first],
                vi=v,
                note=f"{len(members)} effects aggregated" if len(members) > 1 else "",
            )
            beneath = (
                [row_of(int(m), "effect") for m in members if int(m) in usable] if len(members) > 1 else []
            )
            units.append((head, beneath, first))
    else:
        units = [(row_of(i), [], i) for i in rows_in]

    key = {
        "input": lambda u: u[2],
        "year": lambda u: (u[0].year is None, u[0].year or 0, u[2]),
        "weight": lambda u: (-(u[0].weight or 0.0), u[2]),
        "effect": lambda u: (u[0].est, u[2]),
        "centre": lambda u: (u[0].centre, u[2]),
    }[sort]
    units.sort(key=key)

    sub = inp.blocks.get("subgroups") or {}
    column = (inp.result.spec or {}).get("subgroup") if isinstance(inp.result.spec, dict) else None
    if sub.get("levels") and column and inp.rows is not None:
        out: list[Row] = []
        by_level = {str(g.get("level")): g for g in sub.get("groups") or []}
        for level in sub["levels"]:
            members = [u for u in units if str(inp.value(u[2], column)) == str(level)]
            if not members:
                continue
            out.append(Row(label=f"{column}: {level}", kind="heading", group=str(level)))
            for head, beneath, _ in members:
                head.group = str(level)
                out += [head, *beneath]
            g = by_level.get(str(level)) or {}
            if _finite(g.get("beta")):
                out.append(
                    Row(
                        label=f"Subgroup {level} (k = {g.get('k')})",
                        est=g["beta"],
                        lb=g.get("ci_lb"),
                        ub=g.get("ci_ub"),
                        kind="summary",
                        group=str(level),
                    )
                )
        return out
    return [r for head, beneath, _ in units for r in (head, *beneath)]


def pooled_row(inp: Inputs) -> Row | None:
    """The pooled estimate's row; None for a meta-regression, whose intercept is not one."""
    p = inp.pooled
    if fit_block(inp).get("p", 1) != 1 or not all(_finite(p.get(k)) for k in ("estimate", "ci_lb", "ci_ub")):
        return None
    return Row(
        label=model_label(p, fit_block(inp).get("method")),
        est=p["estimate"],
        lb=p["ci_lb"],
        ub=p["ci_ub"],
        kind="summary",
    )


def model_label(pooled: dict[str, Any], method: str | None = None) -> str:
    dependence = pooled.get("dependence")
    if dependence in ("che", "multilevel"):
        robust = ", CR2" if pooled.get("inference") == "CR2" else ""
        return f"Pooled ({dependence.upper()}{robust})"
    if dependence == "aggregate":
        return "Pooled (studies aggregated)"
    return "Pooled (equal effects)" if method == "EE" else "Pooled (random effects)"


# -- funnel ------------------------------------------------------------------------------------


@dataclass
class Funnel:
    labels: list[str]
    yi: list[float]
    sei: list[float]
    center: float | None
    filled_yi: list[float]
    filled_sei: list[float]
    egger: tuple[float, float] | None  # intercept (limit estimate) and slope on the SE
    egger_label: str
    unit: str  # "studies" or "effects"


def funnel_data(inp: Inputs) -> Funnel | None:
    """The funnel's points: the engine's ``funnel`` block (with trim-and-fill's imputed studies), or
    for a dependent-effects model each effect in the model; Egger's line where it is known exactly."""
    if "funnel" not in inp.cache:
        inp.cache["funnel"] = _funnel(inp)
    funnel: Funnel | None = inp.cache["funnel"]
    return funnel


def _funnel(inp: Inputs) -> Funnel | None:
    block = inp.blocks.get("funnel")
    pooled = inp.pooled
    if block:
        labels = (inp.blocks.get("influence") or inp.blocks.get("leave1out") or {}).get("study") or [
            inp.labels[i] for i in model_rows(inp)
        ]
        filled = block.get("filled") or {}
        return Funnel(
            labels=[str(s) for s in labels],
            yi=list(block["yi"]),
            sei=list(block["sei"]),
            center=block.get("center"),
            filled_yi=list(filled.get("yi") or []),
            filled_sei=list(filled.get("sei") or []),
            egger=_egger_line(inp),
            egger_label="Egger's regression line",
            unit="studies",
        )
    if not dependent(inp) and (inp.blocks.get("model") or {}).get("dependence") == "none":
        return None  # a meta-regression: no funnel (as the engine's note says)
    rows = model_rows(inp)
    if not rows or pooled_row(inp) is None:
        return None
    es = inp.blocks["effect_sizes"]
    eg = inp.blocks.get("egger_multilevel") or {}
    line = None
    if eg.get("limit_estimate") and eg.get("slope") and _finite(_first(eg["slope"])):
        line = (float(_first(eg["limit_estimate"])), float(_first(eg["slope"])))
    return Funnel(
        labels=[inp.labels[i] for i in rows],
        yi=[es["yi"][i] for i in rows],
        sei=[math.sqrt(es["vi"][i]) for i in rows],
        center=pooled.get("estimate"),
        filled_yi=[],
        filled_sei=[],
        egger=line,
        egger_label="Egger-type regression line (multilevel, CR2)",
        unit="effects",
    )


def _egger_line(inp: Inputs) -> tuple[float, float] | None:
    """Egger's regression (the model with the SE as moderator) refitted by the engine on the stored
    rows; its line is drawn only when the refit gives the stored statistic and limit estimate."""
    from workers.metaanalysis.errors import EngineError
    from workers.metaanalysis.rma import rma

    eg, fit = inp.blocks.get("egger") or {}, inp.blocks.get("fit") or {}
    block = inp.blocks.get("funnel") or {}
    if not (eg and fit.get("p") == 1 and block.get("yi")):
        return None
    yi = np.asarray(block["yi"], dtype=float)
    sei = np.asarray(block["sei"], dtype=float)
    try:
        res = rma(
            yi,
            sei**2,
            method=fit.get("method", "REML"),
            test=fit.get("test", "z"),
            level=float(fit.get("level", 95.0)),
            X=sei[:, None],
            coef_names=("sei",),
        )
    except EngineError:
        return None
    if not (
        _close(float(res.stat[1]), eg.get("stat")) and _close(float(res.beta[0]), eg.get("limit_estimate"))
    ):
        return None
    return float(res.beta[0]), float(res.beta[1])


# -- influence ---------------------------------------------------------------------------------


@dataclass
class Baujat:
    labels: list[str]
    x: list[float]  # squared Pearson residual: contribution to the heterogeneity
    y: list[float]  # influence on the pooled estimate


def baujat_data(inp: Inputs) -> Baujat | None:
    """metafor's ``baujat()`` for a model without moderators: x = (y_i - mu)² / (tau² + v_i),
    y = (mu_(-i) - mu)² / se(mu_(-i))², from the stored fit and leave-one-out refits (exact)."""
    loo, fit = inp.blocks.get("leave1out") or {}, fit_block(inp)
    if not loo.get("estimate") or fit.get("p") != 1:
        return None
    dependence = (inp.blocks.get("model") or {}).get("dependence")
    if dependence == "aggregate":
        agg = inp.blocks.get("aggregated") or {}
        pos = {str(s): j for j, s in enumerate(agg.get("study") or [])}
        units = [
            (agg["yi"][pos[str(s)]], agg["vi"][pos[str(s)]]) for s in loo.get("study") or [] if str(s) in pos
        ]
    else:
        es = inp.blocks["effect_sizes"]
        units = [(es["yi"][i], es["vi"][i]) for i in model_rows(inp)]
    if len(units) != len(loo["estimate"]):
        return None
    mu = float(_first(fit["beta"]))
    tau2 = float(fit["tau2"]) if _finite(fit.get("tau2")) else 0.0
    labels, xs, ys = [], [], []
    for (y, v), label, est, se in zip(units, loo["study"], loo["estimate"], loo["se"], strict=True):
        if not (_finite(est) and _finite(se) and se > 0):
            continue
        labels.append(str(label))
        xs.append((y - mu) ** 2 / (tau2 + v))
        ys.append((est - mu) ** 2 / se**2)
    return Baujat(labels, xs, ys) if labels else None


def influence_rows(inp: Inputs) -> list[Row]:
    """Each study left out with all its rows (dependent effects), largest shift of the estimate first."""
    block = inp.blocks.get("leave1out_study") or {}
    est = inp.pooled.get("estimate")
    if not block.get("estimate") or not isinstance(est, int | float):
        return []
    rows = [
        Row(label=f"without {s}", est=e, lb=lb, ub=ub, note=f"{k} rows left")
        for s, e, lb, ub, k in zip(
            block["study"], block["estimate"], block["ci_lb"], block["ci_ub"], block["k"], strict=True
        )
        if _finite(e)
    ]
    rows.sort(key=lambda r: -abs((r.est or 0.0) - est))
    return rows


# -- cumulative, subgroups, meta-regression -----------------------------------------------------


def cumulative_rows(inp: Inputs) -> list[Row]:
    block = inp.blocks.get("cumulative") or {}
    if not block.get("estimate"):
        return []
    return [
        Row(label=f"+ {s}", est=e, lb=lb, ub=ub, note=f"{i + 1} studies")
        for i, (s, e, lb, ub) in enumerate(
            zip(block["study"], block["estimate"], block["ci_lb"], block["ci_ub"], strict=True)
        )
    ]


def subgroup_rows(inp: Inputs) -> list[Row]:
    sub = inp.blocks.get("subgroups") or {}
    return [
        Row(
            label=f"{g.get('level')} (k = {g.get('k')})",
            est=g.get("beta"),
            lb=g.get("ci_lb"),
            ub=g.get("ci_ub"),
        )
        for g in sub.get("groups") or []
        if _finite(g.get("beta"))
    ]


def subgroup_tests(inp: Inputs) -> str:
    sub = inp.blocks.get("subgroups") or {}
    parts = []
    between = sub.get("between_test") or {}
    if _finite(between.get("Q")):
        parts.append(
            f"Test for subgroup differences: Q = {between['Q']:.2f}, df = {between.get('df')}, p = {between.get('pval'):.3g}"
        )
    mt = sub.get("moderator_test") or {}
    if _finite(mt.get("QM")):
        parts.append(f"meta-regression QM = {mt['QM']:.2f}, p = {mt.get('QMp'):.3g}")
    return "; ".join(parts)


@dataclass
class Bubble:
    moderator: str
    labels: list[str]
    x: list[float]
    y: list[float]
    weight: list[float]  # percent
    line: tuple[float, float] | None  # intercept, slope (when the moderator is the model's only one)
    note: str


def bubble_data(inp: Inputs) -> Bubble | None:
    """A meta-regression on a numeric moderator: each study's effect against the moderator, area by
    its weight in the model, and the fitted line when it is the only moderator."""
    fit = fit_block(inp)
    names = list(fit.get("coef_names") or [])
    if len(names) < 2 or inp.rows is None or dependent(inp):
        return None
    mods = list((inp.result.spec or {}).get("mods") or [])
    numeric = [n for n in names[1:] if n in mods]
    if not numeric:
        return None
    moderator = numeric[0]
    rows = model_rows(inp)
    es = inp.blocks["effect_sizes"]
    try:
        x = [float(inp.rows[i][moderator]) for i in rows]
    except (KeyError, TypeError, ValueError):
        return None
    infl = inp.blocks.get("influence") or {}
    if infl.get("weight") and len(infl["weight"]) == len(rows):
        weight = [float(w) for w in infl["weight"]]
    else:
        tau2 = float(fit["tau2"]) if _finite(fit.get("tau2")) else 0.0
        w = [1.0 / (es["vi"][i] + tau2) for i in rows]
        weight = [100 * wi / sum(w) for wi in w]
    beta = fit.get("beta") or []
    line = None
    note = ""
    if len(names) == 2:
        line = (float(beta[0]), float(beta[1]))
    else:
        note = "The model has other moderators too: its fitted line is not drawn against this one alone."
    return Bubble(
        moderator, [inp.labels[i] for i in rows], x, [es["yi"][i] for i in rows], weight, line, note
    )


# -- history -----------------------------------------------------------------------------------


@dataclass
class Point:
    pk: int
    seq: int
    created: datetime
    est: float
    lb: float
    ub: float
    k: int | None
    versions: list[dict[str, Any]]


def history_points(results: list[AnalysisResult]) -> list[Point]:
    """The pooled estimates over time. A meta-regression's result has none (its headline number is
    the intercept, the effect where every moderator is 0), so it is not a point on this line."""
    points = []
    for r in results:
        p = r.pooled or {}
        if (
            r.status == AnalysisResult.Status.DONE
            and all(_finite(p.get(k)) for k in ("estimate", "ci_lb", "ci_ub"))
            and regression_of(r) is None
        ):
            points.append(
                Point(
                    r.pk,
                    r.seq,
                    r.created_at,
                    p["estimate"],
                    p["ci_lb"],
                    p["ci_ub"],
                    r.k,
                    list(r.dataset_versions),
                )
            )
    points.sort(key=lambda p: (p.created, p.seq))
    return points
