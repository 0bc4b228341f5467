"""The engine benchmark's simulated data: effect sizes with known variances, and two-group means.

Each data set derives its random stream from the base seed and its size, so that a task at one k
gets the same data in every run.
"""

from __future__ import annotations

from typing import Any

import numpy as np

DEFAULT_SEED = 20_261_125
#: Mean effect and between-study variance of the simulation: yi ~ N(MU, TAU2 + vi).
MU = 0.3
TAU2 = 0.1
#: Sampling variances are drawn uniformly from this range.
VI_RANGE = (0.01, 0.25)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng([seed, *key])


def simulate_gen(k: int, seed: int = DEFAULT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """Effect sizes with known variances: vi ~ U(VI_RANGE), yi ~ N(MU, TAU2 + vi).

    Parameters
    ----------
    k : int
        Number of studies.
    seed : int
        Base seed; the stream also depends on ``k``.

    Returns
    -------
    yi, vi : ndarray
    """
    rng = _rng(seed, 1, k)
    vi = rng.uniform(*VI_RANGE, size=k)
    yi = rng.normal(MU, np.sqrt(TAU2 + vi))
    return yi, vi


def simulate_smd(k: int, seed: int = DEFAULT_SEED) -> dict[str, np.ndarray]:
    """Two-group means, SDs and sizes whose standardised difference has mean MU and variance TAU2:
    metafor's columns ``m1i sd1i n1i m2i sd2i n2i`` for ``k`` studies (the stream depends on the
    base ``seed`` and ``k``)."""
    rng = _rng(seed, 2, k)
    n1 = rng.integers(10, 120, size=k)
    n2 = rng.integers(10, 120, size=k)
    sd1 = rng.uniform(0.8, 1.6, size=k)
    sd2 = rng.uniform(0.8, 1.6, size=k)
    delta = rng.normal(MU, np.sqrt(TAU2), size=k)
    sdp = np.sqrt(((n1 - 1) * sd1**2 + (n2 - 1) * sd2**2) / (n1 + n2 - 2))
    m2 = rng.normal(10.0, sd2 / np.sqrt(n2))
    m1 = 10.0 + delta * sdp + rng.normal(0.0, sd1 / np.sqrt(n1))
    return {"m1i": m1, "sd1i": sd1, "n1i": n1, "m2i": m2, "sd2i": sd2, "n2i": n2}


def rows_of(columns: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Study rows (plain Python values) as the platform hands them to ``run_analysis``.

    Parameters
    ----------
    columns : dict of str to ndarray
        Equal-length columns.

    Returns
    -------
    list of dict
        One mapping per study, with a ``study`` label.
    """
    names = list(columns)
    return [
        {"study": f"Study {i + 1}", **{n: columns[n][i].item() for n in names}}
        for i in range(len(columns[names[0]]))
    ]
