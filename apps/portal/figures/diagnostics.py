"""What the figures beside the forest plot show, adapted from the engine's blocks: the funnel with
Egger's line, Baujat's coordinates, the leave-one-study-out influence, the cumulative
meta-analysis, the subgroups and the meta-regression bubble plot."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from apps.portal.figures.data import (
    Inputs,
    Row,
    dependent,
    finite,
    first,
    fit_block,
    model_rows,
    pooled_row,
    weights_block,
)


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
    egger_p: float | None  # the test's p-value
    unit: str  # "studies" or "effects"


def funnel_data(inp: Inputs) -> Funnel | None:
    """The funnel's points: the engine's ``funnel`` block (with trim-and-fill's imputed studies and
    Egger's line), or for a dependent-effects model each effect in the model with the line of
    ``egger_multilevel``."""
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
            egger=_line(block.get("egger_line") or {}, "intercept", "slope"),
            egger_label="Egger's regression line",
            egger_p=_p_value(inp.blocks.get("egger") or {}),
            unit="studies",
        )
    if not dependent(inp) and (inp.blocks.get("model") or {}).get("dependence") == "none":
        return None  # a meta-regression: no funnel (as the engine's note says)
    rows = model_rows(inp)
    if not rows or pooled_row(inp) is None:
        return None
    es = inp.blocks["effect_sizes"]
    return Funnel(
        labels=[inp.labels[i] for i in rows],
        yi=[es["yi"][i] for i in rows],
        sei=[math.sqrt(es["vi"][i]) for i in rows],
        center=pooled.get("estimate"),
        filled_yi=[],
        filled_sei=[],
        egger=_line(inp.blocks.get("egger_multilevel") or {}, "limit_estimate", "slope"),
        egger_label="Egger-type regression line (multilevel, CR2)",
        egger_p=_p_value(inp.blocks.get("egger_multilevel") or {}),
        unit="effects",
    )


def _line(block: dict[str, Any], intercept: str, slope: str) -> tuple[float, float] | None:
    """A stored regression line's intercept and slope; None when the block does not hold them."""
    b0, b1 = first(block.get(intercept)), first(block.get(slope))
    return (float(b0), float(b1)) if finite(b0) and finite(b1) else None


def _p_value(test: dict[str, Any]) -> float | None:
    """A stored test's p-value; None when the test is not stored or gave none."""
    p = first(test.get("pval"))
    return float(p) if finite(p) else None


# -- influence ---------------------------------------------------------------------------------


@dataclass
class Baujat:
    labels: list[str]
    x: list[float]  # squared Pearson residual: contribution to the heterogeneity
    y: list[float]  # influence on the pooled estimate


def baujat_data(inp: Inputs) -> Baujat | None:
    """metafor's ``baujat()``: the engine's ``baujat`` block, drawn for a model without moderators
    (x: contribution to the heterogeneity, y: influence on the pooled estimate); None for a result
    stored before the engine kept it."""
    block = inp.blocks.get("baujat") or {}
    if not block.get("x") or fit_block(inp).get("p") != 1:
        return None
    labels, xs, ys = [], [], []
    for label, x, y in zip(block["study"], block["x"], block["y"], strict=True):
        if finite(x) and finite(y):
            labels.append(str(label))
            xs.append(float(x))
            ys.append(float(y))
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
        if finite(e)
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
        if finite(g.get("beta"))
    ]


def subgroup_tests(inp: Inputs) -> str:
    sub = inp.blocks.get("subgroups") or {}
    parts = []
    between = sub.get("between_test") or {}
    if finite(between.get("Q")):
        parts.append(
            f"Test for subgroup differences: Q = {between['Q']:.2f}, df = {between.get('df')}, p = {between.get('pval'):.3g}"
        )
    mt = sub.get("moderator_test") or {}
    if finite(mt.get("QM")):
        parts.append(f"meta-regression QM = {mt['QM']:.2f}, p = {mt.get('QMp'):.3g}")
    return "; ".join(parts)


@dataclass
class Bubble:
    moderator: str
    labels: list[str]
    x: list[float]
    y: list[float]
    weight: list[float]  # percent; empty for a result stored before the engine kept the weights
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
    stored = weights_block(inp).get("weight") or []
    weight = [float(w) for w in stored] if len(stored) == len(rows) else []
    beta = fit.get("beta") or []
    line = None
    notes = []
    if len(names) == 2:
        line = (float(beta[0]), float(beta[1]))
    else:
        notes.append(
            "The model has other moderators too: its fitted line is not drawn against this one alone."
        )
    if not weight:
        notes.append("Bubbles of equal size: the model's weights are not stored for this result.")
    note = " ".join(notes)
    return Bubble(
        moderator, [inp.labels[i] for i in rows], x, [es["yi"][i] for i in rows], weight, line, note
    )
