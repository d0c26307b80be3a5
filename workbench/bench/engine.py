"""`bench engine`: the engine's own cost for a PCM stream, and TTFA against the buffered baseline."""

from __future__ import annotations

import asyncio

from ..engine.figures.metrics import percentile
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from .harness import (
    BENCH_TEXT,
    Progress,
    Report,
    Run,
    ServerProcess,
    bench_options,
    clock_baseline_pct,
    device_baseline_pct,
    machine_description,
    med,
    timed,
)
from .suites import BenchOptions


def bench_engine(plays: int, sink_kind: str, progress: Progress, text: str = BENCH_TEXT) -> Report:
    base = bench_options(sink=sink_kind)
    if sink_kind.startswith("device"):
        from ..engine.output.sinks import default_output_device

        if default_output_device() is None:
            raise RuntimeError("no audio output device; use --sink virtual")
    streamed: list[Run] = []
    fixed: list[Run] = []  # the same, with fixed playout: what elastic playout costs
    buffered: list[Run] = []
    with ServerProcess() as server:
        async def all_runs() -> None:
            factory = sink_factory(sink_kind)
            async with StreamPlayer(base, base_url=server.base_url, sink_factory=factory) as ours, \
                    StreamPlayer(base.replace(playout="fixed"), base_url=server.base_url,
                                 sink_factory=factory) as ours_fixed, \
                    StreamPlayer(base.replace(streaming_enabled=False), base_url=server.base_url,
                                 sink_factory=factory) as baseline:
                await timed(ours, "warm-up", text)  # imports, connection, the server's first request
                await timed(ours_fixed, "warm-up", text)
                await timed(baseline, "warm-up", text)
                for i in range(plays):  # interleaved, so drift on the machine hits all alike
                    progress(f"play {i + 1}/{plays}: streamed")
                    streamed.append(await timed(ours, "streamed", text))
                    progress(f"play {i + 1}/{plays}: streamed, fixed playout")
                    fixed.append(await timed(ours_fixed, "fixed", text))
                    progress(f"play {i + 1}/{plays}: buffered baseline")
                    buffered.append(await timed(baseline, "buffered", text))

        asyncio.run(all_runs())
    block_s = base.block_size / base.output_rate
    if sink_kind.startswith("device"):
        progress("baseline: an open PortAudio stream that plays silence")
        clock_pct = device_baseline_pct(base.output_rate, base.block_size)
        clock_what = "an open PortAudio stream, same block size, callback writing silence"
    else:
        progress("baseline: a bare clock thread waking once per block")
        clock_pct = clock_baseline_pct(block_s)
        clock_what = f"a thread doing nothing but wake {1 / block_s:.0f} times a second"
    failed = [r for r in streamed + fixed + buffered if r.metrics.error]
    if failed:
        raise RuntimeError(f"{len(failed)} play(s) failed: {failed[0].metrics.error}")
    if sink_kind.startswith("device") and not all(r.metrics.sink.endswith("latency") for r in streamed + buffered):
        raise RuntimeError("the device sink was not used for every play")

    overhead = [r.metrics.ttfa_ms - r.metrics.buffer_ready_ms for r in streamed
                if r.metrics.ttfa_ms is not None and r.metrics.buffer_ready_ms is not None]
    cpu_pct = [100.0 * r.cpu_s / r.wall_s for r in streamed]
    cpu_fixed = [100.0 * r.cpu_s / r.wall_s for r in fixed]
    ttfa_s = [r.metrics.ttfa_ms for r in streamed if r.metrics.ttfa_ms is not None]
    ttfa_b = [r.metrics.ttfa_ms for r in buffered if r.metrics.ttfa_ms is not None]
    block_ms = block_s * 1000.0
    latency = streamed[0].metrics.device_latency_ms or 0.0
    report = Report(f"Engine: PCM, {plays} plays, {sink_kind} sink", machine_description())
    report.rows = [
        ("engine overhead `ttfa_ms - buffer_ready_ms`, median (p95)",
         f"{med(overhead):.1f} ms ({percentile(overhead, 95):.1f} ms)",
         f"device block {block_ms:.0f} ms, output latency {latency:.0f} ms"),
        ("CPU per PCM stream, median (max)", f"{med(cpu_pct):.2f}% ({max(cpu_pct):.2f}%) of one core",
         "process CPU time / wall time over each play; server in another process"),
        ("baseline: the audio clock alone", f"{clock_pct:.2f}% of one core", clock_what),
        ("CPU per stream above that baseline", f"{med(cpu_pct) - clock_pct:.2f}% of one core",
         "decoding, buffering, HTTP, bookkeeping"),
        ("CPU per stream, fixed playout", f"{med(cpu_fixed):.2f}% of one core",
         f"the default's elastic playout costs {med(cpu_pct) - med(cpu_fixed):+.2f}% of one core more; "
         f"it played {med([r.metrics.stretched_pct for r in streamed]):.0f}% of the audio stretched"),
        ("TTFA streamed, median", f"{med(ttfa_s):.0f} ms", "request to first sample heard"),
        ("TTFA buffered baseline, median", f"{med(ttfa_b):.0f} ms", "download everything, then play"),
        ("TTFA ratio buffered / streamed", f"{med(ttfa_b) / med(ttfa_s):.1f}x", "same run, same server"),
        ("underruns streamed / buffered", f"{sum(r.metrics.underruns for r in streamed)} / "
         f"{sum(r.metrics.underruns for r in buffered)}", "over all plays"),
        ("audio per play", f"{med([r.metrics.audio_ms for r in streamed]) / 1000:.2f} s",
         "espeak-ng voice alloy, from the embedded server at its default pace (5x real time)"),
    ]
    report.data = {
        "suite": "engine", "plays": plays, "sink": sink_kind, "machine": report.machine,
        "overhead_ms": overhead, "cpu_pct": cpu_pct, "cpu_fixed_pct": cpu_fixed, "ttfa_streamed_ms": ttfa_s,
        "ttfa_buffered_ms": ttfa_b,
        "block_ms": block_ms, "device_latency_ms": latency, "clock_baseline_pct": clock_pct,
        "streamed": [r.metrics.to_dict() for r in streamed], "buffered": [r.metrics.to_dict() for r in buffered],
    }
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_engine(o.plays_or(10, 3), o.sink, progress, o.text or BENCH_TEXT)
