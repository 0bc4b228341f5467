"""The engine benchmark's report (bench/RESULTS.md): the results table with goals and ratios, what
each tool did, the medians' details and the profiles of missed goals."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from bench import harness
from bench.engine_data import MU, TAU2, VI_RANGE
from bench.harness import Timing, fmt_time, version
from workers.metaanalysis import ENGINE_VERSION

if TYPE_CHECKING:
    from bench.engine_bench import Row, Settings

#: metafor 3.8-1 timings published with the engine's requirements, by task and k; NOT measured in
#: this run. The number is None where only a bound for another k is known.
METAFOR_VERSION = "3.8-1"
METAFOR_PUBLISHED: dict[tuple[str, int], tuple[str, float | None]] = {
    ("whole_gen", 77): ("1.1 s", 1.1),
    ("reml", 77): ("3.6 ms", 3.6e-3),
    ("reml", 1_000): ("1.5 s", 1.5),
    ("reml", 10_000): ("> 200 s already at k = 5,000", None),
}


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
    """Repeats and interquartile ranges behind every median, as markdown lines."""
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


def machine() -> dict[str, str]:
    """The machine (:func:`bench.harness.machine`) with the comparators' and the engine's versions.

    Returns
    -------
    dict of str to str
    """
    return {
        **harness.machine(),
        "PyMARE": version("PyMARE"),
        "statsmodels": version("statsmodels"),
        "engine": f"{ENGINE_VERSION} ({harness.engine_revision()})",
    }


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
- **PyMARE {version("PyMARE")}**: a model is `pymare.Dataset(y, v)` +
  `VarianceBasedLikelihoodEstimator(method="REML", small_sample_correction="wald").fit_dataset()`
  (or `DerSimonianLaird` for (c)) + `summary().get_fe_stats()` (estimate, SE, z, p, CI) +
  `get_heterogeneity_stats()` (Q, I², H). (a) = one model + `get_re_stats()` (Q-profile CI of
  tau²) + k leave-one-out models + k − 1 cumulative models (2..k studies) + one REML
  meta-regression on the standard errors (the model behind Egger's test); for SMD, plus
  `pymare.effectsize.compute_measure("SMD", ...)`. PyMARE offers no prediction interval, rank
  test, fail-safe N, trim-and-fill or influence diagnostics, so those are not in its time.
  (d) = a loop of k models, one per omitted study.
- **statsmodels {version("statsmodels")}**: a model is `statsmodels.stats.meta_analysis.combine_effects(y, v,
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
        f"Load average (1, 5, 15 min) at the start {harness.load_average(settings.load_start)}, at the end "
        f"{harness.load_average()}: other processes share the machine, which raises absolute times; "
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
