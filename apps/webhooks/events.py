"""The events a webhook can subscribe to, and the conditions a guideline panel watches.

A condition event compares the headline (``AnalysisResult.pooled``) of an analysis's new current result
with the previous one its subscriber could read. Everything is on the analysis scale: for ratio
measures (odds, risk and rate ratios) that is the log scale, so the null is 0 for every measure.
"""

from __future__ import annotations

import math
from typing import Any

RESULT_CHANGED = "result.changed"
RELEASE_PUBLISHED = "release.published"
CI_EXCLUDES_NULL = "ci.excludes_null"
CI_INCLUDES_NULL = "ci.includes_null"
I2_CROSSED = "i2.crossed"
ESTIMATE_MOVED = "estimate.moved"
DIRECTION_CHANGED = "direction.changed"
#: Not subscribable: sent when the owner asks for it (``POST /api/v1/webhooks/{id}/ping/``).
PING = "ping"

#: What a subscription may ask for, and what each means (the API's choices, the admin's labels).
EVENTS: dict[str, str] = {
    RESULT_CHANGED: "An analysis has a new current result.",
    RELEASE_PUBLISHED: "The steering group published a release.",
    CI_EXCLUDES_NULL: "The confidence interval now excludes the null (it did not before).",
    CI_INCLUDES_NULL: "The confidence interval no longer excludes the null.",
    I2_CROSSED: "I² crossed the subscription's threshold, upwards or downwards.",
    ESTIMATE_MOVED: "The estimate moved by more than the subscription's threshold.",
    DIRECTION_CHANGED: "The sign of the estimate changed.",
}
CONDITIONS = (CI_EXCLUDES_NULL, CI_INCLUDES_NULL, I2_CROSSED, ESTIMATE_MOVED, DIRECTION_CHANGED)
#: The events of a new current result.
RESULT_EVENTS = (RESULT_CHANGED, *CONDITIONS)

DEFAULT_I2_THRESHOLD = 50.0
DEFAULT_ESTIMATE_THRESHOLD = 0.1
NULL = 0.0


def _number(headline: dict[str, Any] | None, key: str) -> float | None:
    value = (headline or {}).get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def excludes_null(headline: dict[str, Any] | None) -> bool | None:
    """Whether the confidence interval lies wholly above or below the null; None without an interval."""
    lb, ub = _number(headline, "ci_lb"), _number(headline, "ci_ub")
    if lb is None or ub is None:
        return None
    return lb > NULL or ub < NULL


def _direction(estimate: float) -> str:
    return "positive" if estimate > NULL else "negative" if estimate < NULL else "null"


def _interval(headline: dict[str, Any] | None) -> dict[str, float | None] | None:
    if headline is None:
        return None
    return {"ci_lb": _number(headline, "ci_lb"), "ci_ub": _number(headline, "ci_ub")}


def conditions(
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    *,
    i2_threshold: float = DEFAULT_I2_THRESHOLD,
    estimate_threshold: float = DEFAULT_ESTIMATE_THRESHOLD,
) -> dict[str, dict[str, Any]]:
    """The condition events that hold between two headlines, each with what the payload says of it.

    ``before`` is None for an analysis's first result (or when the previous one failed): then only
    ``ci.excludes_null`` can fire, because the others compare two values. ``after`` None (the new
    result failed) fires nothing.
    """
    if after is None:
        return {}
    fired: dict[str, dict[str, Any]] = {}
    was, now = excludes_null(before), excludes_null(after)
    if now is True and was is not True:
        estimate = _number(after, "estimate")
        fired[CI_EXCLUDES_NULL] = {
            "null": NULL,
            "side": "above" if (estimate is not None and estimate > NULL) else "below",
            "interval": _interval(after),
            "previous_interval": _interval(before),
        }
    if now is False and was is True:
        fired[CI_INCLUDES_NULL] = {
            "null": NULL,
            "interval": _interval(after),
            "previous_interval": _interval(before),
        }
    i2_before, i2_after = _number(before, "I2"), _number(after, "I2")
    if (
        i2_before is not None
        and i2_after is not None
        and (i2_before > i2_threshold) != (i2_after > i2_threshold)
    ):
        fired[I2_CROSSED] = {
            "threshold": i2_threshold,
            "before": i2_before,
            "after": i2_after,
            "direction": "up" if i2_after > i2_threshold else "down",
        }
    est_before, est_after = _number(before, "estimate"), _number(after, "estimate")
    if est_before is not None and est_after is not None:
        change = est_after - est_before
        if abs(change) > estimate_threshold:
            fired[ESTIMATE_MOVED] = {
                "threshold": estimate_threshold,
                "before": est_before,
                "after": est_after,
                "change": change,
            }
        if _direction(est_before) != _direction(est_after):
            fired[DIRECTION_CHANGED] = {
                "before": est_before,
                "after": est_after,
                "from": _direction(est_before),
                "to": _direction(est_after),
            }
    return fired
