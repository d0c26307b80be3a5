"""`workbench bench`: measured figures, with baselines taken in the same run.

Suites:
- `engine`: the engine's own cost for a PCM stream. The TTS server runs in a separate process so the
  CPU measured is the player's alone. Reports the engine overhead (`ttfa_ms - buffer_ready_ms`: waiting
  for the device's next block plus its output latency), CPU per stream as a share of one core, and TTFA
  against the buffered baseline (download everything, then play) measured in the same run.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from .engine.metrics import PlayMetrics, percentile
from .engine.player import StreamPlayer
from .engine.settings import Settings, load_settings
from .engine.sinks import SoundDeviceSink, VirtualSink

BENCH_TEXT = ("The quick brown fox jumps over the lazy dog while the workbench measures how soon the first "
              "sound comes out and how much of a core the stream costs.")


@dataclass
class Run:
    label: str
    metrics: PlayMetrics
    cpu_s: float
    wall_s: float


@dataclass
class Report:
    title: str
    machine: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (figure, value, how)
    data: dict[str, Any] = field(default_factory=dict)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"Machine: {self.machine}", "", "| figure | value | how |", "|---|---|---|"]
        lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows]
        return "\n".join(lines) + "\n"


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """The embedded server in its own process, so its CPU is not counted as the engine's."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the benchmark's TTS server process did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def _sink_factory(sink_kind: str) -> Callable[[Settings], tuple[Any, None]]:
    def factory(s: Settings) -> tuple[Any, None]:
        if sink_kind == "device":
            return SoundDeviceSink(s.output_rate, s.block_size), None
        return VirtualSink(s.output_rate, s.block_size), None

    return factory


async def _one(player: StreamPlayer, label: str, text: str) -> Run:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    metrics = await player.play(text)
    return Run(label, metrics, time.process_time() - cpu0, time.perf_counter() - wall0)


def clock_baseline_pct(period_s: float, seconds: float = 3.0) -> float:
    """CPU share of a thread that only wakes up every `period_s` (what any audio clock costs here)."""
    import threading

    def run() -> None:
        end = time.perf_counter() + seconds
        next_tick = time.perf_counter()
        while next_tick < end:
            next_tick += period_s
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def device_baseline_pct(rate: int, block_size: int, seconds: float = 3.0) -> float:
    """CPU share of an open PortAudio stream whose callback only writes silence (the audio stack's cost)."""
    import sounddevice as sd

    def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        outdata.fill(0)

    with sd.OutputStream(samplerate=rate, channels=1, dtype="float32", blocksize=block_size, latency="low",
                         callback=callback):
        time.sleep(0.3)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def bench_engine(plays: int, sink_kind: str, progress: Callable[[str], None], text: str = BENCH_TEXT) -> Report:
    base = load_settings(read_voicemode_files=False, environ={},
                         overrides={"voices": ("alloy",), "sink": sink_kind})
    if sink_kind == "device":
        from .engine.sinks import default_output_device

        if default_output_device() is None:
            raise RuntimeError("no audio output device; use --sink virtual")
    streamed: list[Run] = []
    buffered: list[Run] = []
    with ServerProcess() as server:
        async def all_runs() -> None:
            factory = _sink_factory(sink_kind)
            ours = StreamPlayer(base, base_url=server.base_url, sink_factory=factory)
            baseline = StreamPlayer(base.replace(streaming_enabled=False), base_url=server.base_url,
                                    sink_factory=factory)
            try:
                await _one(ours, "warm-up", text)  # imports, connection, the server's first request
                await _one(baseline, "warm-up", text)
                for i in range(plays):  # interleaved, so drift on the machine hits both alike
                    progress(f"play {i + 1}/{plays}: streamed")
                    streamed.append(await _one(ours, "streamed", text))
                    progress(f"play {i + 1}/{plays}: buffered baseline")
                    buffered.append(await _one(baseline, "buffered", text))
            finally:
                await ours.aclose()
                await baseline.aclose()

        asyncio.run(all_runs())
    block_s = base.block_size / base.output_rate
    if sink_kind == "device":
        progress("baseline: an open PortAudio stream that plays silence")
        clock_pct = device_baseline_pct(base.output_rate, base.block_size)
        clock_what = "an open PortAudio stream, same block size, callback writing silence"
    else:
        progress("baseline: a bare clock thread waking once per block")
        clock_pct = clock_baseline_pct(block_s)
        clock_what = f"a thread doing nothing but wake {1 / block_s:.0f} times a second"
    failed = [r for r in streamed + buffered if r.metrics.error]
    if failed:
        raise RuntimeError(f"{len(failed)} play(s) failed: {failed[0].metrics.error}")
    if sink_kind == "device" and not all(r.metrics.sink.endswith("latency") for r in streamed + buffered):
        raise RuntimeError("the device sink was not used for every play")

    overhead = [r.metrics.ttfa_ms - r.metrics.buffer_ready_ms for r in streamed]  # type: ignore[operator]
    cpu_pct = [100.0 * r.cpu_s / r.wall_s for r in streamed]
    ttfa_s = [r.metrics.ttfa_ms for r in streamed]
    ttfa_b = [r.metrics.ttfa_ms for r in buffered]
    block_ms = base.block_size / base.output_rate * 1000.0
    latency = streamed[0].metrics.device_latency_ms or 0.0
    report = Report(f"Engine: PCM, {plays} plays, {sink_kind} sink", machine_description())
    report.rows = [
        ("engine overhead `ttfa_ms - buffer_ready_ms`, median (p95)",
         f"{_median(overhead):.1f} ms ({percentile(overhead, 95):.1f} ms)",
         f"device block {block_ms:.0f} ms, output latency {latency:.0f} ms"),
        ("CPU per PCM stream, median (max)", f"{_median(cpu_pct):.2f}% ({max(cpu_pct):.2f}%) of one core",
         "process CPU time / wall time over each play; server in another process"),
        ("baseline: the audio clock alone", f"{clock_pct:.2f}% of one core", clock_what),
        ("CPU per stream above that baseline", f"{_median(cpu_pct) - clock_pct:.2f}% of one core",
         "decoding, buffering, HTTP, bookkeeping"),
        ("TTFA streamed, median", f"{_median(ttfa_s):.0f} ms", "request to first sample heard"),
        ("TTFA buffered baseline, median", f"{_median(ttfa_b):.0f} ms", "download everything, then play"),
        ("TTFA ratio buffered / streamed", f"{_median(ttfa_b) / _median(ttfa_s):.1f}x", "same run, same server"),
        ("underruns streamed / buffered", f"{sum(r.metrics.underruns for r in streamed)} / "
         f"{sum(r.metrics.underruns for r in buffered)}", "over all plays"),
        ("audio per play", f"{_median([r.metrics.audio_ms for r in streamed]) / 1000:.2f} s",
         "espeak-ng voice alloy, from the embedded server at its default pace (5x real time)"),
    ]
    report.data = {
        "suite": "engine", "plays": plays, "sink": sink_kind, "machine": report.machine,
        "overhead_ms": overhead, "cpu_pct": cpu_pct, "ttfa_streamed_ms": ttfa_s, "ttfa_buffered_ms": ttfa_b,
        "block_ms": block_ms, "device_latency_ms": latency, "clock_baseline_pct": clock_pct,
        "streamed": [r.metrics.to_dict() for r in streamed], "buffered": [r.metrics.to_dict() for r in buffered],
    }
    return report


def run_bench(suite: str, plays: int, sink_kind: str, out_dir: Path, stderr: TextIO, text: str = BENCH_TEXT) -> Report:
    def progress(text: str) -> None:
        if stderr.isatty():
            stderr.write(f"\r\033[K{suite}: {text}")
            stderr.flush()
        else:
            print(f"{suite}: {text}", file=stderr)

    if suite != "engine":
        raise ValueError(f"unknown suite {suite!r}")
    report = bench_engine(plays, sink_kind, progress, text)
    if stderr.isatty():
        stderr.write("\r\033[K")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{suite}.json").write_text(json.dumps(report.data, indent=1))
    (out_dir / f"{suite}.md").write_text(report.markdown())
    return report
