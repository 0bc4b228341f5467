"""Which rows enter a model, and what the model reads of them: the study labels, the rows the
specification selects and whose effect can be computed (every other row with the reason it is
left out), the moderator design and the estimate identifiers."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from . import effects
from .design import build_design, is_missing
from .selection import select_rows
from .spec import AnalysisSpec

__all__ = ["ES_ID", "all_rows_left_out", "es_ids", "moderators", "study_labels", "usable_rows"]

#: The column that identifies an estimate within its study (metafor's ``es_id`` in
#: ``random = ~ 1 | study/es_id``); without it every row is its own estimate.
ES_ID = "es_id"


def study_labels(rows: Sequence[Mapping[str, object]]) -> list[str]:
    """Each row's study, "Study i" (its row number, from 1) where it has none."""
    out = []
    for i, r in enumerate(rows):
        s = r.get("study")
        out.append(f"Study {i + 1}" if s is None or is_missing(s) else str(s))
    return out


def usable_rows(
    spec: AnalysisSpec, rows: Sequence[Mapping[str, object]], labels: list[str], es: Any
) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The rows the specification selects and whose effect can be computed, and every other row
    with the reason it is left out (``{"row", "study", "code", "reason"}``)."""
    selected, not_selected = select_rows(spec, rows, labels)
    usable = np.asarray(effects.included(es), dtype=bool) & selected
    omitted: list[dict[str, Any]] = [
        {"row": i, "study": labels[i], "code": "not_selected", "reason": why}
        for i, why in not_selected.items()
    ]
    omitted += [
        {"row": o.row, "study": labels[o.row], "code": o.code, "reason": o.reason}
        for o in effects.omitted_rows(es)
        if selected[o.row]
    ]
    return usable, omitted


def all_rows_left_out(omitted: Sequence[Mapping[str, Any]]) -> str:
    """That no row enters the model, with the reasons rows are left out, most frequent first (at
    most three of them)."""
    if not omitted:
        return "No row enters the model."
    counts = Counter(str(o["reason"]) for o in omitted)
    parts = [f"{n} row{'s' if n != 1 else ''}: {reason}" for reason, n in counts.most_common(3)]
    if len(counts) > 3:
        parts.append(f"{sum(n for _, n in counts.most_common()[3:])} for other reasons")
    n = len(omitted)
    return (
        f"No row enters the model; all {n} row{'s are' if n != 1 else ' is'} left out ({'; '.join(parts)})."
    )


def moderators(
    spec: AnalysisSpec,
    rows: Sequence[Mapping[str, object]],
    usable: np.ndarray,
    row_numbers: Sequence[int],
    labels: Sequence[str],
    omitted: list[dict[str, Any]],
) -> tuple[np.ndarray, np.ndarray | None, list[str] | None]:
    """The rows in the model, the moderator matrix and its column names (None without moderators).

    A usable row with a missing moderator is left out and listed in ``omitted`` under its uploaded
    row number (``row_numbers``) and study (``labels``).
    """
    if not spec.mods:
        return usable.copy(), None, None
    design = build_design(rows, spec.mods, usable)
    for i in sorted(design.missing):
        if usable[i]:
            omitted.append(
                {
                    "row": int(row_numbers[i]),
                    "study": labels[i],
                    "code": "missing_moderator",
                    "reason": "missing moderator value: " + ", ".join(design.missing[i]),
                }
            )
    return design.complete, design.X[design.complete], list(design.coef_names)


def es_ids(rows: Sequence[Mapping[str, object]], idx: np.ndarray) -> list[object] | None:
    """The estimate identifiers of the model rows (column ``es_id``); None when the data have none,
    and then every row is its own estimate."""
    if not any(ES_ID in rows[i] for i in idx):
        return None
    return [rows[i].get(ES_ID) if not is_missing(rows[i].get(ES_ID)) else f"row {i}" for i in idx]
