"""`bench quality`: what the stretching and the silences sound like, on real speech.

The embedded server (in its own process) says three replies of 12-15 s in a neural voice (Piper's
en_US-joe-medium, from the `quality` extra; espeak-ng where it is missing, and the report says so), as PCM,
paced like three servers:

- fast: 5x real time;
- nrt: 1.1x real time, each 40 ms burst up to 150 ms late, one 400 ms slow moment;
- slow: 1.05x real time, bursts up to 150 ms late, 600 ms slow moments after 4 s and every 5.5 s after.

Three players in the same run, each reply's plays interleaved: naive (no initial buffer, no adaptation:
each piece played as it comes, as a blocking-write client does), fixed 150 ms (`VOICEMODE_STREAM_BUFFER_MS`,
no adaptation) and elastic playout as it ships (its adaptive target on). Every play is a new player, so
nothing learned in one play carries into the next.
They play on the virtual sink (a real-time clock: a model of a device) with its recorder, and what it
played is judged against the reply as the server made it (`listening`): PLCMOS and DNSMOS, the silences
played where the reply speaks, and by alignment the tempo of every part of it.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import listening
from .harness import Progress, Report, ServerProcess, bench_options, machine_description
from .suites import BenchError, BenchOptions, parse_list

if TYPE_CHECKING:
    from ..engine.figures.metrics import PlayMetrics

REPLIES = (
    "I looked at the failing test first. The buffer was sized for twenty four kilohertz, but the server sends "
    "twenty two. I changed the resampler, ran the whole suite again, and all of the tests pass now. Nothing "
    "else needed to change.",
    "Here is what I found in the logs. The first request waited almost two seconds for the model to load, and "
    "every request after it started in under two hundred milliseconds. Warming the model up when the server "
    "starts should fix it for good.",
    "Sure, I can do that. I will split the long function into three smaller ones, keep the public names as "
    "they are, and add a test for the empty input case that crashed yesterday. It should only take a few "
    "minutes, and I will show you the diff.",
)
SERVERS: dict[str, dict[str, str]] = {
    "fast": {"pace": "0.2", "ttfb_ms": "150"},
    "nrt": {"pace": f"{1 / 1.1:.4f}", "ttfb_ms": "250", "lateness_ms": "150", "pause_at_s": "5", "pause_ms": "400"},
    "slow": {"pace": f"{1 / 1.05:.4f}", "ttfb_ms": "250", "lateness_ms": "150", "pause_at_s": "4",
             "pause_ms": "600", "pause_every_s": "5.5"},
}
PLAYERS: dict[str, dict[str, Any]] = {
    "naive": {"playout": "fixed", "buffer_ms": 0, "adaptive": False},
    "fixed": {"playout": "fixed", "buffer_ms": 150, "adaptive": False},
    "elastic": {"playout": "elastic", "adaptive": True},  # as it ships; a new player each play learns afresh
}
NEURAL_VOICE = "joe"
FALLBACK_VOICE = "alloy"  # espeak-ng
RATE = 24_000


@dataclass
class Judged:
    scores: listening.Scores
    tempo: listening.Tempo
    underrun_ms: float  # the engine's own figures, beside the judged ones
    stretched_pct: float
    engine_in_pauses_pct: float | None
    engine_off_tempo_pct: float | None


@dataclass
class Cell:
    server: str
    player: str
    plays: list[Judged] = field(default_factory=list)

    def median(self, read: Callable[[Judged], float | None]) -> float | None:
        values = [v for v in (read(j) for j in self.plays) if v is not None]
        return float(statistics.median(values)) if values else None


def _reference(base_url: str, text: str, voice: str) -> np.ndarray:
    """The reply as the server makes it, fetched whole and fast; this also leaves it in the server's cache,
    so every play of it gets these same samples."""
    import httpx2

    response = httpx2.post(base_url + "/audio/speech", params={"pace": "0", "ttfb_ms": "0"}, timeout=120,
                           json={"model": "tts-1", "input": text, "voice": voice, "response_format": "pcm"})
    if response.status_code != 200:
        raise RuntimeError(f"the benchmark's server answered {response.status_code}: {response.text[:200]}")
    return np.frombuffer(response.content, dtype="<i2").astype(np.float32) / 32768.0


async def _play(base_url: str, text: str, voice: str, server: str, player: str) -> tuple[PlayMetrics, np.ndarray]:
    from ..engine.output.sinkfactory import sink_factory
    from ..engine.output.sinks import Sink
    from ..engine.player import StreamPlayer

    made: list[Sink] = []
    s = bench_options(sink="virtual", audio_format="pcm", voices=(voice,), **PLAYERS[player])
    async with StreamPlayer(s, base_url=base_url, extra_query=SERVERS[server],
                            sink_factory=sink_factory("virtual", record=True, made=made)) as p:
        m = await p.play(text)
    if m.error:
        raise RuntimeError(f"{server} server, {player}: {m.error}")
    recorder = made[-1].recorder
    assert recorder is not None
    return m, recorder.samples()


def _judge(reference: np.ndarray, m: PlayMetrics, recording: np.ndarray) -> Judged:
    played = listening.sounding(recording, RATE)
    if not len(played):
        raise RuntimeError("a play was silent")
    return Judged(listening.scores(played, RATE), listening.tempo(reference, played, RATE), m.underrun_ms,
                  m.stretched_pct, m.stretch_in_pauses_pct, m.speech_off_tempo_pct)


def bench_quality(plays: int, servers: list[str], players: list[str], texts: list[str],
                  progress: Progress) -> Report:
    missing = listening.models_missing()
    if missing:
        raise BenchError(missing)
    cells: list[Cell] = []
    with ServerProcess() as server:
        import httpx2

        voices = httpx2.get(server.base_url + "/audio/voices", timeout=30).json()["voices"]
        voice = NEURAL_VOICE if NEURAL_VOICE in voices else FALLBACK_VOICE
        references = []
        for n, text in enumerate(texts):
            progress(f"reply {n + 1} of {len(texts)}: the reference, synthesized in the {voice} voice")
            references.append(listening.sounding(_reference(server.base_url, text, voice), RATE))
        clean = [listening.scores(r, RATE) for r in references]
        total = len(servers) * len(texts) * plays * len(players)
        done = 0
        for name in servers:
            row = [Cell(name, who) for who in players]
            cells += row
            for n, text in enumerate(texts):
                for _ in range(plays):
                    for cell in row:  # interleaved: drift on the machine hits every player alike
                        done += 1
                        progress(f"play {done} of {total}: {name} server, reply {n + 1}, {cell.player}")
                        m, recording = asyncio.run(_play(server.base_url, text, voice, name, cell.player))
                        cell.plays.append(_judge(references[n], m, recording))
    return _report(cells, plays, voice, clean, references)


def _f(value: float | None, digits: int = 0) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _report(cells: list[Cell], plays: int, voice: str, clean: list[listening.Scores],
            references: list[np.ndarray]) -> Report:
    seconds = ", ".join(f"{len(r) / RATE:.1f}" for r in references)
    said_by = ("Piper en_US-joe-medium" if voice == NEURAL_VOICE else
               "espeak-ng (the neural voice is not installed: pip install 'stream-workbench[quality]')")
    report = Report(f"Quality: real speech through paced servers, {len(references)} replies x {plays} plays a cell",
                    machine_description() + f"; speech by {said_by}; played on the virtual sink (a model of a "
                    "device) and judged from its recording")
    lines = ["| server | player | PLCMOS | DNSMOS OVRL | silence in speech ms | underrun ms (engine) | "
             "stretched % | speech outside 0.9-1.1x % | outside 0.95-1.05x % | slowest | added s | added in "
             "pauses % | removed in pauses % | speech slowed in the first second ms |", "|" + "---|" * 14]
    for c in cells:
        def t(attr: str, digits: int = 0, c: Cell = c) -> str:
            return _f(c.median(lambda j: getattr(j.tempo, attr)), digits)

        lines.append(
            f"| {c.server} | {c.player} | {_f(c.median(lambda j: j.scores.plcmos), 2)} | "
            f"{_f(c.median(lambda j: j.scores.dnsmos_ovrl), 2)} | {t('gap_ms')} | "
            f"{_f(c.median(lambda j: j.underrun_ms))} | {_f(c.median(lambda j: j.stretched_pct))} | "
            f"{t('speech_off_band_pct', 1)} | {t('speech_off_5_pct', 1)} | {t('slowest', 2)} | {t('added_s', 2)} | "
            f"{t('added_in_pauses_pct')} | {t('removed_in_pauses_pct')} | {t('first_second_slowed_ms')} |")
    lines += ["", f"Clean replies ({seconds} s): PLCMOS {statistics.median(s.plcmos for s in clean):.2f}, DNSMOS OVRL "
              f"{statistics.median(s.dnsmos_ovrl for s in clean):.2f}. Medians over every play of a cell. Tempo "
              "and silences come from aligning each play with its reply (log-mel frames, dynamic time warping); "
              "\"added\" is played time beyond the reply's own, over its runs of speech and of pause."]
    report.extra = "\n".join(lines) + "\n"
    report.rows = _goals(cells)
    report.data = {
        "suite": "quality", "plays": plays, "voice": voice, "machine": report.machine,
        "reply_s": [len(r) / RATE for r in references],
        "clean": [vars(s) for s in clean],
        "servers": SERVERS, "players": PLAYERS,
        "cells": [{"server": c.server, "player": c.player,
                   "plays": [{"scores": vars(j.scores), "tempo": vars(j.tempo), "underrun_ms": j.underrun_ms,
                              "stretched_pct": j.stretched_pct, "engine_in_pauses_pct": j.engine_in_pauses_pct,
                              "engine_speech_off_tempo_pct": j.engine_off_tempo_pct} for j in c.plays]}
                  for c in cells]}
    return report


def _goals(cells: list[Cell]) -> list[tuple[str, str, str]]:
    """Elastic playout against what a listener needs, each figure with the line it is held to."""
    by = {(c.server, c.player): c for c in cells}
    rows: list[tuple[str, str, str]] = []
    for server in dict.fromkeys(c.server for c in cells):
        elastic, fixed = by.get((server, "elastic")), by.get((server, "fixed"))
        if elastic is None:
            continue
        off = elastic.median(lambda j: j.tempo.speech_off_band_pct)
        pauses = elastic.median(lambda j: j.tempo.added_in_pauses_pct)
        plc = elastic.median(lambda j: j.scores.plcmos)
        first = elastic.median(lambda j: j.tempo.first_second_slowed_ms)
        rows.append((f"{server}: elastic's speech outside 0.9-1.1x", f"{_f(off, 1)} %", "at most 1 %"))
        rows.append((f"{server}: elastic's added time in pauses", f"{_f(pauses)} %", "at least 60 %"))
        rows.append((f"{server}: elastic's speech slowed in the first second", f"{_f(first)} ms",
                     "none on a server faster than real time, as all three are (the alignment's own noise is "
                     "about 10-20 ms)"))
        if fixed is not None:
            rows.append((f"{server}: PLCMOS, elastic / fixed 150 ms",
                         f"{_f(plc, 2)} / {_f(fixed.median(lambda j: j.scores.plcmos), 2)}",
                         "elastic at least fixed's" + (", and at least 3.95" if server == "slow" else "")))
            rows.append((f"{server}: DNSMOS OVRL, elastic / fixed 150 ms",
                         f"{_f(elastic.median(lambda j: j.scores.dnsmos_ovrl), 2)} / "
                         f"{_f(fixed.median(lambda j: j.scores.dnsmos_ovrl), 2)}", "elastic at least fixed's"))
    return rows


def run(o: BenchOptions, progress: Progress) -> Report:
    if o.sink != "virtual":
        raise BenchError("bench quality plays on the virtual sink and judges its recording; --sink does not apply")
    servers = parse_list(o.settings or ("slow" if o.quick else ",".join(SERVERS)), tuple(SERVERS), "server")
    players = parse_list(o.players or ",".join(PLAYERS), tuple(PLAYERS), "player")
    texts = [o.text] if o.text else list(REPLIES[:1] if o.quick else REPLIES)
    return bench_quality(o.plays_or(1, 1), servers, players, texts, progress)
