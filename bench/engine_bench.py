"""Benchmark of the meta-analysis engine against PyMARE and statsmodels, in one run.

Run with ``python -m bench.engine_bench --out bench/RESULTS.md`` (``make bench``). Every task is
timed on the same seeded simulated data for the engine and for each comparator that can do it:
a warm-up first, then the median of repeated ``time.perf_counter()`` measurements (the garbage
collector is paused while timing, as :mod:`timeit` does). The number of repeats adapts to the
duration of a call so that every median rests on enough repeats within the time budget.

Tasks:

(a) the whole set of analyses at k = 77 (``run_analysis`` with sensitivity and bias analyses),
    on yi/vi (GEN) and on raw means (SMD), against the equivalent pieces each comparator offers;
(b) one REML fit at several k (statsmodels has no REML: its iterated Paule-Mandel is timed and
    labelled so);
(c) one DerSimonian-Laird fit at k = 10,000;
(d) leave-one-out at k = 10,000 (the comparators: a loop of k fits, timed on a subset of omitted
    studies and extrapolated linearly when the whole loop would take longer than a minute).

metafor's timings are not measured here (R is not installed); its published numbers are shown
in a separate, clearly labelled column. The run also checks that the engine and the comparators
estimate the same tau² (so that the timings compare like with like) and, if the engine misses
a goal, profiles it with :mod:`cProfile`.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import dataclasses
import datetime as dt
import functools
import gc
import io
import math
import os
import platform
import pstats
import statistics
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from workers.metaanalysis import ENGINE_VERSION
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis
from workers.metaanalysis.rma import rma
from workers.metaanalysis.sensitivity import leave1out

#: Seed of the simulated data (each data set derives its own stream from it and its size).
DEFAULT_SEED = 20_261_125
#: Mean effect and between-study variance of the simulation: yi ~ N(MU, TAU2 + vi).
MU = 0.3
TAU2 = 0.1
#: Sampling variances are drawn uniformly from this range.
VI_RANGE = (0.01, 0.25)

K_WHOLE = 77
#: The whole set again at scale (engine only: the comparators' loops of 2k fits would take minutes).
K_WHOLE_LARGE = 10_000
K_REML = (77, 1_000, 10_000)
K_LARGE = 10_000

#: A comparator loop expected to take longer than this is timed on a subset and extrapolated.
LOOP_LIMIT_S = 60.0
#: Time spent on the subset of such a loop.
SUBSET_BUDGET_S = 12.0
#: Fewest omitted studies in a timed subset.
SUBSET_MIN = 25

#: Omitted studies whose batched leave-one-out results are checked against separate refits.
LOO_REFIT_CHECKS = 50

#: Engine goals (seconds), by task and k.
GOALS: dict[tuple[str, int], float] = {
    ("whole_gen", 77): 5e-3,
    ("whole_smd", 77): 5e-3,
    ("whole_gen", 10_000): 0.5,
    ("reml", 10_000): 2e-3,
    ("loo", 10_000): 2.0,
}

#: metafor 3.8-1 timings published with the engine's requirements, by task and k; NOT measured in
#: this run. The number is None where only a bound for another k is known.
METAFOR_VERSION = "3.8-1"
METAFOR_PUBLISHED: dict[tuple[str, int], tuple[str, float | None]] = {
    ("whole_gen", 77): ("1.1 s", 1.1),
    ("reml", 77): ("3.6 ms", 3.6e-3),
    ("reml", 1_000): ("1.5 s", 1.5),
    ("reml", 10_000): ("> 200 s already at k = 5,000", None),
}


# ----------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------


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
    """Two-group means, SDs and sizes whose standardised difference has mean MU and variance TAU2.

    Parameters
    ----------
    k : int
        Number of studies.
    seed : int
        Base seed; the stream also depends on ``k``.

    Returns
    -------
    dict of str to ndarray
        metafor's columns ``m1i sd1i n1i m2i sd2i n2i``.
    """
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


# ----------------------------------------------------------------------------------------------
# timing
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Timing:
    """The median duration of a task and how it was obtained.

    Attributes
    ----------
    median : float
        Seconds: the median of ``repeats`` timed calls (or, if ``subset`` is set, the median
        time of one fit times the number of fits, see ``subset``).
    repeats : int
        Number of timed calls after the warm-up.
    q1, q3 : float
        Quartiles of the timed calls (same unit and scaling as ``median``).
    subset : tuple of int or None
        ``(m, k)`` when only m of the k fits of a loop were timed and the total extrapolated.
    """

    median: float
    repeats: int
    q1: float
    q3: float
    subset: tuple[int, int] | None = None


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _quartiles(times: Sequence[float]) -> tuple[float, float]:
    if len(times) < 2:
        return times[0], times[0]
    q = statistics.quantiles(times, n=4, method="inclusive")
    return q[0], q[2]


def time_call(
    fn: Callable[[], Any],
    *,
    budget: float,
    min_repeats: int = 5,
    max_repeats: int = 2000,
    warmup_s: float = 0.05,
) -> Timing:
    """Median duration of ``fn()`` after a warm-up.

    Parameters
    ----------
    fn : callable
        The task, without arguments.
    budget : float
        Seconds to spend on the timed calls (``min_repeats`` are made whatever it costs).
    min_repeats, max_repeats : int
        Bounds on the number of timed calls.
    warmup_s : float
        The task is run untimed at least once and until this many seconds have passed.

    Returns
    -------
    Timing
    """
    start = time.perf_counter()
    calls = 0
    while True:
        t0 = time.perf_counter()
        fn()
        first = time.perf_counter() - t0
        calls += 1
        if time.perf_counter() - start >= warmup_s:
            break
    repeats = int(min(max_repeats, max(min_repeats, budget / max(first, 1e-9))))
    times = []
    with _gc_paused():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    q1, q3 = _quartiles(times)
    return Timing(statistics.median(times), repeats, q1, q3)


def time_together(
    fns: Sequence[Callable[[], Any]],
    *,
    budget: float,
    min_repeats: Sequence[int],
    max_repeats: int = 2000,
    warmup_s: float = 0.05,
) -> list[Timing]:
    """Median durations of several tools doing the same task, their calls interleaved.

    Every tool is warmed up, then the timed calls run in rounds, each round calling every tool
    its share of times, so that a burst of load from other processes hits all tools alike and
    their ratios stay meaningful on a shared machine.

    Parameters
    ----------
    fns : sequence of callables
        One task per tool, without arguments.
    budget : float
        Seconds of timed calls per tool (each makes at least its ``min_repeats``).
    min_repeats : sequence of int
        Fewest timed calls per tool.
    max_repeats : int
        Most timed calls per tool.
    warmup_s : float
        Each tool runs untimed at least once and until this many seconds have passed.

    Returns
    -------
    list of Timing
        In the order of ``fns``.
    """
    per_call = []
    for fn in fns:
        start = time.perf_counter()
        while True:
            t0 = time.perf_counter()
            fn()
            last = time.perf_counter() - t0
            if time.perf_counter() - start >= warmup_s:
                break
        per_call.append(last)
    repeats = [
        int(min(max_repeats, max(m, budget / max(t, 1e-9))))
        for t, m in zip(per_call, min_repeats, strict=True)
    ]
    rounds = max(1, min(repeats))
    shares = [math.ceil(r / rounds) for r in repeats]
    times: list[list[float]] = [[] for _ in fns]
    with _gc_paused():
        for _ in range(rounds):
            for j, fn in enumerate(fns):
                for _ in range(min(shares[j], repeats[j] - len(times[j]))):
                    t0 = time.perf_counter()
                    fn()
                    times[j].append(time.perf_counter() - t0)
    out = []
    for t in times:
        q1, q3 = _quartiles(t)
        out.append(Timing(statistics.median(t), len(t), q1, q3))
    return out


def time_loop(
    fit_one: Callable[[int], Any],
    k: int,
    *,
    budget: float,
    min_repeats: int = 3,
    limit: float = LOOP_LIMIT_S,
    subset_budget: float = SUBSET_BUDGET_S,
    subset_min: int = SUBSET_MIN,
) -> Timing:
    """Time a loop of ``k`` fits ``fit_one(0) ... fit_one(k - 1)``.

    If the whole loop is expected to take longer than ``limit`` seconds, only ``m`` evenly
    spaced fits are timed, one by one, and the total is the median fit time times ``k``
    (linear extrapolation; the ``subset`` field records ``(m, k)``).

    Parameters
    ----------
    fit_one : callable
        One fit of the loop, given its index.
    k : int
        Number of fits in the loop.
    budget : float
        Seconds to spend on the whole-loop repeats when the loop is timed whole.
    min_repeats : int
        Fewest repeats of a loop timed whole.
    limit : float
        Expected duration above which a subset is timed instead.
    subset_budget : float
        Seconds to spend on the subset; at least ``subset_min`` fits are timed.
    subset_min : int
        Fewest fits in a subset.

    Returns
    -------
    Timing
    """
    fit_one(0)  # warm-up
    probe = []
    for i in (k // 3, 2 * k // 3, k - 1):
        t0 = time.perf_counter()
        fit_one(i)
        probe.append(time.perf_counter() - t0)
    per_fit = statistics.median(probe)
    if per_fit * k <= limit:
        return time_call(
            lambda: [fit_one(i) for i in range(k)], budget=budget, min_repeats=min_repeats, warmup_s=0.0
        )
    m = int(min(k, max(subset_min, subset_budget / per_fit)))
    subset = np.unique(np.linspace(0, k - 1, m).round().astype(int))
    times = []
    with _gc_paused():
        for i in subset.tolist():
            t0 = time.perf_counter()
            fit_one(i)
            times.append(time.perf_counter() - t0)
    q1, q3 = _quartiles(times)
    return Timing(statistics.median(times) * k, len(times), q1 * k, q3 * k, subset=(len(times), k))


# ----------------------------------------------------------------------------------------------
# the comparators
# ----------------------------------------------------------------------------------------------


def _pymare_fit(y: np.ndarray, v: np.ndarray, X: np.ndarray | None = None, method: str = "REML") -> Any:
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


def _pymare_tau2(res: Any) -> float:
    return float(np.asarray(res.tau2).ravel()[0])


def _sm_fit(y: np.ndarray, v: np.ndarray, method_re: str = "iterated") -> Any:
    """statsmodels ``combine_effects`` (equal and random effects, Q, I², tau²) plus its CIs."""
    from statsmodels.stats.meta_analysis import combine_effects

    res = combine_effects(y, v, method_re=method_re)
    res.conf_int()
    return res


def pymare_whole(y: np.ndarray, v: np.ndarray) -> None:
    """PyMARE's share of the whole set of analyses (see the notes in the report)."""
    res = _pymare_fit(y, v)
    res.get_re_stats()  # Q-profile CI of tau²
    k = y.size
    for i in range(k):  # leave-one-out
        keep = np.arange(k) != i
        _pymare_fit(y[keep], v[keep])
    for i in range(2, k + 1):  # cumulative
        _pymare_fit(y[:i], v[:i])
    _pymare_fit(y, v, X=np.sqrt(v)[:, None])  # Egger-type test: meta-regression on the SE


def sm_whole(y: np.ndarray, v: np.ndarray) -> None:
    """statsmodels' share of the whole set of analyses (see the notes in the report)."""
    _sm_fit(y, v)
    k = y.size
    for i in range(k):
        keep = np.arange(k) != i
        _sm_fit(y[keep], v[keep])
    for i in range(2, k + 1):
        _sm_fit(y[:i], v[:i])


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


# ----------------------------------------------------------------------------------------------
# the run
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Row:
    """One task of the results table."""

    task: str
    label: str
    k: int
    engine: Timing
    pymare: Timing | None = None
    pymare_label: str = ""
    sm: Timing | None = None
    sm_label: str = ""
    engine_fn: Callable[[], Any] | None = None

    @property
    def goal(self) -> float | None:
        return GOALS.get((self.task, self.k))

    @property
    def met(self) -> bool | None:
        return None if self.goal is None else self.engine.median < self.goal


@dataclasses.dataclass
class Settings:
    """Sizes and budgets of one run (``--quick`` shrinks them for a smoke test)."""

    k_whole: int = K_WHOLE
    k_whole_large: int | None = K_WHOLE_LARGE
    k_reml: tuple[int, ...] = K_REML
    k_large: int = K_LARGE
    budget: float = 1.5
    seed: int = DEFAULT_SEED
    quick: bool = False
    min_repeats: int = 5
    min_repeats_slow: int = 3
    loop_limit: float = LOOP_LIMIT_S
    subset_budget: float = SUBSET_BUDGET_S
    subset_min: int = SUBSET_MIN
    load_start: tuple[float, ...] = ()

    def timed(self, fn: Callable[[], Any], slow: bool = False) -> Timing:
        """:func:`time_call` with this run's budget and repeats (fewer repeats for ``slow`` tasks)."""
        return time_call(
            fn,
            budget=self.budget,
            min_repeats=self.min_repeats_slow if slow else self.min_repeats,
            warmup_s=0.0 if self.quick else 0.05,
        )

    def together(self, *fns: Callable[[], Any], slow: Sequence[bool] = ()) -> list[Timing]:
        """:func:`time_together` with this run's budget (fewer repeats for tools marked ``slow``)."""
        flags = list(slow) + [False] * (len(fns) - len(slow))
        return time_together(
            fns,
            budget=self.budget,
            min_repeats=[self.min_repeats_slow if f else self.min_repeats for f in flags],
            warmup_s=0.0 if self.quick else 0.05,
        )

    def looped(self, fit_one: Callable[[int], Any], k: int) -> Timing:
        """:func:`time_loop` with this run's limits."""
        return time_loop(
            fit_one,
            k,
            budget=self.budget,
            min_repeats=self.min_repeats_slow,
            limit=self.loop_limit,
            subset_budget=self.subset_budget,
            subset_min=self.subset_min,
        )


def quick_settings(seed: int = DEFAULT_SEED) -> Settings:
    """Small sizes, one timed call per cell and a tiny loop limit (every code path, in seconds)."""
    return Settings(
        k_whole=12,
        k_whole_large=None,
        k_reml=(12, 200),
        k_large=200,
        budget=0.0,
        seed=seed,
        quick=True,
        min_repeats=1,
        min_repeats_slow=1,
        loop_limit=0.05,
        subset_budget=0.0,
        subset_min=4,
    )


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(settings: Settings) -> tuple[list[Row], list[tuple[str, float]]]:
    """Time every task and check that the engine and comparators agree.

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    rows : list of Row
        One per task.
    agreement : list of (str, float)
        Maximum relative differences between the engine's and the comparators' estimates.
    """
    settings.load_start = os.getloadavg()
    rows: list[Row] = []
    agreement: list[tuple[str, float]] = []

    def reldiff(a: Any, b: Any) -> float:
        a = np.atleast_1d(np.asarray(a, dtype=float))
        b = np.atleast_1d(np.asarray(b, dtype=float))
        return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-300)))

    # (a) the whole set of analyses
    k = settings.k_whole
    y, v = simulate_gen(k, settings.seed)
    gen_rows = rows_of({"yi": y, "vi": v})
    spec_gen = AnalysisSpec(measure="GEN", sensitivity=True, bias=True)
    _log(f"(a) whole set, GEN, k = {k}")
    fn: Callable[[], Any] = functools.partial(run_analysis, spec_gen, gen_rows)
    report = run_analysis(spec_gen, gen_rows).to_dict()
    missing = {"fit", "leave1out", "cumulative", "influence", "egger", "trimfill"} - set(report["blocks"])
    if missing:
        raise RuntimeError(f"run_analysis did not compute {sorted(missing)}: {report['notes']}")
    fn_dict = lambda: run_analysis(spec_gen, gen_rows).to_dict()  # noqa: E731
    engine, engine_dict, pm, sm = settings.together(
        fn, fn_dict, lambda: pymare_whole(y, v), lambda: sm_whole(y, v), slow=(False, False, True, True)
    )
    row = Row("whole_gen", "(a) whole set of analyses, yi/vi given (GEN)", k, engine, engine_fn=fn)
    row.pymare, row.sm = pm, sm
    rows.append(row)
    label = "(a) the same plus `to_dict()` (JSON-ready report)"
    rows.append(Row("whole_gen_dict", label, k, engine_dict, engine_fn=fn_dict))
    fit = report["blocks"]["fit"]
    agreement.append(
        (
            "(a) GEN: pooled estimate, engine vs PyMARE REML",
            reldiff(np.asarray(_pymare_fit(y, v).fe_params).ravel()[0], fit["beta"][0]),
        )
    )

    cols = simulate_smd(k, settings.seed)
    smd_rows = rows_of(cols)
    spec_smd = AnalysisSpec(measure="SMD", sensitivity=True, bias=True)
    _log(f"(a) whole set, SMD, k = {k}")
    fn = functools.partial(run_analysis, spec_smd, smd_rows)
    report = run_analysis(spec_smd, smd_rows).to_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        engine, pm, sm = settings.together(
            fn,
            lambda: pymare_whole(*pymare_smd(cols)),
            lambda: sm_whole(*sm_smd(cols)),
            slow=(False, True, True),
        )
    row = Row("whole_smd", "(a) whole set of analyses from raw means (SMD)", k, engine, engine_fn=fn)
    row.pymare, row.sm = pm, sm
    rows.append(row)
    es = report["blocks"]["effect_sizes"]
    agreement.append(
        ("(a) SMD: Hedges' g, engine vs statsmodels `effectsize_smd`", reldiff(sm_smd(cols)[0], es["yi"]))
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        agreement.append(
            ("(a) SMD: Hedges' g, engine vs PyMARE `compute_measure`", reldiff(pymare_smd(cols)[0], es["yi"]))
        )

    if settings.k_whole_large is not None:
        k = settings.k_whole_large
        y, v = simulate_gen(k, settings.seed)
        large_rows = rows_of({"yi": y, "vi": v})
        _log(f"(a) whole set, GEN, k = {k} (engine only)")
        fn = functools.partial(run_analysis, spec_gen, large_rows)
        label = "(a) whole set of analyses, yi/vi given (GEN)"
        rows.append(Row("whole_gen", label, k, settings.timed(fn, slow=True), engine_fn=fn))

    # (b) one REML fit
    for k in settings.k_reml:
        y, v = simulate_gen(k, settings.seed)
        _log(f"(b) REML fit, k = {k}")
        fn = functools.partial(rma, y, v, method="REML")
        engine, pm, sm = settings.together(
            fn, functools.partial(_pymare_fit, y, v), functools.partial(_sm_fit, y, v)
        )
        row = Row("reml", "(b) one REML fit", k, engine, engine_fn=fn)
        row.pymare, row.sm, row.sm_label = pm, sm, "iterated PM"
        rows.append(row)
        agreement.append(
            (
                f"(b) REML tau², engine vs PyMARE, k = {k:,}",
                reldiff(_pymare_tau2(_pymare_fit(y, v)), rma(y, v, method="REML").tau2),
            )
        )
        agreement.append(
            (
                f'(b) PM tau², engine `method="PM"` vs statsmodels iterated, k = {k:,}',
                reldiff(_sm_fit(y, v).tau2, rma(y, v, method="PM").tau2),
            )
        )

    # (c) one DL fit
    k = settings.k_large
    y, v = simulate_gen(k, settings.seed)
    _log(f"(c) DL fit, k = {k}")
    fn = functools.partial(rma, y, v, method="DL")
    dl_tau2 = rma(y, v, method="DL").tau2
    engine, pm, sm = settings.together(
        fn, lambda: _pymare_fit(y, v, method="DL"), lambda: _sm_fit(y, v, method_re="chi2")
    )
    row = Row("dl", "(c) one DerSimonian-Laird fit", k, engine, engine_fn=fn)
    row.pymare, row.sm = pm, sm
    rows.append(row)
    agreement.append(
        (
            f"(c) DL tau², engine vs PyMARE, k = {k:,}",
            reldiff(_pymare_tau2(_pymare_fit(y, v, method="DL")), dl_tau2),
        )
    )
    agreement.append(
        (f"(c) DL tau², engine vs statsmodels, k = {k:,}", reldiff(_sm_fit(y, v, "chi2").tau2, dl_tau2))
    )

    # (d) leave-one-out
    _log(f"(d) leave-one-out, k = {k}")

    def run_loo() -> Any:
        return leave1out(rma(y, v, method="REML"))

    fn = run_loo
    row = Row(
        "loo",
        "(d) leave-one-out (REML), incl. the full fit",
        k,
        settings.timed(fn, slow=True),
        engine_fn=fn,
    )
    full = np.arange(k)

    def pymare_one(i: int) -> Any:
        keep = full != i
        return _pymare_fit(y[keep], v[keep])

    def sm_one(i: int) -> Any:
        keep = full != i
        return _sm_fit(y[keep], v[keep])

    _log("    PyMARE loop")
    row.pymare = settings.looped(pymare_one, k)
    _log("    statsmodels loop")
    row.sm, row.sm_label = settings.looped(sm_one, k), "iterated PM"
    rows.append(row)
    loo = run_loo()
    probe = np.linspace(0, k - 1, 5).round().astype(int)
    pymare_loo = [pymare_one(i) for i in probe]
    agreement.append(
        (
            f"(d) leave-one-out tau² ({probe.size} omitted studies), engine vs PyMARE, k = {k:,}",
            reldiff([_pymare_tau2(res) for res in pymare_loo], loo.tau2[probe]),
        )
    )
    agreement.append(
        (
            f"(d) leave-one-out estimate ({probe.size} omitted studies), engine vs PyMARE, k = {k:,}",
            reldiff([np.asarray(res.fe_params).ravel()[0] for res in pymare_loo], loo.estimate[probe]),
        )
    )
    # the batched leave-one-out must equal separate refits; the engine's own rma() is the reference
    # that is not limited by a comparator's looser convergence
    probe = np.linspace(0, k - 1, LOO_REFIT_CHECKS).round().astype(int)
    refits = [rma(y[full != i], v[full != i], method="REML") for i in probe]
    agreement.append(
        (
            f"(d) leave-one-out tau² and estimate ({probe.size} omitted studies), engine batched vs "
            f"separate `rma()` refits, k = {k:,}",
            max(
                reldiff([f.tau2 for f in refits], loo.tau2[probe]),
                reldiff([f.beta[0] for f in refits], loo.estimate[probe]),
            ),
        )
    )
    return rows, agreement


# ----------------------------------------------------------------------------------------------
# the report
# ----------------------------------------------------------------------------------------------


def fmt_time(seconds: float) -> str:
    """A duration with a readable unit (µs, ms, s) and three significant digits.

    Parameters
    ----------
    seconds : float

    Returns
    -------
    str
    """
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def _ratio(other: float, engine: float) -> str:
    r = other / engine
    return f"×{r:,.0f}" if r >= 100 else f"×{r:.2g}" if r < 10 else f"×{r:.0f}"


def _cell(t: Timing | None, engine: Timing, label: str = "") -> str:
    if t is None:
        return "—"
    text = fmt_time(t.median)
    if t.subset is not None:
        text += f" (extrapolated from {t.subset[0]} of {t.subset[1]:,} fits)"
    if label:
        text += f" ({label})"
    return f"{text} {_ratio(t.median, engine.median)}"


def results_table(rows: Sequence[Row]) -> list[str]:
    """The markdown table of medians and ratios (comparator time / engine time).

    Parameters
    ----------
    rows : sequence of Row

    Returns
    -------
    list of str
        Markdown lines; the metafor column shows published timings, not measured ones.
    """
    head = [
        "Task",
        "k",
        "Engine",
        "Goal",
        "PyMARE",
        "statsmodels",
        f"metafor {METAFOR_VERSION} (measured elsewhere, not in this run)",
    ]
    out = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---", "--:", "--:", "---", "--:", "--:", "--:"]) + "|",
    ]
    for r in rows:
        goal = "" if r.goal is None else f"< {fmt_time(r.goal)} {'met' if r.met else '**missed**'}"
        published = METAFOR_PUBLISHED.get((r.task, r.k))
        if published is None:
            meta = "—"
        elif published[1] is None:
            meta = published[0]
        else:
            meta = f"{published[0]} {_ratio(published[1], r.engine.median)}"
        cells = [
            r.label,
            f"{r.k:,}",
            fmt_time(r.engine.median),
            goal,
            _cell(r.pymare, r.engine, r.pymare_label),
            _cell(r.sm, r.engine, r.sm_label),
            meta,
        ]
        out.append("| " + " | ".join(cells) + " |")
    return out


def details_table(rows: Sequence[Row]) -> list[str]:
    """Repeats and interquartile ranges behind every median.

    Parameters
    ----------
    rows : sequence of Row

    Returns
    -------
    list of str
        Markdown lines.
    """
    out = ["| Task | k | Tool | median | quartiles | timed calls |", "|---|--:|---|--:|--:|--:|"]
    for r in rows:
        for tool, t in (("engine", r.engine), ("PyMARE", r.pymare), ("statsmodels", r.sm)):
            if t is None:
                continue
            calls = (
                f"{t.repeats} single fits (of {t.subset[1]:,}), median × k" if t.subset else str(t.repeats)
            )
            out.append(
                f"| {r.label} | {r.k:,} | {tool} | {fmt_time(t.median)} | "
                f"{fmt_time(t.q1)} – {fmt_time(t.q3)} | {calls} |"
            )
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def machine() -> dict[str, str]:
    """CPU model, cores, Python and library versions.

    Returns
    -------
    dict of str to str
    """
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "CPU": cpu,
        "cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "numpy": np.__version__,
        "scipy": _version("scipy"),
        "PyMARE": _version("PyMARE"),
        "statsmodels": _version("statsmodels"),
        "engine": f"{ENGINE_VERSION} ({_engine_revision()})",
    }


def _engine_revision() -> str:
    """The git commit the engine was run from, flagged when workers/metaanalysis has local changes."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]
    try:
        head = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(  # noqa: S603 - fixed git arguments, no shell
            [*git, "status", "--porcelain", "--", "workers/metaanalysis"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "commit unknown"
    return f"commit {head}" + (" with uncommitted changes in workers/metaanalysis" if dirty else "")


def profile(fn: Callable[[], Any], seconds: float = 2.0, top: int = 15) -> str:
    """cProfile of repeated calls of ``fn``: the top functions by cumulative and by own time.

    Parameters
    ----------
    fn : callable
        The task.
    seconds : float
        How long to keep calling it.
    top : int
        Functions listed per ordering.

    Returns
    -------
    str
    """
    prof = cProfile.Profile()
    start = time.perf_counter()
    calls = 0
    prof.enable()
    while calls == 0 or time.perf_counter() - start < seconds:
        fn()
        calls += 1
    prof.disable()
    parts = []
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(top)
        text = buf.getvalue()
        body = text[text.find("ncalls") :] if "ncalls" in text else text
        parts.append(f"sorted by {key} time:\n{body.rstrip()}")
    return f"{calls} calls profiled\n\n" + "\n\n".join(parts)


def notes(settings: Settings) -> str:
    """The section saying what each tool did (and how loops were extrapolated).

    Parameters
    ----------
    settings : Settings

    Returns
    -------
    str
        Markdown.
    """
    return f"""\
## What each tool did

All tools get the same arrays (or, for the engine, the same rows); data preparation is not
timed. Times are medians of repeated calls after a warm-up (details below); a ratio is the
comparator's time divided by the engine's (above 1: the engine is faster).

- **Engine** (`workers.metaanalysis`): (a) `run_analysis(AnalysisSpec(measure=..., sensitivity=True,
  bias=True), rows)` — effect sizes, REML fit with Q/I²/H², prediction interval, Q-profile CIs of
  tau²/tau/I²/H², Egger's regression test, rank correlation test, fail-safe N, trim-and-fill,
  funnel data, leave-one-out, cumulative and influence diagnostics; the second row adds the
  conversion of the report to JSON-ready data that the platform stores. (b), (c) `rma(yi, vi,
  method=...)`: the full metafor `rma()` result (coefficients, z test, CI, tau² and its SE, I², H²,
  QE). (d) `leave1out(rma(yi, vi))`, the time of the full fit included.
- **PyMARE {_version("PyMARE")}**: a model is `pymare.Dataset(y, v)` +
  `VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald").fit_dataset()`
  (or `DerSimonianLaird` for (c)) + `summary().get_fe_stats()` (estimate, SE, z, p, CI) +
  `get_heterogeneity_stats()` (Q, I², H). (a) = one model + `get_re_stats()` (Q-profile CI of
  tau²) + k leave-one-out models + k − 1 cumulative models (2..k studies) + one REML
  meta-regression on the standard errors (the model behind Egger's test); for SMD, plus
  `pymare.effectsize.compute_measure("SMD", ...)`. PyMARE offers no prediction interval, rank
  test, fail-safe N, trim-and-fill or influence diagnostics, so those are not in its time.
  (d) = a loop of k models, one per omitted study.
- **statsmodels {_version("statsmodels")}**: a model is `statsmodels.stats.meta_analysis.combine_effects(y, v,
  method_re=...)` + `conf_int()`; it computes the equal- and random-effects estimates, Q, I² and
  tau². statsmodels has **no REML**: (b), (d) and (a) use its closest estimator, the iterated
  Paule-Mandel (`method_re="iterated"`), labelled "iterated PM"; (c) uses `method_re="chi2"`
  (DerSimonian-Laird). (a) = one model + k leave-one-out models + k − 1 cumulative models; for
  SMD, plus `effectsize_smd(...)`. It has no Q-profile CI, bias tests, trim-and-fill or influence
  diagnostics. (d) = a loop of k models.
- **metafor {METAFOR_VERSION}**: R is not part of this run. The column repeats timings measured
  elsewhere (another machine, R's own overheads), published with the engine's requirements;
  ratios against them are indicative only.
- Tasks (a)-(c): after a warm-up of every tool, the timed calls of the tools run interleaved in
  rounds. Task (d): the engine, then each comparator loop.
- A comparator loop that three probe fits predict to take longer than {settings.loop_limit:g} s is
  timed on a subset of evenly spaced omitted studies (about {settings.subset_budget:g} s of fits) and
  extrapolated linearly: k × the median time of one fit (marked "extrapolated" in the table).
"""


def _load(values: Sequence[float]) -> str:
    return " / ".join(f"{x:.2f}" for x in values) if values else "unknown"


def render(
    rows: Sequence[Row],
    agreement: Sequence[tuple[str, float]],
    settings: Settings,
    profiles: Sequence[tuple[str, str]],
    elapsed: float,
) -> str:
    """The markdown report (bench/RESULTS.md).

    Parameters
    ----------
    rows : sequence of Row
        Timed tasks.
    agreement : sequence of (str, float)
        Maximum relative differences between the tools' estimates.
    settings : Settings
        The run's sizes and limits.
    profiles : sequence of (str, str)
        Title and cProfile text for every missed goal.
    elapsed : float
        Duration of the run in seconds.

    Returns
    -------
    str
    """
    info = machine()
    today = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# Engine benchmark",
        "",
        f"Generated by `python -m bench.engine_bench` on {today} in {elapsed:.0f} s"
        + (" (**--quick smoke run: sizes reduced, not for publication**)" if settings.quick else "")
        + ".",
        "",
        "Machine: " + "; ".join(f"{key} {value}" for key, value in info.items()) + ".",
        "",
        f"Load average (1, 5, 15 min) at the start {_load(settings.load_start)}, at the end "
        f"{_load(os.getloadavg())}: other processes share the machine, which raises absolute times; "
        "the tools' calls are interleaved (tasks a-c) so that ratios are affected less.",
        "",
        f"Data: seed {settings.seed}; yi ~ N({MU}, {TAU2} + vi), vi ~ U{VI_RANGE}; SMD from simulated "
        f"two-group means, SDs and sizes (10–119 per group) with true effects N({MU}, {TAU2}).",
        "",
        "## Results",
        "",
        *results_table(rows),
        "",
        "## Agreement (same estimates, so the timings compare like with like)",
        "",
        "| Quantity | max relative difference |",
        "|---|--:|",
        *[f"| {name} | {value:.1e} |" for name, value in agreement],
        "",
        "The engine iterates to metafor's tight convergence (1e-13); PyMARE stops its REML search at a",
        "relative bracket width of 1e-6 and statsmodels its Paule-Mandel iteration at an absolute",
        "tolerance of 1e-5 (their defaults), so differences up to about that size are expected. For",
        "Hedges' g the engine uses metafor's exact small-sample correction (gamma functions), PyMARE and",
        "statsmodels the approximation 1 - 3/(4m - 1), hence the difference of order 1e-5.",
        "",
        notes(settings),
        "## Medians, quartiles and repeats",
        "",
        *details_table(rows),
        "",
    ]
    if profiles:
        lines += ["## Profiles of missed goals", ""]
        for title, text in profiles:
            lines += [f"### {title}", "", "```", text, "```", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and write the markdown report.

    Parameters
    ----------
    argv : list of str, optional
        ``--out PATH`` (default: print to standard output), ``--seed N``, ``--budget S`` (seconds
        of timed calls per cell), ``--quick`` (small sizes, for a smoke test), ``--no-profile``.

    Returns
    -------
    int
        0, also when a goal is missed (the report says so).
    """
    parser = argparse.ArgumentParser(prog="python -m bench.engine_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the markdown report here")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--budget", type=float, default=None, help="seconds of timed calls per cell")
    parser.add_argument("--quick", action="store_true", help="small sizes and budgets (smoke test)")
    parser.add_argument("--no-profile", dest="profile", action="store_false")
    args = parser.parse_args(argv)
    settings = quick_settings(args.seed) if args.quick else Settings(seed=args.seed)
    if args.budget is not None:
        settings.budget = args.budget
    t0 = time.perf_counter()
    rows, agreement = run(settings)
    profiles = []
    if args.profile:
        for r in rows:
            if r.met is False and r.engine_fn is not None:
                _log(f"profiling {r.task}")
                profiles.append(
                    (
                        f"{r.label}, k = {r.k:,}: {fmt_time(r.engine.median)} "
                        f"(goal < {fmt_time(r.goal or 0)})",
                        profile(r.engine_fn),
                    )
                )
    text = render(rows, agreement, settings, profiles, time.perf_counter() - t0)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text, encoding="utf-8")
        _log(f"wrote {args.out}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
