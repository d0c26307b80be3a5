"""One reply through voicemode's own `simple_tts_failover` (the path its `converse` tool takes), heard
from outside: the PulseAudio monitor of the output is recorded while it plays. Runs in voicemode's
environment, with the bridge on or off; prints one JSON line.

    python scripts/voicemode_bridge_check.py --url http://127.0.0.1:8899/v1 --format mp3 [--action pause]

What it reports: the first body byte of the reply to the first sound heard, the silences heard inside
it, how long the sound lasted, what voicemode returned (success, its metrics), what voicemode's history
buffer captured (skip-back replays that), and, for an action (pause, stop, skip_back, skip_forward, sent
through voicemode's own control state 0.6 s after the first sound), when the sound stopped after it.

The server's voice is its own business (`voice=test-signal` in its knobs makes every reply the test
tone: voicemode asks for a voice it knows, `alloy`). Needs PULSE_SERVER (`scripts/pulse.sh start`).
Self-contained but for `voicemode_check.py` beside it: voicemode's environment has no workbench of its
own (with the bridge on it has the engine, which this does not use).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from voicemode_check import RATE, THRESHOLD, Recording, monitor  # noqa: E402

TEXT = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen "
        "seventeen eighteen nineteen twenty")
FIRST_BYTE: list[float] = []


def time_first_byte() -> None:
    """Note when the first body byte of /audio/speech arrives, whatever client voicemode makes (openai 3
    talks through httpx2, earlier ones through httpx)."""
    import importlib

    for name in ("httpx2", "httpx"):
        try:
            _time_first_byte(importlib.import_module(name))
        except ImportError:
            pass


def _time_first_byte(httpx) -> None:  # type: ignore[no-untyped-def]
    real = httpx.AsyncHTTPTransport.handle_async_request

    async def handle(self, request):  # type: ignore[no-untyped-def]
        response = await real(self, request)
        if not request.url.path.endswith("/audio/speech"):
            return response
        inner = response.stream

        class Timed(httpx.AsyncByteStream):
            async def __aiter__(self):  # type: ignore[no-untyped-def]
                async for chunk in inner:
                    if chunk and not FIRST_BYTE:
                        FIRST_BYTE.append(time.perf_counter())
                    yield chunk

            async def aclose(self) -> None:
                await inner.aclose()

        response.stream = Timed()
        return response

    httpx.AsyncHTTPTransport.handle_async_request = handle  # type: ignore[method-assign]


async def speak(fmt: str, action: str, sound_at: list[float], acted: list[float]) -> dict[str, object]:
    from voice_mode.control_channel import get_control_state
    from voice_mode.history_buffer import get_history_buffer
    from voice_mode.simple_failover import simple_tts_failover

    state = get_control_state()
    state.reset()

    def act() -> None:  # a thread, as voicemode's control socket is: its event loop is busy playing
        while not sound_at:
            time.sleep(0.005)
        time.sleep(max(0.0, sound_at[0] + 0.6 - time.perf_counter()))
        acted.append(time.perf_counter())
        if action == "pause":
            state.request_pause()
            time.sleep(0.8)
            state.request_resume()
        elif action == "stop":
            state.request_stop()
        elif action == "skip_back":
            state.request_skip_back()
        elif action == "skip_forward":
            state.request_skip_forward()

    actor = threading.Thread(target=act, daemon=True) if action != "none" else None
    if actor is not None:
        actor.start()
    before = len(get_history_buffer())
    ok, metrics, config = await simple_tts_failover(TEXT, "alloy", model="tts-1", audio_format=fmt)
    if actor is not None:
        actor.join(10)
    history = get_history_buffer()
    captured = history.latest() if len(history) > before else None
    return {"ok": ok, "metrics": {k: v for k, v in (metrics or {}).items() if isinstance(v, int | float | bool)},
            "captured_s": round(len(captured.pcm_bytes) / 2 / captured.sample_rate, 3) if captured else None,
            "error": None if ok else str(config)[:300]}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--url", required=True)
    p.add_argument("--format", default="pcm")
    p.add_argument("--action", default="none", choices=["none", "pause", "stop", "skip_back", "skip_forward"])
    a = p.parse_args()
    os.environ["VOICEMODE_TTS_BASE_URLS"] = a.url
    os.environ["VOICEMODE_TTS_AUDIO_FORMAT"] = a.format
    os.environ["PULSE_SOURCE"] = monitor()
    import sounddevice as sd

    time_first_byte()
    import voice_mode.simple_failover  # noqa: F401  # loaded before the clock, as in voicemode's running process
    import voice_mode.streaming  # noqa: F401

    rec = Recording(sd)
    rec.stream.start()
    time.sleep(0.3)
    sound_at: list[float] = []
    acted: list[float] = []
    stop_watching = threading.Event()

    def watch() -> None:  # when the sound began, for the action's timing
        while not stop_watching.wait(0.01):
            with rec.lock:
                if not rec.blocks:
                    continue
                recent, at = rec.blocks[-1], rec.times[-1]
            if not sound_at and FIRST_BYTE and np.abs(recent).max() >= THRESHOLD and at > FIRST_BYTE[0]:
                sound_at.append(at)

    threading.Thread(target=watch, daemon=True).start()
    t0 = time.perf_counter()
    out = asyncio.run(speak(a.format, a.action, sound_at, acted))
    time.sleep(0.8)
    stop_watching.set()
    rec.stream.stop()
    data, at = rec.take()
    start = int(np.searchsorted(at, FIRST_BYTE[0] if FIRST_BYTE else t0))
    loud = np.flatnonzero(np.abs(data[start:]) >= THRESHOLD) + start
    result: dict[str, object] = {"format": a.format, "action": a.action, **out, "heard": bool(len(loud))}
    if len(loud):
        gaps = [round(float(s) * 1000.0 / RATE) for s in np.diff(loud) if s * 1000.0 / RATE >= 10.0]
        result.update({
            "first_byte_to_sound_ms": round((at[loud[0]] - FIRST_BYTE[0]) * 1000.0) if FIRST_BYTE else None,
            "call_to_sound_ms": round((at[loud[0]] - t0) * 1000.0),
            "gaps_ms": gaps, "gap_total_ms": sum(gaps), "sound_s": round(len(loud) / RATE, 3),
            "span_s": round((loud[-1] - loud[0]) / RATE, 3),
            "after_action_ms": round((at[loud[-1]] - acted[0]) * 1000.0) if acted else None,
        })
    print(json.dumps(result))


if __name__ == "__main__":
    main()
