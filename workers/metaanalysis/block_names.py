"""Which block of a report holds what, for each dependence model: the fit, its weights, the
prediction, the confidence intervals of the variance components and each robust test. The one
table of these names, read by the engine, the text report, the exports and the figures."""

from __future__ import annotations

__all__ = ["block_names"]


def block_names(dependence: str) -> dict[str, str]:
    """The blocks holding the fit, its weights, the prediction and each robust test of a dependence
    model."""
    suffix = "_vcalc" if dependence == "che" else ""
    if dependence in ("multilevel", "che"):
        return {
            "fit": f"multilevel_fit{suffix}",
            "weights": f"multilevel_weights{suffix}",
            "predict": f"predict{suffix}",
            "confint": f"multilevel_confint{suffix}",
            "CR1": f"robust_cr1{suffix}",
            "CR2": f"robust_cr2{suffix}",
        }
    if dependence == "aggregate":
        return {"fit": "aggregated_fit", "weights": "weights", "predict": "predict", "confint": "confint"}
    return {
        "fit": "fit",
        "weights": "weights",
        "predict": "predict",
        "confint": "confint",
        "CR1": "robust_cr1",
        "CR2": "robust_cr2",
    }
