"""Server-rendered SVG plots (forest, funnel, history), so pages need no JavaScript or CDN."""

from __future__ import annotations

import math
from html import escape
from typing import Any

from scipy import special

from apps.analyses.models import pooled_of
from workers.metaanalysis import measures
from workers.metaanalysis.estimators import alpha_from_level


def critical_value(level: float) -> float:
    """The two-sided normal critical value at ``level`` (percent), by the engine's convention for
    levels (metafor's ``.level()``), so that the plots' intervals are the ones in the tables."""
    return float(-special.ndtri(alpha_from_level(level) / 2.0))


def _level(blocks: dict[str, Any], level: float | None) -> float:
    """The analysis's level, else the level the stored fit was computed at (95 for old results)."""
    if level is not None:
        return float(level)
    stored = (blocks.get("fit") or {}).get("level")
    return float(stored) if isinstance(stored, int | float) else 95.0


def _fmt(x: float | None, digits: int = 2) -> str:
    return "NA" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def forest_svg(
    blocks: dict[str, Any], studies: list[str], *, direction: str, measure: str, level: float | None = None
) -> str:
    """A forest plot: each study's effect with its CI, the pooled diamond, and the prediction interval.

    Study intervals are at the analysis's confidence ``level`` (percent), as the pooled one is.

    ``direction`` ('higher' or 'lower' is better) decides which side is labelled "favours
    intervention", so every outcome's plot reads the same way.
    """
    rows = _forest_rows(blocks, studies)
    pooled = pooled_of(blocks)
    if not rows or not pooled:
        return ""
    z = critical_value(_level(blocks, level))
    lows = [y - z * se for _, y, se, _, _ in rows]
    highs = [y + z * se for _, y, se, _, _ in rows]
    est, ci_lb, ci_ub = pooled.get("estimate"), pooled.get("ci_lb"), pooled.get("ci_ub")
    pi_lb, pi_ub = pooled.get("pi_lb"), pooled.get("pi_ub")
    candidates = [v for v in [*lows, *highs, ci_lb, ci_ub, pi_lb, pi_ub, 0.0] if v is not None]
    lo, hi = min(candidates), max(candidates)
    pad = (hi - lo) * 0.05 or 1.0
    lo, hi = lo - pad, hi + pad
    row_h, top, label_w, plot_w, text_w = 16, 30, 230, 420, 170
    height = top + row_h * (len(rows) + 4)
    width = label_w + plot_w + text_w

    def x(v: float) -> float:
        return label_w + (v - lo) / (hi - lo) * plot_w

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="forest" viewBox="0 0 {width} {height}" '
        f'role="img" aria-label="Forest plot">',
        f'<line x1="{x(0):.1f}" y1="{top - 10}" x2="{x(0):.1f}" y2="{height - 30}" class="zero"/>',
    ]
    max_w = max(1 / se for _, _, se, _, _ in rows)
    for i, (name, y, se, member, derivation) in enumerate(rows):
        cy = top + i * row_h
        size = 3 + 6 * math.sqrt((1 / se) / max_w)
        title = f"<title>{escape(derivation)}</title>" if derivation else ""
        if member:
            parts.append(f'<text x="18" y="{cy + 4}" class="label member">{title}{escape(name[:32])}</text>')
        else:
            parts.append(f'<text x="4" y="{cy + 4}" class="label">{title}{escape(name[:34])}</text>')
        parts.append(
            f'<line x1="{x(y - z * se):.1f}" y1="{cy}" x2="{x(y + z * se):.1f}" y2="{cy}" class="ci"/>'
        )
        parts.append(
            f'<rect x="{x(y) - size / 2:.1f}" y="{cy - size / 2:.1f}" width="{size:.1f}" '
            f'height="{size:.1f}" class="box"/>'
        )
        parts.append(
            f'<text x="{label_w + plot_w + 8}" y="{cy + 4}" class="num">{_fmt(y)} '
            f"[{_fmt(y - z * se)}, {_fmt(y + z * se)}]</text>"
        )
    cy = top + (len(rows) + 1) * row_h
    if est is not None and ci_lb is not None and ci_ub is not None:
        if pi_lb is not None and pi_ub is not None:
            parts.append(f'<line x1="{x(pi_lb):.1f}" y1="{cy}" x2="{x(pi_ub):.1f}" y2="{cy}" class="pi"/>')
        parts.append(
            f'<polygon points="{x(ci_lb):.1f},{cy} {x(est):.1f},{cy - 6} {x(ci_ub):.1f},{cy} {x(est):.1f},{cy + 6}" '
            f'class="diamond"/>'
        )
        parts.append(f'<text x="4" y="{cy + 4}" class="label pooled">{escape(_model_label(pooled))}</text>')
        parts.append(
            f'<text x="{label_w + plot_w + 8}" y="{cy + 4}" class="num pooled">{_fmt(est)} '
            f"[{_fmt(ci_lb)}, {_fmt(ci_ub)}]</text>"
        )
    axis_y = height - 26
    parts.append(f'<line x1="{label_w}" y1="{axis_y}" x2="{label_w + plot_w}" y2="{axis_y}" class="axis"/>')
    for tick in _ticks(lo, hi):
        parts.append(
            f'<line x1="{x(tick):.1f}" y1="{axis_y}" x2="{x(tick):.1f}" y2="{axis_y + 4}" class="axis"/>'
        )
        parts.append(f'<text x="{x(tick):.1f}" y="{axis_y + 14}" class="tick">{tick:g}</text>')
    # Which side favours the intervention: higher-is-better outcomes to the right of zero.
    right_favours = "intervention" if direction == "higher" else "control"
    left_favours = "control" if direction == "higher" else "intervention"
    parts.append(f'<text x="{label_w + 4}" y="{height - 4}" class="favours">← favours {left_favours}</text>')
    parts.append(
        f'<text x="{label_w + plot_w - 4}" y="{height - 4}" class="favours end">favours {right_favours} →</text>'
    )
    # a ratio measure is drawn on the scale the model works on: say so over the axis
    label = measures.REGISTRY[measure].ratio_label if _log_scale(measure) else None
    scale = f"log {label}" if label else measure
    parts.append(f'<text x="{label_w + plot_w / 2}" y="{top - 16}" class="tick">{escape(scale)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _log_scale(measure: str) -> bool:
    known = measures.REGISTRY.get(measure)
    return bool(known is not None and known.log_scale)


def _model_label(pooled: dict[str, Any]) -> str:
    dependence = pooled.get("dependence")
    if dependence in ("che", "multilevel"):
        robust = ", CR2" if pooled.get("inference") == "CR2" else ""
        return f"Pooled ({dependence.upper()}{robust})"
    if dependence == "aggregate":
        return "Pooled (studies aggregated)"
    return "Pooled (RE model)"


def _forest_rows(blocks: dict[str, Any], studies: list[str]) -> list[tuple[str, float, float, bool, str]]:
    """The plot's rows: (label, effect, standard error, is a study's own row, derivation).

    With several effects per study, each study's aggregated effect comes first and its effects
    beneath it (indented, labelled by instrument and time point where the data give them).
    """
    es = blocks.get("effect_sizes") or {}
    yi, vi = es.get("yi") or [], es.get("vi") or []
    derivations = es.get("derivation") or []

    def describe(i: int) -> str:
        parts = [str(es[key][i]) for key in ("instrument", "timepoint") if es.get(key) and es[key][i]]
        return " · ".join(parts) or f"row {i + 1}"

    in_model = es.get("in_model") or [True] * len(yi)

    def usable(i: int) -> bool:
        return i < len(yi) and in_model[i] and yi[i] is not None and vi[i] is not None and vi[i] > 0

    agg = blocks.get("aggregated") or {}
    members = agg.get("members") or []
    if members and any(len(m) > 1 for m in members):
        out: list[tuple[str, float, float, bool, str]] = []
        for label, y, v, rows in zip(agg["study"], agg["yi"], agg["vi"], members, strict=False):
            if y is None or v is None or v <= 0:
                continue
            out.append((str(label), y, math.sqrt(v), False, f"{len(rows)} effects aggregated"))
            if len(rows) > 1:
                out += [
                    (
                        describe(i),
                        yi[i],
                        math.sqrt(vi[i]),
                        True,
                        derivations[i] if i < len(derivations) else "",
                    )
                    for i in rows
                    if usable(i)
                ]
        return out
    return [
        (
            studies[i] if i < len(studies) else f"Row {i + 1}",
            yi[i],
            math.sqrt(vi[i]),
            False,
            derivations[i] if i < len(derivations) else "",
        )
        for i in range(len(yi))
        if usable(i)
    ]


def funnel_svg(blocks: dict[str, Any], *, level: float | None = None) -> str:
    """A funnel plot: effect against standard error (inverted), with the pseudo confidence region
    at the analysis's ``level`` (percent)."""
    es = blocks.get("effect_sizes") or {}
    yi, vi = es.get("yi") or [], es.get("vi") or []
    in_model = es.get("in_model") or [True] * len(yi)
    pts = [
        (y, math.sqrt(v))
        for y, v, used in zip(yi, vi, in_model, strict=False)
        if used and y is not None and v is not None and v > 0
    ]
    est = (pooled_of(blocks) or {}).get("estimate")
    if not pts or est is None:
        return ""
    max_se = max(se for _, se in pts) * 1.05
    z = critical_value(_level(blocks, level))
    lo = min(min(y for y, _ in pts), est - z * max_se)
    hi = max(max(y for y, _ in pts), est + z * max_se)
    w, h, m = 420, 300, 36

    def px(v: float) -> float:
        return m + (v - lo) / (hi - lo) * (w - 2 * m)

    def py(se: float) -> float:
        return m + se / max_se * (h - 2 * m)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="funnel" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="Funnel plot">',
        f'<polygon points="{px(est):.1f},{py(0):.1f} {px(est - z * max_se):.1f},{py(max_se):.1f} '
        f'{px(est + z * max_se):.1f},{py(max_se):.1f}" class="region"/>',
        f'<line x1="{px(est):.1f}" y1="{py(0):.1f}" x2="{px(est):.1f}" y2="{py(max_se):.1f}" class="zero"/>',
    ]
    for y, se in pts:
        parts.append(f'<circle cx="{px(y):.1f}" cy="{py(se):.1f}" r="3" class="pt"/>')
    parts.append(f'<text x="{w / 2}" y="{h - 6}" class="tick">effect size</text>')
    parts.append(f'<text x="10" y="{m - 10}" class="tick start">standard error (0 at top)</text>')
    parts.append("</svg>")
    return "".join(parts)


def history_svg(points: list[tuple[str, float, float, float]]) -> str:
    """How the pooled estimate and its CI moved across results (oldest to newest)."""
    if len(points) < 2:
        return ""
    w, h, m = 560, 180, 30
    lo = min(p[2] for p in points)
    hi = max(p[3] for p in points)
    lo, hi = min(lo, 0.0), max(hi, 0.0)
    span = (hi - lo) or 1.0

    def px(i: int) -> float:
        return m + i / (len(points) - 1) * (w - 2 * m)

    def py(v: float) -> float:
        return h - m - (v - lo) / span * (h - 2 * m)

    band = " ".join(f"{px(i):.1f},{py(p[3]):.1f}" for i, p in enumerate(points))
    band += " " + " ".join(f"{px(i):.1f},{py(p[2]):.1f}" for i, p in reversed(list(enumerate(points))))
    line = " ".join(f"{px(i):.1f},{py(p[1]):.1f}" for i, p in enumerate(points))
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="history" viewBox="0 0 {w} {h}" role="img" '
        f'aria-label="Estimate history"><polygon points="{band}" class="band"/>'
        f'<polyline points="{line}" class="line"/>'
        f'<line x1="{m}" y1="{py(0):.1f}" x2="{w - m}" y2="{py(0):.1f}" class="zero"/></svg>'
    )


def _ticks(lo: float, hi: float) -> list[float]:
    span = hi - lo
    step = 10 ** math.floor(math.log10(span / 4)) if span > 0 else 1
    for mult in (1, 2, 5, 10):
        if span / (step * mult) <= 6:
            step *= mult
            break
    start = float(math.ceil(lo / step) * step)
    ticks: list[float] = []
    t = start
    while t <= hi + 1e-12:
        ticks.append(round(t, 10))
        t += step
    return ticks
