"""Reads of analyses and their results, shared by the portal's pages."""

from __future__ import annotations

from typing import Any

from apps.analyses.models import Analysis, AnalysisResult, Release, ReleaseResult, pooled_of


def analysis_result_shown(*, user: Any, analysis: Analysis) -> AnalysisResult | None:
    """The result to show for ``analysis`` to ``user``.

    The analysis's current result when the user may see it (even a failed one: it says why the
    estimate is missing); otherwise the newest finished result the user may see (members see
    released results only, so an unreleased current result falls back to the last released one).
    """
    visible = AnalysisResult.objects.visible_to(user).filter(analysis=analysis)
    if analysis.current_result_id is not None:
        current = visible.filter(pk=analysis.current_result_id).first()
        if current is not None:
            return current
    return visible.filter(status=AnalysisResult.Status.DONE).order_by("-seq").first()


def analysis_results_shown(
    *, user: Any, analysis: Analysis
) -> tuple[AnalysisResult | None, AnalysisResult | None]:
    """What a page shows for ``analysis``: the result with numbers, and a failure to report beside
    it. When the newest result the user may see failed, the numbers are the last good result's (a
    failed recompute never hides them) and the failure says why they are not newer."""
    shown = analysis_result_shown(user=user, analysis=analysis)
    if shown is None or shown.status == AnalysisResult.Status.DONE:
        return shown, None
    good = (
        AnalysisResult.objects.visible_to(user)
        .filter(analysis=analysis, status=AnalysisResult.Status.DONE)
        .order_by("-seq")
        .first()
    )
    return good, shown


def release_names(*, user: Any, result_ids: list[int]) -> dict[int, list[str]]:
    """For each result, the names of the releases holding it that the user may see, oldest first."""
    names: dict[int, list[str]] = {}
    entries = (
        ReleaseResult.objects.filter(result_id__in=result_ids, release__in=Release.objects.visible_to(user))
        .order_by("release__published_at")
        .values_list("result_id", "release__name")
    )
    for result_id, name in entries:
        names.setdefault(result_id, []).append(name)
    return names


def result_rows_readable(*, user: Any, result: AnalysisResult) -> bool:
    """Whether ``user`` may read every dataset version ``result`` was computed from. Its rows carry
    each study's data (years, moderators, subgroups, statistics): a reader of the result who may not
    read every centre's data gets the result's own numbers, never the rows behind them."""
    from apps.datasets.models import DatasetVersion

    ids = {v.get("version") for v in result.dataset_versions}
    return DatasetVersion.objects.visible_to(user).filter(pk__in=ids).count() == len(ids)


def analyses_preview(
    *, user: Any, outcome: Any, centre: Any, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What replacing ``centre``'s data for ``outcome`` with ``rows`` would do to each analysis
    of the outcome: its current pooled result beside the one recomputed on the new input.

    Only for readers of every result (the steering group): the pooled estimate of the other
    centres' unreleased data is not for a data manager to see. The engine runs without the
    sensitivity and bias analyses (the pooled estimate, its intervals and heterogeneity are the
    question; the rest would multiply the cost by k for a page a person is waiting on). An
    analysis whose settings or new input the engine refuses says why.
    """
    import dataclasses

    from apps.analyses.services import analysis_inputs
    from apps.consortium import roles
    from workers.metaanalysis.analysis import run_analysis
    from workers.metaanalysis.errors import EngineError

    if not roles.reads_unreleased_results(user):
        return []
    out = []
    for analysis in (
        Analysis.objects.visible_to(user).filter(outcome=outcome).select_related("current_result")
    ):
        current = analysis.current_result
        # a meta-regression has no pooled effect (its headline is the intercept): said, not shown
        regression = bool(analysis.mods)
        entry: dict[str, Any] = {
            "analysis": analysis,
            "regression": regression,
            "before": current.pooled
            if current is not None and current.status == AnalysisResult.Status.DONE and not regression
            else None,
            "after": None,
            "error": None,
        }
        inputs, _ = analysis_inputs(analysis=analysis, replacing={centre.pk: rows})
        try:
            spec = dataclasses.replace(analysis.engine_spec(), sensitivity=False, bias=False)
            report = run_analysis(spec, inputs).to_dict()
        except EngineError as exc:
            entry["error"] = exc.to_dict().get("message", str(exc))
        else:
            entry["after"] = None if regression else pooled_of(report.get("blocks", {}))
        out.append(entry)
    return out


#: ``upload_preview_report(base=...)`` not given: compare with the dataset's current version
_CURRENT: Any = object()


def upload_preview_report(
    *,
    user: Any,
    centre: Any,
    outcome: Any,
    rows: list[dict[str, Any]],
    columns: list[str],
    row_limit: int | None = None,
    base: Any = _CURRENT,
) -> dict[str, Any]:
    """Everything a person is shown before an upload counts, for the portal's preview page and the
    API's ``preview``: the version it is compared with (``base``, a preview's own; by default the
    current one), the rows it adds, removes and changes, each row's effect (the first ``row_limit``
    rows; a changed row's with its effect before), and (steering group only) the pooled results
    before and after. ``outdated``: the dataset's current version is no longer ``base``."""
    from apps.datasets.models import Dataset
    from apps.datasets.selectors import row_effects, row_key, rows_diff
    from apps.datasets.services import rows_checksum

    dataset = (
        Dataset.objects.filter(centre=centre, outcome=outcome)
        .select_related("current_version", "submitted_version")
        .first()
    )
    current = dataset.current_version if dataset is not None else None
    if base is _CURRENT:
        base = current
    diff = rows_diff(base.rows if base is not None else [], rows)
    changed = {c["key"] for c in diff["changed"]}
    added = {row_key(r) for r in diff["added"]}
    effects = row_effects(measure=outcome.measure, rows=rows if row_limit is None else rows[:row_limit])
    before: dict[str, dict[str, Any]] = {}
    if base is not None and changed:
        old_rows = [r for r in base.rows if row_key(r) in changed]
        before = {e["key"]: e for e in row_effects(measure=outcome.measure, rows=old_rows)}
    for entry in effects:
        entry["change"] = "added" if entry["key"] in added else "changed" if entry["key"] in changed else ""
        if entry["key"] in before:
            entry["was"] = {k: before[entry["key"]].get(k) for k in ("effect", "ci_lb", "ci_ub", "reason")}
    return {
        "dataset": dataset,
        "base": base,
        "outdated": (base.pk if base is not None else None) != (current.pk if current is not None else None),
        "identical": base is not None and base.checksum == rows_checksum(columns, rows),
        "diff": diff,
        "effects": effects,
        "pooled": analyses_preview(user=user, outcome=outcome, centre=centre, rows=rows),
    }
