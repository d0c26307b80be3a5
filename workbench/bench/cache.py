"""`bench cache`: a voice assistant's short phrases, said again and again, from the reply cache against
from the endpoint, in the same run.

Each round plays every phrase twice over, interleaved: once by a player with a cache (a fresh folder for
the run, so its first round asks the endpoint and stores) and once by one without. The figures are what
the listener waits for (TTFA and first sound, from `play()`), the hit rate, and what the cache holds.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from ..engine.fetching.cache import ReplyCache
from ..engine.figures.metrics import PlayMetrics
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from .harness import Progress, Report, ServerProcess, bench_options, machine_description, med
from .suites import BenchOptions

PHRASES = ("Done.", "Let me check that.", "Tests pass.", "On it.", "I found the problem.",
           "Anything else?")


def _ms(runs: list[PlayMetrics], field: str) -> list[float]:
    return [v for m in runs if (v := getattr(m, field)) is not None]


def bench_cache(plays: int, sink: str, progress: Progress, phrases: tuple[str, ...] = PHRASES) -> Report:
    if sink not in ("virtual", "device"):
        sink = "virtual"
    s = bench_options(sink=sink)
    hits: list[PlayMetrics] = []
    misses: list[PlayMetrics] = []
    network: list[PlayMetrics] = []
    with ServerProcess() as server, tempfile.TemporaryDirectory(prefix="bench-cache-") as folder:
        cache = ReplyCache(Path(folder))

        async def rounds() -> None:
            async with StreamPlayer(s, base_url=server.base_url, sink_factory=sink_factory(sink),
                                    cache=cache) as cached, \
                    StreamPlayer(s, base_url=server.base_url, sink_factory=sink_factory(sink)) as plain:
                for r in range(plays):
                    for i, phrase in enumerate(phrases):
                        progress(f"round {r + 1}/{plays}: phrase {i + 1}/{len(phrases)}")
                        m = await cached.play(phrase)
                        if m.error:
                            raise RuntimeError(f"a play failed: {m.error}")
                        (hits if m.cache == "hit" else misses).append(m)
                        m = await plain.play(phrase)
                        if m.error:
                            raise RuntimeError(f"a play failed: {m.error}")
                        network.append(m)

        asyncio.run(rounds())
        entries, size = cache.stats()
    played = len(hits) + len(misses)
    ttfa_hit, ttfa_net = med(_ms(hits, "ttfa_ms")), med(_ms(network, "ttfa_ms"))
    worst_hit = max(_ms(hits, "ttfa_ms"), default=float("nan"))
    sound_hit, sound_net = med(_ms(hits, "first_sound_ms")), med(_ms(network, "first_sound_ms"))
    report = Report(f"Reply cache: {len(phrases)} short phrases, {plays} rounds, {sink} sink, the embedded server "
                    "as a local neural TTS (150 ms to first byte, 5x real time)", machine_description())
    report.rows = [
        ("hit rate", f"{len(hits)}/{played} ({100.0 * len(hits) / max(played, 1):.0f} %)",
         "the first round asks the endpoint and stores; the rest come from the cache"),
        ("TTFA from the cache, median (max)", f"{ttfa_hit:.0f} ms ({worst_hit:.0f} ms)",
         "`play()` to the first sample on the sink, no request"),
        ("TTFA from the endpoint, median", f"{ttfa_net:.0f} ms",
         "the same phrases, a player without a cache, interleaved"),
        ("TTFA, endpoint / cache", f"{ttfa_net / ttfa_hit:.1f}x" if ttfa_hit else "-", "same run"),
        ("first sound, cache / endpoint, median", f"{sound_hit:.0f} / {sound_net:.0f} ms",
         "the first sample above -50 dBFS"),
        ("underruns from the cache", str(sum(m.underruns for m in hits)), ""),
        ("the cache after the run", f"{entries} replies, {size / 1000:.0f} kB", "16-bit mono at the output rate"),
    ]
    report.data = {"suite": "cache", "plays": plays, "sink": sink, "machine": report.machine, "phrases": list(phrases),
                   "hits": len(hits), "misses": len(misses), "ttfa_hit_ms": _ms(hits, "ttfa_ms"),
                   "ttfa_miss_ms": _ms(misses, "ttfa_ms"), "ttfa_network_ms": _ms(network, "ttfa_ms"),
                   "first_sound_hit_ms": _ms(hits, "first_sound_ms"),
                   "first_sound_network_ms": _ms(network, "first_sound_ms"), "entries": entries, "bytes": size}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    return bench_cache(o.plays_or(5, 2), o.sink, progress, PHRASES[:3] if o.quick else PHRASES)
