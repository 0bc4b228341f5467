"""Which rows enter an analysis: one time point (or each study's latest) and preferred instruments.

A row is one effect: a study, a comparison, an instrument and a time point. Pooling a 6-month row
with post-treatment rows mixes two questions, and a study measured on three instruments would
weigh three times in a model that ignores the dependence. The analysis specification therefore says
which rows enter (``timepoint``, ``instruments``); every other row is reported as not selected,
with the reason, and never silently dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from .design import is_missing
from .spec import LATEST, AnalysisSpec

__all__ = ["INSTRUMENT", "TIMEPOINT", "select_rows"]

#: The row columns the selection reads (names of the upload's columns).
TIMEPOINT = "timepoint"
INSTRUMENT = "instrument"


def _value(row: Mapping[str, object], name: str) -> str | None:
    value = row.get(name)
    return None if value is None or is_missing(value) else str(value)


def select_rows(
    spec: AnalysisSpec, rows: Sequence[Mapping[str, object]], studies: Sequence[str]
) -> tuple[np.ndarray, dict[int, str]]:
    """The rows the specification selects, and why each other row is left out.

    Parameters
    ----------
    spec : AnalysisSpec
    rows : sequence of mappings
        The study table (``timepoint`` and ``instrument`` columns where the data have them).
    studies : sequence of str
        Each row's study label.

    Returns
    -------
    selected : ndarray of bool
    reasons : dict of int to str
        For every row not selected, the reason (row numbers from 0).
    """
    n = len(rows)
    selected = np.ones(n, dtype=bool)
    reasons: dict[int, str] = {}

    def drop(i: int, why: str) -> None:
        selected[i] = False
        reasons.setdefault(i, why)

    if spec.timepoint is not None:
        times = [_value(r, TIMEPOINT) for r in rows]
        if spec.timepoint == LATEST:
            order = {code: j for j, code in enumerate(spec.timepoints)}
            latest: dict[str, int] = {}
            for i, t in enumerate(times):
                if t is None:
                    drop(i, "no time point given: the analysis keeps each study's latest time point")
                elif t not in order:
                    drop(i, f"time point {t!r} is not in the data dictionary ({', '.join(spec.timepoints)})")
                else:
                    latest[studies[i]] = max(latest.get(studies[i], -1), order[t])
            for i, t in enumerate(times):
                if selected[i] and t is not None and order[t] < latest[studies[i]]:
                    drop(i, f"an earlier time point ({t}): the analysis keeps each study's latest")
        else:
            for i, t in enumerate(times):
                if t != spec.timepoint:
                    shown = "no time point" if t is None else f"time point {t}"
                    drop(i, f"{shown}: the analysis uses time point {spec.timepoint} only")

    if spec.instruments:
        rank = {code: j for j, code in enumerate(spec.instruments)}
        instruments = [_value(r, INSTRUMENT) for r in rows]
        times = [_value(r, TIMEPOINT) for r in rows]
        best: dict[tuple[str, str | None], int] = {}
        for i, ins in enumerate(instruments):
            if not selected[i]:
                continue
            if ins is None or ins not in rank:
                shown = "no instrument" if ins is None else f"instrument {ins}"
                drop(i, f"{shown} is not among the preferred instruments ({', '.join(spec.instruments)})")
                continue
            key = (studies[i], times[i])
            best[key] = min(best.get(key, len(rank)), rank[ins])
        for i, ins in enumerate(instruments):
            if selected[i] and ins is not None and rank[ins] > best[(studies[i], times[i])]:
                chosen = spec.instruments[best[(studies[i], times[i])]]
                drop(i, f"instrument {ins}: the study also reports {chosen}, which the analysis prefers")
    return selected, reasons
