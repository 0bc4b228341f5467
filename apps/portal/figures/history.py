"""The history figure: the pooled estimates of an analysis's results over time."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from apps.analyses.models import AnalysisResult
from apps.portal.figures.data import finite
from apps.portal.scale import regression_of


@dataclass
class Point:
    pk: int
    seq: int
    created: datetime
    est: float
    lb: float
    ub: float
    k: int | None
    versions: list[dict[str, Any]]


def history_points(results: list[AnalysisResult]) -> list[Point]:
    """The pooled estimates over time. A meta-regression's result has none (its headline number is
    the intercept, the effect where every moderator is 0), so it is not a point on this line."""
    points = []
    for r in results:
        p = r.pooled or {}
        if (
            r.status == AnalysisResult.Status.DONE
            and all(finite(p.get(k)) for k in ("estimate", "ci_lb", "ci_ub"))
            and regression_of(r) is None
        ):
            points.append(
                Point(
                    r.pk,
                    r.seq,
                    r.created_at,
                    p["estimate"],
                    p["ci_lb"],
                    p["ci_ub"],
                    r.k,
                    list(r.dataset_versions),
                )
            )
    points.sort(key=lambda p: (p.created, p.seq))
    return points
