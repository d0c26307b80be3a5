#!/usr/bin/env python3
"""The first sound on the device, heard from outside: this engine against a naive blocking-write player,
from the first body byte of the reply to the first sound in a recording of the PulseAudio monitor, and
the silences inside the reply; medians of `--plays`, servers paced as the voicemode checks are.

    source scripts/pulse.sh start
    .venv/bin/python scripts/device_start_check.py [--plays 3] [--formats pcm,mp3,opus]

The naive player is what voicemode and most clients do: a sounddevice stream opened and started before
the request, each piece written with a blocking write as it arrives (decoded as it arrives, for the
compressed formats, with this engine's own decoders: the start is what is measured, not a decoder).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.engine.decoders import StreamDecoder  # noqa: E402
from workbench.engine.player import StreamPlayer  # noqa: E402
from workbench.engine.settings import defaults  # noqa: E402
from workbench.server.app import Knobs  # noqa: E402
from workbench.server.runner import EmbeddedServer  # noqa: E402

RATE = 24_000
THRESHOLD = 10 ** (-50 / 20)
TEXT = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty")
SERVERS = {
    "fast": Knobs(voice="test-signal", pace=0.2, ttfb_ms=150),
    "jittery": Knobs(voice="test-signal", pace=0.5, ttfb_ms=150, lateness_ms=80),
    "slow": Knobs(voice="test-signal", pace=0.9, ttfb_ms=400, lateness_ms=150, pause_at_s=3, pause_ms=400),
}


class Recording:
    def __init__(self, sd) -> None:  # type: ignore[no-untyped-def]
        self.blocks: list[np.ndarray] = []
        self.times: list[float] = []
        self.lock = threading.Lock()
        self.stream = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", callback=self.callback)

    def callback(self, indata, frames, time_info, status) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        with self.lock:
            self.blocks.append(indata[:, 0].copy())
            self.times.append(now + (time_info.inputBufferAdcTime - time_info.currentTime))

    def heard(self, since: float) -> tuple[float | None, float]:
        """(first sound after `since`, silent gaps inside the sound after it, ms)."""
        with self.lock:
            data = np.concatenate(self.blocks)
            at = np.concatenate([t + np.arange(len(b)) / RATE for b, t in zip(self.blocks, self.times, strict=True)])
            self.blocks.clear()
            self.times.clear()
        start = int(np.searchsorted(at, since))
        loud = np.flatnonzero(np.abs(data[start:]) >= THRESHOLD) + start
        if not len(loud):
            return None, 0.0
        gaps = [float(s) * 1000.0 / RATE for s in np.diff(loud) if s * 1000.0 / RATE >= 10.0]
        return float(at[loud[0]]), sum(gaps)


async def naive(url: str, fmt: str) -> float:
    """Blocking writes as the pieces come; returns when the first body byte came."""
    import httpx2
    import sounddevice as sd

    stream = sd.OutputStream(samplerate=RATE, channels=1, dtype="float32")
    stream.start()
    decoder = StreamDecoder(fmt, pcm_rate=RATE, out_rate=RATE)
    first = 0.0
    async with httpx2.AsyncClient(timeout=60) as client, client.stream(
            "POST", url + "/audio/speech", json={"model": "tts-1", "input": TEXT, "voice": "alloy",
                                                 "response_format": fmt}) as response:
        async for piece in response.aiter_raw():
            if not first:
                first = time.perf_counter()
            samples = decoder.feed(piece)
            if len(samples):
                stream.write(samples)  # blocks while the device's buffer is full (on the event loop, as voicemode)
    tail = decoder.flush()
    if len(tail):
        stream.write(tail)
    stream.write(np.zeros(RATE // 5, dtype=np.float32))  # a pad: stopping right after the last sample loses it
    stream.stop()
    stream.close()
    return first


async def engine(url: str, fmt: str) -> float:
    s = defaults(voices=("alloy",), audio_format=fmt, sink="device")
    async with StreamPlayer(s, base_url=url) as player:
        m = await player.play(TEXT)
        if m.error:
            raise SystemExit(m.error)
        assert player.source is not None and player.source.first_byte_at is not None
        return player.source.first_byte_at


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--plays", type=int, default=3)
    p.add_argument("--formats", default="pcm,mp3,opus")
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--players", default="naive,engine")
    a = p.parse_args()
    monitor = subprocess.run(["pactl", "get-default-sink"], capture_output=True, text=True, check=True).stdout.strip()
    os.environ["PULSE_SOURCE"] = f"{monitor}.monitor"
    import sounddevice as sd

    rec = Recording(sd)
    rec.stream.start()
    players = {"naive": naive, "engine": engine}
    print("| server | format | player | first byte to first sound (ms) | gaps (ms) |")
    print("|---|---|---|---|---|")
    for name in a.servers.split(","):
        with EmbeddedServer(knobs=SERVERS[name]) as server:
            for fmt in a.formats.split(","):
                for who in a.players.split(","):
                    firsts, gaps = [], []
                    for _ in range(a.plays):
                        time.sleep(0.3)
                        rec.heard(time.perf_counter())  # forget what came before
                        first_byte = asyncio.run(players[who](server.base_url, fmt))
                        time.sleep(0.4)
                        sound, gap = rec.heard(first_byte - 0.5)
                        firsts.append((sound - first_byte) * 1000.0 if sound is not None else float("nan"))
                        gaps.append(gap)
                    print(f"| {name} | {fmt} | {who} | {statistics.median(firsts):.0f} "
                          f"({', '.join(f'{v:.0f}' for v in firsts)}) | {statistics.median(gaps):.0f} |", flush=True)
    rec.stream.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
