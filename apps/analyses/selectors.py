"""Reads of analyses and their results, shared by the portal's pages."""

from __future__ import annotations

from typing import Any

from django.db.models import OuterRef, Subquery

from apps.analyses import visibility
from apps.analyses.models import Analysis, AnalysisResult, Release, ReleaseResult, pooled_of


def results_shown(
    *, user: Any, analysis_ids: list[int] | None = None
) -> list[tuple[Analysis, int | None, int | None]]:
    """For each analysis ``user`` may see (of ``analysis_ids``, or all): the id of the result a page shows
    with numbers, and the id of a failure shown beside it (or None for either).

    The shown result is the analysis's current result when the user may see it and it has an
    estimate; otherwise the newest good result the user may see (members see released results
    only, so an unreleased current result falls back to the last released one). When the current
    result the user may see failed or waits for data, the numbers are the last good result's (a
    failed recompute never hides them) and the failure says why they are not newer.

    Two queries whatever the number of analyses, reading only ids and statuses (never a result's
    blocks): an open tab asks every few seconds (``apps.portal.views_live``).
    """
    # no default ordering in the subqueries: the result's ("analysis", then the analysis's own)
    # would join analyses_analysis again inside them, and OuterRef would read that join instead
    visible = AnalysisResult.objects.visible_to(user).order_by()
    done = AnalysisResult.Status.DONE
    rows = Analysis.objects.visible_to(user)
    if analysis_ids is not None:
        rows = rows.filter(pk__in=analysis_ids)
    rows = rows.select_related("outcome").annotate(
        current_visible=Subquery(visible.filter(pk=OuterRef("current_result_id")).values("pk")[:1]),
        current_status=Subquery(visible.filter(pk=OuterRef("current_result_id")).values("status")[:1]),
        newest_done=Subquery(
            visible.filter(analysis=OuterRef("pk"), status=done).order_by("-seq").values("pk")[:1]
        ),
    )
    picked: list[tuple[Analysis, int | None, int | None]] = []
    for row in rows:
        current = row.current_visible
        if current is not None and row.current_status != done:
            picked.append((row, row.newest_done, current))
        else:
            picked.append((row, current or row.newest_done, None))
    return picked


def analysis_results_shown(
    *, user: Any, analysis: Analysis
) -> tuple[AnalysisResult | None, AnalysisResult | None]:
    """What a page shows for ``analysis`` (:func:`results_shown`): the result with numbers, and a
    failure to report beside it."""
    picked = results_shown(user=user, analysis_ids=[analysis.pk])
    if not picked:
        return None, None
    _, shown, failed = picked[0]
    found = AnalysisResult.objects.in_bulk([pk for pk in (shown, failed) if pk is not None])
    return found.get(shown) if shown else None, found.get(failed) if failed else None


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


#: at most this many rows are named in one warning; the rest are counted
_ROWS_NAMED = 10


def rows_no_analysis_uses(*, outcome: Any, rows: list[dict[str, Any]]) -> list[Any]:
    """Upload warnings (``UploadError``, code ``unused_rows``) for the rows of ``rows`` that no
    analysis of ``outcome`` would select (a time point or an instrument no analysis reads, or none
    given where an analysis reads one), grouped by the reason the default analysis gives, each
    naming its rows. The rows are still stored: an analysis may come to read them."""
    from apps.datasets.ingest import UploadError
    from apps.datasets.selectors import row_key
    from workers.metaanalysis.errors import EngineError
    from workers.metaanalysis.selection import select_rows

    analyses = sorted(Analysis.objects.filter(outcome=outcome), key=lambda a: (not a.is_default, a.pk))
    if not analyses or not rows:
        return []
    labels = [str(r.get("study") or f"row {i + 1}") for i, r in enumerate(rows)]
    used = [False] * len(rows)
    reasons: dict[int, str] = {}
    for analysis in analyses:
        try:
            selected, why = select_rows(analysis.engine_spec(), rows, labels)
        except EngineError:
            continue
        for i, keep in enumerate(selected):
            used[i] = used[i] or bool(keep)
        for i, text in why.items():
            reasons.setdefault(i, text)
    by_reason: dict[str, list[int]] = {}
    for i, in_use in enumerate(used):
        if not in_use:
            by_reason.setdefault(reasons.get(i, "not selected"), []).append(i)
    warnings = []
    for reason, idx in by_reason.items():
        named = "; ".join(row_key(rows[i]) or f"row {i + 1}" for i in idx[:_ROWS_NAMED])
        more = f" and {len(idx) - _ROWS_NAMED} more" if len(idx) > _ROWS_NAMED else ""
        n = len(idx)
        warnings.append(
            UploadError.about(
                "unused_rows",
                f"{n} row{'s' if n != 1 else ''} that no analysis uses ({reason}): {named}{more}. "
                f"{'They are' if n != 1 else 'It is'} stored, but enter no result until an analysis "
                "selects them; check the time point and instrument columns.",
                column="timepoint" if "time point" in reason else "instrument",
            )
        )
    return warnings


def on_upload_checked(*, outcome: Any, rows: list[dict[str, Any]], **_: Any) -> list[Any]:
    """Receiver of ``apps.datasets.signals.upload_checked`` (connected in ``AnalysesConfig``)."""
    return rows_no_analysis_uses(outcome=outcome, rows=rows)


def result_rows_readable(*, user: Any, result: AnalysisResult) -> bool:
    """Whether ``user`` may read every dataset version ``result`` was computed from. Its rows carry
    each study's data (years, moderators, subgroups, statistics): a reader of the result who may not
    read every centre's data gets the result's own numbers, never the rows behind them."""
    from apps.datasets.models import DatasetVersion

    ids = {v.get("version") for v in result.dataset_versions}
    return DatasetVersion.objects.visible_to(user).filter(pk__in=ids).count() == len(ids)


def pooled_preview(*, spec: Any, rows: list[dict[str, Any]]) -> tuple[dict[str, Any] | None, str | None]:
    """The pooled result ``spec`` gives on ``rows`` (its headline, as ``pooled_of``) or why it gives
    none (the engine's refusal, or the reason no estimate came out).

    Without the sensitivity and bias analyses: the pooled estimate, its intervals and
    heterogeneity are the question, and the rest would multiply the cost by k for a page a person
    is waiting on."""
    import dataclasses

    from workers.metaanalysis.analysis import run_analysis
    from workers.metaanalysis.errors import EngineError

    if not rows:
        from apps.analyses.services import NO_DATA

        return None, NO_DATA
    try:
        report = run_analysis(dataclasses.replace(spec, sensitivity=False, bias=False), rows)
    except EngineError as exc:
        return None, str(exc.to_dict().get("message", exc))
    reason = report.no_estimate_reason()
    if reason is not None:
        return None, reason
    return pooled_of(report.to_dict().get("blocks", {})), None


def analyses_preview(
    *, user: Any, outcome: Any, centre: Any, rows: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """What replacing ``centre``'s data for ``outcome`` with ``rows`` would do to each analysis
    of the outcome: its current pooled result beside the one recomputed on the new input.

    Only for readers of every result (the steering group): the pooled estimate of the other
    centres' unreleased data is not for a data manager to see. An analysis whose settings or new
    input give no estimate says why.
    """
    from apps.analyses.services import analysis_inputs

    if not visibility.reads_unreleased(user):
        return []
    out = []
    for analysis in (
        Analysis.objects.visible_to(user).filter(outcome=outcome).select_related("current_result")
    ):
        current = analysis.current_result
        # a meta-regression has no pooled effect (its headline is the intercept): said, not shown
        regression = analysis.is_regression
        inputs, _ = analysis_inputs(analysis=analysis, replacing={centre.pk: rows})
        after, error = pooled_preview(spec=analysis.engine_spec(), rows=inputs)
        out.append(
            {
                "analysis": analysis,
                "regression": regression,
                "before": current.pooled
                if current is not None and current.status == AnalysisResult.Status.DONE and not regression
                else None,
                "after": None if regression else after,
                "error": error,
            }
        )
    return out


def analysis_settings_preview(*, analysis: Analysis, cleaned: dict[str, Any]) -> dict[str, Any]:
    """What saving ``cleaned`` (``analysis_validate``'s output) would do to ``analysis``: each
    changed setting before and after, and the pooled result before and after, recomputed now on
    the data the analysis runs on (see :func:`pooled_preview`)."""
    from apps.analyses.services import ANALYSIS_FIELDS, analysis_inputs

    changes = [
        (name, getattr(analysis, name), cleaned[name])
        for name in ANALYSIS_FIELDS
        if name in cleaned and getattr(analysis, name) != cleaned[name]
    ]
    probe = Analysis(outcome=analysis.outcome, **cleaned)
    rows, _ = analysis_inputs(analysis=probe)
    after, error = pooled_preview(spec=probe.engine_spec(), rows=rows)
    current = analysis.current_result
    return {
        "changes": changes,
        "before": current.pooled
        if current is not None and current.status == AnalysisResult.Status.DONE
        else None,
        "before_result": current,
        "after": after,
        "error": error,
        "regression": bool(cleaned.get("mods")) or analysis.is_regression,
    }


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
    reverse = frozenset(outcome.reversed_instruments())
    effects = row_effects(
        measure=outcome.measure, rows=rows if row_limit is None else rows[:row_limit], reverse=reverse
    )
    before: dict[str, dict[str, Any]] = {}
    if base is not None and changed:
        old_rows = [r for r in base.rows if row_key(r) in changed]
        before = {e["key"]: e for e in row_effects(measure=outcome.measure, rows=old_rows, reverse=reverse)}
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
