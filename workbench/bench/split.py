"""`bench split`: sentence pipelining against a server that does not stream.

The embedded server in its buffered-only mode (it synthesizes the whole reply at `--pace`, 3x real time
by default, then sends it with a Content-Length), or any endpoint given with `--base-url`. For a
5-sentence reply and a 30 s one, each split setting plays in turn on a recording virtual sink at real
time. What a listener gets is read from the recordings: the first sound, the audio's length, and every
pause, matched pause for pause against the unsplit reply's (the same text gives the same pauses, so
the n-th pause of one is the n-th of the other; a join that added silence shows as a longer pause).
"""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import numpy as np

from ..engine.figures.metrics import PlayMetrics, spread
from ..engine.figures.onset import SOUND_THRESHOLD
from ..engine.output.sinkfactory import sink_factory
from ..engine.output.sinks import Sink
from ..engine.player import StreamPlayer
from ..engine.text.split import SPLITS
from .harness import Progress, Report, ServerProcess, bench_options, machine_description, med
from .suites import BenchError, BenchOptions, parse_list

FIVE_SENTENCES = ("I looked at the failing test. The fixture opens the database before the migration has run, so "
                  "the table is missing. Moving the migration into the session fixture fixes it. I have made that "
                  "change and the whole suite passes now. Do you want me to commit it?")
LONG_REPLY = ("Here is what I found after reading the logs from last night. The import job started on time, but "
              "it waited for eleven minutes on a lock that the backup had taken, and by the time it ran the "
              "morning reports had already been built from yesterday's data. Nothing was lost, and the numbers "
              "are right now. To stop it happening again, I would move the backup to an hour earlier, or let the "
              "import take a snapshot instead of a lock. The second is a bigger change, so I suggest the first "
              "for now. Shall I open a pull request?")
PAUSE_MIN_S = 0.1  # a silence this long inside the speech is a pause (a stop consonant's closure is shorter)
DEFAULT_PACE = 0.33  # 3x real time


def pauses_s(samples: np.ndarray, rate: int) -> list[float]:
    """The silences (below -50 dBFS) of at least `PAUSE_MIN_S` between the first and the last sound."""
    loud = np.flatnonzero(np.abs(samples) >= SOUND_THRESHOLD)
    if len(loud) < 2:
        return []
    gaps = np.diff(loud)
    return [float(g - 1) / rate for g in gaps if g - 1 >= PAUSE_MIN_S * rate]


def sound_s(samples: np.ndarray, rate: int) -> float:
    """From the first sound to the last: the speech as heard, without the silence around it."""
    loud = np.flatnonzero(np.abs(samples) >= SOUND_THRESHOLD)
    return float(loud[-1] - loud[0] + 1) / rate if len(loud) else 0.0


def bench_split(plays: int, progress: Progress, *, texts: dict[str, str], splits: list[str], pace: float,
                base_url: str | None = None) -> Report:
    results: dict[str, dict[str, list[tuple[PlayMetrics, np.ndarray, int]]]] = {
        name: {s: [] for s in splits} for name in texts}

    async def all_runs(url: str, query: dict[str, str] | None) -> None:
        for name, text in texts.items():
            async with AsyncExitStack() as stack:
                made: dict[str, list[Sink]] = {s: [] for s in splits}
                players = {s: await stack.enter_async_context(StreamPlayer(
                    bench_options(sink="virtual", split=s), base_url=url, extra_query=query,
                    sink_factory=sink_factory("virtual", record=True, made=made[s]))) for s in splits}
                for i in range(plays):  # interleaved: drift on the machine hits every setting alike
                    for s, player in players.items():
                        progress(f"{name}: play {i + 1}/{plays}, split {s}")
                        m = await player.play(text)
                        if m.error:
                            raise RuntimeError(f"{name}, split {s}: {m.error}")
                        sink = made[s][-1]
                        assert sink.recorder is not None
                        results[name][s].append((m, sink.recorder.samples(), sink.rate))

    if base_url:
        asyncio.run(all_runs(base_url, None))
    else:
        with ServerProcess() as server:
            asyncio.run(all_runs(server.base_url, {"buffered": "1", "pace": f"{pace:g}", "ttfb_ms": "150"}))

    where = base_url or f"the embedded server, buffered-only at {1 / pace:.2g}x real time"
    report = Report(f"Sentence pipelining: {plays} plays per reply and setting, {where}, virtual sink at real time",
                    machine_description())
    data: dict[str, Any] = {}
    base = "off" if "off" in splits else splits[0]
    for name, by_split in results.items():
        figures: dict[str, dict[str, Any]] = {}
        for s, runs in by_split.items():
            metrics = [m for m, _, _ in runs]
            firsts = [m.first_sound_ms or 0.0 for m in metrics]
            figures[s] = {
                "first_sound_ms": med(firsts),
                **{f"first_sound_{k}_ms": v or 0.0 for k, v in spread(firsts).items() if k != "p50"},
                "ttfa_ms": med([m.ttfa_ms or 0.0 for m in metrics]),
                "fragments": med([float(m.fragments) for m in metrics]),
                "sound_s": med([sound_s(rec, rate) for _, rec, rate in runs]),
                "audio_s": med([m.audio_ms / 1000.0 for m in metrics]),
                "underrun_ms": sum(m.underrun_ms for m in metrics),
                "join_wait_ms": max((m.join_wait_ms or 0.0) for m in metrics),
                "pauses_s": [pauses_s(rec, rate) for _, rec, rate in runs],
            }
        ref = figures[base]
        reply_s = ref["sound_s"]
        for s in splits:
            f = figures[s]
            if s == base:
                continue
            ratio = ref["first_sound_ms"] / f["first_sound_ms"] if f["first_sound_ms"] else float("nan")
            f["sooner_x"] = ratio
            f["length_diff_pct"] = 100.0 * (f["sound_s"] - reply_s) / reply_s if reply_s else float("nan")
            added, matched = _added_pause_ms(ref["pauses_s"], f["pauses_s"])
            f["added_pause_ms"], f["pauses_matched"] = added, matched
            report.rows += [
                (f"{name} ({reply_s:.1f} s): first sound P50, split {base} / {s}",
                 f"{ref['first_sound_ms']:.0f} / {f['first_sound_ms']:.0f} ms ({ratio:.1f}x sooner)",
                 f"IQR {ref['first_sound_iqr_ms']:.0f} / {f['first_sound_iqr_ms']:.0f} ms; "
                 f"{f['fragments']:.0f} fragments"),
                (f"{name}: speech length, split {s} against {base}", f"{f['length_diff_pct']:+.2f} %",
                 "first sound to last, from the recordings"),
                (f"{name}: silence added at a join, split {s}",
                 f"{added:.0f} ms at most" if matched else "pauses did not match one for one",
                 f"each pause against the same pause unsplit; waits at joins {f['join_wait_ms']:.0f} ms, "
                 f"underruns {f['underrun_ms']:.0f} ms"),
            ]
        data[name] = {s: {k: v for k, v in f.items()} for s, f in figures.items()}
    report.data = {"suite": "split", "plays": plays, "pace": pace, "base_url": base_url, "machine": report.machine,
                   "texts": texts, "results": data,
                   "runs": {n: {s: [m.to_dict() for m, _, _ in runs] for s, runs in v.items()}
                            for n, v in results.items()}}
    return report


def _added_pause_ms(reference: list[list[float]], other: list[list[float]]) -> tuple[float, bool]:
    """The largest amount by which a pause was longer than the same pause in the reference, over all
    plays (each against the reference's median for that pause); matched is False when the two do not
    have the same number of pauses (a join that added one, or lost one)."""
    if not reference or not other:
        return float("nan"), False
    count = len(reference[0])
    if any(len(p) != count for p in reference + other):
        return float("nan"), False
    typical = [float(np.median([p[i] for p in reference])) for i in range(count)]
    added = max((p[i] - typical[i] for p in other for i in range(count)), default=0.0)
    return max(added, 0.0) * 1000.0, True


def run(o: BenchOptions, progress: Progress) -> Report:
    splits = parse_list(o.settings, SPLITS, "split setting") if o.settings else ["off", "sentence"]
    if o.pace is not None and o.pace <= 0:
        raise BenchError("--pace must be more than 0")
    if o.text:
        texts = {"your text": o.text}
    elif o.quick:
        texts = {"5 sentences": FIVE_SENTENCES}
    else:
        texts = {"5 sentences": FIVE_SENTENCES, "30 s reply": LONG_REPLY}
    return bench_split(o.plays_or(3, 1), progress, texts=texts, splits=splits,
                       pace=o.pace if o.pace is not None else DEFAULT_PACE, base_url=o.base_url)
