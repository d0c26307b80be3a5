"""The real audio path: PortAudio -> PulseAudio null sink, recorded from the sink's monitor.

Skipped when there is no audio device, unless WORKBENCH_REQUIRE_AUDIO=1 (as in CI), where a missing
device is a failure: the one test of what a listener really hears must not pass by being skipped.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np
import pytest

from workbench.engine.output import nativesink
from workbench.engine.output.nativesink import NativeDeviceSink
from workbench.engine.output.sinks import SoundDeviceSink, default_output_device
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings

pytestmark = pytest.mark.audio

RATE = 24_000


@pytest.fixture(scope="module")
def sd():  # type: ignore[no-untyped-def]
    if default_output_device() is None:
        if os.environ.get("WORKBENCH_REQUIRE_AUDIO") == "1":
            pytest.fail("no audio output device, but WORKBENCH_REQUIRE_AUDIO=1 (is PulseAudio running?)")
        pytest.skip("no audio output device (start PulseAudio: source scripts/pulse.sh start)")
    import sounddevice

    return sounddevice


class MonitorRecorder:
    """Records the default input (the null sink's monitor) with each sample's ADC time on perf_counter()."""

    def __init__(self, sd) -> None:  # type: ignore[no-untyped-def]
        self.blocks: list[np.ndarray] = []
        self.times: list[float] = []  # perf_counter() time of each block's first sample
        self._lock = threading.Lock()
        self.stream = sd.InputStream(samplerate=RATE, channels=1, dtype="float32", callback=self._callback)

    def _callback(self, indata, frames, time_info, status) -> None:  # type: ignore[no-untyped-def]
        now = time.perf_counter()
        with self._lock:
            self.blocks.append(indata[:, 0].copy())
            self.times.append(now + (time_info.inputBufferAdcTime - time_info.currentTime))

    def __enter__(self) -> MonitorRecorder:
        self.stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stream.stop()
        self.stream.close()

    def onset(self, threshold: float = 0.05) -> tuple[float, np.ndarray]:
        """perf_counter() time of the first loud sample, and the recording from there on."""
        data = np.concatenate(self.blocks)
        starts = np.cumsum([0] + [len(b) for b in self.blocks])
        idx = int(np.argmax(np.abs(data) > threshold))
        assert abs(data[idx]) > threshold, "the recording is silent"
        block = int(np.searchsorted(starts, idx, side="right") - 1)
        return self.times[block] + (idx - starts[block]) / RATE, data[idx:]


CALLBACKS = {"python": SoundDeviceSink, "c": NativeDeviceSink}


def pitch_hz(y: np.ndarray) -> float:
    crossings = np.flatnonzero(np.diff(np.signbit(y).astype(np.int8)) != 0)
    return float((len(crossings) - 1) / 2 / ((crossings[-1] - crossings[0]) / RATE))


@pytest.mark.parametrize("playout", ["fixed", "elastic"])
@pytest.mark.parametrize("callback", CALLBACKS)
def test_device_plays_the_whole_signal_without_a_gap_and_ttfa_matches_the_recording(sd, callback: str,  # type: ignore[no-untyped-def]
                                                                                       playout: str) -> None:
    """Elastic playout starts after 20 to 30 ms and plays the first part slower: what the recording must
    show then is the tone at its own pitch, as long as the engine says it made it, with no gap."""
    if callback == "c" and not nativesink.available():
        if os.environ.get("CI") == "true":
            pytest.fail("the C playout module was not built in CI")
        pytest.skip("the C playout module is not built here")
    text = "one two three four five six"  # about 2 s of 440 Hz tone
    settings = make_settings(voices=("test-signal",), sink="device", buffer_ms=150, playout=playout)
    with EmbeddedServer() as server, MonitorRecorder(sd) as rec:
        time.sleep(0.3)
        player = StreamPlayer(settings, base_url=server.base_url,
                              sink_factory=lambda s: (CALLBACKS[callback](RATE, s.block_size), None),
                              extra_query={"pace": "0.8"})  # 1.25x real time: elastic playout grows its buffer
        import asyncio

        m = asyncio.run(player.play(text))
        time.sleep(0.4)  # let the monitor catch the tail
    assert m.error is None and m.state == "done"
    assert m.ttfa_ms is not None and m.sink.endswith("latency")

    heard_at, signal = rec.onset()
    onset_ms = (heard_at - player.request_started) * 1000.0
    # the engine's TTFA is the recording's onset (the threshold crossing is within the first 3 samples)
    assert abs(onset_ms - m.ttfa_ms) < 15.0, f"reported TTFA {m.ttfa_ms:.1f} ms, heard at {onset_ms:.1f} ms"
    assert m.first_sound_ms is not None and abs(onset_ms - m.first_sound_ms) < 15.0

    # the whole signal, no gap: no run of near-silence inside the tone, and its full length is there
    loud = np.abs(signal) > 0.05
    expected = (m.audio_ms + m.stretch_added_ms - m.stretch_removed_ms) / 1000.0 * RATE
    end = int(np.flatnonzero(loud)[-1])
    assert abs(end - expected) < 0.005 * RATE, f"played {end} samples of tone, expected {expected:.0f}"
    fade = int(RATE * 0.005)  # the stream's last 5 ms fade out: quieter there by design
    quiet_runs = np.diff(np.flatnonzero(loud[: end + 1 - fade]))
    assert quiet_runs.max() <= 3, f"a gap of {quiet_runs.max()} samples inside the signal"
    assert m.underruns == 0 and m.device_underflows == 0
    assert m.playout == playout and (m.stretched_pct > 0) == (playout == "elastic")
    # stretched or not, the tone keeps its pitch (the first half second is where elastic playout slows)
    assert pitch_hz(signal[: RATE // 2]) == pytest.approx(440.0, rel=0.003)
