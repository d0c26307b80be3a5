"""`bench heard`: the first sound and the silences where the listener is, recorded from the device.

Each play goes through the real output device while its monitor (PulseAudio's or PipeWire's) is recorded,
as `workbench verify` does; the figures are read from the recording, never from the engine. Three players
in the same run, on the same paced servers (the embedded server in its own process, its test knobs):

- naive: what voicemode and most clients do: a sounddevice stream opened and started before the request,
  each piece decoded as it comes and written with a blocking write (this engine's decoders: the start is
  what is measured, not a decoder);
- fixed: this engine with fixed playout, waiting for `VOICEMODE_STREAM_BUFFER_MS` (150 ms) first;
- elastic: this engine as it ships;
- early (only when asked, `--players`): elastic playout with `WORKBENCH_ELASTIC_START=early`.

First byte to first sound: from the first body byte of the reply (each player's own) to the first
recorded sample at -50 dBFS. Gaps: silences of 10 ms or more inside the test tone (which has none).
The engine's own first-sound figure is set beside the recording's, for the players that have one.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.figures.onset import SOUND_THRESHOLD
from ..engine.settings import Settings
from .harness import Progress, Report, ServerProcess, bench_options, machine_description
from .suites import BenchError, BenchOptions, parse_list

TEXT = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty")  # the test tone for ~5.5 s: any silence inside it is a gap
# the servers, as the embedded server's test knobs (a query string): first byte after ttfb_ms, then audio
# at `pace` wall seconds per second of it, in bursts 40 ms apart, each up to `lateness_ms` late
SERVERS: dict[str, dict[str, str]] = {
    "fast": {"voice": "test-signal", "pace": "0.2", "ttfb_ms": "150"},
    "jittery": {"voice": "test-signal", "pace": "0.5", "ttfb_ms": "150", "lateness_ms": "80"},
    "slow": {"voice": "test-signal", "pace": "0.9", "ttfb_ms": "400", "lateness_ms": "150", "pause_at_s": "3",
             "pause_ms": "400"},
}
PLAYERS = ("naive", "fixed", "elastic", "early")  # early: elastic with WORKBENCH_ELASTIC_START=early
DEFAULT_PLAYERS = ("naive", "fixed", "elastic")
FORMATS = ("pcm", "mp3", "opus")
RATE = 24_000
SETTLE_S = 0.3  # before each play: the device and the monitor quiet
TAIL_S = 0.4  # after each play, for its last samples to reach the monitor


@dataclass
class Heard:
    first_sound_ms: float | None  # first byte to first sound, recorded
    gap_ms: float  # silences inside the reply, recorded
    engine_ms: float | None = None  # first byte to first sound, as the engine says


@dataclass
class Cell:
    server: str
    fmt: str
    player: str
    plays: list[Heard] = field(default_factory=list)

    def median(self, what: str) -> float | None:
        values = [getattr(h, what) for h in self.plays if getattr(h, what) is not None]
        return statistics.median(values) if values else None


async def _naive(url: str, fmt: str, query: dict[str, str], sd: Any) -> tuple[float, float | None]:
    """Blocking writes as the pieces come (on the event loop, as voicemode writes); (first byte, None)."""
    import httpx2

    from ..engine.decoding.decoders import StreamDecoder

    stream = sd.OutputStream(samplerate=RATE, channels=1, dtype="float32")
    stream.start()
    decoder = StreamDecoder(fmt, pcm_rate=RATE, out_rate=RATE)
    first = 0.0
    try:
        async with httpx2.AsyncClient(timeout=60) as client, client.stream(
                "POST", url + "/audio/speech", params=query, json={
                    "model": "tts-1", "input": TEXT, "voice": "alloy", "response_format": fmt}) as response:
            if response.status_code != 200:
                raise RuntimeError(f"the server answered {response.status_code} to the naive player")
            async for piece in response.aiter_raw():
                if not first:
                    first = time.perf_counter()
                samples = decoder.feed(piece)
                if len(samples):
                    stream.write(samples)  # blocks while the device's buffer is full
        tail = decoder.flush()
        if len(tail):
            stream.write(tail)
        stream.write(np.zeros(RATE // 5, dtype=np.float32))  # stopped right after its last sample, it loses it
    finally:
        stream.stop()
        stream.close()
        decoder.close()
    return first, None


def engine_settings(fmt: str, player: str) -> Settings:
    """The settings this engine plays with as `player` (fixed, elastic or early) on the device."""
    early = player == "early"
    return bench_options(audio_format=fmt, sink="device", playout="elastic" if early else player, adaptive=False,
                         elastic_start="early" if early else "steady")


async def _engine(url: str, fmt: str, query: dict[str, str], playout: str) -> tuple[float, float | None]:
    """This engine on the device; (first byte, its own first sound), perf_counter seconds."""
    from ..engine.output.sinkfactory import sink_factory
    from ..engine.player import StreamPlayer

    s = engine_settings(fmt, playout)
    async with StreamPlayer(s, base_url=url, extra_query=query, sink_factory=sink_factory("device")) as player:
        m = await player.play(TEXT)
        if m.error:
            raise RuntimeError(f"{playout} {fmt}: {m.error}")
        if player.sink is None or player.sink.kind != "device":
            raise RuntimeError("the device sink was not used")
        source, t0 = player.source, player.request_started
        assert source is not None and source.first_byte_at is not None and t0 is not None
        sound = t0 + m.first_sound_ms / 1000.0 if m.first_sound_ms is not None else None
        return source.first_byte_at, sound


def _judge(data: np.ndarray, at: np.ndarray, first_byte: float, engine_sound: float | None) -> Heard:
    from ..usecases.verify import GAP_MS, gaps_ms, onset

    first = onset(data, at, SOUND_THRESHOLD, first_byte - 0.5)
    if first is None:
        return Heard(None, 0.0)
    engine_ms = (engine_sound - first_byte) * 1000.0 if engine_sound is not None else None
    gaps = gaps_ms(data, RATE, first, SOUND_THRESHOLD, GAP_MS)
    return Heard((float(at[first]) - first_byte) * 1000.0, sum(gaps), engine_ms)


def bench_heard(plays: int, formats: list[str], servers: list[str], players: list[str],
                progress: Progress) -> Report:
    from ..engine.output.sinks import SinkError, import_sounddevice
    from ..usecases.verify import Recorder, VerifyError, record_the_monitor

    try:
        monitor = record_the_monitor("bench heard records it; on a machine without a sound card, start a "
                                     "null sink (scripts/pulse.sh start)")
        sd = import_sounddevice()
        recorder = Recorder(sd, RATE, None)
    except (SinkError, VerifyError) as exc:
        raise BenchError(str(exc)) from None
    cells: list[Cell] = []
    recorder.stream.start()
    try:
        with ServerProcess() as server:
            for name in servers:
                for fmt in formats:
                    for who in players:
                        cells.append(Cell(name, fmt, who))
                    for i in range(plays):  # interleaved: drift on the machine hits every player alike
                        for cell in cells[-len(players):]:
                            progress(f"{name} server, {fmt}, {cell.player}: play {i + 1} of {plays}")
                            time.sleep(SETTLE_S)
                            recorder.take()  # forget what came before
                            query = SERVERS[name]
                            if cell.player == "naive":
                                play = _naive(server.base_url, fmt, query, sd)
                            else:
                                play = _engine(server.base_url, fmt, query, cell.player)
                            first_byte, engine_sound = asyncio.run(play)
                            time.sleep(TAIL_S)
                            data, at = recorder.take()
                            cell.plays.append(_judge(data, at, first_byte, engine_sound))
    finally:
        recorder.stream.stop()
        recorder.stream.close()
    return _report(cells, plays, monitor)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _report(cells: list[Cell], plays: int, monitor: str) -> Report:
    report = Report(f"Heard on the device: first sound and silences, {plays} plays a cell",
                    machine_description() + f"; recorded from {monitor}")
    lines = ["| server | format | player | first byte to first sound, median (each) ms | silent gaps ms, median "
             "(max) | the engine's own figure, median ms |", "|---|---|---|---|---|---|"]
    for c in cells:
        each = ", ".join(_fmt(h.first_sound_ms) for h in c.plays)
        gaps = [h.gap_ms for h in c.plays]
        lines.append(f"| {c.server} | {c.fmt} | {c.player} | {_fmt(c.median('first_sound_ms'))} ({each}) | "
                     f"{_fmt(statistics.median(gaps))} ({_fmt(max(gaps))}) | {_fmt(c.median('engine_ms'))} |")
    report.extra = "\n".join(lines) + "\n"
    agree = [abs(h.engine_ms - h.first_sound_ms) for c in cells for h in c.plays
             if h.engine_ms is not None and h.first_sound_ms is not None]
    report.rows = [
        ("the engine's first sound against the recording's, median (max) difference",
         f"{statistics.median(agree):.1f} ms ({max(agree):.1f} ms)" if agree else "-",
         "the engine's figure from PortAudio's DAC times; the recording's from the monitor's ADC times"),
        ("plays", str(sum(len(c.plays) for c in cells)), "each cell's players interleaved, the same server"),
    ]
    report.data = {"suite": "heard", "plays": plays, "monitor": monitor, "machine": report.machine,
                   "cells": [{"server": c.server, "format": c.fmt, "player": c.player,
                              "first_sound_ms": [h.first_sound_ms for h in c.plays],
                              "gap_ms": [h.gap_ms for h in c.plays],
                              "engine_first_sound_ms": [h.engine_ms for h in c.plays]} for c in cells]}
    return report


def run(o: BenchOptions, progress: Progress) -> Report:
    if o.sink not in ("virtual", "device"):
        raise BenchError("bench heard plays through the device and records it; --sink does not apply")
    formats = parse_list(o.formats or ("pcm,mp3" if o.quick else ",".join(FORMATS)), FORMATS, "format")
    servers = parse_list(o.settings or ("fast" if o.quick else ",".join(SERVERS)), tuple(SERVERS), "server")
    players = parse_list(o.players or ",".join(DEFAULT_PLAYERS), PLAYERS, "player")
    return bench_heard(o.plays_or(3, 1), formats, servers, players, progress)
