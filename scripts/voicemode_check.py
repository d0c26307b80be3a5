"""The voicemode model against voicemode itself: the same request played by voicemode 9.0's own
`stream_tts_audio` (`--real`, in an environment where `voice-mode` is installed) or by the workbench's
model of it (`VoicemodePlayer`, on the device sink), while the PulseAudio monitor of the output is
recorded. Prints one JSON line: first sound after the call (ms, from the recording), the silences heard
inside the reply, the sound's length, and the TTFA voicemode reports.

    .venv/bin/workbench serve --port 8899 --test-knobs &
    python scripts/voicemode_check.py --real --format pcm --url http://127.0.0.1:8899/v1   # voice-mode's venv
    .venv/bin/python scripts/voicemode_check.py --format pcm --url http://127.0.0.1:8899/v1  # the model

Needs PULSE_SERVER and a default sink whose monitor can be recorded (`scripts/pulse.sh start`).
Self-contained on purpose: voice-mode's environment has no workbench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import threading
import time

import numpy as np

RATE = 24_000
THRESHOLD = 10 ** (-50 / 20)
TEXT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen"
SERVERS = {"fast": "pace=0.2;ttfb_ms=150", "jittery": "pace=0.5;ttfb_ms=150;lateness_ms=80",
           "slow": "pace=0.9;ttfb_ms=400;lateness_ms=150;pause_at_s=3;pause_ms=400"}


def monitor() -> str:
    out = subprocess.run(["pactl", "info"], capture_output=True, text=True, check=True).stdout
    sink = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Default Sink:"))
    return f"{sink}.monitor"


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

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        with self.lock:
            data = np.concatenate(self.blocks)
            at = np.concatenate([t + np.arange(len(b)) / RATE for b, t in zip(self.blocks, self.times, strict=True)])
        return data, at


async def play_real(url: str, fmt: str, knobs: str, started: list[float]) -> tuple[float | None, float | None]:
    import openai
    from voice_mode.streaming import stream_tts_audio

    client = openai.AsyncOpenAI(base_url=url, api_key="x", max_retries=0)  # voicemode's client is made once
    params = {"model": "tts-1", "input": TEXT, "voice": "test-signal", "response_format": fmt,
              "extra_headers": {"X-Workbench-Knobs": knobs}}
    started.append(time.perf_counter())
    ok, metrics = await stream_tts_audio(text=TEXT, openai_client=client, request_params=params)
    return (metrics.ttfa * 1000.0 if ok and metrics.ttfa else None), None


async def play_model(url: str, fmt: str, knobs: str, started: list[float]) -> tuple[float | None, float | None]:
    from workbench.engine.settings import defaults
    from workbench.engine.vmplayer import VoicemodePlayer

    s = defaults(voices=("test-signal",), audio_format=fmt, sink="device")
    # entering warms up (imports PyAV and the HTTP client), as voicemode's running process has them loaded
    async with VoicemodePlayer(s, base_url=url, extra_headers={"X-Workbench-Knobs": knobs}) as player:
        started.append(time.perf_counter())
        m = await player.play(TEXT)
    if m.error:
        raise SystemExit(m.error)
    return m.voicemode_reported_ttfa_ms, m.first_sound_ms  # what voicemode would log; what our sink heard


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--real", action="store_true")
    p.add_argument("--format", default="pcm")
    p.add_argument("--server", choices=list(SERVERS), default="fast")
    p.add_argument("--url", default="http://127.0.0.1:8899/v1")
    p.add_argument("--repeat", type=int, default=1, help="say the text this many times (a longer reply)")
    a = p.parse_args()
    global TEXT
    TEXT = " ".join([TEXT] * a.repeat)
    os.environ["PULSE_SOURCE"] = monitor()
    import sounddevice as sd

    if a.real:  # imported before the clock starts, as in voicemode's running process
        import openai  # noqa: F401
        import voice_mode.streaming  # noqa: F401
    else:
        import workbench.engine.vmplayer  # noqa: F401
    rec = Recording(sd)
    rec.stream.start()
    time.sleep(0.3)
    play = play_real if a.real else play_model
    started: list[float] = []  # the clock starts at the call that plays, after each side's set-up
    reported, own = asyncio.run(play(a.url, a.format, SERVERS[a.server], started))
    t0 = started[0]
    time.sleep(0.6)
    rec.stream.stop()
    data, at = rec.take()
    start = int(np.searchsorted(at, t0))
    loud = np.flatnonzero(np.abs(data[start:]) >= THRESHOLD) + start
    if not len(loud):
        print(json.dumps({"who": "voicemode" if a.real else "model", "format": a.format, "heard": False}))
        return
    steps = np.diff(loud)
    gaps = [round(float(s) * 1000.0 / RATE) for s in steps if s * 1000.0 / RATE >= 10.0]
    print(json.dumps({"who": "voicemode" if a.real else "model", "format": a.format, "server": a.server,
                      "first_sound_ms": round((at[loud[0]] - t0) * 1000.0), "gaps_ms": gaps,
                      "gap_total_ms": sum(gaps), "sound_s": round((loud[-1] - loud[0]) / RATE, 2),
                      "reported_ttfa_ms": None if reported is None else round(reported),
                      "own_first_sound_ms": None if own is None else round(own)}))


if __name__ == "__main__":
    main()
