"""The estimate on the outcome's own scale: ratio measures are pooled as logs, readers want the ratio."""

from __future__ import annotations

from typing import Any

from apps.consortium.models import Outcome
from workers.metaanalysis import measures


def ratio_of(code: str, pooled: dict[str, Any] | None) -> dict[str, Any] | None:
    """Ratio measures are pooled on the log scale; readers want the ratio itself as well."""
    measure = measures.REGISTRY.get(code)
    if measure is None or not measure.log_scale or not pooled:
        return None
    values = {k: pooled.get(k) for k in ("estimate", "ci_lb", "ci_ub", "pi_lb", "pi_ub")}
    if any(v is None for v in (values["estimate"], values["ci_lb"], values["ci_ub"])):
        return None
    return {
        "label": measure.ratio_label,
        **{k: measure.back_transform(v) if v is not None else None for k, v in values.items()},
    }


def favours(outcome: Outcome, pooled: dict[str, Any] | None) -> str:
    """Which arm the confidence interval favours, read with the outcome's direction (on the scale
    the model works on, where no effect is 0), or that it includes no effect."""
    if not pooled or pooled.get("ci_lb") is None or pooled.get("ci_ub") is None:
        return "–"
    if pooled["ci_lb"] <= 0 <= pooled["ci_ub"]:
        return "unclear (the CI includes no effect)"
    higher = pooled["ci_lb"] > 0
    better = higher == (outcome.direction == Outcome.Direction.HIGHER_IS_BETTER)
    return "favours intervention" if better else "favours control"
