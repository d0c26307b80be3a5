"""`bench channels`: what playing in stereo costs against mono, in the same run, and whether a placed voice
comes out at its gains.

Three players take turns on the same reply: mono (the default, the fast path), stereo (the mono voice to
both channels) and a voice placed half left (`WORKBENCH_PAN=-0.5`). The server is paced a little faster
than real time, so elastic playout stretches the start of each reply: the stretcher's work is in the
figure. CPU is this process's (the server runs in its own); the placed voice's channel levels are
measured on what the sink played.
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np

from ..engine.decoding.layout import Layout
from ..engine.output.sinkfactory import sink_factory
from ..engine.output.sinks import Sink
from ..engine.player import StreamPlayer
from .harness import BENCH_TEXT, Progress, Report, Run, ServerProcess, bench_options, machine_description, med, timed
from .suites import BenchOptions

PAN = -0.5
LAYOUTS: dict[str, dict[str, Any]] = {"mono": {}, "stereo": {"channels": "stereo"}, f"placed {PAN:+.1f}": {"pan": PAN}}


def _cpu_per_audio_s(runs: list[Run]) -> float:
    audio = sum(r.metrics.audio_ms for r in runs) / 1000.0
    return sum(r.cpu_s for r in runs) / audio if audio else float("nan")


def bench_channels(plays: int, sink: str, progress: Progress, text: str = BENCH_TEXT) -> Report:
    if sink not in ("virtual", "device"):
        sink = "virtual"
    runs: dict[str, list[Run]] = {name: [] for name in LAYOUTS}
    made: list[Sink] = []
    levels: list[np.ndarray] = []  # the placed voice's channel levels, per play
    with ServerProcess() as server:
        async def rounds() -> None:
            players = {name: StreamPlayer(bench_options(sink=sink, **extra), base_url=server.base_url,
                                          sink_factory=sink_factory(sink, record=True, made=made),
                                          extra_query={"pace": "0.9"})
                       for name, extra in LAYOUTS.items()}
            try:
                for name, player in players.items():
                    progress(f"warm-up: {name}")
                    await timed(player, "warm-up", text)
                for i in range(plays):  # interleaved: the machine's drift hits every layout alike
                    for name, player in players.items():
                        progress(f"play {i + 1}/{plays}: {name}")
                        run = await timed(player, name, text)
                        if run.metrics.error:
                            raise RuntimeError(f"a play failed: {run.metrics.error}")
                        runs[name].append(run)
                        played = made[-1].recorder.samples() if made[-1].recorder is not None else None
                        if name.startswith("placed") and played is not None and played.ndim == 2:
                            loud = np.abs(played).max(axis=1) > 0.01
                            levels.append(np.sqrt((played[loud].astype(np.float64) ** 2).mean(axis=0)))
            finally:
                for player in players.values():
                    await player.aclose()

        asyncio.run(rounds())
    mono_cpu = _cpu_per_audio_s(runs["mono"])
    left, right = Layout(2, PAN).gains
    ratio = med([float(level[0] / level[1]) for level in levels])
    report = Report(f"Channels: mono, stereo and a placed voice, {plays} plays each, {sink} sink, the embedded "
                    "server paced at 1.1x real time (elastic playout stretches each start)", machine_description())
    report.rows = []
    for name, rs in runs.items():
        cpu = _cpu_per_audio_s(rs)
        report.rows.append((f"{name}: CPU per second of audio", f"{cpu * 1000:.1f} ms ({cpu / mono_cpu:.2f}x mono)",
                            "this process: decoding, elastic playout, the sink"))
        report.rows.append((f"{name}: TTFA median, underruns",
                            f"{med([r.metrics.ttfa_ms for r in rs if r.metrics.ttfa_ms is not None]):.0f} ms, "
                            f"{sum(r.metrics.underruns for r in rs)}", ""))
    report.rows.append((f"placed {PAN:+.1f}: left / right level as played", f"{ratio:.3f} (gains {left / right:.3f})",
                        "RMS of each channel where the voice is, on what the sink played"))
    report.data = {"suite": "channels", "plays": plays, "sink": sink, "machine": report.machine, "pan": PAN,
                   "cpu_per_audio_s": {name: _cpu_per_audio_s(rs) for name, rs in runs.items()},
                   "ttfa_ms": {name: [r.metrics.ttfa_ms for r in rs] for name, rs in runs.items()},
                   "underruns": {name: sum(r.metrics.underruns for r in rs) for name, rs in runs.items()},
                   "stretched_pct": {name: [r.metrics.stretched_pct for r in rs] for name, rs in runs.items()},
                   "placed_level_ratio": [float(level[0] / level[1]) for level in levels],
                   "placed_gain_ratio": left / right}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_channels(o.plays_or(5, 2), o.sink, progress, o.text or BENCH_TEXT)
