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
import time
from contextlib import AsyncExitStack
from typing import Any

from ..engine.figures.metrics import PlayMetrics, median, percentile, spread
from .harness import Progress, Report, ServerProcess, bench_player, machine_description, process_cpu_s
from .suites import BenchError, BenchOptions

STRESS_TEXT = ("Many streams at once: each one downloads, decodes and plays its own reply, "
               "and none of them may starve the others.")
def bench_stress(counts: tuple[int, ...], progress: Progress, text: str = STRESS_TEXT,
                 fmt: str = "mp3") -> Report:
    rows: list[dict[str, Any]] = []
    with ServerProcess() as server:
        assert server.proc is not None
        for n in counts:
            progress(f"{n} streams at once")

            async def together(n: int = n) -> tuple[list[PlayMetrics], float, float]:
                async with AsyncExitStack() as stack:
                    players = [await stack.enter_async_context(bench_player(fmt, server.base_url, {"pace": "0.2"}))
                               for _ in range(n)]
                    cpu0, wall0 = time.process_time(), time.perf_counter()
                    results = await asyncio.gather(*(p.play(text) for p in players))
                    return list(results), time.process_time() - cpu0, time.perf_counter() - wall0

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
                "ttfa_ms": median(ttfa), "ttfa_p95_ms": percentile(ttfa, 95),
                **{f"ttfa_{k}_ms": v for k, v in spread(ttfa).items() if k != "p50"},
                "underruns": sum(m.underruns for m in ms), "streams_with_underruns": sum(1 for m in ms if m.underruns),
                "underrun_ms": sum(m.underrun_ms for m in ms),
                "device_underflows": sum(m.device_underflows + m.clock_late for m in ms),  # late, either way
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
            f"server {r['server_cpu_pct']:.0f}%; TTFA P50 {r['ttfa_ms'] or 0:.0f} ms (IQR {r['ttfa_iqr_ms'] or 0:.0f}, "
            f"P90 {r['ttfa_p90_ms'] or 0:.0f}, p95 {r['ttfa_p95_ms'] or 0:.0f})"))
    report.rows.append(("where it stops keeping up", "not within the counts tried" if first_bad is None
                        else f"at {first_bad} streams", f"counts tried: {', '.join(map(str, counts))}"))
    report.data = {"suite": "stress", "format": fmt, "machine": report.machine, "rows": rows,
                   "first_starving": first_bad}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    spec = o.streams or ("1,4" if o.quick else "1,8,16,32")
    try:
        counts = tuple(int(x) for x in spec.split(",") if x.strip())
    except ValueError:
        raise BenchError(f"--streams wants whole numbers, comma-separated, not {spec!r}") from None
    if not counts or min(counts) < 1 or max(counts) > 128:
        raise BenchError("--streams: each count must be from 1 to 128")
    return bench_stress(counts, progress, **({"text": o.text} if o.text else {}))
