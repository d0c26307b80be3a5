"""`bench adaptive`: fixed 150 ms against the adaptive target on simulated networks."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

from ..engine.figures.metrics import PlayMetrics, percentile, spread
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from .harness import Progress, Report, ServerProcess, bench_options, interleaved, machine_description, med
from .suites import BenchOptions, parse_list

ADAPTIVE_TEXT = "Streaming speech has to start quickly and keep going when the network stalls."


def bench_adaptive(plays: int, progress: Progress, text: str = ADAPTIVE_TEXT,
                   networks: tuple[str, ...] = ("lan", "wifi", "4g", "flaky")) -> Report:
    results: dict[str, dict[str, list[PlayMetrics]]] = {n: {"fixed": [], "adaptive": []} for n in networks}
    with ServerProcess() as server:
        async def all_runs() -> None:
            for network in networks:
                async with AsyncExitStack() as stack:
                    players = {mode: await stack.enter_async_context(StreamPlayer(
                        bench_options(sink="virtual", network=network, network_seed=7, buffer_ms=150,
                                      max_buffer_s=4.0, adaptive=mode == "adaptive", playout="fixed"),
                        base_url=server.base_url, sink_factory=sink_factory("virtual"), extra_query={"pace": "0.9"}))
                        for mode in ("fixed", "adaptive")}
                    def what(mode: str, i: int, network: str = network) -> str:
                        return f"{network}: play {i + 1}/{plays}, {mode}"

                    # interleaved: both see the same run of the network's dice
                    results[network] = await interleaved(players, plays, text, progress, what)

        asyncio.run(all_runs())

    reply_s = med([m.audio_ms / 1000.0 for ms in results.values() for m in ms["fixed"]])
    report = Report(f"Adaptive buffering: {plays} plays per network and mode, {reply_s:.1f} s reply, server at 1.1x "
                    "real time, fixed playout", machine_description())
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
                "ttfa_ms": med([m.ttfa_ms or 0.0 for m in ms]),
                "ttfa_p95_ms": percentile([m.ttfa_ms or 0.0 for m in ms], 95) or 0.0,
                **{f"ttfa_{k}_ms": v or 0.0 for k, v in spread([m.ttfa_ms or 0.0 for m in ms]).items() if k != "p50"},
                "first_sound_ms": med([m.first_sound_ms or 0.0 for m in ms]),
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
             + ("" if f["underrun_ms"] == 0
                else f" ({'none left' if a['underrun_ms'] == 0 else f'{ratio:.1f}x fewer'})"),
             "silence inserted mid-reply, all plays"),
            (f"{network}: TTFA P50 (IQR; P90), fixed / adaptive",
             f"{f['ttfa_ms']:.0f} ({f['ttfa_iqr_ms']:.0f}; {f['ttfa_p90_ms']:.0f}) / {a['ttfa_ms']:.0f} "
             f"({a['ttfa_iqr_ms']:.0f}; {a['ttfa_p90_ms']:.0f}) ms "
             f"({a['ttfa_ms'] - f['ttfa_ms']:+.0f} ms)", f"adaptive learned target {a['final_target_ms']:.0f} ms"),
        ]
    report.data = {"suite": "adaptive", "plays": plays, "machine": report.machine, "networks": table,
                   "runs": {n: {mode: [m.to_dict() for m in ms] for mode, ms in v.items()}
                            for n, v in results.items()}}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    from ..engine.fetching.network import PROFILES

    networks = tuple(parse_list(o.networks, list(PROFILES), "network profile")) if o.networks else None
    return bench_adaptive(o.plays_or(10, 3), progress, o.text or ADAPTIVE_TEXT,
                          **({"networks": networks} if networks else {}))
