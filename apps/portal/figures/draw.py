"""Drawing the figures with matplotlib's object-oriented API (``Figure``, no pyplot): no global
figure state, so web processes and threads can draw side by side.

SVG keeps its text as text (``svg.fonttype = none``: selectable, searchable, read by screen
readers, small), carries no date and uses a fixed hash salt for its ids, so the same result always
gives the same bytes.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Sequence
from typing import Any

import matplotlib
from matplotlib import dates as mdates
from matplotlib import ticker
from matplotlib.figure import Figure
from matplotlib.patches import Patch, Polygon
from matplotlib.transforms import blended_transform_factory

from apps.portal.figures.data import MAX_PLOT_ROWS, Row
from apps.portal.figures.diagnostics import Baujat, Bubble, Funnel
from apps.portal.figures.history import Point
from apps.portal.scale import Scale

matplotlib.rcParams.update(
    {
        # study labels are data managers' text: a "$" is a dollar sign, never the start of a formula
        "text.parse_math": False,
        "svg.fonttype": "none",
        "svg.hashsalt": "evidence-platform-figures",
        "font.family": "sans-serif",
        "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
        "font.size": 10,
        "axes.spines.top": False,
        "axes.spines.right": False,
        "axes.titlesize": 11,
        "axes.labelsize": 10,
        "xtick.labelsize": 9,
        "ytick.labelsize": 9,
        "legend.fontsize": 9,
        "legend.frameon": False,
    }
)

INK = "#1f2937"
MUTED = "#6b7280"
ACCENT = "#1d4ed8"
SUMMARY = "#b91c1c"
#: Shades of the contour-enhanced funnel, from p > 0.10 (white) to p < 0.01.
CONTOURS = ("#ffffff", "#e5e7eb", "#c7cbd1", "#9ca3af")
DPI_PNG = 200
ROW_IN = 0.24  # inches per row of a row plot


def save(fig: Figure, fmt: str, title: str) -> bytes:
    """The figure's bytes: SVG without a date (deterministic), or PNG at print resolution."""
    buf = io.BytesIO()
    if fmt == "svg":
        fig.savefig(buf, format="svg", metadata={"Date": None, "Title": title, "Creator": None})
    else:
        fig.savefig(buf, format="png", dpi=DPI_PNG, metadata={"Title": title, "Software": None})
    return buf.getvalue()


_NICE_RATIOS = (
    (0.01, 0.1, 1.0, 10.0, 100.0),
    (0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0),
    (0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.5, 2.0, 3.0, 5.0, 7.0, 10.0),
    (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6, 1.8, 2.0),
)


def _log_axis(axis: Any, lo: float, hi: float) -> None:
    """A ratio axis between the ratios ``lo`` and ``hi``: log spacing, ticks read as ratios
    (0.5, 1, 2), the coarsest set that gives at least three ticks."""
    ticks: list[float] = []
    for nice in _NICE_RATIOS:
        ticks = [t for t in nice if lo <= t <= hi]
        if len(ticks) >= 3:
            break
    axis.set_major_locator(ticker.FixedLocator(ticks))
    axis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    axis.set_minor_locator(ticker.NullLocator())


def _ellipsis(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _favours(direction: str) -> tuple[str, str]:
    """(left, right) of no effect: higher-is-better outcomes favour the intervention on the right."""
    return ("control", "intervention") if direction == "higher" else ("intervention", "control")


def row_plot(
    rows: Sequence[Row],
    *,
    scale: Scale,
    level: float,
    pooled: Row | None = None,
    pi: tuple[float, float] | None = None,
    weights: bool = False,
    direction: str | None = None,
    caption: str = "",
    label_head: str = "Study",
    reference: float | None = None,
) -> Figure:
    """Rows of estimates with their intervals (forest, cumulative, influence, subgroups): labels
    and numbers as text columns, squares sized by weight, diamonds for pooled rows.

    Positions are in the model's units; a ratio measure's axis is logarithmic with ratio ticks.
    """
    shown = scale.shown
    caption = textwrap.fill(caption, 125) if caption else ""
    extra = (2 if pooled else 0) + (1 if pooled and pi else 0)
    n = len(rows) + extra
    width = 9.6
    left, plot_w = 3.3, 3.5
    head, foot = 0.5, 0.95 + 0.18 * (caption.count("\n") + 1 if caption else 0)
    height = head + max(n, 1) * ROW_IN + foot
    fig = Figure(figsize=(width, height))
    ax = fig.add_axes((left / width, foot / height, plot_w / width, max(n, 1) * ROW_IN / height))
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_yticks([])
    ax.spines["left"].set_visible(False)
    text_y = blended_transform_factory(fig.transFigure, ax.transData)

    values = [v for r in rows for v in (r.lb, r.ub, r.est) if v is not None and math.isfinite(v)]
    if pooled:
        values += [v for v in (pooled.lb, pooled.ub) if v is not None]
    if pi:
        values += list(pi)
    ref = 0.0 if reference is None else reference
    values.append(ref)
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.04 or 0.5
    if scale.log:
        ax.set_xscale("log")
        _log_axis(ax.xaxis, shown(lo - pad), shown(hi + pad))
    ax.set_xlim(shown(lo - pad), shown(hi + pad))
    ax.axvline(shown(ref), color=MUTED, linewidth=0.8, zorder=1)

    max_w = max((r.weight for r in rows if r.weight), default=None)
    precisions = [1 / r.vi for r in rows if r.vi]
    max_p = max(precisions, default=None)
    fig.text(0.1 / width, (height - 0.3) / height, label_head, fontweight="bold", color=INK)
    fig.text(
        (left + plot_w + 0.15) / width,
        (height - 0.3) / height,
        f"{scale.short} [{level:g}% CI]",
        fontweight="bold",
        color=INK,
    )
    if weights:
        fig.text((width - 0.12) / width, (height - 0.3) / height, "Weight", fontweight="bold", ha="right")

    for i, r in enumerate(rows):
        indent = 0.35 if r.kind == "effect" else 0.1
        style: dict[str, Any] = {"fontweight": "bold"} if r.kind in ("heading", "summary") else {}
        colour = MUTED if r.kind == "effect" else INK
        size = 9 if r.kind == "effect" else 10
        fig_label = _ellipsis(r.label, 44 if r.kind != "effect" else 40)
        ax.text(
            indent / width, i, fig_label, transform=text_y, va="center", color=colour, fontsize=size, **style
        )
        if r.kind == "heading" or r.est is None:
            continue
        ax.text(
            (left + plot_w + 0.15) / width,
            i,
            scale.interval(r.est, r.lb, r.ub),
            transform=text_y,
            va="center",
            color=colour,
            fontsize=size,
            **style,
        )
        if weights and r.weight is not None and r.kind == "study":
            ax.text((width - 0.12) / width, i, f"{r.weight:.1f}%", transform=text_y, va="center", ha="right")
        if r.kind == "summary":
            _diamond(ax, i, r, shown, colour=MUTED)
            continue
        if r.lb is not None and r.ub is not None:
            ax.plot([shown(r.lb), shown(r.ub)], [i, i], color=colour, linewidth=0.9, solid_capstyle="butt")
        if r.weight and max_w:
            ms = 3.5 + 9.0 * math.sqrt(r.weight / max_w)
        elif r.vi and max_p:
            ms = 3.5 + 9.0 * math.sqrt((1 / r.vi) / max_p)
        else:
            ms = 5.0
        marker = "s" if r.kind == "study" else "o"
        ax.plot(
            [shown(r.est)],
            [i],
            marker=marker,
            markersize=ms if r.kind == "study" else 3.5,
            color=colour,
            linestyle="none",
        )

    if pooled:
        y = len(rows) + 1
        ax.axvline(shown(pooled.est or 0.0), color=SUMMARY, linewidth=0.8, linestyle=(0, (2, 2)), zorder=1)
        _diamond(ax, y, pooled, shown, colour=SUMMARY)
        ax.text(0.1 / width, y, pooled.label, transform=text_y, va="center", fontweight="bold", color=INK)
        ax.text(
            (left + plot_w + 0.15) / width,
            y,
            scale.interval(pooled.est, pooled.lb, pooled.ub),
            transform=text_y,
            va="center",
            fontweight="bold",
            color=INK,
        )
        if weights:
            ax.text(
                (width - 0.12) / width,
                y,
                "100%",
                transform=text_y,
                va="center",
                ha="right",
                fontweight="bold",
            )
        if pi:
            y += 1
            ax.plot([shown(pi[0]), shown(pi[1])], [y, y], color=SUMMARY, linewidth=2.2, solid_capstyle="butt")
            ax.text(0.1 / width, y, "Prediction interval", transform=text_y, va="center", color=INK)
            ax.text(
                (left + plot_w + 0.15) / width,
                y,
                f"{scale.fmt(pi[0])} to {scale.fmt(pi[1])}",
                transform=text_y,
                va="center",
                color=INK,
            )
    ax.set_xlabel(scale.axis_label, labelpad=22 if direction else 4)
    if direction:
        left_side, right_side = _favours(direction)
        for text, ha, dx in ((f"← favours {left_side}", "right", -5), (f"favours {right_side} →", "left", 5)):
            ax.annotate(
                text,
                xy=(shown(ref), 0),
                xycoords=("data", "axes fraction"),
                xytext=(dx, -17),
                textcoords="offset points",
                ha=ha,
                va="top",
                fontsize=9,
                color=MUTED,
            )
    if caption:
        fig.text(0.1 / width, 0.08 / height, caption, fontsize=9, color=MUTED, va="bottom")
    return fig


def _diamond(ax: Any, y: float, r: Row, shown: Any, *, colour: str) -> None:
    if r.est is None or r.lb is None or r.ub is None:
        return
    pts = [(shown(r.lb), y), (shown(r.est), y - 0.38), (shown(r.ub), y), (shown(r.est), y + 0.38)]
    ax.add_patch(Polygon(pts, closed=True, facecolor=colour, edgecolor=colour, zorder=3))


def funnel_plot(f: Funnel, *, scale: Scale, caption: str) -> Figure:
    """Contour-enhanced funnel: the regions where a study would be significant at 10%, 5% and 1%
    around no effect, the pooled estimate, Egger's line and trim-and-fill's imputed studies."""
    shown = scale.shown
    max_se = max([*f.sei, *f.filled_sei]) * 1.08
    fig = Figure(figsize=(8.4, 5.2))
    bottom = 0.2 if caption else 0.12
    ax = fig.add_axes((0.09, bottom, 0.55, 0.94 - bottom))
    xs = [*f.yi, *f.filled_yi]
    if f.center is not None:
        xs += [f.center - 1.96 * max_se, f.center + 1.96 * max_se]
    lo, hi = min([*xs, -1.0 * 2.576 * max_se * 0.6]), max([*xs, 2.576 * max_se * 0.6])
    span = hi - lo
    lo, hi = lo - span * 0.04, hi + span * 0.04
    if scale.log:
        ax.set_xscale("log")
        _log_axis(ax.xaxis, shown(lo), shown(hi))
    ax.set_xlim(shown(lo), shown(hi))
    ax.set_ylim(max_se, 0)
    se = [max_se * i / 60 for i in range(61)]
    ax.set_facecolor(CONTOURS[3])
    for z, colour in ((2.576, CONTOURS[2]), (1.960, CONTOURS[1]), (1.645, CONTOURS[0])):
        ax.fill_betweenx(
            se, [shown(-z * s) for s in se], [shown(z * s) for s in se], color=colour, linewidth=0
        )
    ax.axvline(shown(0.0), color=MUTED, linewidth=0.8)
    handles: list[Any] = [
        Patch(facecolor=CONTOURS[0], edgecolor=MUTED, linewidth=0.5, label="p > 0.10"),
        Patch(facecolor=CONTOURS[1], label="0.05 < p < 0.10"),
        Patch(facecolor=CONTOURS[2], label="0.01 < p < 0.05"),
        Patch(facecolor=CONTOURS[3], label="p < 0.01"),
    ]
    if f.center is not None:
        handles.append(ax.axvline(shown(f.center), color=SUMMARY, linewidth=1.0, label="Pooled estimate"))
    if f.egger is not None:
        b0, b1 = f.egger
        (line,) = ax.plot(
            [shown(b0 + b1 * s) for s in se],
            se,
            color=ACCENT,
            linewidth=1.2,
            linestyle=(0, (5, 2)),
            label=f.egger_label,
        )
        handles.append(line)
    (obs,) = ax.plot(
        [shown(y) for y in f.yi],
        f.sei,
        "o",
        markersize=4.5,
        color=INK,
        alpha=0.85,
        label=f"Observed {f.unit} ({len(f.yi)})",
    )
    obs.set_gid("observed")
    handles.append(obs)
    if f.filled_yi:
        (fill,) = ax.plot(
            [shown(y) for y in f.filled_yi],
            f.filled_sei,
            "o",
            markersize=5.5,
            markerfacecolor="white",
            markeredgecolor=SUMMARY,
            markeredgewidth=1.3,
            label=f"Imputed by trim-and-fill ({len(f.filled_yi)})",
        )
        fill.set_gid("imputed")
        handles.append(fill)
    ax.set_xlabel(scale.axis_label)
    ax.set_ylabel("Standard error")
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    if caption:
        fig.text(0.02, 0.02, caption, fontsize=9, color=MUTED, va="bottom")
    return fig


def baujat_plot(b: Baujat, *, caption: str) -> Figure:
    """Baujat plot: each study's contribution to the heterogeneity against its influence on the
    pooled estimate; the most extreme studies are labelled."""
    fig = Figure(figsize=(7.2, 5.2))
    ax = fig.add_axes((0.11, 0.18, 0.85, 0.76))
    ax.plot(b.x, b.y, "o", markersize=5, color=ACCENT, alpha=0.8)
    ax.set_xlabel("Contribution to heterogeneity (squared Pearson residual)")
    ax.set_ylabel("Influence on the pooled estimate")
    ax.grid(color="#e5e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    x_span = (max(b.x) or 1.0) if b.x else 1.0
    y_span = (max(b.y) or 1.0) if b.y else 1.0
    ax.set_xlim(0 - 0.02 * x_span, x_span * 1.08)
    ax.set_ylim(0 - 0.03 * y_span, y_span * 1.1)
    score = sorted(range(len(b.x)), key=lambda i: -(b.x[i] / x_span + b.y[i] / y_span))
    # label the most extreme studies where a label overlaps no other (boxes in display points)
    placed: list[tuple[float, float, float, float]] = []
    to_points = ax.transData
    for i in score[:8]:
        px, py = to_points.transform((b.x[i], b.y[i])) * 72 / fig.dpi
        text = _ellipsis(b.labels[i], 30)
        w, h = 5.4 * len(text), 11.0
        for dx, dy in ((6, 4), (6, -14), (-6 - w, 4), (-6 - w, -14), (-w / 2, 9), (-w / 2, -20)):
            box = (px + dx, py + dy, px + dx + w, py + dy + h)
            clear = all(box[2] < o[0] or box[0] > o[2] or box[3] < o[1] or box[1] > o[3] for o in placed)
            inside = box[0] > 0 and box[2] < fig.get_figwidth() * 72
            if clear and inside:
                placed.append(box)
                ax.annotate(
                    text, (b.x[i], b.y[i]), xytext=(dx, dy), textcoords="offset points", fontsize=9, color=INK
                )
                break
    if caption:
        fig.text(0.02, 0.02, caption, fontsize=9, color=MUTED, va="bottom")
    return fig


def band_plot(rows: Sequence[Row], *, scale: Scale, level: float, caption: str, xlabel: str) -> Figure:
    """A long sequence of estimates (a cumulative meta-analysis past the row plot's cap): the
    estimate and its interval as a line and a band."""
    shown = scale.shown
    fig = Figure(figsize=(9.6, 4.6))
    ax = fig.add_axes((0.09, 0.2, 0.88, 0.74))
    x = list(range(1, len(rows) + 1))
    ax.fill_between(
        x,
        [shown(r.lb or 0.0) for r in rows],
        [shown(r.ub or 0.0) for r in rows],
        color="#bfdbfe",
        linewidth=0,
        label=f"{level:g}% CI",
    )
    ax.plot(x, [shown(r.est or 0.0) for r in rows], color=ACCENT, linewidth=1.3, label="Estimate")
    ax.axhline(shown(0.0), color=MUTED, linewidth=0.8)
    if scale.log:
        ax.set_yscale("log")
        _log_axis(ax.yaxis, *ax.get_ylim())
    ax.set_xlabel(xlabel)
    ax.set_ylabel(scale.axis_label)
    ax.legend(loc="upper right")
    if caption:
        fig.text(0.02, 0.02, caption, fontsize=9, color=MUTED, va="bottom")
    return fig


def bubble_plot(b: Bubble, *, scale: Scale, caption: str) -> Figure:
    """Meta-regression bubble plot: effects against the moderator, area by weight, fitted line."""
    shown = scale.shown
    fig = Figure(figsize=(7.2, 5.2))
    ax = fig.add_axes((0.11, 0.18, 0.85, 0.76))
    top = max(b.weight) if b.weight else 1.0
    ax.scatter(
        b.x,
        [shown(y) for y in b.y],
        s=[20 + 380 * w / top for w in b.weight] if b.weight else 80,
        facecolor="#93c5fd",
        edgecolor=ACCENT,
        linewidth=0.7,
        alpha=0.75,
    )
    if b.line is not None and b.x:
        lo, hi = min(b.x), max(b.x)
        xs = [lo + (hi - lo) * i / 40 for i in range(41)]
        ax.plot(
            xs, [shown(b.line[0] + b.line[1] * x) for x in xs], color=SUMMARY, linewidth=1.4, label="Fitted"
        )
    ax.axhline(shown(0.0), color=MUTED, linewidth=0.8)
    if scale.log:
        ax.set_yscale("log")
        _log_axis(ax.yaxis, *ax.get_ylim())
    ax.xaxis.set_major_formatter(ticker.FuncFormatter(lambda v, _: f"{v:g}"))
    ax.set_xlabel(b.moderator)
    ax.set_ylabel(scale.axis_label)
    if caption:
        fig.text(0.02, 0.02, caption, fontsize=9, color=MUTED, va="bottom")
    return fig


def history_plot(points: Sequence[Point], *, scale: Scale, caption: str) -> Figure:
    """The pooled estimate and its interval over the results' dates, each point numbered."""
    shown = scale.shown
    fig = Figure(figsize=(9.6, 4.2))
    ax = fig.add_axes((0.09, 0.22, 0.88, 0.7))
    x = [float(mdates.date2num(p.created)) for p in points]
    est = [shown(p.est) for p in points]
    lo = [shown(p.est) - shown(p.lb) for p in points]
    hi = [shown(p.ub) - shown(p.est) for p in points]
    if len(points) > 1:
        ax.fill_between(
            x,
            [shown(p.lb) for p in points],
            [shown(p.ub) for p in points],
            color="#dbeafe",
            linewidth=0,
            step=None,
        )
        ax.plot(x, est, color=ACCENT, linewidth=1.0)
    ax.errorbar(x, est, yerr=[lo, hi], fmt="o", color=ACCENT, markersize=5, capsize=3, linewidth=1.0)
    for p, y in zip(points, est, strict=True):
        ax.annotate(
            f"{p.pk}", (p.created, y), xytext=(4, 6), textcoords="offset points", fontsize=9, color=INK
        )
    ax.axhline(shown(0.0), color=MUTED, linewidth=0.8)
    if scale.log:
        ax.set_yscale("log")
        _log_axis(ax.yaxis, *ax.get_ylim())
    if x:
        first, last = min(x), max(x)
        margin = max((last - first) * 0.06, 0.5)  # in days
        ax.set_xlim(first - margin, last + margin)
    locator = mdates.AutoDateLocator(minticks=3, maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_xlabel("Date of the result (UTC)")
    ax.set_ylabel(f"Pooled {scale.short}")
    ax.grid(axis="y", color="#e5e7eb", linewidth=0.6)
    if caption:
        fig.text(0.02, 0.02, caption, fontsize=9, color=MUTED, va="bottom")
    return fig


__all__ = [
    "MAX_PLOT_ROWS",
    "band_plot",
    "baujat_plot",
    "bubble_plot",
    "funnel_plot",
    "history_plot",
    "row_plot",
    "save",
]
