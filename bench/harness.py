"""The timing harness every benchmark uses: repeated calls, percentiles, whole processes, the machine.

- In-process calls: :func:`time_call` (median of repeated calls after a warm-up, the garbage
  collector paused as :mod:`timeit` does), :func:`time_together` (several tools, their calls
  interleaved so that load from other processes hits all alike), :func:`time_loop` (a loop of
  fits, extrapolated from a subset when the whole loop would take too long), :func:`time_repeated`
  (n calls, each timed) and :func:`time_for` (calls for a given duration, as a load client makes).
- Whole processes: :func:`time_process` (wall time of a subprocess, as a user runs a tool, and
  the JSON it prints last).
- Summaries: :class:`Timing`, :func:`quartiles`, :func:`percentile`, :func:`fmt_time`.
- The run's context: :func:`machine`, :func:`load_average`, :func:`engine_revision`,
  :func:`free_port`, :func:`log`, :func:`profile`.
"""

from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import gc
import io
import json
import math
import os
import platform
import pstats
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


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

    @classmethod
    def of(cls, times: Sequence[float]) -> Timing:
        """The median and quartiles of timed calls."""
        q1, q3 = quartiles(times)
        return cls(statistics.median(times), len(times), q1, q3)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """The garbage collector collected, then paused for the timed calls."""
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def quartiles(times: Sequence[float]) -> tuple[float, float]:
    """Lower and upper quartile (inclusive method); the one value twice for a single call."""
    if len(times) < 2:
        return times[0], times[0]
    q = statistics.quantiles(times, n=4, method="inclusive")
    return q[0], q[2]


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100) as the nearest rank of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def _warm_up(fn: Callable[[], Any], seconds: float) -> float:
    """Call ``fn()`` at least once and until ``seconds`` have passed; the last call's seconds."""
    start = time.perf_counter()
    while True:
        t0 = time.perf_counter()
        fn()
        last = time.perf_counter() - t0
        if time.perf_counter() - start >= seconds:
            return last


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
    last = _warm_up(fn, warmup_s)
    repeats = int(min(max_repeats, max(min_repeats, budget / max(last, 1e-9))))
    times = []
    with gc_paused():
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
    return Timing.of(times)


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
    per_call = [_warm_up(fn, warmup_s) for fn in fns]
    repeats = [
        int(min(max_repeats, max(m, budget / max(t, 1e-9))))
        for t, m in zip(per_call, min_repeats, strict=True)
    ]
    rounds = max(1, min(repeats))
    shares = [math.ceil(r / rounds) for r in repeats]
    times: list[list[float]] = [[] for _ in fns]
    with gc_paused():
        for _ in range(rounds):
            for j, fn in enumerate(fns):
                for _ in range(min(shares[j], repeats[j] - len(times[j]))):
                    t0 = time.perf_counter()
                    fn()
                    times[j].append(time.perf_counter() - t0)
    return [Timing.of(t) for t in times]


def time_loop(
    fit_one: Callable[[int], Any],
    k: int,
    *,
    budget: float,
    min_repeats: int = 3,
    limit: float = 60.0,
    subset_budget: float = 12.0,
    subset_min: int = 25,
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
    with gc_paused():
        for i in subset.tolist():
            t0 = time.perf_counter()
            fit_one(i)
            times.append(time.perf_counter() - t0)
    q1, q3 = quartiles(times)
    return Timing(statistics.median(times) * k, len(times), q1 * k, q3 * k, subset=(len(times), k))


def time_repeated(fn: Callable[[], Any], n: int) -> tuple[list[Any], list[float]]:
    """``n`` calls of ``fn()``: what each returned and the seconds each took (no warm-up: time the
    first call apart when it differs)."""
    results, times = [], []
    for _ in range(n):
        t0 = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t0)
    return results, times


def time_for(fn: Callable[[], Any], seconds: float, warmup: float = 0.0) -> tuple[list[Any], list[float]]:
    """Calls of ``fn()`` for ``warmup`` seconds untimed, then for ``seconds``: what each timed call
    returned and the seconds it took (as a load-generating client makes them)."""
    end_warmup = time.perf_counter() + warmup
    while time.perf_counter() < end_warmup:
        fn()
    results, times = [], []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        t0 = time.perf_counter()
        results.append(fn())
        times.append(time.perf_counter() - t0)
    return results, times


def time_process(
    cmd: Sequence[str], limit: float, env: dict[str, str] | None = None, cwd: Path | None = None
) -> tuple[float, dict[str, Any] | None]:
    """Wall time of a whole process (start, imports, work, exit) and the JSON object it printed
    last (None when it printed none); ``(inf, None)`` when it ran longer than ``limit`` seconds.

    Raises ``subprocess.CalledProcessError`` when the process fails.
    """
    t0 = time.perf_counter()
    try:
        out = subprocess.run(  # noqa: S603 - the benchmarks' own commands, no shell
            list(cmd), capture_output=True, text=True, timeout=limit, env=env, cwd=cwd, check=True
        )
    except subprocess.TimeoutExpired:
        return math.inf, None
    wall = time.perf_counter() - t0
    text = out.stdout.strip()
    if not text:
        return wall, None
    try:
        parsed = json.loads(text)
    except json.JSONDecodeError:
        try:
            parsed = json.loads(text.splitlines()[-1])
        except json.JSONDecodeError:
            return wall, None
    return wall, parsed if isinstance(parsed, dict) else None


def fmt_time(seconds: float) -> str:
    """A duration with a readable unit (µs, ms, s) and three significant digits; "—" for infinity."""
    if math.isinf(seconds):
        return "—"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.3g} µs"
    if seconds < 1.0:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds:.3g} s"


def version(dist: str) -> str:
    """An installed distribution's version, or "not installed"."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    """The CPU's model name (from /proc/cpuinfo where there is one)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, str]:
    """CPU model, cores, OS, Python and numpy/scipy versions."""
    return {
        "CPU": cpu_model(),
        "cores": str(os.cpu_count()),
        "OS": f"{platform.system()} {platform.release()}",
        "Python": platform.python_version(),
        "numpy": version("numpy"),
        "scipy": version("scipy"),
    }


def load_average(values: Sequence[float] | None = None) -> str:
    """The load average (1, 5, 15 min) as text: now, or the ``values`` recorded earlier."""
    values = os.getloadavg() if values is None else values
    return " / ".join(f"{x:.2f}" for x in values) if values else "unknown"


def engine_revision() -> str:
    """The git commit the engine was run from, flagged when workers/metaanalysis has local changes."""
    git = ["git", "-C", str(ROOT)]
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


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on (for a server the benchmark starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def log(msg: str) -> None:
    """Progress on standard error (standard output carries the report)."""
    print(msg, file=sys.stderr, flush=True)


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
