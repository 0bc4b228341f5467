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


def regression_of(result: Any) -> dict[str, Any] | None:
    """A meta-regression's coefficients (intercept and moderators) with their tests, from the block
    the headline inference comes from (CR2 when robust); None for a model without moderators.

    Its headline "estimate" is the intercept, the effect where every moderator is 0: the page must
    not present it as a pooled effect.
    """
    summary = result.blocks.get("summary") or {}
    fit = result.blocks.get(summary.get("fit_block") or "fit") or {}
    names = fit.get("coef_names") or []
    if len(names) < 2:
        return None
    source = result.blocks.get(summary.get("inference_block") or "fit") or fit

    def column(key: str) -> list[Any]:
        values = source.get(key)
        return list(values) if isinstance(values, list) else [None] * len(names)

    rows = [
        {
            "name": "intercept" if name == "intrcpt" else name,
            "estimate": b,
            "se": se,
            "ci_lb": lb,
            "ci_ub": ub,
            "pval": p,
        }
        for name, b, se, lb, ub, p in zip(
            names,
            column("beta"),
            column("se"),
            column("ci_lb"),
            column("ci_ub"),
            column("pval"),
            strict=False,
        )
    ]
    return {
        "rows": rows,
        "moderators": [r["name"] for r in rows[1:]],
        "QM": source.get("QM", fit.get("QM")),
        "QMp": source.get("QMp", fit.get("QMp")),
        "R2": fit.get("R2"),
        "inference": summary.get("inference"),
    }


def level_of(result: Any) -> str:
    """The confidence level the result's intervals were computed at, as a label ("95%")."""
    level = result.spec.get("level") if isinstance(result.spec, dict) else None
    return f"{float(level):g}%" if isinstance(level, int | float) else "95%"
