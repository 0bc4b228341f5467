"""Reads on datasets: which version a reader sees, version comparison."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apps.consortium import roles
from apps.datasets.models import Dataset, DatasetVersion


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


def dataset_version_diff(*, old: DatasetVersion, new: DatasetVersion) -> dict[str, Any]:
    """Rows added, removed and changed (cell by cell) from ``old`` to ``new``."""
    old_rows = {row_key(r): r for r in old.rows}
    new_rows = {row_key(r): r for r in new.rows}
    added = [new_rows[k] for k in new_rows if k not in old_rows]
    removed = [old_rows[k] for k in old_rows if k not in new_rows]
    changed = []
    for key in new_rows:
        if key not in old_rows:
            continue
        a, b = old_rows[key], new_rows[key]
        cells = [
            {"column": col, "old": a.get(col), "new": b.get(col)}
            for col in sorted(set(a) | set(b))
            if a.get(col) != b.get(col)
        ]
        if cells:
            changed.append({"key": key, "cells": cells})
    return {
        "old_version": old.number,
        "new_version": new.number,
        "added": added,
        "removed": removed,
        "changed": changed,
        "summary": {
            "added": len(added),
            "removed": len(removed),
            "changed": len(changed),
            "unchanged": len(new_rows) - len(added) - len(changed),
        },
    }
