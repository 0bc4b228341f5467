"""Every figure and table of a result: which apply to it, their text alternatives, how each is
drawn and the table of numbers behind it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from matplotlib.figure import Figure

from apps.portal.figures import draw
from apps.portal.figures.data import (
    MAX_PLOT_ROWS,
    Inputs,
    Row,
    dependent,
    finite,
    fit_block,
    forest_rows,
    model_rows,
    pooled_row,
)
from apps.portal.figures.diagnostics import (
    baujat_data,
    bubble_data,
    cumulative_rows,
    funnel_data,
    influence_rows,
    subgroup_rows,
    subgroup_tests,
)
from apps.portal.figures.history import Point

#: Figures in the order the page shows them, with their headings.
FIGURES = {
    "forest": "Forest plot",
    "funnel": "Funnel plot",
    "baujat": "Baujat plot",
    "influence": "Leave-one-study-out influence",
    "cumulative": "Cumulative meta-analysis",
    "subgroups": "Subgroups",
    "bubble": "Meta-regression",
    "history": "How the estimate moved",
}
#: Tables that have no figure of their own.
TABLES_ONLY = ("effect_sizes", "leave1out", "leave1out_study", "rho_sensitivity", "provenance")
FORMATS = ("svg", "png")
SORT_NAMES = {
    "input": "as uploaded",
    "year": "by year",
    "weight": "by weight",
    "effect": "by effect size",
    "centre": "by centre",
}


@dataclass
class Table:
    """A table of numbers: its columns and rows (values as stored, for the CSV and the page)."""

    columns: list[str]
    rows: list[list[Any]]


def available(inp: Inputs) -> list[str]:
    """The figures ``inp``'s result has the blocks for (history is the analysis's, always)."""
    b = inp.blocks
    names = []
    if pooled_row(inp) is not None or (fit_block(inp) and model_rows(inp)):
        names.append("forest")
    if b.get("funnel") or (dependent(inp) and pooled_row(inp) is not None):
        names.append("funnel")
    if baujat_data(inp) is not None:
        names.append("baujat")
    if b.get("leave1out_study"):
        names.append("influence")
    if b.get("cumulative"):
        names.append("cumulative")
    if b.get("subgroups") and subgroup_rows(inp):
        names.append("subgroups")
    # drawn from the input rows' moderator values: not for a reader who may not read them all
    if bubble_data(inp) is not None:
        names.append("bubble")
    return names


def _n_studies(inp: Inputs) -> int:
    return int(inp.pooled.get("n_studies") or inp.pooled.get("k") or len(model_rows(inp)))


def _pooled_text(inp: Inputs) -> str:
    p = inp.pooled
    if pooled_row(inp) is None:
        return "no pooled estimate (a meta-regression)"
    return f"pooled {inp.scale.short} {inp.scale.interval(p['estimate'], p['ci_lb'], p['ci_ub'])}"


def forest_caption(inp: Inputs, rows: list[Row], sort: str) -> tuple[list[Row], str]:
    """The rows the plot draws (at most ``MAX_PLOT_ROWS``) and the caption saying what was left out."""
    notes = [f"Studies {SORT_NAMES[sort]}."]
    shown = rows
    if len(rows) > MAX_PLOT_ROWS:
        # whole studies only: a study's effects stay beneath it, a heading above its studies
        cut = MAX_PLOT_ROWS
        while cut > 0 and rows[cut].kind == "effect":
            cut -= 1
        shown = rows[:cut]
        while shown and shown[-1].kind == "heading":
            shown = shown[:-1]
        notes.append(
            f"Showing the first {len(shown)} of {len(rows)} rows; the CSV lists every row. "
            "Sort by weight to see the studies that weigh most."
        )
    if dependent(inp):
        notes.append("Each study's aggregated effect, its effects beneath (grey).")
    if not any(r.weight is not None for r in rows if r.kind == "study"):
        notes.append("Squares sized by precision (1/v): the model's weights are not stored for this result.")
    return shown, " ".join(notes)


def alt_text(inp: Inputs, name: str, sort: str = "input") -> str:
    """What the figure shows, in a sentence or two (the image's text alternative)."""
    s, n = inp.scale, _n_studies(inp)
    k = int(inp.pooled.get("k") or len(model_rows(inp)))
    effects = f" ({k} effects)" if k != n else ""
    if name == "forest":
        p = inp.pooled
        pi = ""
        if (
            pooled_row(inp) is not None
            and isinstance(p.get("pi_lb"), int | float)
            and isinstance(p.get("pi_ub"), int | float)
        ):
            pi = f"; prediction interval {s.fmt(p['pi_lb'])} to {s.fmt(p['pi_ub'])}"
        return f"Forest plot of {n} studies{effects}, {SORT_NAMES[sort]}; {_pooled_text(inp)}{pi}."
    if name == "funnel":
        f = funnel_data(inp)
        if f is None:
            return "Funnel plot."
        parts = [
            f"Contour-enhanced funnel plot of {len(f.yi)} {f.unit}: effect against standard error, "
            "shaded where a study would be significant at 10%, 5% and 1%"
        ]
        if inp.blocks.get("trimfill"):
            parts.append(f"{len(f.filled_yi)} studies imputed by trim-and-fill (open circles)")
        if f.egger_p is not None:
            parts.append(f"Egger's test p = {f.egger_p:.3g}")
        return "; ".join(parts) + "."
    if name == "baujat":
        b = baujat_data(inp)
        if b is None:
            return "Baujat plot."
        top = max(range(len(b.x)), key=lambda i: b.x[i] + b.y[i])
        return (
            f"Baujat plot of {len(b.x)} studies: contribution to heterogeneity against influence on the "
            f"pooled estimate; the most extreme is {b.labels[top]}."
        )
    if name == "influence":
        rows = influence_rows(inp)
        ests = [r.est for r in rows if r.est is not None]
        return (
            f"Pooled {s.short} with each of {len(rows)} studies left out: from {s.fmt(min(ests))} to "
            f"{s.fmt(max(ests))} ({_pooled_text(inp)}); the largest shift without {rows[0].label[8:]}."
        )
    if name == "cumulative":
        rows = cumulative_rows(inp)
        order = (inp.result.spec or {}).get("cumulative_order") or "input order"
        return (
            f"Cumulative meta-analysis of {len(rows)} studies in order of {order}: {s.short} "
            f"{s.interval(rows[0].est, rows[0].lb, rows[0].ub)} with the first study, "
            f"{s.interval(rows[-1].est, rows[-1].lb, rows[-1].ub)} with all."
        )
    if name == "subgroups":
        rows = subgroup_rows(inp)
        listed = "; ".join(f"{r.label} {s.interval(r.est, r.lb, r.ub)}" for r in rows)
        column = (inp.result.spec or {}).get("subgroup")
        return f"Pooled {s.short} in {len(rows)} subgroups of {column}: {listed}. {subgroup_tests(inp)}."
    if name == "bubble":
        bub = bubble_data(inp)
        if bub is None:
            return "Bubble plot."
        fit = fit_block(inp)
        j = list(fit["coef_names"]).index(bub.moderator)
        return (
            f"Bubble plot of {len(bub.x)} studies: {s.short} against {bub.moderator}, bubble area by weight; "
            f"slope {fit['beta'][j]:.3g} per unit ({fit['ci_lb'][j]:.3g} to {fit['ci_ub'][j]:.3g}), "
            f"p = {fit['pval'][j]:.3g}."
        )
    raise KeyError(name)


def build(inp: Inputs, name: str, sort: str = "input") -> Figure:
    """Draw figure ``name`` of ``inp`` (not history: see :func:`build_history`)."""
    s, level = inp.scale, inp.level
    if name == "forest":
        rows, caption = forest_caption(inp, forest_rows(inp, sort), sort)
        p = inp.pooled
        has_pi = pooled_row(inp) is not None and isinstance(p.get("pi_lb"), int | float)
        pi = (p["pi_lb"], p["pi_ub"]) if has_pi else None
        weighted = any(r.weight is not None for r in rows)
        return draw.row_plot(
            rows,
            scale=s,
            level=level,
            pooled=pooled_row(inp),
            pi=pi,
            weights=weighted,
            direction=inp.direction,
            caption=caption,
        )
    if name == "funnel":
        f = funnel_data(inp)
        assert f is not None
        notes = []
        if f.unit == "effects":
            notes.append("Each effect in the model; effects of one study are not independent.")
        if inp.blocks.get("egger") and f.egger is None:
            notes.append(
                "Egger's line is not drawn: this result was stored before the engine kept it "
                "(recomputing the analysis adds it)."
            )
        return draw.funnel_plot(f, scale=s, caption=" ".join(notes))
    if name == "baujat":
        b = baujat_data(inp)
        assert b is not None
        return draw.baujat_plot(b, caption="metafor's baujat(): from the model and its leave-one-out refits.")
    if name == "influence":
        rows = influence_rows(inp)
        caption = "Largest shift of the estimate first."
        if len(rows) > MAX_PLOT_ROWS:
            caption += f" Showing {MAX_PLOT_ROWS} of {len(rows)} studies; the CSV lists all."
            rows = rows[:MAX_PLOT_ROWS]
        return draw.row_plot(
            rows, scale=s, level=level, pooled=pooled_row(inp), caption=caption, label_head="Study left out"
        )
    if name == "cumulative":
        rows = cumulative_rows(inp)
        order = (inp.result.spec or {}).get("cumulative_order") or "input order"
        if len(rows) > MAX_PLOT_ROWS:
            return draw.band_plot(
                rows,
                scale=s,
                level=level,
                caption=f"{len(rows)} studies added in order of {order}; the CSV lists each step.",
                xlabel=f"Studies included (in order of {order})",
            )
        return draw.row_plot(
            rows,
            scale=s,
            level=level,
            caption=f"Studies added in order of {order}.",
            label_head="Study added",
        )
    if name == "subgroups":
        return draw.row_plot(
            subgroup_rows(inp),
            scale=s,
            level=level,
            pooled=pooled_row(inp),
            caption=subgroup_tests(inp),
            label_head="Subgroup",
            direction=inp.direction,
        )
    if name == "bubble":
        bub = bubble_data(inp)
        assert bub is not None
        return draw.bubble_plot(bub, scale=s, caption=bub.note)
    raise KeyError(name)


def build_history(points: list[Point], inp_scale: Any) -> Figure:
    return draw.history_plot(
        points,
        scale=inp_scale,
        caption="Each point is a stored result, labelled with its number (as in the API).",
    )


def history_alt(points: list[Point], scale: Any) -> str:
    if not points:
        return "No results yet."
    a, b = points[0], points[-1]
    return (
        f"Pooled {scale.short} over {len(points)} results from {a.created:%Y-%m-%d} to {b.created:%Y-%m-%d}: "
        f"{scale.interval(a.est, a.lb, a.ub)} in result {a.pk}, {scale.interval(b.est, b.lb, b.ub)} in result {b.pk}."
    )


# -- tables ------------------------------------------------------------------------------------


def _ratio_columns(inp: Inputs, cols: list[str], values: list[Any]) -> tuple[list[str], list[Any]]:
    """Ratio measures also get their columns back-transformed (RR, RR_ci_lb, RR_ci_ub)."""
    if not inp.scale.log:
        return [], []
    r = inp.scale.short
    return [f"{r}", f"{r}_ci_lb", f"{r}_ci_ub"], [inp.scale.shown(v) if finite(v) else None for v in values]


def table(inp: Inputs, name: str, sort: str = "input") -> Table:
    """The numbers behind figure ``name`` (or a table without a figure), one row per plotted row."""
    if name == "forest":
        rows = forest_rows(inp, sort)
        extra, _ = _ratio_columns(inp, [], [])
        cols = [
            "label",
            "kind",
            "centre",
            "year",
            "subgroup",
            "yi",
            "vi",
            "ci_lb",
            "ci_ub",
            "weight_percent",
            *extra,
        ]
        out = []
        for r in rows:
            _, ratio = _ratio_columns(inp, [], [r.est, r.lb, r.ub])
            out.append(
                [r.label, r.kind, r.centre, r.year, r.group, r.est, r.vi, r.lb, r.ub, r.weight, *ratio]
            )
        p = pooled_row(inp)
        if p is not None:
            _, ratio = _ratio_columns(inp, [], [p.est, p.lb, p.ub])
            out.append(
                [p.label, "pooled", "", None, "", p.est, None, p.lb, p.ub, 100.0 if rows else None, *ratio]
            )
        return Table(cols, out)
    if name == "funnel":
        f = funnel_data(inp)
        if f is None:
            return Table(["study", "yi", "sei", "imputed"], [])
        rows_ = [[lab, y, se, False] for lab, y, se in zip(f.labels, f.yi, f.sei, strict=False)]
        rows_ += [
            [f"imputed {i + 1}", y, se, True]
            for i, (y, se) in enumerate(zip(f.filled_yi, f.filled_sei, strict=True))
        ]
        return Table(["study", "yi", "sei", "imputed"], rows_)
    if name == "baujat":
        b = baujat_data(inp)
        return Table(
            ["study", "heterogeneity_contribution", "influence"],
            [] if b is None else [list(t) for t in zip(b.labels, b.x, b.y, strict=True)],
        )
    if name in ("influence", "cumulative", "subgroups"):
        rows = {"influence": influence_rows, "cumulative": cumulative_rows, "subgroups": subgroup_rows}[name](
            inp
        )
        extra, _ = _ratio_columns(inp, [], [])
        out = []
        for r in rows:
            _, ratio = _ratio_columns(inp, [], [r.est, r.lb, r.ub])
            out.append([r.label, r.note, r.est, r.lb, r.ub, *ratio])
        return Table(["label", "note", "estimate", "ci_lb", "ci_ub", *extra], out)
    if name == "bubble":
        bub = bubble_data(inp)
        cols = ["study", "moderator", "yi", "weight_percent"]
        if bub is None:
            return Table(cols, [])
        weights: list[float | None] = list(bub.weight) or [None] * len(bub.x)
        return Table(cols, [list(t) for t in zip(bub.labels, bub.x, bub.y, weights, strict=True)])
    if name == "effect_sizes":
        es = inp.blocks.get("effect_sizes") or {}
        keys = [k for k in ("instrument", "timepoint", "yi", "vi", "derivation", "in_model") if k in es]
        n = len(es.get("yi") or [])
        return Table(
            ["study", "centre", *keys],
            [[inp.labels[i], inp.centres[i], *(es[k][i] for k in keys)] for i in range(n)],
        )
    if name in ("leave1out", "leave1out_study", "rho_sensitivity"):
        block = inp.blocks.get(name) or {}
        keys = [k for k, v in block.items() if isinstance(v, list) and v]
        n = len(block[keys[0]]) if keys else 0
        cells: list[list[Any]] = [[block[k][i] for k in keys] for i in range(n)]
        if name != "rho_sensitivity" and all(k in keys for k in ("estimate", "ci_lb", "ci_ub")):
            # a ratio measure's estimates back-transformed beside the log ones (RR, RR_ci_lb, RR_ci_ub)
            extra, _ = _ratio_columns(inp, [], [])
            at = [keys.index(k) for k in ("estimate", "ci_lb", "ci_ub")]
            cells = [[*row, *_ratio_columns(inp, [], [row[j] for j in at])[1]] for row in cells]
            keys = [*keys, *extra]
        return Table(keys, cells)
    if name == "provenance":
        cols = ["centre", "dataset", "version", "number", "rows", "checksum"]
        return Table(cols, [[v.get(c) for c in cols] for v in inp.result.dataset_versions])
    raise KeyError(name)


def history_table(points: list[Point]) -> Table:
    cols = ["result", "seq", "created_at", "k", "estimate", "ci_lb", "ci_ub", "dataset_versions"]
    return Table(
        cols,
        [
            [
                p.pk,
                p.seq,
                p.created.isoformat(),
                p.k,
                p.est,
                p.lb,
                p.ub,
                " ".join(f"{v.get('centre')}:v{v.get('number')}" for v in p.versions),
            ]
            for p in points
        ],
    )
