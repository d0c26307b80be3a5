"""`bench soak`: resident memory over one hour-long reply, played on a virtual sink faster than real time."""

from __future__ import annotations

import asyncio
import statistics
import time

from ..engine.figures.metrics import PlayMetrics
from .harness import Progress, Report, ServerProcess, bench_player, machine_description, rss_bytes
from .suites import BenchError, BenchOptions, parse_list

SOAK_TEXT = " ".join(
    ["A long stream keeps its memory flat: the ring buffer holds a few seconds, never the reply."] * 40)


def bench_soak(minutes: float, speed: float, progress: Progress, fmt: str = "mp3",
               text: str = SOAK_TEXT, max_buffer_s: float = 2.0, split: bool = False) -> Report:
    """One reply of at least `minutes` of audio, played `speed` times faster than real time: one request
    (the server repeats the text), or with `split` the whole text asked for a fragment at a time."""
    from ..server.speech import estimate_duration_s

    per_repeat = estimate_duration_s(text)
    repeat = max(1, int(-(-minutes * 60 // per_repeat)))
    query = {"pace": f"{0.5 / speed:.4g}", "repeat": str(repeat), "ttfb_ms": "20"}
    if split:  # the text itself is that long; the server says each fragment once
        text, query["repeat"] = " ".join([text] * repeat), "1"
    samples: list[tuple[float, float, int]] = []  # (audio s played, wall s, rss bytes)
    with ServerProcess() as server:
        player = bench_player(fmt, server.base_url, query, speed=speed, max_buffer_s=max_buffer_s,
                              voices=("test-signal",), split="sentence" if split else "off")

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
            async with player:
                try:
                    return await player.play(text)
                finally:
                    sampler.cancel()

        m = asyncio.run(run())
    if m.error:
        raise RuntimeError(f"the soak stream failed: {m.error}")
    audio_min = m.audio_ms / 60_000.0
    warm = [s for s in samples if s[0] >= 0.05 * m.audio_ms / 1000.0]  # after the first 5% of the audio
    rss = [s[2] / 2**20 for s in warm] or [0.0]
    slope = _slope([(s[0] / 3600.0, s[2] / 2**20) for s in warm])  # MB per hour of audio
    ring_mb = max_buffer_s * 48_000 * 4 / 2**20
    how = f"one reply asked for in {m.fragments} fragments" if split else "one reply"
    report = Report(f"Memory soak: {audio_min:.0f} min of {fmt} in {how}, virtual sink at {speed:g}x real time",
                    machine_description())
    report.rows = [
        ("resident memory after warm-up: first / max / last", f"{rss[0]:.1f} / {max(rss):.1f} / {rss[-1]:.1f} MB",
         f"sampled every 0.5 s, {len(warm)} samples after the first 5% of the audio"),
        ("growth", f"{max(rss) - rss[0]:+.1f} MB over {audio_min:.0f} min; trend {slope:+.2f} MB per hour of audio",
         f"the ring buffer itself: {ring_mb:.2f} MB (max buffer {max_buffer_s:g} s at 48 kHz float32)"),
        ("for comparison: buffered playback", f"{m.audio_ms / 1000 * 48_000 * 4 / 2**20:.0f} MB",
         "the decoded reply held whole (computed, not run)"),
        ("the stream", f"{m.underruns} underruns, {m.clock_late + m.device_underflows} late wake-ups, "
         f"{m.bytes / 2**20:.1f} MB received", f"wall {samples[-1][1] if samples else 0:.0f} s"),
    ]
    report.data = {"suite": "soak", "format": fmt, "speed": speed, "machine": report.machine, "split": split,
                   "fragments": m.fragments,
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


def run(o: BenchOptions, progress: Progress) -> Report:
    minutes = o.minutes if o.minutes is not None else (3.0 if o.quick else 60.0)
    speed = o.speed if o.speed is not None else (20.0 if o.quick else 30.0)
    if minutes <= 0 or not 1 <= speed <= 200:
        raise BenchError("--minutes must be more than 0 and --speed from 1 to 200")
    split = parse_list(o.settings or "off", ("off", "sentence"), "soak setting")
    if len(split) != 1:
        raise BenchError("soak takes one setting: off (one request) or sentence (a fragment at a time)")
    return bench_soak(minutes, speed, progress, split=split[0] == "sentence")
