"""The C audio callback (`_playout.c`) against the Python consumer it replaces on the device.

Both run the jitter buffer's state machine; on the same schedule of writes, reads, target changes,
ends, stops and gap fades they must give the same samples, bit for bit, and the same counters. Then
the native sink on the real PulseAudio null sink: first sound, the end signal, recording.
"""

from __future__ import annotations

import asyncio
import ctypes
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.output import nativesink
from workbench.engine.output.sinks import Recorder, SoundDeviceSink, default_output_device
from workbench.engine.playout.buffer import CTL_WORDS, Ctl, JitterBuffer

needs_native = pytest.mark.skipif(not nativesink.available() and os.environ.get("CI") != "true",
                                  reason="the C playout module is not built here")
RATE = 1000

ops = st.lists(st.one_of(
    st.tuples(st.just("write"), st.integers(1, 60)),
    st.tuples(st.just("quiet"), st.integers(1, 60)),  # below -50 dBFS: audio, but not yet sound
    st.tuples(st.just("read"), st.integers(1, 25)),
    st.tuples(st.just("target"), st.integers(0, 80)),
    st.tuples(st.just("resume"), st.integers(0, 40)),
    st.tuples(st.just("end"), st.just(0)),
    st.tuples(st.just("stop"), st.just(0)),
    st.tuples(st.just("gap"), st.just(0)),
    st.tuples(st.just("pause"), st.just(0)),
    st.tuples(st.just("unpause"), st.just(0)),
    st.tuples(st.just("lead"), st.integers(0, 30)),
), min_size=1, max_size=60)


def run(schedule: list[tuple[str, int]], native: bool, seed: int, *, buf: JitterBuffer | None = None,
        channels: int = 1) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    buf = buf or JitterBuffer(RATE, 0.1, 30, trailing_silence_s=0.012, fade_ms=4, channels=channels)
    shape = (lambda n: n) if channels == 1 else (lambda n: (n, channels))
    lib = nativesink.playout_library()
    state = nativesink.native_state(buf, RATE) if native else None
    outputs: list[np.ndarray] = []
    for op, n in schedule:
        if op in ("write", "quiet") and not buf.ended:
            frames = rng.uniform(-1, 1, n).astype(np.float32) * (1.0 if op == "write" else 0.003)
            if channels > 1:  # the right channel is the left one halved (exactly, in float): a gain applied
                frames = np.stack([frames, frames * np.float32(0.5)], axis=1)  # to a frame keeps it so
            buf.write(frames)
        elif op == "read":
            out = np.full(shape(n), 9.0, dtype=np.float32)  # anything not written would show
            if native:
                lib.wb_read(ctypes.byref(state), out.ctypes.data_as(ctypes.POINTER(ctypes.c_float)), n)
            else:
                buf.read_into(out)
            outputs.append(out)
        elif op == "target":
            buf.set_target_ms(n)
        elif op == "resume":
            buf.set_resume_ms(n or None)
        elif op == "end" and not buf.ended:
            buf.end()
        elif op == "stop":
            buf.stop()
        elif op == "gap":
            buf.fade_tail()
        elif op == "pause":
            buf.pause()
        elif op == "unpause":
            buf.resume()
        elif op == "lead":
            buf.set_lead_ms(n)
    return outputs, buf.ctl.copy()


@needs_native
@settings(max_examples=400, deadline=None)
@given(ops, st.integers(0, 2**32 - 1))
def test_the_c_consumer_plays_exactly_what_the_python_one_does(schedule: list[tuple[str, int]], seed: int) -> None:
    py_out, py_ctl = run(schedule, native=False, seed=seed)
    c_out, c_ctl = run(schedule, native=True, seed=seed)
    assert len(py_out) == len(c_out)
    for a, b in zip(py_out, c_out, strict=True):
        np.testing.assert_array_equal(a, b)
    sink_words = (Ctl.DEVICE_UNDERFLOWS, Ctl.FIRST_HEARD_NS, Ctl.DONE_AT_NS, Ctl.REC_WRITE, Ctl.REC_LOST,
                  Ctl.CALLBACKS, Ctl.SOUND_HEARD_NS)
    shared = [i for i in range(CTL_WORDS) if i not in sink_words]
    np.testing.assert_array_equal(py_ctl[shared], c_ctl[shared])


@needs_native
@settings(max_examples=150, deadline=None)
@given(ops, st.integers(0, 2**32 - 1))
def test_in_stereo_the_c_consumer_plays_what_the_python_one_does_and_both_keep_each_frame_whole(
        schedule: list[tuple[str, int]], seed: int) -> None:
    py_out, py_ctl = run(schedule, native=False, seed=seed, channels=2)
    c_out, c_ctl = run(schedule, native=True, seed=seed, channels=2)
    for a, b in zip(py_out, c_out, strict=True):
        np.testing.assert_array_equal(a, b)
        # every fade, silence and copy treats a frame's two channels alike: the right stays half the left
        np.testing.assert_array_equal(b[:, 1], b[:, 0] * np.float32(0.5))
    np.testing.assert_array_equal(py_ctl[Ctl.READ], c_ctl[Ctl.READ])
    np.testing.assert_array_equal(py_ctl[Ctl.UNDERRUNS], c_ctl[Ctl.UNDERRUNS])


@needs_native
def test_a_whole_stream_the_same_way() -> None:
    """A longer, plainer case: a reply written in pieces, an underrun, the end and its fade."""
    schedule = [("write", 40), *[("read", 10)] * 3, ("write", 5), *[("read", 10)] * 3, ("write", 50),
                ("end", 0), *[("read", 10)] * 8]
    py_out, py_ctl = run(schedule, native=False, seed=1)
    c_out, c_ctl = run(schedule, native=True, seed=1)
    np.testing.assert_array_equal(np.concatenate(py_out), np.concatenate(c_out))
    assert py_ctl[Ctl.UNDERRUNS] == c_ctl[Ctl.UNDERRUNS] == 1 and c_ctl[Ctl.STATE] == 4  # done


audio = pytest.mark.skipif(default_output_device() is None and os.environ.get("WORKBENCH_REQUIRE_AUDIO") != "1",
                           reason="no audio output device (CI runs this on a PulseAudio null sink)")


@needs_native
@audio
@pytest.mark.audio
@pytest.mark.parametrize("channels", [1, 2])
@pytest.mark.parametrize("callback", ["c", "python"])
def test_the_native_sink_plays_hears_and_ends_on_the_real_device(channels: int, callback: str) -> None:
    """(And the Python callback, where the C module is not built, the same way.)"""
    rate = 24_000
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(int(0.5 * rate)) / rate)).astype(np.float32)
    frames = tone if channels == 1 else np.stack([tone, tone * np.float32(-0.5)], axis=1)  # right: its own
    buf = JitterBuffer(rate, 2.0, 50, trailing_silence_s=0.1, channels=channels)
    kind = nativesink.NativeDeviceSink if callback == "c" else SoundDeviceSink
    sink = kind(rate, 480, Recorder(), channels=channels)

    async def play() -> None:
        sink.open()
        sink.start(buf)
        buf.write(frames)
        buf.end()
        await asyncio.wait_for(sink.wait_done(), timeout=10)

    try:
        asyncio.run(play())
    finally:
        sink.close()
    assert sink.channels == channels  # the null sink's ALSA device takes two
    assert sink.first_heard is not None and sink.done_at is not None and sink.done_at > sink.first_heard
    assert buf.played_samples == len(tone) and buf.done
    recorded = sink.recorder.samples() if sink.recorder is not None else np.zeros(0, dtype=np.float32)
    left = recorded if channels == 1 else recorded[:, 0]
    onset = int(np.flatnonzero(left)[0]) - 1  # the tone's first sample is exactly 0
    end = len(tone) - buf.fade_len  # (its last 5 ms fade out)
    np.testing.assert_array_equal(recorded[onset : onset + end], frames[:end])  # what was played, as it was
    assert sink.device_underflows == 0


@needs_native
@pytest.mark.parametrize("block", range(1, 10))
def test_every_small_ending_the_same_way(block: int) -> None:
    """Every alignment of the end fade with the blocks (random schedules can miss one sample's worth)."""
    for total in range(1, 30):
        for reads_before_end in range(0, 5):
            for gap in (False, True):
                schedule = [("target", 0), ("write", total), *[("read", block)] * reads_before_end,
                            *([("gap", 0)] if gap else []), ("end", 0), *[("read", block)] * (total // block + 6)]
                py_out, py_ctl = run(schedule, native=False, seed=total)
                c_out, c_ctl = run(schedule, native=True, seed=total)
                np.testing.assert_array_equal(np.concatenate(py_out), np.concatenate(c_out),
                                              err_msg=f"block {block}, {total} samples, end after {reads_before_end}")
                np.testing.assert_array_equal(py_ctl[: Ctl.DEVICE_UNDERFLOWS], c_ctl[: Ctl.DEVICE_UNDERFLOWS])


class _TimeInfo(ctypes.Structure):
    _fields_ = [("inputBufferAdcTime", ctypes.c_double), ("currentTime", ctypes.c_double),
                ("outputBufferDacTime", ctypes.c_double)]


@needs_native
def test_the_callback_wakes_the_pump_after_every_block_or_once_the_ring_is_low() -> None:
    """The device's callback writes a byte to the pump's wake-up pipe after each block (and to none when
    no pump asked); once the pump has said how low the ring may go first, only after the blocks that
    leave less than that."""
    from workbench.engine.playout.wake import BlockWake

    lib = nativesink.playout_library()
    assert hasattr(lib, "wb_wakes_after_blocks")
    buf = JitterBuffer(RATE, 0.1, 0)
    buf.write(np.ones(100, dtype=np.float32))
    wake = BlockWake()
    out = np.zeros(10, dtype=np.float32)
    times = _TimeInfo(0.0, 0.0, 0.0)
    for fd, blocks, below, woken in ((-1, 2, 0, 0), (wake.write_fd, 3, 0, 3), (wake.write_fd, 3, 35, 2)):
        buf.set_wake_below(below)  # the levels after these blocks: 80; 70, 60, 50; 40, 30, 20
        state = nativesink.native_state(buf, RATE, wake_fd=fd)
        for _ in range(blocks):
            lib.wb_callback(None, out.ctypes.data_as(ctypes.c_void_p), ctypes.c_ulong(len(out)), ctypes.byref(times),
                            ctypes.c_ulong(0), ctypes.byref(state))
        assert (len(os.read(wake.read_fd, 100)) if woken else 0) == woken
        assert wake.wait(0.0) is False
    wake.close()


@pytest.mark.parametrize("native", [False, True])
def test_a_pause_fades_out_holds_the_sample_and_resumes_from_it_faded_in(native: bool) -> None:
    if native and not nativesink.available():
        pytest.skip("the C playout module is not built here")
    ramp = np.arange(1, 201, dtype=np.float32) / 200  # every sample different: what plays shows where it was
    buf = JitterBuffer(RATE, 1.0, 1, fade_ms=4)
    buf.write(ramp)
    outputs, ctl = run([("read", 20), ("pause", 0), ("read", 10), ("read", 30), ("unpause", 0), ("read", 20)],
                       native, 0, buf=buf)
    first, fading, held, after = outputs
    np.testing.assert_array_equal(first, ramp[:20])
    assert np.all(fading[:4] < ramp[20:24]) and fading[3] < 0.5 * ramp[23]  # 4 samples (fade_ms=4) fade out
    assert not fading[4:].any() and not held.any()  # then silence, nothing read
    np.testing.assert_array_equal(after[4:], ramp[28:44])  # on from the next sample, its first 4 faded in
    assert after[0] < ramp[24] and ctl[Ctl.PAUSED_SAMPLES] == 6 + 30
    assert ctl[Ctl.UNDERRUNS] == 0 and ctl[Ctl.UNDERRUN_SAMPLES] == 0  # a pause is not an underrun
