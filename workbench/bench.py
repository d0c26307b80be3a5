"""`workbench bench`: measured figures, with baselines taken in the same run.

Suites:
- `matrix` (the default, in `bench_matrix.py`): formats x networks x settings x repeats against the
  buffered and naive-streaming baselines, with a picture and a 30 s-reply headline.
- `engine`: the engine's own cost for a PCM stream. The TTS server runs in a separate process so the
  CPU measured is the player's alone. Reports the engine overhead (`ttfa_ms - buffer_ready_ms`: waiting
  for the device's next block plus its output latency), CPU per stream as a share of one core, and TTFA
  against the buffered baseline (download everything, then play) measured in the same run.
- `server`: the embedded server's encode speed, first byte per format and concurrent streams.
- `formats`: every response format through the same player, server and text: TTFA (and its distance
  from PCM's, measured in the same run), bytes to first audio, decode speed and CPU per stream.
- `adaptive`: fixed 150 ms against the adaptive target on simulated networks, the server at 1.1x real
  time (so the network decides): underruns per minute of audio, underrun ms, TTFA.
- `chunks`: TTFA and underruns for several VOICEMODE_STREAM_CHUNK_SIZE values, PCM and MP3, on wifi.
- `stress` and `soak` (in `bench_stress.py`): N concurrent MP3 players; resident memory over an
  hour-long reply.
- `tui`: the same text played headless and with the workbench open (Textual's headless driver: it lays
  out and renders every frame as in a terminal, without the terminal writes), to show the UI never
  starves the audio: underruns and device underflows side by side, and the CPU each costs; then with
  the workbench busy (a full relayout ten times a second), and what one graph or counters redraw costs.
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
    extra: str = ""  # more Markdown after the figures (a suite's own table)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"Machine: {self.machine}", ""]
        if self.rows:
            lines += ["| figure | value | how |", "|---|---|---|"]
            lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows]
            lines.append("")
        return "\n".join(lines) + ("\n" + self.extra if self.extra else "")


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
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(self.port),
                                      "--test-knobs"],
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
    block_ms = block_s * 1000.0
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


FORMATS = ("pcm", "wav", "mp3", "opus", "aac", "flac")
FRAME_MS = {"pcm": 0.0, "wav": 0.0, "mp3": 576 / 24.0, "aac": 1024 / 24.0, "opus": 20.0, "flac": 2304 / 24.0}


def decode_speed(fmt: str, body: bytes, piece: int = 1024, repeats: int = 3) -> tuple[float, float]:
    """(times real time, audio seconds) for decoding `body` the way the player does, in `piece`-byte reads."""
    from .engine.decoders import StreamDecoder

    best = float("inf")
    audio_s = 0.0
    for _ in range(repeats):
        dec = StreamDecoder(fmt, pcm_rate=24_000, out_rate=48_000)
        n = 0
        t = time.perf_counter()
        for i in range(0, len(body), piece):
            n += len(dec.feed(body[i : i + piece]))
        n += len(dec.flush())
        best = min(best, time.perf_counter() - t)
        audio_s = n / 48_000
    return audio_s / best, audio_s


def bench_formats(plays: int, sink_kind: str, progress: Callable[[str], None], text: str = BENCH_TEXT) -> Report:
    import httpx2

    base = load_settings(read_voicemode_files=False, environ={},
                         overrides={"voices": ("alloy",), "sink": sink_kind})
    runs: dict[str, list[Run]] = {fmt: [] for fmt in FORMATS}
    bodies: dict[str, bytes] = {}
    with ServerProcess() as server:
        for fmt in FORMATS:
            progress(f"downloading {fmt} for the decode-speed test")
            with httpx2.Client(timeout=60) as client:
                r = client.post(server.base_url + "/audio/speech", params={"pace": "0", "ttfb_ms": "0"},
                                json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": fmt})
                r.raise_for_status()
                bodies[fmt] = r.content

        async def all_runs() -> None:
            factory = _sink_factory(sink_kind)
            player = StreamPlayer(base, base_url=server.base_url, sink_factory=factory)
            try:
                for fmt in FORMATS:  # warm-up: imports, codecs, the connection
                    await player.play(text, fmt=fmt)
                for i in range(plays):  # interleaved, so drift on the machine hits every format alike
                    for fmt in FORMATS:
                        progress(f"round {i + 1}/{plays}: {fmt}")
                        cpu0, wall0 = time.process_time(), time.perf_counter()
                        m = await player.play(text, fmt=fmt)
                        runs[fmt].append(Run(fmt, m, time.process_time() - cpu0, time.perf_counter() - wall0))
            finally:
                await player.aclose()

        asyncio.run(all_runs())
    failed = [r for rs in runs.values() for r in rs if r.metrics.error]
    if failed:
        raise RuntimeError(f"{len(failed)} play(s) failed: {failed[0].metrics.error}")
    progress("decode speed")
    speed = {fmt: decode_speed(fmt, bodies[fmt]) for fmt in FORMATS}

    def med(fmt: str, key: str) -> float:
        values = [getattr(r.metrics, key) for r in runs[fmt] if getattr(r.metrics, key) is not None]
        return _median(values)

    pcm_ttfa = med("pcm", "ttfa_ms")
    pcm_client = _median([r.metrics.ttfa_ms - r.metrics.first_byte_ms for r in runs["pcm"]  # type: ignore[operator]
                          if r.metrics.ttfa_ms is not None and r.metrics.first_byte_ms is not None])
    pcm_cpu = _median([100.0 * r.cpu_s / r.wall_s for r in runs["pcm"]])
    report = Report(f"Formats: {plays} plays each, {sink_kind} sink, initial buffer {base.buffer_ms} ms",
                    machine_description())
    report.rows = []
    table: dict[str, dict[str, Any]] = {}
    for fmt in FORMATS:
        ttfa = med(fmt, "ttfa_ms")
        cpu = _median([100.0 * r.cpu_s / r.wall_s for r in runs[fmt]])
        x, audio_s = speed[fmt]
        frame_ms = FRAME_MS[fmt]
        if fmt == "opus":
            frame_ms = med(fmt, "page_interval_ms")
        delta = ttfa - pcm_ttfa
        # the client's share: from the first byte to the first sample heard (the server's encoder adds
        # its own look-ahead before the first byte, which no client can win back)
        first_byte = med(fmt, "first_byte_ms")
        client = _median([r.metrics.ttfa_ms - r.metrics.first_byte_ms for r in runs[fmt]  # type: ignore[operator]
                          if r.metrics.ttfa_ms is not None and r.metrics.first_byte_ms is not None])
        client_delta = client - pcm_client
        table[fmt] = {"ttfa_ms": ttfa, "ttfa_minus_pcm_ms": delta, "frame_ms": frame_ms,
                      "first_byte_ms": first_byte, "first_byte_to_ttfa_ms": client,
                      "first_byte_to_ttfa_minus_pcm_ms": client_delta,
                      "first_audio_bytes": med(fmt, "first_audio_bytes"), "bytes": med(fmt, "bytes"),
                      "decode_x_realtime": x, "decode_pct_of_core": 100.0 / x, "cpu_pct": cpu,
                      "cpu_above_pcm_pct": cpu - pcm_cpu, "decode_ms_p95": med(fmt, "decode_ms_p95"),
                      "underruns": sum(r.metrics.underruns for r in runs[fmt]),
                      "decoder_errors": sum(r.metrics.decoder_errors for r in runs[fmt])}
        within = "" if fmt in ("pcm", "wav") else (
            f"; {'within' if client_delta <= frame_ms else 'more than'} one {'page' if fmt == 'opus' else 'frame'} "
            f"({frame_ms:.0f} ms)")
        report.rows.append((f"{fmt}: TTFA", f"{ttfa:.0f} ms ({delta:+.0f} ms vs pcm)",
                            "median; request to first sample heard"))
        report.rows.append((f"{fmt}: first byte -> first audio", f"{client:.0f} ms ({client_delta:+.0f} ms vs pcm"
                            f"{within})", f"the client's share; first byte at {first_byte:.0f} ms (server encoder)"))
        report.rows.append((f"{fmt}: bytes to first audio", f"{table[fmt]['first_audio_bytes']:.0f} of "
                            f"{table[fmt]['bytes']:.0f}", "bytes received when the decoder first gave audio"))
        report.rows.append((f"{fmt}: decode speed", f"{x:.0f}x real time ({100.0 / x:.2f}% of one core)",
                            f"{audio_s:.1f} s body fed in 1 KB reads, best of 3, 48 kHz out"))
        report.rows.append((f"{fmt}: CPU per stream", f"{cpu:.2f}% of one core ({cpu - pcm_cpu:+.2f} vs pcm)",
                            "process CPU / wall over each play, server in another process"))
    report.data = {"suite": "formats", "plays": plays, "sink": sink_kind, "machine": report.machine,
                   "initial_buffer_ms": base.buffer_ms, "formats": table,
                   "runs": {fmt: [r.metrics.to_dict() for r in rs] for fmt, rs in runs.items()}}
    return report


ADAPTIVE_TEXT = "Streaming speech has to start quickly and keep going when the network stalls."


def bench_adaptive(plays: int, progress: Callable[[str], None], text: str = ADAPTIVE_TEXT,
                   networks: tuple[str, ...] = ("lan", "wifi", "4g", "flaky")) -> Report:
    results: dict[str, dict[str, list[PlayMetrics]]] = {n: {"fixed": [], "adaptive": []} for n in networks}
    with ServerProcess() as server:
        async def all_runs() -> None:
            for network in networks:
                players = {
                    mode: StreamPlayer(load_settings(read_voicemode_files=False, environ={}, overrides={
                        "voices": ("alloy",), "sink": "virtual", "network": network, "network_seed": 7,
                        "buffer_ms": 150, "max_buffer_s": 4.0, "adaptive": mode == "adaptive"}),
                        base_url=server.base_url, sink_factory=_sink_factory("virtual"),
                        extra_query={"pace": "0.9"})
                    for mode in ("fixed", "adaptive")}
                try:
                    for i in range(plays):  # interleaved: both see the same run of the network's dice
                        for mode, player in players.items():
                            progress(f"{network}: play {i + 1}/{plays}, {mode}")
                            m = await player.play(text)
                            if m.error:
                                raise RuntimeError(f"{network} {mode}: {m.error}")
                            results[network][mode].append(m)
                finally:
                    for player in players.values():
                        await player.aclose()

        asyncio.run(all_runs())

    reply_s = _median([m.audio_ms / 1000.0 for ms in results.values() for m in ms["fixed"]])
    report = Report(f"Adaptive buffering: {plays} plays per network and mode, {reply_s:.1f} s reply, server at 1.1x "
                    "real time", machine_description())
    table: dict[str, dict[str, dict[str, float]]] = {}
    for network in networks:
        table[network] = {}
        for mode in ("fixed", "adaptive"):
            ms = results[network][mode]
            minutes = sum(m.audio_ms for m in ms) / 60_000.0
            table[network][mode] = {
                "underruns_per_min": sum(m.underruns for m in ms) / minutes,
                "underrun_ms_per_min": sum(m.underrun_ms for m in ms) / minutes,
                "underrun_ms": sum(m.underrun_ms for m in ms),
                "plays_with_underruns": sum(1 for m in ms if m.underruns),
                "ttfa_ms": _median([m.ttfa_ms or 0.0 for m in ms]),
                "ttfa_p95_ms": percentile([m.ttfa_ms or 0.0 for m in ms], 95) or 0.0,
                "final_target_ms": ms[-1].target_ms or 0.0,
                "needed_buffer_ms_max": max((m.needed_buffer_ms or 0.0) for m in ms),
            }
        f, a = table[network]["fixed"], table[network]["adaptive"]
        ratio = (f["underrun_ms"] / a["underrun_ms"]) if a["underrun_ms"] > 0 else float("inf")
        report.rows += [
            (f"{network}: underruns per minute, fixed / adaptive",
             f"{f['underruns_per_min']:.1f} / {a['underruns_per_min']:.1f}",
             f"plays with underruns {f['plays_with_underruns']} / {a['plays_with_underruns']} of {plays}"),
            (f"{network}: underrun ms, fixed / adaptive",
             f"{f['underrun_ms']:.0f} / {a['underrun_ms']:.0f} ms"
             + ("" if f["underrun_ms"] == 0 else f" ({'none left' if a['underrun_ms'] == 0 else f'{ratio:.1f}x fewer'})"),
             "silence inserted mid-reply, all plays"),
            (f"{network}: TTFA median (p95), fixed / adaptive",
             f"{f['ttfa_ms']:.0f} ({f['ttfa_p95_ms']:.0f}) / {a['ttfa_ms']:.0f} ({a['ttfa_p95_ms']:.0f}) ms "
             f"({a['ttfa_ms'] - f['ttfa_ms']:+.0f} ms)", f"adaptive learned target {a['final_target_ms']:.0f} ms"),
        ]
    report.data = {"suite": "adaptive", "plays": plays, "machine": report.machine, "networks": table,
                   "runs": {n: {mode: [m.to_dict() for m in ms] for mode, ms in v.items()}
                            for n, v in results.items()}}
    return report


CHUNK_SIZES = (512, 1024, 4096, 16384, 65536)


def bench_chunks(plays: int, progress: Callable[[str], None], text: str = ADAPTIVE_TEXT,
                 network: str = "wifi") -> Report:
    """Does the chunk size matter? This engine hands every network read on at once, cut into pieces of
    at most the chunk size, so the size only bounds how much is decoded in one step."""
    rows: dict[str, dict[int, list[PlayMetrics]]] = {fmt: {c: [] for c in CHUNK_SIZES} for fmt in ("pcm", "mp3")}
    with ServerProcess() as server:
        async def all_runs() -> None:
            for fmt in rows:
                players = {c: StreamPlayer(load_settings(read_voicemode_files=False, environ={}, overrides={
                    "voices": ("alloy",), "sink": "virtual", "network": network, "network_seed": 3,
                    "audio_format": fmt, "chunk_size": c, "adaptive": False}),
                    base_url=server.base_url, sink_factory=_sink_factory("virtual"), extra_query={"pace": "0.9"})
                    for c in CHUNK_SIZES}
                try:
                    for i in range(plays):
                        for c, player in players.items():
                            progress(f"{fmt}, chunk {c}: play {i + 1}/{plays}")
                            m = await player.play(text)
                            if m.error:
                                raise RuntimeError(f"{fmt} chunk {c}: {m.error}")
                            rows[fmt][c].append(m)
                finally:
                    for player in players.values():
                        await player.aclose()

        asyncio.run(all_runs())
    report = Report(f"Chunk size: {plays} plays each, {network}, server at 1.1x real time, fixed 150 ms buffer",
                    machine_description())
    data: dict[str, dict[int, dict[str, float]]] = {}
    for fmt, by_size in rows.items():
        data[fmt] = {}
        for c, ms in by_size.items():
            d = {"ttfa_ms": _median([m.ttfa_ms or 0.0 for m in ms]),
                 "underrun_ms": sum(m.underrun_ms for m in ms), "underruns": sum(m.underruns for m in ms),
                 "chunks": _median([float(m.chunks) for m in ms]), "decode_ms_p95": _median(
                     [m.decode_ms_p95 or 0.0 for m in ms])}
            data[fmt][c] = d
            report.rows.append((f"{fmt}, chunk {c} B", f"TTFA {d['ttfa_ms']:.0f} ms, {d['underruns']:.0f} underruns "
                                f"({d['underrun_ms']:.0f} ms), {d['chunks']:.0f} pieces per play",
                                f"decode p95 {d['decode_ms_p95']:.2f} ms"))
    report.data = {"suite": "chunks", "plays": plays, "network": network, "machine": report.machine,
                   "results": {f: {str(c): v for c, v in d.items()} for f, d in data.items()}}
    return report


def bench_tui(plays: int, sink_kind: str, progress: Callable[[str], None], text: str = BENCH_TEXT) -> Report:
    import tempfile

    from .tui.app import AppConfig, create_app

    if sink_kind == "device":
        from .engine.sinks import default_output_device

        if default_output_device() is None:
            raise RuntimeError("no audio output device; use --sink virtual")
    from .tui.widgets.buffer_graph import BufferGraph
    from .tui.widgets.counters import Counters

    headless: list[Run] = []
    with_tui: list[Run] = []
    busy_tui: list[Run] = []
    render_ms: dict[str, list[float]] = {}
    with ServerProcess() as server, tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(read_voicemode_files=False, environ={},
                                 overrides={"voices": ("alloy",), "sink": sink_kind})

        async def headless_runs() -> None:
            player = StreamPlayer(settings, base_url=server.base_url, sink_factory=_sink_factory(sink_kind))
            try:
                await _one(player, "warm-up", text)
                for i in range(plays):
                    progress(f"headless play {i + 1}/{plays}")
                    headless.append(await _one(player, "headless", text))
            finally:
                await player.aclose()

        async def tui_runs() -> None:
            app = create_app(AppConfig(settings=settings, text=text, local_url=server.base_url, start_server=False,
                                       sink_factory=_sink_factory(sink_kind), save_dir=Path(tmp)))
            async with app.run_test(size=(140, 44)) as pilot:
                # the first play is a warm-up; then plays with the workbench just showing the play; then
                # plays with the workbench busy: the settings panel shown and hidden ten times a second,
                # a full layout of the screen each time
                schedule = [("warm-up", None)] + [("tui", None)] * plays + [("busy", app.action_toggle_settings)] * plays
                for i, (label, busy) in enumerate(schedule):
                    if i:
                        progress(f"play {i}/{2 * plays} with the workbench {'busy' if busy else 'open'}")
                    n = len(app.runs)
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    await pilot.press("p")
                    deadline = time.monotonic() + 120
                    while len(app.runs) <= n or app.runs[n].metrics is None:
                        if time.monotonic() > deadline:
                            raise RuntimeError("a play in the workbench did not finish")
                        if busy is not None:
                            busy()
                        # a plain sleep: Pilot.pause() would post a message to every widget each time
                        await asyncio.sleep(0.1)
                    m = app.runs[n].metrics
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
        return _median([100.0 * r.cpu_s / r.wall_s for r in runs])

    report = Report(f"The UI and the audio: {plays} plays each, {sink_kind} sink", machine_description())
    report.rows = []
    for label, runs in (("headless", headless), ("workbench open", with_tui), ("workbench busy", busy_tui)):
        report.rows += [
            (f"{label}: underruns", f"{total(runs, 'underruns'):.0f} ({total(runs, 'underrun_ms'):.0f} ms)",
             "jitter buffer ran dry, over all plays"),
            (f"{label}: device underflows", f"{total(runs, 'device_underflows'):.0f}",
             "the audio callback (or virtual clock) was late, over all plays"),
            (f"{label}: TTFA median", f"{_median([r.metrics.ttfa_ms or 0.0 for r in runs]):.0f} ms", ""),
            (f"{label}: CPU", f"{cpu(runs):.2f}% of one core", "process CPU / wall over each play"),
        ]
    report.rows.append(("CPU the open workbench adds", f"{cpu(with_tui) - cpu(headless):+.2f}% of one core",
                        "10 Hz graph and counters, history, layout and rendering"))
    for key, times in render_ms.items():
        p50, p95 = _median(times), percentile(times, 95) or 0.0
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


def bench_server(progress: Callable[[str], None], *, quick: bool = False) -> Report:
    """The embedded server: encode speed per format, first byte per format, concurrent streams."""
    import httpx2
    import numpy as np

    from .server.encoders import CONTENT_TYPES, make_encoder
    from .server.speech import OUTPUT_RATE, synthesize

    report = Report("Embedded server", machine_description())
    seconds = 3.0 if quick else 10.0
    tone = np.concatenate(list(synthesize(" ".join(["word"] * int(seconds * 175 / 60)), "test-signal")))
    speech_audio = np.concatenate(list(synthesize(BENCH_TEXT, "alloy")))
    encode: dict[str, float] = {}
    for fmt in CONTENT_TYPES:
        progress(f"encoding {fmt}")
        encoder = make_encoder(fmt)
        t = time.perf_counter()
        for i in range(0, len(tone), 480):
            encoder.encode(tone[i : i + 480])
        encoder.flush()
        encode[fmt] = len(tone) / OUTPUT_RATE / (time.perf_counter() - t)
    progress("synthesis")
    t = time.perf_counter()
    for _ in synthesize(BENCH_TEXT, "alloy"):
        pass
    synth_x = len(speech_audio) / OUTPUT_RATE / (time.perf_counter() - t)

    first: dict[str, tuple[float, int]] = {}
    concurrency: list[tuple[int, float, float]] = []
    with ServerProcess() as server:
        url = server.base_url + "/audio/speech"

        async def one(fmt: str, voice: str, text: str, **knobs: str) -> tuple[float, int, float]:
            async with httpx2.AsyncClient(timeout=120) as client:
                t0 = time.perf_counter()
                first_ms, first_len = -1.0, 0
                async with client.stream("POST", url, params=knobs, json={
                        "model": "tts-1", "voice": voice, "input": text, "response_format": fmt}) as r:
                    async for piece in r.aiter_raw():
                        if first_ms < 0:
                            first_ms, first_len = (time.perf_counter() - t0) * 1000, len(piece)
                return first_ms, first_len, time.perf_counter() - t0

        async def firsts() -> None:
            for fmt in CONTENT_TYPES:
                progress(f"first byte: {fmt}")
                runs = [await one(fmt, "alloy", BENCH_TEXT) for _ in range(3)]
                first[fmt] = (_median([r[0] for r in runs]), int(_median([r[1] for r in runs])))

        async def crowd(n: int, text: str, audio_s: float) -> tuple[float, float]:
            results = await asyncio.gather(*[one("mp3", "alloy", text, pace="1.0") for _ in range(n)])
            slowest = max(r[2] for r in results)
            return slowest / audio_s, _median([r[0] for r in results])

        asyncio.run(firsts())
        text = BENCH_TEXT
        audio_s = len(speech_audio) / OUTPUT_RATE
        for n in ([1, 4, 8] if quick else [1, 4, 8, 16, 32, 48]):
            progress(f"{n} concurrent mp3 streams at real-time pace")
            ratio, first_ms = asyncio.run(crowd(n, text, audio_s))
            concurrency.append((n, ratio, first_ms))

    for fmt in CONTENT_TYPES:
        report.rows.append((f"encode {fmt}", f"{encode[fmt]:.0f}x real time", "24 kHz mono test tone, 20 ms pieces"))
    report.rows.append(("espeak-ng synthesis (alloy)", f"{synth_x:.0f}x real time", "resampled to 24 kHz"))
    for fmt in CONTENT_TYPES:
        ms, size = first[fmt]
        report.rows.append((f"first byte {fmt}", f"{ms:.0f} ms, first piece {size} bytes",
                            "default pacing (ttfb 150 ms, 5x real time, 40 ms flushes), median of 3"))
    for n, ratio, first_ms in concurrency:
        verdict = "keeps up" if ratio < 1.10 else "falls behind"
        report.rows.append((f"{n} concurrent mp3 streams at 1x pace", f"slowest took {ratio:.2f}x the audio length "
                            f"({verdict}); first byte median {first_ms:.0f} ms",
                            f"{audio_s:.1f} s of speech each, server in its own process"))
    report.data = {"suite": "server", "machine": report.machine, "encode_x_realtime": encode,
                   "synthesis_x_realtime": synth_x,
                   "first_byte": {f: {"ms": v[0], "bytes": v[1]} for f, v in first.items()},
                   "concurrency": [{"streams": n, "slowest_over_audio": r, "first_byte_ms": f}
                                   for n, r, f in concurrency]}
    return report


def progress_printer(suite: str, stderr: TextIO) -> Callable[[str], None]:
    """One updating line on a terminal; otherwise a line per step."""
    def progress(text: str) -> None:
        if stderr.isatty():
            stderr.write(f"\r\033[K{suite}: {text}")
            stderr.flush()
        else:
            print(f"{suite}: {text}", file=stderr)

    return progress


def write_report(report: Report, name: str, out_dir: Path, stderr: TextIO) -> None:
    if stderr.isatty():
        stderr.write("\r\033[K")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{name}.json").write_text(json.dumps(report.data, indent=1))
    (out_dir / f"{name}.md").write_text(report.markdown())


def run_bench(suite: str, plays: int, sink_kind: str, out_dir: Path, stderr: TextIO, text: str = BENCH_TEXT,
              quick: bool = False, networks: tuple[str, ...] | None = None) -> Report:
    progress = progress_printer(suite, stderr)
    if suite == "engine":
        report = bench_engine(plays, sink_kind, progress, text)
    elif suite == "server":
        report = bench_server(progress, quick=quick)
    elif suite == "formats":
        report = bench_formats(plays, sink_kind, progress, text)
    elif suite == "tui":
        report = bench_tui(plays, sink_kind, progress, text)
    elif suite == "chunks":
        report = bench_chunks(plays, progress, **({} if text == BENCH_TEXT else {"text": text}))
    elif suite == "adaptive":
        report = bench_adaptive(plays, progress, **({} if text == BENCH_TEXT else {"text": text}),
                                **({"networks": networks} if networks else {}))
    else:
        raise ValueError(f"unknown suite {suite!r}")
    write_report(report, suite, out_dir, stderr)
    return report
