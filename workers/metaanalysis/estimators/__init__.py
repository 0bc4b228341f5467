"""tau² estimation and weighted least squares for the normal-normal model (metafor's ``rma.uni``).

The numerical core behind :func:`workers.metaanalysis.rma.rma` and the sensitivity analyses
(metafor 3.8-1, Viechtbauer 2010, J Stat Softw 36(3)):

* :mod:`.control` -- estimator and test names, iteration settings;
* :mod:`.inference` -- the confidence-level convention and the Wald tail (critical value, p,
  confidence limits, the test of the moderators, I² and H²) every model of the engine shares,
  Mantel-Haenszel and Peto too;
* :mod:`.subsets` -- the studies of a model and families of their subsets (leave-one-out,
  cumulative) as weighted sums, without k x k matrices;
* :mod:`.fisher_scoring` -- the one Fisher-scoring loop (ML, REML, EB) of one model or of a
  family of subsets;
* :mod:`.batched` -- every estimator for all subsets of a family at once;
* :mod:`.single_tau2` -- one model's weighted sums, score functions and estimators;
* :mod:`.paule_mandel` -- the Paule-Mandel estimator, single and batched;
* :mod:`.roots` -- root finders (safeguarded Newton, R's ``uniroot()``);
* :mod:`.family_fit`, :mod:`.single_fit` -- the fits assembled from tau².
"""

from .batched import Tau2Result, estimate_tau2
from .control import DEFAULT_CONTROL, METAFOR_DEFAULTS, METHODS, TESTS, Control
from .family_fit import FamilyFit, fit_family
from .inference import alpha_from_level, critical_values, i2_h2, moderator_test, wald_tail
from .roots import solve_decreasing, solve_decreasing_scalar
from .single_fit import SingleFit, fit_intercept_only, fit_regression, se_tau2
from .single_tau2 import InterceptOnlySums, RegressionSums, tau2_intercept_only
from .subsets import Family, Problem, Sums, wls

__all__ = [
    "DEFAULT_CONTROL",
    "METAFOR_DEFAULTS",
    "METHODS",
    "TESTS",
    "Control",
    "Family",
    "FamilyFit",
    "InterceptOnlySums",
    "Problem",
    "RegressionSums",
    "SingleFit",
    "Sums",
    "Tau2Result",
    "alpha_from_level",
    "critical_values",
    "estimate_tau2",
    "fit_family",
    "fit_intercept_only",
    "fit_regression",
    "i2_h2",
    "moderator_test",
    "se_tau2",
    "solve_decreasing",
    "solve_decreasing_scalar",
    "tau2_intercept_only",
    "wald_tail",
    "wls",
]
