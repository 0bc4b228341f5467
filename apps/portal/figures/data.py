"""A stored result read for its figures: its blocks, its study labels, the write-once dataset
versions it names, the model's rows with their weights, and the forest plot's rows.

A figure draws the engine's blocks and derives no statistic of its own: the weights, Baujat's
coordinates and Egger's line are the engine's (``weights``, ``multilevel_weights``, ``baujat``,
``funnel.egger_line``). A result stored before the engine kept one of them is drawn without it, and
the figure says so; recomputing the analysis adds it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from scipy import special

from apps.analyses.models import AnalysisResult, pooled_of
from apps.portal.scale import Scale
from workers.metaanalysis.block_names import block_names
from workers.metaanalysis.estimators import alpha_from_level

#: Rows a row plot (forest, cumulative, influence) draws at most; the CSV has every row.
MAX_PLOT_ROWS = 60
#: Orders of the forest plot's studies (``?sort=``); "input" keeps the uploaded order.
SORTS = ("input", "year", "weight", "effect", "centre")


def critical_value(level: float) -> float:
    """The two-sided normal critical value at ``level`` (percent), by the engine's convention for
    levels (metafor's ``.level()``), so that the plots' intervals are the ones in the tables."""
    return float(-special.ndtri(alpha_from_level(level) / 2.0))


def finite(x: Any) -> bool:
    """Whether ``x`` is a stored number (JSON's null, a NaN, is not)."""
    return isinstance(x, int | float) and math.isfinite(x)


def first(value: Any) -> Any:
    """A stored coefficient's first entry (the intercept); a scalar as it is."""
    return value[0] if isinstance(value, list) and value else value


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
    #: What several figures of one read share (the weights keyed as shown, the funnel), adapted once
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
    return [i for i in range(len(yi)) if in_model[i] and finite(yi[i]) and finite(vi[i]) and vi[i] > 0]


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


def study_weights(inp: Inputs) -> dict[str, float] | None:
    """Percent weight of each study as the forest plot looks it up: by study when it shows studies
    with their effects beneath, by model row (as text) when every study has one row. From the
    engine's weights of the model; None for a result stored before the engine kept them, or for a
    multilevel meta-regression (its weights are the rows', not the studies')."""
    if "weights" not in inp.cache:
        inp.cache["weights"] = _weights(inp)
    weights: dict[str, float] | None = inp.cache["weights"]
    return weights


def weights_block(inp: Inputs) -> dict[str, Any]:
    """The engine's weights of the result's model (``weights``, ``multilevel_weights``, ...); empty
    for a result stored before the engine kept them."""
    dependence = (inp.blocks.get("model") or {}).get("dependence") or "none"
    return dict(inp.blocks.get(block_names(dependence)["weights"]) or {})


def _weights(inp: Inputs) -> dict[str, float] | None:
    block = weights_block(inp)
    if "study_weight" in block:
        # a multilevel model: each study's share of the estimate (none for a meta-regression)
        shares = block["study_weight"]
        if not shares:
            return None
        return _keyed_as_shown(
            inp, {str(s): float(w) for s, w in zip(block["studies"], shares, strict=True) if finite(w)}
        )
    weight = block.get("weight") or []
    if not weight:
        return None
    if (inp.blocks.get("model") or {}).get("dependence") == "aggregate":
        return _keyed_as_shown(
            inp, {str(s): float(w) for s, w in zip(block["study"], weight, strict=True) if finite(w)}
        )
    rows = model_rows(inp)
    if len(rows) != len(weight):
        return None
    return {str(i): float(w) for i, w in zip(rows, weight, strict=True) if finite(w)}


def _keyed_as_shown(inp: Inputs, by_study: dict[str, float]) -> dict[str, float] | None:
    """Weights of studies keyed as the forest plot looks them up: by study when it shows studies
    with their effects beneath, by model row (as text) when every study has one row."""
    if not by_study:
        return None
    if dependent(inp):
        return by_study
    return {str(i): by_study[inp.labels[i]] for i in model_rows(inp) if inp.labels[i] in by_study}


# -- forest ------------------------------------------------------------------------------------


def forest_rows(inp: Inputs, sort: str = "input") -> list[Row]:
    """The forest plot's rows in the order asked: studies (with their effects beneath when a study
    has several), grouped under their subgroup with its pooled row when the result has subgroups."""
    es = inp.blocks.get("effect_sizes") or {}
    z = critical_value(inp.level)
    weights = study_weights(inp) or {}
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
            if not (finite(y) and finite(v) and v > 0):
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
            if finite(g.get("beta")):
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
    if fit_block(inp).get("p", 1) != 1 or not all(finite(p.get(k)) for k in ("estimate", "ci_lb", "ci_ub")):
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
