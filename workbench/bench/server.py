"""`bench server`: the embedded server's encode speed, first byte per format and concurrent streams."""

from __future__ import annotations

import asyncio
import time

from .harness import BENCH_TEXT, Progress, Report, ServerProcess, machine_description, med
from .suites import BenchOptions


def bench_server(progress: Progress, *, quick: bool = False) -> Report:
    """The embedded server: encode speed per format, first byte per format, concurrent streams."""
    import httpx2
    import numpy as np

    from ..server.encoders import CONTENT_TYPES, make_encoder
    from ..server.speech import OUTPUT_RATE, synthesize

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
                first[fmt] = (med([r[0] for r in runs]), int(med([r[1] for r in runs])))

        async def crowd(n: int, text: str, audio_s: float) -> tuple[float, float]:
            results = await asyncio.gather(*[one("mp3", "alloy", text, pace="1.0") for _ in range(n)])
            slowest = max(r[2] for r in results)
            return slowest / audio_s, med([r[0] for r in results])

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


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_server(progress, quick=o.quick)
