"""`workbench bench stress` and `workbench bench soak`: does the engine scale, and does it stay small?

- **stress**: N players at once in one process, each decoding MP3 into its own virtual sink at real
  time, against the embedded server in its own process. Per N: the client's CPU per stream, the
  server's CPU, TTFA, underruns and late device wake-ups (starvation), and the wall time over the audio
  length. "Keeps up" means no underrun and no late wake-up in any stream.
- **soak**: one reply of at least an hour (the server's `repeat` knob) through a virtual sink running
  `speed` times faster than real time, resident memory sampled twice a second. The ring buffer is the
  only thing that should hold audio, so memory after warm-up should stay flat.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .bench import Report, ServerProcess, machine_description
from .engine.metrics import PlayMetrics, percentile
from .engine.player import StreamPlayer
from .engine.settings import load_settings
from .engine.sinks import VirtualSink

STRESS_TEXT = ("Many streams at once: each one downloads, decodes and plays its own reply, "
               "and none of them may starve the others.")
SOAK_TEXT = " ".join(["A long stream keeps its memory flat: the ring buffer holds a few seconds, never the reply."] * 40)
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_bytes(pid: int | None = None) -> int:
    statm = Path(f"/proc/{pid or 'self'}/statm").read_text().split()
    return int(statm[1]) * PAGE


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def _player(fmt: str, base_url: str, query: dict[str, str], speed: float = 1.0, **extra: Any) -> StreamPlayer:
    s = load_settings(read_voicemode_files=False, environ={}, overrides={
        "voices": ("alloy",), "sink": "virtual", "audio_format": fmt, "adaptive": False, **extra})
    return StreamPlayer(s, base_url=base_url, extra_query=query,
                        sink_factory=lambda st: (VirtualSink(st.output_rate, st.block_size, speed=speed), None))


def bench_stress(counts: tuple[int, ...], progress: Callable[[str], None], text: str = STRESS_TEXT,
                 fmt: str = "mp3") -> Report:
    rows: list[dict[str, Any]] = []
    with ServerProcess() as server:
        assert server.proc is not None
        for n in counts:
            progress(f"{n} streams at once")

            async def together(n: int = n) -> tuple[list[PlayMetrics], float, float]:
                players = [_player(fmt, server.base_url, {"pace": "0.2"}) for _ in range(n)]
                try:
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    results = await asyncio.gather(*(p.play(text) for p in players))
                    return list(results), time.process_time() - cpu0, time.perf_counter() - wall0
                finally:
                    for p in players:
                        await p.aclose()

            server_cpu0 = process_cpu_s(server.proc.pid)
            ms, cpu_s, wall_s = asyncio.run(together())
            server_cpu = process_cpu_s(server.proc.pid) - server_cpu0
            failed = [m.error for m in ms if m.error]
            ttfa = [m.ttfa_ms for m in ms if m.ttfa_ms is not None]
            audio_s = max(m.audio_ms for m in ms) / 1000.0
            rows.append({
                "streams": n, "failed": len(failed), "errors": failed[:3],
                "client_cpu_pct_per_stream": 100.0 * cpu_s / wall_s / n,
                "client_cpu_pct": 100.0 * cpu_s / wall_s, "server_cpu_pct": 100.0 * server_cpu / wall_s,
                "ttfa_ms": statistics.median(ttfa) if ttfa else None, "ttfa_p95_ms": percentile(ttfa, 95),
                "underruns": sum(m.underruns for m in ms), "streams_with_underruns": sum(1 for m in ms if m.underruns),
                "underrun_ms": sum(m.underrun_ms for m in ms),
                "device_underflows": sum(m.device_underflows for m in ms),
                "wall_over_audio": wall_s / audio_s if audio_s else None,
            })
    report = Report(f"Concurrent streams: {fmt}, each on its own virtual sink at real time, server in its own "
                    "process at 5x real time", machine_description())
    first_bad = next((r["streams"] for r in rows if r["failed"] or r["underruns"] or r["device_underflows"]), None)
    for r in rows:
        ok = not (r["failed"] or r["underruns"] or r["device_underflows"])
        report.rows.append((
            f"{r['streams']} streams", f"{'keeps up' if ok else 'starves'}: {r['underruns']} underruns "
            f"({r['underrun_ms']:.0f} ms) in {r['streams_with_underruns']} streams, {r['device_underflows']} late "
            f"wake-ups" + (f", {r['failed']} failed" if r["failed"] else ""),
            f"client {r['client_cpu_pct_per_stream']:.2f}% of a core per stream ({r['client_cpu_pct']:.0f}% in all), "
            f"server {r['server_cpu_pct']:.0f}%; TTFA {r['ttfa_ms'] or 0:.0f} ms (p95 {r['ttfa_p95_ms'] or 0:.0f})"))
    report.rows.append(("where it stops keeping up", "not within the counts tried" if first_bad is None
                        else f"at {first_bad} streams", f"counts tried: {', '.join(map(str, counts))}"))
    report.data = {"suite": "stress", "format": fmt, "machine": report.machine, "rows": rows,
                   "first_starving": first_bad}
    return report


def bench_soak(minutes: float, speed: float, progress: Callable[[str], None], fmt: str = "mp3",
               text: str = SOAK_TEXT, max_buffer_s: float = 2.0) -> Report:
    """One reply of at least `minutes` of audio, played `speed` times faster than real time."""
    from .server.speech import estimate_duration_s

    per_repeat = estimate_duration_s(text)
    repeat = max(1, int(-(-minutes * 60 // per_repeat)))
    query = {"pace": f"{0.5 / speed:.4g}", "repeat": str(repeat), "ttfb_ms": "20"}
    samples: list[tuple[float, float, int]] = []  # (audio s played, wall s, rss bytes)
    with ServerProcess() as server:
        player = _player(fmt, server.base_url, query, speed=speed, max_buffer_s=max_buffer_s, voices=("test-signal",))

        async def run() -> PlayMetrics:
            t0 = time.perf_counter()

            async def sample() -> None:
                while True:
                    buffer = player.buffer
                    played = buffer.played_samples / buffer.rate if buffer is not None else 0.0
                    samples.append((played, time.perf_counter() - t0, rss_bytes()))
                    progress(f"{played / 60:.1f} of {repeat * per_repeat / 60:.0f} min of audio, "
                             f"RSS {samples[-1][2] / 2**20:.1f} MB")
                    await asyncio.sleep(0.5)

            sampler = asyncio.create_task(sample())
            try:
                return await player.play(text)
            finally:
                sampler.cancel()
                await player.aclose()

        m = asyncio.run(run())
    if m.error:
        raise RuntimeError(f"the soak stream failed: {m.error}")
    audio_min = m.audio_ms / 60_000.0
    warm = [s for s in samples if s[0] >= 0.05 * m.audio_ms / 1000.0]  # after the first 5% of the audio
    rss = [s[2] / 2**20 for s in warm] or [0.0]
    slope = _slope([(s[0] / 3600.0, s[2] / 2**20) for s in warm])  # MB per hour of audio
    ring_mb = max_buffer_s * 48_000 * 4 / 2**20
    report = Report(f"Memory soak: {audio_min:.0f} min of {fmt} in one reply, virtual sink at {speed:g}x real time",
                    machine_description())
    report.rows = [
        ("resident memory after warm-up: first / max / last", f"{rss[0]:.1f} / {max(rss):.1f} / {rss[-1]:.1f} MB",
         f"sampled every 0.5 s, {len(warm)} samples after the first 5% of the audio"),
        ("growth", f"{max(rss) - rss[0]:+.1f} MB over {audio_min:.0f} min; trend {slope:+.2f} MB per hour of audio",
         f"the ring buffer itself: {ring_mb:.2f} MB (max buffer {max_buffer_s:g} s at 48 kHz float32)"),
        ("for comparison: buffered playback", f"{m.audio_ms / 1000 * 48_000 * 4 / 2**20:.0f} MB",
         "the decoded reply held whole (computed, not run)"),
        ("the stream", f"{m.underruns} underruns, {m.device_underflows} late wake-ups, {m.bytes / 2**20:.1f} MB "
         f"received", f"wall {samples[-1][1] if samples else 0:.0f} s"),
    ]
    report.data = {"suite": "soak", "format": fmt, "speed": speed, "machine": report.machine,
                   "audio_min": audio_min, "rss_mb_first": rss[0], "rss_mb_max": max(rss), "rss_mb_last": rss[-1],
                   "slope_mb_per_audio_hour": slope, "ring_mb": ring_mb, "metrics": m.to_dict(),
                   "samples": [{"audio_s": round(a, 2), "wall_s": round(w, 2), "rss_mb": round(r / 2**20, 2)}
                               for a, w, r in samples]}
    return report


def _slope(points: list[tuple[float, float]]) -> float:
    if len(points) < 2:
        return 0.0
    mx = statistics.fmean(p[0] for p in points)
    my = statistics.fmean(p[1] for p in points)
    den = sum((p[0] - mx) ** 2 for p in points)
    return sum((p[0] - mx) * (p[1] - my) for p in points) / den if den else 0.0
