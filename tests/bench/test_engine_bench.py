"""Smoke test of the engine benchmark: every task runs, the tools agree, the table is computed right."""

from __future__ import annotations

from bench import engine_bench as eb
from bench import engine_report, harness


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
    text = engine_report.render(rows, agreement, settings, [], 1.0)
    assert "metafor 3.8-1 (measured elsewhere, not in this run)" in text
    assert "smoke run" in text
    assert text.count("\n| (") >= 2 * len(rows)  # results and details tables


def test_ratios_goals_and_published_timings_in_the_table() -> None:
    ms = 1e-3
    row = eb.Row("reml", "(b) one REML fit", 77, harness.Timing(1 * ms, 9, 1 * ms, 1 * ms))
    row.pymare = harness.Timing(5 * ms, 9, 5 * ms, 5 * ms)
    row.sm, row.sm_label = harness.Timing(0.5 * ms, 9, 0.5 * ms, 0.5 * ms), "iterated PM"
    big = eb.Row("reml", "(b) one REML fit", 10_000, harness.Timing(3 * ms, 9, 3 * ms, 3 * ms))
    loo = eb.Row("loo", "(d) leave-one-out", 10_000, harness.Timing(1.0, 3, 1.0, 1.0))
    loo.pymare = harness.Timing(250.0, 40, 240.0, 260.0, subset=(40, 10_000))
    lines = engine_report.results_table([row, big, loo])
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    assert cells[0][2:] == ["1 ms", "", "5 ms ×5", "500 µs (iterated PM) ×0.5", "3.6 ms ×3.6"]
    assert cells[1][3] == "< 2 ms **missed**"
    assert cells[1][6] == "> 200 s already at k = 5,000"
    assert cells[2][3] == "< 2 s met"
    assert cells[2][4] == "250 s (extrapolated from 40 of 10,000 fits) ×250"


def test_whole_set_at_scale_is_an_engine_only_row() -> None:
    settings = eb.quick_settings()
    settings.k_whole_large = 40
    rows, _ = eb.run(settings)
    large = [r for r in rows if r.task == "whole_gen" and r.k == 40]
    assert len(large) == 1 and large[0].engine.median > 0
    assert large[0].pymare is None and large[0].sm is None
