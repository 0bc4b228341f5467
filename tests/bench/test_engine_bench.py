"""Smoke test of the engine benchmark: every task runs, the tools agree, the table is computed right."""

from __future__ import annotations

import types

import pytest

from bench import engine_bench as eb


class FakeClock:
    """A perf_counter that only advances when a fake fit says so."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(eb, "time", types.SimpleNamespace(perf_counter=fake))
    return fake


def test_quick_run_covers_every_task_and_agrees() -> None:
    settings = eb.quick_settings()
    rows, agreement = eb.run(settings)
    tasks = [(r.task, r.k) for r in rows]
    assert tasks == [
        ("whole_gen", settings.k_whole),
        ("whole_gen_dict", settings.k_whole),
        ("whole_smd", settings.k_whole),
        *[("reml", k) for k in settings.k_reml],
        ("dl", settings.k_large),
        ("loo", settings.k_large),
    ]
    for r in rows:
        assert r.engine.median > 0
        if r.task != "whole_gen_dict":
            assert r.pymare is not None and r.sm is not None, r.task
    loo = rows[-1]
    # the quick settings force the subset-and-extrapolate path of the comparator loops
    assert loo.pymare is not None and loo.pymare.subset is not None
    assert loo.pymare.subset[1] == settings.k_large
    values = dict(agreement)
    assert len(values) == len(agreement)
    for name, diff in values.items():
        if "refits" in name:
            assert diff < 1e-8, name  # the engine's batched leave-one-out against its own refits
        elif "DL tau²" in name:
            assert diff < 1e-10, name  # closed form
        elif "tau²" in name:
            assert diff < 1e-4, name  # PyMARE and statsmodels stop iterating at looser tolerances
        else:
            assert diff < 1e-3, name  # Hedges' g: exact vs approximate bias correction
    text = eb.render(rows, agreement, settings, [], 1.0)
    assert "metafor 3.8-1 (measured elsewhere, not in this run)" in text
    assert "smoke run" in text
    assert text.count("\n| (") >= 2 * len(rows)  # results and details tables


def test_ratios_goals_and_published_timings_in_the_table() -> None:
    ms = 1e-3
    row = eb.Row("reml", "(b) one REML fit", 77, eb.Timing(1 * ms, 9, 1 * ms, 1 * ms))
    row.pymare = eb.Timing(5 * ms, 9, 5 * ms, 5 * ms)
    row.sm, row.sm_label = eb.Timing(0.5 * ms, 9, 0.5 * ms, 0.5 * ms), "iterated PM"
    big = eb.Row("reml", "(b) one REML fit", 10_000, eb.Timing(3 * ms, 9, 3 * ms, 3 * ms))
    loo = eb.Row("loo", "(d) leave-one-out", 10_000, eb.Timing(1.0, 3, 1.0, 1.0))
    loo.pymare = eb.Timing(250.0, 40, 240.0, 260.0, subset=(40, 10_000))
    lines = eb.results_table([row, big, loo])
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0][2:] == ["1 ms", "", "5 ms ×5", "500 µs (iterated PM) ×0.5", "3.6 ms ×3.6"]
    assert cells[1][3] == "< 2 ms **missed**"
    assert cells[1][6] == "> 200 s already at k = 5,000"
    assert cells[2][3] == "< 2 s met"
    assert cells[2][4] == "250 s (extrapolated from 40 of 10,000 fits) ×250"


def test_time_loop_extrapolates_a_subset(clock: FakeClock) -> None:
    k = 1000
    seen: list[int] = []

    def fit_one(i: int) -> None:
        seen.append(i)
        clock.now += 0.003 if i == k // 2 else 0.001  # one slow fit does not move the median

    t = eb.time_loop(fit_one, k, budget=0.0, limit=0.5, subset_budget=0.1, subset_min=10)
    assert t.subset is not None and t.subset[1] == k
    timed = seen[4:]  # after the warm-up and the three probes
    assert len(timed) == t.subset[0] == t.repeats >= 10
    assert timed[0] == 0 and timed[-1] == k - 1
    assert t.median == pytest.approx(0.001 * k)


def test_time_loop_times_a_short_loop_whole(clock: FakeClock) -> None:
    k = 50

    def fit_one(i: int) -> None:
        clock.now += 0.001

    t = eb.time_loop(fit_one, k, budget=0.0, min_repeats=3, limit=10.0)
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

    fast, slow = eb.time_together(
        [tool("fast", 0.001), tool("slow", 0.010)], budget=0.1, min_repeats=[5, 3], warmup_s=0.0
    )
    assert (fast.repeats, slow.repeats) == (100, 10)
    assert fast.median == pytest.approx(0.001) and slow.median == pytest.approx(0.010)
    timed = order[2:]  # after one warm-up call each
    # ten rounds of ten fast calls and one slow call, not all fast calls first
    assert timed[:11] == ["fast"] * 10 + ["slow"]
    assert [i for i, name in enumerate(timed) if name == "slow"] == [11 * r + 10 for r in range(10)]


def test_whole_set_at_scale_is_an_engine_only_row() -> None:
    settings = eb.quick_settings()
    settings.k_whole_large = 40
    rows, _ = eb.run(settings)
    large = [r for r in rows if r.task == "whole_gen" and r.k == 40]
    assert len(large) == 1 and large[0].engine.median > 0
    assert large[0].pymare is None and large[0].sm is None
