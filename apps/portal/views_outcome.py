"""The outcome page: an analysis's current result (or an earlier one), its figures with the tables
behind them, its diagnostics and its history.

The page only links to its figures (``views_figures``): they are drawn once per result on their
first request, so the page's own time never includes drawing.
"""

from __future__ import annotations

import json
import math
from typing import Any

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.urls import reverse

from apps.analyses.models import Analysis, AnalysisResult
from apps.analyses.selectors import analysis_results_shown, release_names, result_rows_readable
from apps.consortium import roles
from apps.consortium.models import Outcome
from apps.portal.figures import FIGURES, SORT_NAMES, SORTS, catalog
from apps.portal.figures.data import Inputs, inputs_of
from apps.portal.figures.history import history_points
from apps.portal.scale import (
    Scale,
    estimate_of,
    headline,
    labels_of,
    level_of,
    measure_title,
    ratio_of,
    regression_of,
)
from apps.portal.views_figures import history_results
from apps.portal.views_live import live_states

#: Rows a table on the page shows at most; its CSV has every row.
PAGE_ROWS = 100
#: Headings of the tables' columns (the CSV keeps the short names).
HEADINGS = {
    "label": "Row",
    "kind": "Kind",
    "centre": "Centre",
    "year": "Year",
    "subgroup": "Subgroup",
    "yi": "Effect",
    "vi": "Variance",
    "sei": "SE",
    "ci_lb": "CI lower",
    "ci_ub": "CI upper",
    "weight_percent": "Weight %",
    "imputed": "Imputed",
    "study": "Study",
    "heterogeneity_contribution": "Contribution to heterogeneity",
    "influence": "Influence on the estimate",
    "note": "Note",
    "estimate": "Estimate",
    "moderator": "Moderator",
    "instrument": "Instrument",
    "timepoint": "Time point",
    "derivation": "Derived from",
    "in_model": "In the model",
}


def _shown(value: Any) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3f}"
    if isinstance(value, list):
        return " / ".join(_shown(v) for v in value)
    return str(value)


#: Columns on the model's scale: "log RR" in their heading where the model works on logs.
_MODEL_SCALE = ("yi", "estimate", "ci_lb", "ci_ub")


def page_table(table: catalog.Table, scale: Scale | None = None) -> dict[str, Any]:
    """The first ``PAGE_ROWS`` rows of ``table`` as text, with its headings and size. On a ratio
    scale the columns on the model's (log) scale say so, and the ratio columns name the ratio."""
    ratio = scale.short if scale is not None and scale.log else ""
    ratio_headings = {
        ratio: ratio,
        f"{ratio}_ci_lb": f"{ratio} CI lower",
        f"{ratio}_ci_ub": f"{ratio} CI upper",
    }

    def heading(column: str) -> str:
        text = HEADINGS.get(column, column)
        if ratio and column in _MODEL_SCALE:
            return f"log {ratio} {text[0].lower()}{text[1:]}"
        if ratio and column in ratio_headings:
            return ratio_headings[column]
        return text

    return {
        "headings": [heading(c) for c in table.columns],
        "rows": [[_shown(v) for v in row] for row in table.rows[:PAGE_ROWS]],
        "total": len(table.rows),
        "truncated": len(table.rows) > PAGE_ROWS,
    }


def _figures(result: AnalysisResult, inp: Inputs, sort: str) -> list[dict[str, Any]]:
    out = []
    for name in catalog.available(inp):
        query = f"?sort={sort}" if name == "forest" and sort != "input" else ""
        figure = reverse("portal:result-figure", args=[result.pk, name, "svg"])
        out.append(
            {
                "name": name,
                "title": FIGURES[name],
                "alt": catalog.alt_text(inp, name, sort),
                "svg": figure + query,
                "png": reverse("portal:result-figure", args=[result.pk, name, "png"]) + query,
                "csv": reverse("portal:result-table", args=[result.pk, name]) + query,
                "table": page_table(catalog.table(inp, name, sort), inp.scale),
            }
        )
    return out


def _tables(result: AnalysisResult, inp: Inputs) -> dict[str, Any]:
    """The page's tables without a figure, each with its CSV."""
    out = {}
    for name in ("effect_sizes", "leave1out", "leave1out_study", "rho_sensitivity"):
        table = catalog.table(inp, name)
        if table.rows:
            out[name] = {
                **page_table(table, inp.scale),
                "raw": table.rows[:PAGE_ROWS],
                "csv": reverse("portal:result-table", args=[result.pk, name]),
            }
    if "leave1out_study" in out:
        # study, rows left, estimate and CI on the reader's scale, the variance components
        cols = {c: i for i, c in enumerate(catalog.table(inp, "leave1out_study").columns)}
        out["leave1out_study"]["shown"] = [
            [
                r[0],
                r[1],
                *(
                    inp.scale.shown(r[cols[c]]) if r[cols[c]] is not None else None
                    for c in ("estimate", "ci_lb", "ci_ub")
                ),
                r[cols["sigma2"]] if "sigma2" in cols else [None, None],
            ]
            for r in out["leave1out_study"]["raw"]
        ]
    out["provenance"] = {"csv": reverse("portal:result-table", args=[result.pk, "provenance"])}
    return out


#: The model a result's rows were pooled with, as the page names it (the stored code is terse).
_MODELS = {
    "none": "Random effects, one row per study",
    "aggregate": "Each study's rows aggregated",
    "multilevel": "Three-level model",
    "che": "Correlated and hierarchical effects",
}


def _dependence_label(pooled: dict[str, Any] | None) -> str:
    code = (pooled or {}).get("dependence") or ""
    return _MODELS.get(code, code)


def _not_drawn(result: AnalysisResult) -> str:
    """Why the Baujat and cumulative plots are missing where a reader would look for them: they
    are computed for models of independent rows only (the engine's leave-one-out of rows assumes
    them), so a model of several effects per study has the leave-one-study-out influence instead;
    and a result stored before the engine kept Baujat's coordinates has no Baujat plot until the
    analysis is recomputed."""
    blocks = result.blocks
    dependence = (blocks.get("model") or {}).get("dependence")
    if dependence in (None, "none") or blocks.get("leave1out"):
        if blocks.get("leave1out") and not blocks.get("baujat"):
            return (
                "No Baujat plot: this result was stored before the engine kept Baujat's coordinates; "
                "recomputing the analysis adds them."
            )
        return ""
    missing = [
        name
        for name, block in (("cumulative meta-analysis", "cumulative"), ("Baujat plot", "baujat"))
        if not blocks.get(block)
    ]
    if not missing:
        return ""
    return (
        f"No {' and no '.join(missing)}: these take one effect per study, and this result's model "
        f"({_MODELS.get(dependence, dependence).lower()}) pools several effects per study; its influence "
        "is shown study by study instead (leave one study out)."
    )


@login_required
def outcome_detail(request: HttpRequest, code: str) -> HttpResponse:
    outcome = get_object_or_404(Outcome, code=code)
    analyses = list(
        Analysis.objects.visible_to(request.user).filter(outcome=outcome).select_related("current_result")
    )
    chosen = None
    if request.GET.get("result"):
        # an earlier result, by id, among those the reader may see
        try:
            chosen = (
                AnalysisResult.objects.visible_to(request.user)
                .filter(pk=int(request.GET["result"]), analysis__outcome=outcome)
                .first()
            )
        except ValueError:
            chosen = None
        if chosen is None:
            raise Http404("No such result.")
    selected_id = str(chosen.analysis_id) if chosen else request.GET.get("analysis")
    analysis = next((a for a in analyses if str(a.pk) == selected_id), None) or next(
        (a for a in analyses if a.is_default), analyses[0] if analyses else None
    )
    sort = request.GET.get("sort", "input")
    if sort not in SORTS:
        sort = "input"
    result = None
    failed = None
    history: list[AnalysisResult] = []
    if analysis is not None:
        history = list(
            AnalysisResult.objects.visible_to(request.user)
            .filter(analysis=analysis)
            .defer("detail_json", "summary_json", "notes", "omitted", "studies")
            .order_by("seq")
        )
        result, failed = analysis_results_shown(user=request.user, analysis=analysis)
    latest = result
    if chosen is not None:
        result, failed = chosen, None
    context: dict[str, Any] = {
        "outcome": outcome,
        "analyses": analyses,
        "analysis": analysis,
        "result": result,
        "earlier": chosen is not None and latest is not None and chosen.pk != latest.pk,
        "latest": latest,
        "failed": failed,
        "is_steering": roles.is_steering(request.user),
        "measure_title": measure_title(outcome),
        "sort": sort,
        "sorts": SORT_NAMES,
    }
    if result is not None and result.status == AnalysisResult.Status.DONE:
        labels = labels_of(result)
        trimfill = result.blocks.get("trimfill") or {}
        inp = inputs_of(
            result,
            measure=labels["measure"],
            direction=labels["direction"],
            rows=result_rows_readable(user=request.user, result=result),
        )
        context.update(
            {
                "pooled": result.pooled,
                "headline": headline(result),
                "labels": labels,
                "trimfill_estimate": estimate_of(
                    labels["measure"],
                    {
                        "estimate": trimfill.get("beta"),
                        "ci_lb": trimfill.get("ci_lb"),
                        "ci_ub": trimfill.get("ci_ub"),
                    },
                ),
                "ratio": ratio_of(outcome.measure, result.pooled),
                "regression": regression_of(result),
                "dependence_label": _dependence_label(result.pooled),
                "not_drawn": _not_drawn(result),
                "level": level_of(result),
                "blocks": result.blocks,
                "figures": _figures(result, inp, sort),
                "tables": _tables(result, inp),
                "page_rows": PAGE_ROWS,
            }
        )
    done = [r for r in history if r.status == AnalysisResult.Status.DONE]
    shown_history = history_results(request.user, result) if result is not None and result.pk else done
    points = history_points(shown_history)
    if points and result is not None:
        scale = Scale.of(outcome.measure)
        context["history_figure"] = {
            "alt": catalog.history_alt(points, scale),
            "svg": reverse("portal:result-figure", args=[result.pk, "history", "svg"]),
            "png": reverse("portal:result-figure", args=[result.pk, "history", "png"]),
            "csv": reverse("portal:result-table", args=[result.pk, "history"]),
        }
    context["history"] = list(reversed(history))[:25]
    context["releases"] = release_names(user=request.user, result_ids=[r.pk for r in context["history"]])
    for r in context["history"]:
        r.release_names = context["releases"].get(r.pk, [])
        # on the outcome's own scale (a ratio, not its log); a meta-regression's intercept is no estimate
        r.shown_estimate = (
            estimate_of(outcome.measure, r.pooled)
            if r.status == AnalysisResult.Status.DONE and not (r.spec or {}).get("mods")
            else None
        )
    if analysis is not None:
        # what the page shows, so that a change before the first poll still reaches it
        context["live_known"] = json.dumps(live_states(user=request.user, analysis_ids=[analysis.pk]))
    return render(request, "portal/outcome.html", context)
