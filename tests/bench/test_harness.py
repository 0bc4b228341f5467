"""The benchmarks' timing harness: percentiles, repeated and timed-for calls, whole processes."""

from __future__ import annotations

import math
import sys
import types

import pytest

from bench import harness


class FakeClock:
    """A perf_counter that only advances when a fake call says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(harness, "time", types.SimpleNamespace(perf_counter=fake))
    return fake


def test_percentile_is_the_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert harness.percentile(values, 50) == 51.0  # round(0.5 * 99) = 50 (to even): the 51st value
    assert harness.percentile(values, 95) == 95.0
    assert harness.percentile(values, 99) == 99.0
    assert harness.percentile(values[::-1], 0) == 1.0
    assert harness.percentile([3.0], 95) == 3.0


def test_time_repeated_returns_each_result_and_duration(clock: FakeClock) -> None:
    calls = iter(range(3))

    def call() -> int:
        i = next(calls)
        clock.now += 0.01 * (i + 1)
        return i

    results, times = harness.time_repeated(call, 3)
    assert results == [0, 1, 2]
    assert times == pytest.approx([0.01, 0.02, 0.03])


def test_time_for_times_only_after_the_warm_up(clock: FakeClock) -> None:
    made: list[int] = []

    def call() -> int:
        made.append(len(made))
        clock.now += 0.1
        return made[-1]

    results, times = harness.time_for(call, seconds=0.5, warmup=0.2)
    assert results[0] == 2  # two calls warmed up
    assert len(times) == len(results) == 5
    assert times == pytest.approx([0.1] * 5)


def test_timing_of_calls_has_median_and_quartiles() -> None:
    t = harness.Timing.of([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (t.median, t.repeats, t.q1, t.q3) == (3.0, 5, 2.0, 4.0)


def test_time_process_reads_the_json_a_process_prints_last() -> None:
    script = "import json; print('starting'); print(json.dumps({'beta': 0.5}))"
    wall, out = harness.time_process([sys.executable, "-c", script], limit=60)
    assert out == {"beta": 0.5}
    assert wall > 0
    _, none = harness.time_process([sys.executable, "-c", "pass"], limit=60)
    assert none is None
    never_ends = "import threading; threading.Event().wait()"
    wall, out = harness.time_process([sys.executable, "-c", never_ends], limit=0.2)
    assert (wall, out) == (math.inf, None)


def test_fmt_time_units() -> None:
    assert [harness.fmt_time(s) for s in (2e-6, 0.0123, 1.5, math.inf)] == ["2 µs", "12.3 ms", "1.5 s", "—"]


def test_time_loop_extrapolates_a_subset(clock: FakeClock) -> None:
    k = 1000
    seen: list[int] = []

    def fit_one(i: int) -> None:
        seen.append(i)
        clock.now += 0.003 if i == k // 2 else 0.001  # one slow fit does not move the median

    t = harness.time_loop(fit_one, k, budget=0.0, limit=0.5, subset_budget=0.1, subset_min=10)
    assert t.subset is not None and t.subset[1] == k
    timed = seen[4:]  # after the warm-up and the three probes
    assert len(timed) == t.subset[0] == t.repeats >= 10
    assert timed[0] == 0 and timed[-1] == k - 1
    assert t.median == pytest.approx(0.001 * k)


def test_time_loop_times_a_short_loop_whole(clock: FakeClock) -> None:
    k = 50

    def fit_one(i: int) -> None:
        clock.now += 0.001

    t = harness.time_loop(fit_one, k, budget=0.0, min_repeats=3, limit=10.0)
    assert t.subset is None
    assert t.repeats == 3
    assert t.median == pytest.approx(0.001 * k)


def test_time_together_interleaves_the_tools(clock: FakeClock) -> None:
    order: list[str] = []

    def tool(name: str, cost: float):
        def fn() -> None:
            order.append(name)
            clock.now += cost

        return fn

    fast, slow = harness.time_together(
        [tool("fast", 0.001), tool("slow", 0.010)], budget=0.1, min_repeats=[5, 3], warmup_s=0.0
    )
    assert (fast.repeats, slow.repeats) == (100, 10)
    assert fast.median == pytest.approx(0.001) and slow.median == pytest.approx(0.010)
    timed = order[2:]  # after one warm-up call each
    # ten rounds of ten fast calls and one slow call, not all fast calls first
    assert timed[:11] == ["fast"] * 10 + ["slow"]
    assert [i for i, name in enumerate(timed) if name == "slow"] == [11 * r + 10 for r in range(10)]
