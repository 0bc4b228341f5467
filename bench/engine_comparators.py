"""The engine benchmark's comparators: PyMARE and statsmodels doing what the engine does.

Each function is one tool's share of a task (see the report's "What each tool did"); they are
imported by the benchmark only, so the engine never depends on either library.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def pymare_fit(y: np.ndarray, v: np.ndarray, X: np.ndarray | None = None, method: str = "REML") -> Any:
    """A PyMARE model with the statistics of metafor's model printout.

    REML (``VarianceBasedLikelihoodEstimator``) or DL (``DerSimonianLaird``) via ``fit_dataset``
    with Wald (z) inference, as the engine's default test; then the coefficient table
    (``get_fe_stats``: estimate, se, z, p, CI) and the heterogeneity statistics
    (``get_heterogeneity_stats``: Q, p, I², H).
    """
    import pymare
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    ds = pymare.Dataset(y=y, v=v, X=X)
    if method == "REML":
        est = VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald")
    else:
        est = DerSimonianLaird(small_sample_correction="wald")
    est.fit_dataset(ds)
    res = est.summary()
    res.get_fe_stats()
    res.get_heterogeneity_stats()
    return res


def pymare_tau2(res: Any) -> float:
    return float(np.asarray(res.tau2).ravel()[0])


def sm_fit(y: np.ndarray, v: np.ndarray, method_re: str = "iterated") -> Any:
    """statsmodels ``combine_effects`` (equal and random effects, Q, I², tau²) plus its CIs."""
    from statsmodels.stats.meta_analysis import combine_effects

    res = combine_effects(y, v, method_re=method_re)
    res.conf_int()
    return res


def pymare_whole(y: np.ndarray, v: np.ndarray) -> None:
    """PyMARE's share of the whole set of analyses (see the notes in the report)."""
    res = pymare_fit(y, v)
    res.get_re_stats()  # Q-profile CI of tau²
    k = y.size
    for i in range(k):  # leave-one-out
        keep = np.arange(k) != i
        pymare_fit(y[keep], v[keep])
    for i in range(2, k + 1):  # cumulative
        pymare_fit(y[:i], v[:i])
    pymare_fit(y, v, X=np.sqrt(v)[:, None])  # Egger-type test: meta-regression on the SE


def sm_whole(y: np.ndarray, v: np.ndarray) -> None:
    """statsmodels' share of the whole set of analyses (see the notes in the report)."""
    sm_fit(y, v)
    k = y.size
    for i in range(k):
        keep = np.arange(k) != i
        sm_fit(y[keep], v[keep])
    for i in range(2, k + 1):
        sm_fit(y[:i], v[:i])


def pymare_smd(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g and its variance with PyMARE's effect-size converter."""
    from pymare.effectsize import compute_measure

    y, v = compute_measure(
        "SMD",
        m1=cols["m1i"],
        m2=cols["m2i"],
        sd1=cols["sd1i"],
        sd2=cols["sd2i"],
        n1=cols["n1i"].astype(float),
        n2=cols["n2i"].astype(float),
        return_type="tuple",
    )
    return np.asarray(y, dtype=float).ravel(), np.asarray(v, dtype=float).ravel()


def sm_smd(cols: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Hedges' g and its variance with statsmodels' ``effectsize_smd``."""
    from statsmodels.stats.meta_analysis import effectsize_smd

    y, v = effectsize_smd(cols["m1i"], cols["sd1i"], cols["n1i"], cols["m2i"], cols["sd2i"], cols["n2i"])
    return np.asarray(y, dtype=float), np.asarray(v, dtype=float)
