"""The trace the graph draws: decimation that keeps what matters (issue 15)."""

from __future__ import annotations

from workbench.engine.figures.metrics import PlayState, Snapshot
from workbench.tui.state import Trace


def trace_of(levels: list[float], rates: list[float] | None = None) -> Trace:
    trace = Trace()
    for i, level in enumerate(levels):
        trace.add(Snapshot(t_ms=i * 10.0, state=PlayState.PLAYING, level_ms=level, target_ms=150.0,
                           initial_buffer_ms=150.0, max_buffer_ms=2000.0, received_ms=0.0, played_ms=0.0, bytes=0,
                           underruns=0, underrun_ms=0.0, device_underflows=0, ttfa_ms=None, format="pcm",
                           rate=rates[i] if rates else 1.0))
    return trace


def test_a_one_sample_dip_and_spike_survive_decimation() -> None:
    levels = [300.0] * 1000
    levels[137] = 0.0  # a dip to an underrun, one snapshot long
    levels[801] = 1900.0  # a spike
    rates = [1.0] * 1000
    rates[555] = 0.5  # a moment of slowing down
    xs, ys, zs, rs = trace_of(levels, rates).downsampled_with_rate(50)
    assert 0.0 in ys and 1900.0 in ys and 0.5 in rs
    assert xs == sorted(xs) and len(xs) == len(ys) == len(zs) == len(rs)
    assert len(xs) <= 54  # flat buckets draw as one point; only the two with an extreme draw two


def test_a_smooth_rise_draws_about_one_point_a_bucket_and_a_short_trace_as_it_is() -> None:
    xs, ys, _, _ = trace_of([float(i) for i in range(1000)]).downsampled_with_rate(50)
    assert 50 <= len(xs) <= 60 and ys == sorted(ys)  # two points only where the rise is steep for its level
    short = trace_of([5.0, 0.0, 7.0])
    assert short.downsampled_with_rate(50)[1] == [5.0, 0.0, 7.0]


def test_a_falling_bucket_draws_its_high_before_its_low() -> None:
    xs, ys, _, _ = trace_of([1000.0, 900.0, 10.0, 0.0, 0.0, 0.0, 0.0, 0.0]).downsampled_with_rate(2)
    assert ys[:2] == [1000.0, 0.0] and xs[0] < xs[1]


def test_compare_names_a_better_side_only_beyond_the_spread_of_two_runs() -> None:
    from workbench.engine.figures.metrics import PlayMetrics
    from workbench.usecases.compare import compare_rows

    a = PlayMetrics(format="pcm", ttfa_ms=106.0, first_sound_ms=300.0, underruns=0, arrival_rtf=2.0)
    b = PlayMetrics(format="pcm", ttfa_ms=108.0, first_sound_ms=250.0, underruns=1, arrival_rtf=2.1)
    better = {r.field: r.better for r in compare_rows(a, b)}
    assert better["ttfa_ms"] == "≈"  # 2 ms apart: noise, not a winner
    assert better["first_sound_ms"] == "B"  # 50 ms sooner
    assert better["underruns"] == "A"  # any underrun counts
    assert better["arrival_rtf"] == "≈"  # 5 %: within 10 %


def test_the_graphs_level_axis_labels_reach_within_two_rows_of_its_top() -> None:
    """After a tune the axis read 250 … 0 with the line drawn against an unlabelled top row."""
    from workbench.tui.widgets.buffer_graph import squash, ticks

    for top in (110.0, 150.0, 287.0, 600.0, 980.0, 2300.0, 4000.0, 13_000.0, 45_000.0):
        for rows in (3, 5, 8, 15):
            marks = ticks(top, rows)
            two_rows = squash(top) * 2.0 / rows
            assert marks[0] == 0 and marks == sorted(marks) and marks[-1] <= top
            assert squash(top) - squash(marks[-1]) < two_rows, (top, rows, marks)


def test_compare_shows_no_device_underflows_for_a_virtual_sink() -> None:
    from workbench.engine.figures.metrics import PlayMetrics
    from workbench.usecases.compare import compare_rows

    virtual = PlayMetrics(format="pcm", sink="virtual sink", device_underflows=0)
    device = PlayMetrics(format="pcm", sink="default @ 24000 Hz, 40 ms latency", device_underflows=2)
    row = next(r for r in compare_rows(virtual, device) if r.field == "device_underflows")
    assert (row.a, row.b, row.better) == (None, 2.0, None) and row.cells()[1] == "-"
