"""Benchmark of the meta-analysis engine against PyMARE and statsmodels, in one run.

Run with ``python -m bench.engine_bench --out bench/RESULTS.md`` (``make bench-engine``). Every task is
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

metafor's timings are not measured here (bench.dependent_bench runs R); its published numbers are
shown in a separate, clearly labelled column. The run also checks that the engine and the
comparators estimate the same tau² (so that the timings compare like with like) and, if the engine
misses a goal, profiles it with :mod:`cProfile`.

This module holds the run (its sizes, goals and tasks); the data are simulated in
:mod:`bench.engine_data`, the comparators' calls are in :mod:`bench.engine_comparators`, the report
is written by :mod:`bench.engine_report`, and the timing is :mod:`bench.harness`'s.
``--quick`` runs every task at small sizes (a smoke test:
``make bench-engine BENCH_ARGS="--quick --out /tmp/RESULTS.md"``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import os
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from bench.engine_comparators import (
    pymare_fit,
    pymare_smd,
    pymare_tau2,
    pymare_whole,
    sm_fit,
    sm_smd,
    sm_whole,
)
from bench.engine_data import DEFAULT_SEED, rows_of, simulate_gen, simulate_smd
from bench.engine_report import render
from bench.harness import Timing, fmt_time, log, profile, time_call, time_loop, time_together
from workers.metaanalysis.analysis import AnalysisSpec, run_analysis
from workers.metaanalysis.rma import rma
from workers.metaanalysis.sensitivity import leave1out

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
    log(f"(a) whole set, GEN, k = {k}")
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
            reldiff(np.asarray(pymare_fit(y, v).fe_params).ravel()[0], fit["beta"][0]),
        )
    )

    cols = simulate_smd(k, settings.seed)
    smd_rows = rows_of(cols)
    spec_smd = AnalysisSpec(measure="SMD", sensitivity=True, bias=True)
    log(f"(a) whole set, SMD, k = {k}")
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
        log(f"(a) whole set, GEN, k = {k} (engine only)")
        fn = functools.partial(run_analysis, spec_gen, large_rows)
        label = "(a) whole set of analyses, yi/vi given (GEN)"
        rows.append(Row("whole_gen", label, k, settings.timed(fn, slow=True), engine_fn=fn))

    # (b) one REML fit
    for k in settings.k_reml:
        y, v = simulate_gen(k, settings.seed)
        log(f"(b) REML fit, k = {k}")
        fn = functools.partial(rma, y, v, method="REML")
        engine, pm, sm = settings.together(
            fn, functools.partial(pymare_fit, y, v), functools.partial(sm_fit, y, v)
        )
        row = Row("reml", "(b) one REML fit", k, engine, engine_fn=fn)
        row.pymare, row.sm, row.sm_label = pm, sm, "iterated PM"
        rows.append(row)
        agreement.append(
            (
                f"(b) REML tau², engine vs PyMARE, k = {k:,}",
                reldiff(pymare_tau2(pymare_fit(y, v)), rma(y, v, method="REML").tau2),
            )
        )
        agreement.append(
            (
                f'(b) PM tau², engine `method="PM"` vs statsmodels iterated, k = {k:,}',
                reldiff(sm_fit(y, v).tau2, rma(y, v, method="PM").tau2),
            )
        )

    # (c) one DL fit
    k = settings.k_large
    y, v = simulate_gen(k, settings.seed)
    log(f"(c) DL fit, k = {k}")
    fn = functools.partial(rma, y, v, method="DL")
    dl_tau2 = rma(y, v, method="DL").tau2
    engine, pm, sm = settings.together(
        fn, lambda: pymare_fit(y, v, method="DL"), lambda: sm_fit(y, v, method_re="chi2")
    )
    row = Row("dl", "(c) one DerSimonian-Laird fit", k, engine, engine_fn=fn)
    row.pymare, row.sm = pm, sm
    rows.append(row)
    agreement.append(
        (
            f"(c) DL tau², engine vs PyMARE, k = {k:,}",
            reldiff(pymare_tau2(pymare_fit(y, v, method="DL")), dl_tau2),
        )
    )
    agreement.append(
        (f"(c) DL tau², engine vs statsmodels, k = {k:,}", reldiff(sm_fit(y, v, "chi2").tau2, dl_tau2))
    )

    # (d) leave-one-out
    log(f"(d) leave-one-out, k = {k}")

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
        return pymare_fit(y[keep], v[keep])

    def sm_one(i: int) -> Any:
        keep = full != i
        return sm_fit(y[keep], v[keep])

    log("    PyMARE loop")
    row.pymare = settings.looped(pymare_one, k)
    log("    statsmodels loop")
    row.sm, row.sm_label = settings.looped(sm_one, k), "iterated PM"
    rows.append(row)
    loo = run_loo()
    probe = np.linspace(0, k - 1, 5).round().astype(int)
    pymare_loo = [pymare_one(i) for i in probe]
    agreement.append(
        (
            f"(d) leave-one-out tau² ({probe.size} omitted studies), engine vs PyMARE, k = {k:,}",
            reldiff([pymare_tau2(res) for res in pymare_loo], loo.tau2[probe]),
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
                log(f"profiling {r.task}")
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
        log(f"wrote {args.out}")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
