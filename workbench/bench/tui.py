"""`bench tui`: the same text headless, with the workbench open, and with it busy."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from ..engine.figures.metrics import percentile
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from .harness import BENCH_TEXT, Progress, Report, Run, ServerProcess, bench_options, machine_description, med, timed
from .suites import BenchOptions


def bench_tui(plays: int, sink_kind: str, progress: Progress, text: str = BENCH_TEXT) -> Report:
    import tempfile

    from ..tui.app import AppConfig, create_app

    if sink_kind.startswith("device"):
        from ..engine.output.sinks import default_output_device

        if default_output_device() is None:
            raise RuntimeError("no audio output device; use --sink virtual")
    from ..tui.widgets.buffer_graph import BufferGraph
    from ..tui.widgets.counters import Counters

    headless: list[Run] = []
    with_tui: list[Run] = []
    busy_tui: list[Run] = []
    render_ms: dict[str, list[float]] = {}
    with ServerProcess() as server, tempfile.TemporaryDirectory() as tmp:
        settings = bench_options(sink=sink_kind)

        async def headless_runs() -> None:
            async with StreamPlayer(settings, base_url=server.base_url, sink_factory=sink_factory(sink_kind)) as player:
                await timed(player, "warm-up", text)
                for i in range(plays):
                    progress(f"headless play {i + 1}/{plays}")
                    headless.append(await timed(player, "headless", text))

        async def tui_runs() -> None:
            app = create_app(AppConfig(settings=settings, text=text, local_url=server.base_url, start_server=False,
                                       sink_factory=sink_factory(sink_kind), save_dir=Path(tmp)))
            async with app.run_test(size=(140, 44)) as pilot:
                # the first play is a warm-up; then plays with the workbench just showing the play; then
                # plays with the workbench busy: the settings panel shown and hidden ten times a second,
                # a full layout of the screen each time
                schedule = ([("warm-up", None)] + [("tui", None)] * plays
                            + [("busy", app.action_toggle_settings)] * plays)
                for i, (label, busy) in enumerate(schedule):
                    if i:
                        progress(f"play {i}/{2 * plays} with the workbench {'busy' if busy else 'open'}")
                    n = len(app.session.runs)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    await pilot.press("p")
                    deadline = time.monotonic() + 120
                    while len(app.session.runs) <= n or app.session.runs[n].metrics is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError("a play in the workbench did not finish")
                        if busy is not None:
                            busy()
                        # a plain sleep: Pilot.pause() would post a message to every widget each time
                        await asyncio.sleep(0.1)
                    m = app.session.runs[n].metrics
                    assert m is not None
                    if label != "warm-up":
                        (with_tui if label == "tui" else busy_tui).append(
                            Run(label, m, time.process_time() - cpu0, time.perf_counter() - wall0))
                graph = app.query_one("#graph", BufferGraph)  # the last play's trace, full width
                counters = app.query_one(Counters)
                for widget, key in ((graph, "graph"), (counters, "counters")):
                    times = []
                    for _ in range(50):
                        t = time.perf_counter()
                        widget.render()
                        times.append((time.perf_counter() - t) * 1000.0)
                    render_ms[key] = times

        asyncio.run(headless_runs())
        asyncio.run(tui_runs())
    failed = [r for r in headless + with_tui + busy_tui if r.metrics.error]
    if failed:
        raise RuntimeError(f"{len(failed)} play(s) failed: {failed[0].metrics.error}")

    def total(runs: list[Run], key: str) -> float:
        return float(sum(getattr(r.metrics, key) for r in runs))

    def cpu(runs: list[Run]) -> float:
        return med([100.0 * r.cpu_s / r.wall_s for r in runs])

    report = Report(f"The UI and the audio: {plays} plays each, {sink_kind} sink", machine_description())
    report.rows = []
    for label, runs in (("headless", headless), ("workbench open", with_tui), ("workbench busy", busy_tui)):
        report.rows += [
            (f"{label}: underruns", f"{total(runs, 'underruns'):.0f} ({total(runs, 'underrun_ms'):.0f} ms)",
             "jitter buffer ran dry, over all plays"),
            (f"{label}: device underflows" if sink_kind == "device" else f"{label}: virtual clock late",
             f"{total(runs, 'device_underflows') + total(runs, 'clock_late'):.0f}",
             "the audio callback was late, over all plays" if sink_kind == "device"
             else "the virtual sink's clock thread woke a block late, over all plays"),
            (f"{label}: TTFA median", f"{med([r.metrics.ttfa_ms or 0.0 for r in runs]):.0f} ms", ""),
            (f"{label}: CPU", f"{cpu(runs):.2f}% of one core", "process CPU / wall over each play"),
        ]
    report.rows.append(("CPU the open workbench adds", f"{cpu(with_tui) - cpu(headless):+.2f}% of one core",
                        "10 Hz graph and counters, history, layout and rendering"))
    for key, times in render_ms.items():
        p50, p95 = med(times), percentile(times, 95) or 0.0
        report.rows.append((f"one {key} redraw, median (p95)", f"{p50:.2f} ({p95:.2f}) ms",
                            f"{p50:.1f}% of one core at 10 redraws a second; 50 redraws of the last play"))
    report.data = {"suite": "tui", "plays": plays, "sink": sink_kind, "machine": report.machine,
                   "headless": [r.metrics.to_dict() for r in headless],
                   "tui": [r.metrics.to_dict() for r in with_tui],
                   "busy": [r.metrics.to_dict() for r in busy_tui], "render_ms": render_ms,
                   "cpu_pct": {"headless": [100.0 * r.cpu_s / r.wall_s for r in headless],
                               "tui": [100.0 * r.cpu_s / r.wall_s for r in with_tui],
                               "busy": [100.0 * r.cpu_s / r.wall_s for r in busy_tui]}}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_tui(o.plays_or(10, 3), o.sink, progress, o.text or BENCH_TEXT)
