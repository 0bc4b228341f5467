"""The fitted line of Egger's regression test, in the coordinates a funnel plot draws.

metafor's ``regtest()`` fits the model with the standard error as a moderator,
``y_i = b0 + b1 sei_i``; its fit (``regtest(...)$fit``) gives the line a funnel plot of effect
against standard error draws to show the asymmetry: from the limit estimate ``b0`` at SE 0 to
``b0 + b1 max(sei)``. For dependent effects the multilevel Egger-type test
(``dependent.egger_multilevel``) reports the same two coefficients.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .bias import EggerResult
from .errors import EngineError
from .fit_result import FitResult

__all__ = ["egger_line", "line_on_funnel"]


def line_on_funnel(intercept: float, slope: float, sei: np.ndarray) -> dict[str, Any]:
    """The line ``estimate = intercept + slope * se`` from SE 0 to the largest ``sei``: its
    coefficients and its two ends (``se``, ``estimate``), as the funnel block's ``lines`` are given."""
    top = float(np.max(sei))
    return {
        "intercept": float(intercept),
        "slope": float(slope),
        "se": [0.0, top],
        "estimate": [float(intercept), float(intercept + slope * top)],
    }


def egger_line(fit: FitResult, test: EggerResult) -> dict[str, Any]:
    """The fitted line of ``regtest(fit)`` (model ``"rma"``, predictor ``"sei"``) for a model without
    moderators, from Egger's test itself (:func:`~workers.metaanalysis.bias.egger`): its limit
    estimate (the intercept) and the standard-error coefficient (the slope).

    Raises
    ------
    EngineError
        ``fit`` has moderators: the line is drawn against the SE alone.
    """
    if not fit.int_only:
        raise EngineError("Egger's line is drawn for models without moderators", code="not_applicable")
    return line_on_funnel(test.limit_estimate, test.slope, np.sqrt(fit.vi))
