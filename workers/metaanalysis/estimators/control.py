"""Estimators, tests and iteration settings of the normal-normal model (metafor's ``rma.uni``)."""

from __future__ import annotations

import dataclasses

import numpy as np

#: tau² estimators, by metafor's ``method`` names.
METHODS: tuple[str, ...] = ("EE", "DL", "HE", "HS", "SJ", "ML", "REML", "EB", "PM")
#: Tests of the coefficients: normal, Knapp-Hartung, t without scaling.
TESTS: tuple[str, ...] = ("z", "knha", "t")

EPS = float(np.finfo(float).eps)


@dataclasses.dataclass(frozen=True)
class Control:
    """Iteration settings (metafor's ``control`` list of ``rma.uni``).

    The defaults are the tight settings the reference results were computed with
    (``threshold = tol = 1e-13``, ``maxiter = 10000``), not metafor's looser defaults.
    """

    threshold: float = 1e-13
    tol: float = 1e-13
    maxiter: int = 10000


DEFAULT_CONTROL = Control()

#: metafor's own defaults (``threshold = 1e-5``, ``tol = .Machine$double.eps^0.25``,
#: ``maxiter = 100``): used where metafor refits without passing ``control`` on (trimfill).
METAFOR_DEFAULTS = Control(threshold=1e-5, tol=EPS**0.25, maxiter=100)

#: Below this convergence threshold the iterations take Newton steps where they are
#: safe (see :func:`~.fisher_scoring.fisher_scoring`): the converged value is the same root, reached in a few
#: iterations where Fisher scoring converges linearly (30+ iterations to 1e-13 are common). With
#: metafor's default threshold (1e-5) the Fisher path itself decides where iteration stops, so it
#: is followed exactly.
NEWTON_BELOW_THRESHOLD = 1e-8
