"""`bench chunks`: TTFA and underruns by VOICEMODE_STREAM_CHUNK_SIZE."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from ..engine.figures.metrics import PlayMetrics, spread
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from .adaptive import ADAPTIVE_TEXT
from .harness import Progress, Report, ServerProcess, bench_options, interleaved, machine_description, med
from .suites import BenchOptions

CHUNK_SIZES = (512, 1024, 4096, 16384, 65536)


def bench_chunks(plays: int, progress: Progress, text: str = ADAPTIVE_TEXT,
                 network: str = "wifi") -> Report:
    """Does the chunk size matter? This engine hands every network read on at once, cut into pieces of
    at most the chunk size, so the size only bounds how much is decoded in one step."""
    rows: dict[str, dict[int, list[PlayMetrics]]] = {fmt: {c: [] for c in CHUNK_SIZES} for fmt in ("pcm", "mp3")}
    with ServerProcess() as server:
        async def all_runs() -> None:
            for fmt in rows:
                async with AsyncExitStack() as stack:
                    players = {c: await stack.enter_async_context(StreamPlayer(
                        bench_options(sink="virtual", network=network, network_seed=3, audio_format=fmt, chunk_size=c,
                                      adaptive=False, playout="fixed"),  # TTFA is the buffer's wait here
                        base_url=server.base_url, sink_factory=sink_factory("virtual"), extra_query={"pace": "0.9"}))
                        for c in CHUNK_SIZES}
                    def what(c: int, i: int, fmt: str = fmt) -> str:
                        return f"{fmt}, chunk {c}: play {i + 1}/{plays}"

                    rows[fmt] = await interleaved(players, plays, text, progress, what)

        asyncio.run(all_runs())
    report = Report(f"Chunk size: {plays} plays each, {network}, server at 1.1x real time, fixed playout, "
                    "150 ms buffer",
                    machine_description())
    data: dict[str, dict[int, dict[str, float]]] = {}
    for fmt, by_size in rows.items():
        data[fmt] = {}
        for c, ms in by_size.items():
            d = {"ttfa_ms": med([m.ttfa_ms or 0.0 for m in ms]),
                 **{f"ttfa_{k}_ms": v or 0.0 for k, v in spread([m.ttfa_ms or 0.0 for m in ms]).items() if k != "p50"},
                 "underrun_ms": sum(m.underrun_ms for m in ms), "underruns": sum(m.underruns for m in ms),
                 "chunks": med([float(m.chunks) for m in ms]), "decode_ms_p95": med(
                     [m.decode_ms_p95 or 0.0 for m in ms])}
            data[fmt][c] = d
            report.rows.append((f"{fmt}, chunk {c} B", f"TTFA P50 {d['ttfa_ms']:.0f} ms (IQR {d['ttfa_iqr_ms']:.0f}, "
                                f"P90 {d['ttfa_p90_ms']:.0f}), {d['underruns']:.0f} underruns "
                                f"({d['underrun_ms']:.0f} ms), {d['chunks']:.0f} pieces per play",
                                f"decode p95 {d['decode_ms_p95']:.2f} ms"))
    report.data = {"suite": "chunks", "plays": plays, "network": network, "machine": report.machine,
                   "results": {f: {str(c): v for c, v in d.items()} for f, d in data.items()}}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_chunks(o.plays_or(10, 3), progress, o.text or ADAPTIVE_TEXT)
