"""Reads on datasets: which version a reader sees, comparing versions, each row's effect."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from apps.consortium import roles
from apps.datasets.models import Dataset, DatasetVersion
from workers.metaanalysis import effects, measures
from workers.metaanalysis.errors import EngineError


def with_shown_versions(datasets: Iterable[Dataset], user: Any) -> list[Dataset]:
    """Each dataset with ``shown_version`` set: the version ``user`` sees as current.

    The centre (and administrators) see the current version, draft or not; everyone else who may
    read the dataset sees its latest submitted version, so a correction still in draft stays with
    the centre until it is submitted.
    """
    datasets = list(datasets)
    own = set(roles.centres_viewable(user).values_list("pk", flat=True))
    others = [d.pk for d in datasets if d.centre_id not in own]
    latest: dict[int, DatasetVersion] = {}
    if others:
        for version in (
            DatasetVersion.objects.filter(dataset_id__in=others, submitted_at__isnull=False)
            .select_related("created_by")
            .order_by("dataset_id", "-number")
        ):
            latest.setdefault(version.dataset_id, version)
    for dataset in datasets:
        dataset.shown_version = (
            dataset.current_version if dataset.centre_id in own else latest.get(dataset.pk)
        )
    return datasets


KEY_COLUMNS = ("study", "instrument", "timepoint", "comparison")


def row_key(row: dict[str, Any]) -> str:
    """A row's identity within a dataset: study, instrument, time point and comparison."""
    return " | ".join(str(row.get(c) or "") for c in KEY_COLUMNS).rstrip(" |")


def rows_diff(old_rows: list[dict[str, Any]], new_rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Rows added, removed and changed (cell by cell) from ``old_rows`` to ``new_rows``, matched by
    :func:`row_key`."""
    old = {row_key(r): r for r in old_rows}
    new = {row_key(r): r for r in new_rows}
    added = [new[k] for k in new if k not in old]
    removed = [old[k] for k in old if k not in new]
    changed = []
    for key in new:
        if key not in old:
            continue
        a, b = old[key], new[key]
        cells = [
            {"column": col, "old": a.get(col), "new": b.get(col)}
            for col in sorted(set(a) | set(b))
            if a.get(col) != b.get(col)
        ]
        if cells:
            changed.append({"key": key, "cells": cells})
    return {
        "added": added,
        "removed": removed,
        "changed": changed,
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "unchanged": len(new) - len(added) - len(changed),
        },
    }


def dataset_version_diff(*, old: DatasetVersion, new: DatasetVersion) -> dict[str, Any]:
    """Rows added, removed and changed (cell by cell) from version ``old`` to version ``new``."""
    return {"old_version": old.number, "new_version": new.number, **rows_diff(old.rows, new.rows)}


#: The two-sided 95% normal quantile: a row's interval in a preview is the 95% one, whatever level
#: an analysis reports (the preview is about the data, before any analysis's settings).
_Z95 = 1.959963984540054


def row_effects(
    *, measure: str, rows: list[dict[str, Any]], reverse: frozenset[str] = frozenset()
) -> list[dict[str, Any]]:
    """Each row's effect size and 95% CI as the analyses compute it (metafor's ``escalc()`` with
    its defaults), on the outcome's own scale (ratios back-transformed), with the input form it
    comes from and how it was derived, or why it has none (the row would be left out). Rows on an
    instrument in ``reverse`` are sign-aligned as the analyses align them (``aligned``: true)."""
    spec = measures.REGISTRY.get(measure)
    try:
        es = effects.escalc(measure, effects.columns_of(rows))
    except EngineError as exc:
        # the upload passed the same checks, so this is a defect, not the data manager's doing;
        # the preview still shows the rows, with the engine's reason
        return [{"row": i + 1, "key": row_key(r), "reason": str(exc)} for i, r in enumerate(rows)]
    out = []
    for i, row in enumerate(rows):
        yi, vi = float(es.yi[i]), float(es.vi[i])
        aligned = row.get("instrument") in reverse
        yi = -yi if aligned else yi
        entry: dict[str, Any] = {
            "row": i + 1,
            "key": row_key(row),
            "form": es.forms[i],
            "derivation": es.derivations[i],
            "reason": es.na_reasons.get(i),
            "aligned": aligned,
        }
        if math.isfinite(yi) and math.isfinite(vi) and vi >= 0:
            half = _Z95 * math.sqrt(vi)
            values: tuple[float, ...] = (yi, yi - half, yi + half)
            if spec is not None and spec.log_scale:
                values = tuple(spec.back_transform(v) for v in values)
            entry.update(effect=values[0], ci_lb=values[1], ci_ub=values[2])
        out.append(entry)
    return out
