"""`bench formats`: every response format through the same player, server and text."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from ..engine.decoding.formats import FORMATS as FORMAT_ROWS
from ..engine.decoding.formats import NAMES
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from .harness import BENCH_TEXT, Progress, Report, Run, ServerProcess, bench_options, machine_description, med
from .suites import BenchOptions

FORMATS = NAMES
FRAME_MS = {name: f.unit_ms for name, f in FORMAT_ROWS.items()}


def decode_speed(fmt: str, body: bytes, piece: int = 1024, repeats: int = 3) -> tuple[float, float]:
    """(times real time, audio seconds) for decoding `body` the way the player does, in `piece`-byte reads."""
    from ..engine.decoding.decoders import StreamDecoder

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


def client_share(runs: list[Run]) -> list[float]:
    """From the first byte to the first sound, per play: the part of TTFA the client controls."""
    return [r.metrics.ttfa_ms - r.metrics.first_byte_ms for r in runs
            if r.metrics.ttfa_ms is not None and r.metrics.first_byte_ms is not None]


def bench_formats(plays: int, sink_kind: str, progress: Progress, text: str = BENCH_TEXT) -> Report:
    import httpx2

    base = bench_options(sink=sink_kind)
    runs: dict[str, list[Run]] = {fmt: [] for fmt in FORMATS}
    bodies: dict[str, bytes] = {}
    with ServerProcess() as server:
        for fmt in FORMATS:
            progress(f"downloading {fmt} for the decode-speed test")
            with httpx2.Client(timeout=60) as http:
                r = http.post(server.base_url + "/audio/speech", params={"pace": "0", "ttfb_ms": "0"},
                                json={"model": "tts-1", "voice": "alloy", "input": text, "response_format": fmt})
                r.raise_for_status()
                bodies[fmt] = r.content

        async def all_runs() -> None:
            async with StreamPlayer(base, base_url=server.base_url, sink_factory=sink_factory(sink_kind)) as player:
                for fmt in FORMATS:  # warm-up: imports, codecs, the connection
                    await player.play(text, fmt=fmt)
                for i in range(plays):  # interleaved, so drift on the machine hits every format alike
                    for fmt in FORMATS:
                        progress(f"round {i + 1}/{plays}: {fmt}")
                        cpu0, wall0 = time.process_time(), time.perf_counter()
                        m = await player.play(text, fmt=fmt)
                        runs[fmt].append(Run(fmt, m, time.process_time() - cpu0, time.perf_counter() - wall0))

        asyncio.run(all_runs())
    failed = [r for rs in runs.values() for r in rs if r.metrics.error]
    if failed:
        raise RuntimeError(f"{len(failed)} play(s) failed: {failed[0].metrics.error}")
    progress("decode speed")
    speed = {fmt: decode_speed(fmt, bodies[fmt]) for fmt in FORMATS}

    def figure(fmt: str, key: str) -> float:
        values = [getattr(r.metrics, key) for r in runs[fmt] if getattr(r.metrics, key) is not None]
        return med(values)

    pcm_ttfa = figure("pcm", "ttfa_ms")
    pcm_client = med(client_share(runs["pcm"]))
    pcm_cpu = med([100.0 * r.cpu_s / r.wall_s for r in runs["pcm"]])
    report = Report(f"Formats: {plays} plays each, {sink_kind} sink, initial buffer {base.buffer_ms} ms",
                    machine_description())
    report.rows = []
    table: dict[str, dict[str, Any]] = {}
    for fmt in FORMATS:
        ttfa = figure(fmt, "ttfa_ms")
        cpu = med([100.0 * r.cpu_s / r.wall_s for r in runs[fmt]])
        x, audio_s = speed[fmt]
        frame_ms = FRAME_MS[fmt]
        if fmt == "opus":
            frame_ms = figure(fmt, "page_interval_ms")
        delta = ttfa - pcm_ttfa
        # the client's share: from the first byte to the first sample heard (the server's encoder adds
        # its own look-ahead before the first byte, which no client can win back)
        first_byte = figure(fmt, "first_byte_ms")
        client = med(client_share(runs[fmt]))
        client_delta = client - pcm_client
        table[fmt] = {"ttfa_ms": ttfa, "ttfa_minus_pcm_ms": delta, "frame_ms": frame_ms,
                      "first_byte_ms": first_byte, "first_byte_to_ttfa_ms": client,
                      "first_byte_to_ttfa_minus_pcm_ms": client_delta,
                      "first_audio_bytes": figure(fmt, "first_audio_bytes"), "bytes": figure(fmt, "bytes"),
                      "decode_x_realtime": x, "decode_pct_of_core": 100.0 / x, "cpu_pct": cpu,
                      "cpu_above_pcm_pct": cpu - pcm_cpu, "decode_ms_p95": figure(fmt, "decode_ms_p95"),
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


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_formats(o.plays_or(10, 3), o.sink, progress, o.text or BENCH_TEXT)
