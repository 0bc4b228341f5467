"""Profile-likelihood confidence intervals of the variance components (metafor's ``confint.rma.mv``).

The interval of sigma2_j holds the values x where the likelihood ratio statistic
-2 (ll(sigma2_j = x, the other components re-estimated) - ll_max) stays below the chi-squared(1)
quantile of the level (Hardy & Thompson 1996; Viechtbauer 2007). Each bound is the root of that
statistic minus the quantile, searched as metafor searches it: below the estimate down to 0, above
it up to max(10, 100 sigma2_j). Where the statistic does not reach the quantile within the search
range, the bound is the end of the range (0 below; the upper end is reported with a note).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import numpy as np
from scipy import special

from ..errors import ConvergenceError
from ..estimators import alpha_from_level
from ..estimators.roots import zeroin
from ..fit_result import EngineResult, jsonable
from .fit import MultilevelFit, maximise

__all__ = ["ProfileConfint", "profile_confint"]

#: The bound's tolerance (in sigma2): far below the rtol of 1e-6 the reference is checked at.
ROOT_TOLERANCE = 1e-13


@dataclasses.dataclass(frozen=True, eq=False)
class ProfileConfint(EngineResult):
    """Profile-likelihood intervals, ``[estimate, lower, upper]`` per variance component.

    Attributes
    ----------
    sigma2, sigma : list of list of float
        Per component (study, then estimate within study): the variance and its square root.
    level : float
    na_reasons : dict of str to str
        Bounds that stopped at the end of the search range.
    """

    sigma2: list[list[float]]
    sigma: list[list[float]]
    level: float
    na_reasons: dict[str, str]

    def to_dict(self) -> dict[str, Any]:
        return jsonable(
            {"sigma2": self.sigma2, "sigma": self.sigma, "level": self.level, "na_reasons": self.na_reasons}
        )


def _root(f: Any, a: float, b: float, fa: float, fb: float) -> float:
    """The bound between a and b (f changes sign there), by Brent's method to ROOT_TOLERANCE."""
    root, converged = zeroin(f, a, b, fa, fb, ROOT_TOLERANCE, 1000)
    if not converged:
        raise ConvergenceError("the profile-likelihood bound was not found in 1,000 iterations")
    return root


def profile_confint(fit: MultilevelFit, level: float | None = None) -> ProfileConfint:
    """Profile-likelihood interval of each variance component of ``fit``.

    Parameters
    ----------
    fit : MultilevelFit
    level : float, optional
        Confidence level in percent (default: the fit's).

    Notes
    -----
    metafor 3.8-1 ``confint.rma.mv()`` (``type = "PL"``): search range [0, max(10, 100 sigma2_j)]
    (10 when sigma2_j is below sqrt(machine epsilon)).
    """
    level = fit.level if level is None else float(level)
    crit = float(special.chdtri(1, alpha_from_level(level)))
    comp = fit.components
    ll_max = fit.loglik
    est = np.asarray(fit.sigma2, dtype=float)
    out: list[list[float]] = []
    na: dict[str, str] = {}
    names = ("study", "estimate")

    for j, value in enumerate(est):
        start = est.copy()

        def excess(x: float, j: int = j, start: np.ndarray = start) -> float:
            ev, _ = maximise(comp, fit.method, start=start, fixed={j: x})
            return -2.0 * (ev.ll - ll_max) - crit

        upper_end = 10.0 if value <= math.sqrt(np.finfo(float).eps) else max(10.0, 100.0 * value)
        at_zero = excess(0.0) if value > 0.0 else -1.0
        lower = 0.0 if at_zero < 0 else _root(excess, 0.0, value, at_zero, -crit)
        at_end = excess(upper_end)
        if at_end < 0:
            upper = upper_end
            na[f"sigma2_{names[j]}_upper"] = (
                f"the likelihood does not fall far enough below sigma2 = {upper_end:g}: the upper bound "
                "is at least this"
            )
        else:
            upper = _root(excess, value, upper_end, -crit, at_end)
        out.append([float(value), float(lower), float(upper)])
    sigma = [[math.sqrt(max(v, 0.0)) for v in row] for row in out]
    return ProfileConfint(sigma2=out, sigma=sigma, level=level, na_reasons=na)
