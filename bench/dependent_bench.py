"""Benchmark of dependent-effects models: the engine beside R's metafor + clubSandwich, one run.

Task: a three-level REML fit (``rma.mv(yi, vi, random = ~ 1 | study/es_id)``) followed by CR2
cluster-robust tests with Satterthwaite degrees of freedom (``robust(fit, cluster = study,
clubSandwich = TRUE)``), on simulated data with k estimates in k/5 studies (1 to 9 estimates a
study), at k = 1,000 and k = 10,000.

Timings per tool:

- the fit and the robust tests alone, inside a running process (the engine: median of repeated
  calls after a warm-up; R: ``system.time()`` of one call, as one R call takes seconds);
- the whole process of a script: start the interpreter, load the libraries, read the CSV, fit,
  test, print (wall time of the subprocess);
- the command line as a user runs it, at k = 1,021: ``metaengine data.csv --measure GEN
  --dependence multilevel --no-sensitivity --no-bias --format json`` (CSV in, the three-level
  REML fit with CR2 tests and the rest of the model's report, JSON out) beside ``Rscript`` reading
  the same CSV, fitting the same model and calling clubSandwich's ``coef_test()`` and
  ``conf_int()`` with CR2. The engine's first run is its cold start (a fresh interpreter, as every
  run is; the first of the benchmark's runs) and is reported apart from the median of the next
  runs; the floor is ``python -c "import numpy"`` as a whole process.

R runs with a time limit (``--r-limit``, default 15 minutes); a run that exceeds it is reported as
"more than" the limit. The run also checks that both tools estimate the same thing (relative
difference of the pooled estimate, sigma² and the CR2 standard error and df).

Usage: ``python -m bench.dependent_bench --out bench/DEPENDENT.md`` (``make bench-dependent``);
``--sizes 1000`` limits the script rows to k = 1,000, ``--no-scripts`` runs the command-line rows only.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.harness import fmt_time, load_average, log, time_call, time_process
from workers.metaanalysis.multilevel.fit import rma_mv
from workers.metaanalysis.multilevel.robust import robust

SEED = 20_261_128
#: (k, studies) of the in-process and script rows.
SIZES = ((1_000, 200), (10_000, 2_000))
#: (k, studies) of the command-line row.
CLI_SIZE = (1_021, 204)
#: Whole-process runs of the command line and of the floor after the cold start (median reported).
CLI_RUNS = 7
CLI_GOAL = 100.0

ENGINE_SCRIPT = textwrap.dedent(
    """
    import csv, json, sys, time
    import numpy as np
    from workers.metaanalysis.multilevel.fit import rma_mv
    from workers.metaanalysis.multilevel.robust import robust
    with open(sys.argv[1], newline="") as fh:
        rows = list(csv.DictReader(fh))
    yi = np.array([float(r["yi"]) for r in rows])
    vi = np.array([float(r["vi"]) for r in rows])
    fit = rma_mv(yi, vi, [r["study"] for r in rows], [r["es_id"] for r in rows], method="REML")
    cr2 = robust(fit, "CR2")
    print(json.dumps({"beta": float(fit.beta[0]), "sigma2": fit.sigma2.tolist(),
                      "se_cr2": float(cr2.se[0]), "df_cr2": float(cr2.dfs[0])}))
    """
)

R_SCRIPT = textwrap.dedent(
    """
    suppressPackageStartupMessages({library(metafor); library(clubSandwich)})
    args <- commandArgs(trailingOnly = TRUE)
    dat <- read.csv(args[1])
    elapsed <- system.time({
      fit <- rma.mv(yi, vi, random = ~ 1 | study/es_id, data = dat, method = "REML")
      cr2 <- robust(fit, cluster = dat$study, clubSandwich = TRUE)
    })[["elapsed"]]
    cat(sprintf('{"beta": %.17g, "sigma2": [%.17g, %.17g], "se_cr2": %.17g, "df_cr2": %.17g, "elapsed": %.6f}\\n',
        fit$b[1], fit$sigma2[1], fit$sigma2[2], cr2$se[1], cr2$ddf[1], elapsed))
    """
)

#: What a user of R runs for the command-line row: the model, then clubSandwich's CR2 tests.
R_USER_SCRIPT = textwrap.dedent(
    """
    suppressPackageStartupMessages({library(metafor); library(clubSandwich)})
    args <- commandArgs(trailingOnly = TRUE)
    dat <- read.csv(args[1])
    fit <- rma.mv(yi, vi, random = ~ 1 | study/es_id, data = dat, method = "REML")
    tests <- coef_test(fit, vcov = "CR2", cluster = dat$study)
    ci <- conf_int(fit, vcov = "CR2", cluster = dat$study)
    cat(sprintf('{"beta": %.17g, "sigma2": [%.17g, %.17g], "se_cr2": %.17g, "df_cr2": %.17g}\\n',
        fit$b[1], fit$sigma2[1], fit$sigma2[2], tests$SE[1], tests$df_Satt[1]))
    """
)


#: What R computes for the report metaengine prints: the model and its CR2 tests as above, then CR1
#: tests, the prediction and the profile-likelihood intervals of both σ² (``confint``).
R_SAME_REPORT_SCRIPT = R_USER_SCRIPT.replace(
    "\ncat(",
    "\ncr1 <- coef_test(fit, vcov = 'CR1', cluster = dat$study)\npred <- predict(fit)\n"
    "profile <- confint(fit)\ncat(",
    1,
)


def simulate(k: int, n_studies: int, seed: int = SEED) -> dict[str, np.ndarray]:
    """k estimates in ``n_studies`` studies: y = 0.3 + u_study + u_estimate + e, e ~ N(0, vi)."""
    rng = np.random.default_rng([seed, k])
    sizes = np.full(n_studies, k // n_studies)
    sizes[: k % n_studies] += 1
    # uneven studies (1 to 9 estimates) with the same total
    for _ in range(n_studies):
        a, b = rng.integers(0, n_studies, size=2)
        if sizes[a] > 1 and sizes[b] < 9:
            sizes[a] -= 1
            sizes[b] += 1
    study = np.repeat(np.arange(1, n_studies + 1), sizes)
    es_id = np.concatenate([np.arange(1, s + 1) for s in sizes])
    vi = rng.uniform(0.01, 0.2, size=k)
    yi = (
        0.3
        + np.repeat(rng.normal(0, 0.25, n_studies), sizes)
        + rng.normal(0, 0.15, k)
        + rng.normal(0, np.sqrt(vi))
    )
    return {"study": study, "es_id": es_id, "yi": yi, "vi": vi}


def write_csv(data: dict[str, np.ndarray], path: Path) -> None:
    with path.open("w") as fh:
        fh.write("study,es_id,yi,vi\n")
        for s, e, y, v in zip(data["study"], data["es_id"], data["yi"], data["vi"], strict=True):
            fh.write(f"S{s},{e},{float(y)!r},{float(v)!r}\n")


def time_engine(data: dict[str, np.ndarray], budget: float = 10.0) -> tuple[Any, dict[str, Any]]:
    """Fit + CR2 inside this process (:func:`bench.harness.time_call`) and the estimates."""
    study = [f"S{s}" for s in data["study"]]

    def call() -> Any:
        fit = rma_mv(data["yi"], data["vi"], study, list(data["es_id"]), method="REML")
        return fit, robust(fit, "CR2")

    timing = time_call(call, budget=budget, min_repeats=5, max_repeats=200, warmup_s=0.0)
    fit, cr2 = call()
    est = {
        "beta": float(fit.beta[0]),
        "sigma2": fit.sigma2.tolist(),
        "se_cr2": float(cr2.se[0]),
        "df_cr2": float(cr2.dfs[0]),
    }
    return timing, est


def rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-300)


def agreement_row(k: int, est: dict[str, Any], r_est: dict[str, Any]) -> str:
    return (
        f"| {k:,} | {rel(est['beta'], r_est['beta']):.1e} | "
        f"{max(rel(a, b) for a, b in zip(est['sigma2'], r_est['sigma2'], strict=True)):.1e} | "
        f"{rel(est['se_cr2'], r_est['se_cr2']):.1e} | {rel(est['df_cr2'], r_est['df_cr2']):.1e} |"
    )


def metaengine_command(csv_path: Path) -> list[str]:
    """``metaengine`` as installed beside this interpreter (``python -m`` of its module otherwise)."""
    script = Path(sys.executable).with_name("metaengine")
    program = [str(script)] if script.exists() else [sys.executable, "-m", "workers.metaanalysis.cli"]
    options = ["--measure", "GEN", "--dependence", "multilevel", "--no-sensitivity", "--no-bias"]
    return [*program, str(csv_path), *options, "--format", "json"]


def estimates_of_report(report: dict[str, Any]) -> dict[str, Any]:
    fit, cr2 = report["blocks"]["multilevel_fit"], report["blocks"]["robust_cr2"]
    return {"beta": fit["beta"][0], "sigma2": fit["sigma2"], "se_cr2": cr2["se"][0], "df_cr2": cr2["dfs"][0]}


def command_line_rows(
    tmp: Path, rscript: str | None, r_limit: float, env: dict[str, str]
) -> tuple[list[str], list[str]]:
    """The command-line row at :data:`CLI_SIZE`: metaengine's cold start and median, the numpy floor
    and Rscript in the same run; the table lines and the agreement line."""
    k, n = CLI_SIZE
    csv_path = tmp / f"cli_k{k}.csv"
    write_csv(simulate(k, n), csv_path)
    command = metaengine_command(csv_path)
    log(f"k = {k}: metaengine whole process ({CLI_RUNS + 1} runs, the first is the cold start)")
    cold, report = time_process(command, 600, env)
    runs = [time_process(command, 600, env)[0] for _ in range(CLI_RUNS)]
    floor = [time_process([sys.executable, "-c", "import numpy"], 60, env)[0] for _ in range(CLI_RUNS)]
    engine = statistics.median(runs)
    lines = [
        f"| `metaengine` (CSV in, three-level REML + CR2, JSON out), whole process: median of {CLI_RUNS} "
        f"| {k:,} | {n:,} | {fmt_time(engine)} ({fmt_time(min(runs))}–{fmt_time(max(runs))}) | ",
        f"| `metaengine`, cold start (the first run) | {k:,} | {n:,} | {fmt_time(cold)} | ",
        f'| floor: `python -c "import numpy"`, whole process: median of {CLI_RUNS} | | | '
        f"{fmt_time(statistics.median(floor))} | ",
    ]
    if rscript is None:
        return [line + "R not installed | — |" for line in lines], []
    log(f"k = {k}: Rscript with metafor + clubSandwich (coef_test, conf_int), limit {r_limit:.0f} s")
    r_file = tmp / "metafor_user.R"
    r_file.write_text(R_USER_SCRIPT)
    r_wall, r_est = time_process([rscript, str(r_file), str(csv_path)], r_limit)
    if r_est is None:
        cell = f"> {r_limit:.0f} s (stopped)"
        return [line + f"{cell} | — |" for line in lines], []

    goal = "meets" if r_wall / engine >= CLI_GOAL else "below"
    lines[0] += f"{fmt_time(r_wall)} | ×{r_wall / engine:,.0f} ({goal} the goal of ×{CLI_GOAL:.0f}) |"
    lines[1] += f"{fmt_time(r_wall)} | ×{r_wall / cold:,.0f} |"
    lines[2] += "| |"
    agreement = [agreement_row(k, estimates_of_report(report), r_est)] if report else []
    log(f"k = {k}: Rscript computing the same report (+ CR1, predict, confint), limit {r_limit:.0f} s")
    same_file = tmp / "metafor_same_report.R"
    same_file.write_text(R_SAME_REPORT_SCRIPT)
    same_wall, same_est = time_process([rscript, str(same_file), str(csv_path)], r_limit)
    same = (
        f"{fmt_time(same_wall)} | ×{same_wall / engine:,.0f} |"
        if same_est is not None
        else f"> {r_limit:.0f} s (stopped) | > ×{r_limit / engine:,.0f} |"
    )
    lines.insert(
        1,
        "| `metaengine` as above, beside R computing the same report (+ CR1 tests, `predict()`, "
        f"profile-likelihood intervals of both σ² with `confint()`) | {k:,} | {n:,} | {fmt_time(engine)} | {same}",
    )
    return lines, agreement


def script_rows(
    tmp: Path, sizes: tuple[tuple[int, int], ...], rscript: str | None, r_limit: float, env: dict[str, str]
) -> tuple[list[str], list[str]]:
    """Fit + CR2 in process and as a whole script, engine beside R, at each size."""
    engine_py = tmp / "engine_fit.py"
    engine_py.write_text(ENGINE_SCRIPT)
    r_file = tmp / "metafor_fit.R"
    r_file.write_text(R_SCRIPT)
    lines: list[str] = []
    agreement: list[str] = []
    for k, n in sizes:
        data = simulate(k, n)
        csv_path = tmp / f"k{k}.csv"
        write_csv(data, csv_path)
        log(f"k = {k}: engine in process")
        timing, est = time_engine(data)
        log(f"k = {k}: engine whole process")
        engine_proc = statistics.median(
            time_process([sys.executable, str(engine_py), str(csv_path)], 600, env)[0] for _ in range(3)
        )
        r_fit = r_proc = float("inf")
        r_est = None
        if rscript:
            log(f"k = {k}: metafor + clubSandwich (limit {r_limit:.0f} s)")
            r_proc, r_est = time_process([rscript, str(r_file), str(csv_path)], r_limit)
            if r_est is not None:
                r_fit = r_est["elapsed"]
        r_cell = (
            fmt_time(r_fit) if r_est else (f"> {r_limit:.0f} s (stopped)" if rscript else "R not installed")
        )
        r_proc_cell = fmt_time(r_proc) if r_est else r_cell
        ratio_fit = f"×{r_fit / timing.median:,.0f}" if r_est else "—"
        ratio_proc = f"×{r_proc / engine_proc:,.0f}" if r_est else "—"
        in_process = f"{fmt_time(timing.median)} ({fmt_time(timing.q1)}–{fmt_time(timing.q3)})"
        lines.append(f"| fit + CR2, in process | {k:,} | {n:,} | {in_process} | {r_cell} | {ratio_fit} |")
        lines.append(
            f"| script: whole process (start, load, read CSV, fit, CR2, print) | {k:,} | {n:,} | "
            f"{fmt_time(engine_proc)} | {r_proc_cell} | {ratio_proc} |"
        )
        if r_est:
            agreement.append(agreement_row(k, est, r_est))
    return lines, agreement


def r_version(rscript: str | None) -> str:
    if not rscript:
        return "R not installed"
    return subprocess.run(  # noqa: S603 - Rscript with a fixed expression
        [
            rscript,
            "-e",
            'cat(paste(R.version.string, "metafor", packageVersion("metafor"), "clubSandwich", packageVersion("clubSandwich")))',
        ],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="bench/DEPENDENT.md")
    parser.add_argument("--r-limit", type=float, default=900.0, help="seconds before an R run is stopped")
    parser.add_argument("--sizes", type=int, nargs="*", help="k of the script rows (of 1000, 10000)")
    parser.add_argument("--no-scripts", dest="scripts", action="store_false", help="command-line rows only")
    args = parser.parse_args(argv)
    sizes = tuple(s for s in SIZES if args.sizes is None or s[0] in args.sizes) if args.scripts else ()
    rscript = shutil.which("Rscript")
    started = time.time()
    load_start = os.getloadavg()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with tempfile.TemporaryDirectory() as tmp:
        cli_lines, cli_agreement = command_line_rows(Path(tmp), rscript, args.r_limit, env)
        lines, agreement = script_rows(Path(tmp), sizes, rscript, args.r_limit, env)
    text = [
        "# Dependent-effects benchmark",
        "",
        f"Generated by `python -m bench.dependent_bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC in "
        f"{time.time() - started:.0f} s.",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"numpy {np.__version__}; {r_version(rscript)}. Load average at the start {load_average(load_start)}, "
        f"at the end {load_average()} (other processes share the machine; both tools run in the same run).",
        "",
        "## The command line as a user runs it",
        "",
        "`metaengine data.csv --measure GEN --dependence multilevel --no-sensitivity --no-bias --format json`:",
        "read the CSV, fit the three-level model by REML, and print the model's JSON report (the fit, the",
        "prediction, profile-likelihood intervals of both σ², CR1 and CR2 cluster-robust tests, the study-level",
        "aggregates). Beside it, `Rscript` reads the same CSV, fits `rma.mv(yi, vi, random = ~ 1 | study/es_id,",
        'method = "REML")` and calls clubSandwich\'s `coef_test()` and `conf_int()` with `vcov = "CR2"` (R',
        "computes no profile-likelihood intervals here); in the second row R computes the same report as the",
        "engine (adding CR1 tests, the prediction and `confint()`'s profile-likelihood intervals of both σ²),",
        "stopped at the R time limit. Wall time of each whole process. The cold start is",
        "metaengine's first run of the benchmark; the floor is the interpreter starting and importing numpy.",
        "",
        "| Task | k | studies | Engine | metafor 3.8 + clubSandwich (this machine, this run) | metafor / engine |",
        "|---|--:|--:|--:|--:|--:|",
        *cli_lines,
        "",
        "## The model alone",
        "",
        "Task: three-level REML fit (`rma.mv(yi, vi, random = ~ 1 | study/es_id)`) and CR2 cluster-robust",
        "tests with Satterthwaite df (`robust(fit, cluster = study, clubSandwich = TRUE)`), on simulated data",
        "(1 to 9 estimates a study). Engine in process: median (quartiles) of repeated calls after a warm-up;",
        "metafor in process: `system.time()` of one call. Script: wall time of a script that imports the",
        "engine's model functions only (the engine's the median of 3).",
        "",
        "| Task | k | studies | Engine | metafor 3.8 + clubSandwich (this machine, this run) | metafor / engine |",
        "|---|--:|--:|--:|--:|--:|",
        *(lines or ["| (not run: `--no-scripts` or `--sizes`) | | | | | |"]),
        "",
        "## Agreement (relative difference, engine vs metafor)",
        "",
        "| k | pooled estimate | σ² | CR2 SE | CR2 df |",
        "|--:|--:|--:|--:|--:|",
        *(cli_agreement + agreement or ["| — | R did not finish | | | |"]),
        "",
        "metafor's default optimiser stops up to about 1e-6 (relative) short of the exact optimum in σ²; the",
        "engine iterates to it, so differences of that order are expected (see shared/reference/README.md).",
        "",
    ]
    Path(args.out).write_text("\n".join(text))
    print("\n".join(text))
    return 0


if __name__ == "__main__":
    sys.exit(main())
