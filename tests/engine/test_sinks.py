import asyncio
import os
import time
import wave

import numpy as np
import pytest

from workbench.engine.output.sinkfactory import make_sink
from workbench.engine.output.sinks import Recorder, VirtualSink
from workbench.engine.playout.buffer import JitterBuffer
from workbench.engine.playout.wake import BlockWake


def test_virtual_sink_consumes_at_the_device_rate() -> None:
    rate, block = 24_000, 480
    buf = JitterBuffer(rate, 2.0, 0, trailing_silence_s=0.0)
    buf.write(np.full(int(0.4 * rate), 0.5, dtype=np.float32))
    buf.end()
    sink = VirtualSink(rate, block, Recorder())
    t = time.perf_counter()
    sink.start(buf)
    asyncio.run(sink.wait_done())
    elapsed = time.perf_counter() - t
    sink.close()
    assert 0.35 < elapsed < 1.5  # about 0.4 s of audio took about 0.4 s (generous: machines are noisy)
    played = sink.recorder.samples()
    assert np.count_nonzero(played) == int(0.4 * rate) - 1  # all of it; the very last sample faded to 0
    assert sink.first_heard is not None and sink.first_heard >= t


def test_virtual_sink_speed_factor_runs_faster() -> None:
    rate = 24_000
    buf = JitterBuffer(rate, 5.0, 0)
    buf.write(np.full(4 * rate, 0.5, dtype=np.float32))
    buf.end()
    sink = VirtualSink(rate, 480, speed=20.0)
    t = time.perf_counter()
    sink.start(buf)
    asyncio.run(sink.wait_done())
    sink.close()
    assert time.perf_counter() - t < 1.5  # 4 s of audio at 20x


def test_recorder_writes_exactly_what_was_played(tmp_path) -> None:  # type: ignore[no-untyped-def]
    rec = Recorder(tmp_path / "out.wav")
    rec.add(np.array([0.0, 0.5, -0.5], dtype=np.float32))
    rec.add(np.array([0.25], dtype=np.float32))
    rec.save(24_000)
    with wave.open(str(tmp_path / "out.wav")) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth(), w.getnframes()) == (24_000, 1, 2, 4)
        data = np.frombuffer(w.readframes(4), dtype="<i2")
    assert list(data) == [0, 16384, -16384, 8192]  # x * 32767, rounded half to even


def test_make_sink_specs(tmp_path) -> None:  # type: ignore[no-untyped-def]
    sink, note = make_sink(f"wav:{tmp_path}/x.wav", rate=24_000, block_size=480)
    assert isinstance(sink, VirtualSink) and sink.recorder is not None and note is None
    sink, note = make_sink("virtual", rate=24_000, block_size=480)
    assert isinstance(sink, VirtualSink) and sink.recorder is None


def test_auto_sink_without_a_device_falls_back_with_a_notice(monkeypatch: pytest.MonkeyPatch) -> None:
    import workbench.engine.output.sinkfactory as sinkfactory

    monkeypatch.setattr(sinkfactory, "default_output_device", lambda: None)
    sink, note = make_sink("auto", rate=24_000, block_size=480)
    assert isinstance(sink, VirtualSink)
    assert note is not None and "no audio output device" in note


def test_the_sink_hears_the_first_sound_after_the_leading_silence() -> None:
    """120 ms of silence, then a tone: the first sample is heard at once, the first sound 120 ms later on
    the sink's clock (at 4x, 30 ms of wall time: the arithmetic is the sink's, not the machine's)."""
    rate, block, speed = 24_000, 480, 4.0
    lead = int(0.120 * rate)
    audio = np.concatenate([np.zeros(lead, dtype=np.float32), np.full(rate // 5, 0.25, dtype=np.float32)])
    buf = JitterBuffer(rate, 2.0, 0)
    buf.write(audio)
    buf.end()
    sink = VirtualSink(rate, block, speed=speed)
    sink.start(buf)
    asyncio.run(sink.wait_done())
    sink.close()
    assert sink.first_heard is not None and sink.first_sound is not None
    # exact on the sink's clock, unless that clock had to start again, late by more than a block (a loaded
    # machine): then the sound really was heard that much later
    if not sink.clock_late:
        assert (sink.first_sound - sink.first_heard) * speed == pytest.approx(0.120, abs=1e-6)
    assert (sink.first_sound - sink.first_heard) * speed >= 0.120 - 1e-6


def test_a_block_wake_wakes_its_waiter_and_never_blocks_the_writer() -> None:
    wake = BlockWake()
    assert wake.wait(0.0) is False  # nothing yet
    wake.notify()
    assert wake.wait(5.0) is True
    assert wake.wait(0.0) is False  # the notifications so far are forgotten
    for _ in range(200_000):  # far more than a pipe holds: the audio thread must never wait on it
        wake.notify()
    assert wake.wait(0.0) is True
    wake.close()
    wake.notify()  # after close: nothing happens


@pytest.mark.parametrize("below_blocks", [0, 10])
def test_a_sink_asked_to_wake_a_pump_notifies_after_every_block_or_once_the_ring_is_low(below_blocks: int) -> None:
    """After every block; or, when the pump says how low the ring may go first (`set_wake_below`), only
    after the blocks that leave less than that."""
    rate, block = 24_000, 480
    buf = JitterBuffer(rate, 2.0, 0, trailing_silence_s=0.0)
    buf.write(np.full(15 * block, 0.5, dtype=np.float32))
    buf.end()
    buf.set_wake_below(below_blocks * block)
    sink = VirtualSink(rate, block, speed=4.0)
    wake = sink.wake_after_blocks()
    assert wake is not None and sink.wake_after_blocks() is wake and sink.block_period_s == block / rate / 4.0
    sink.start(buf)
    asyncio.run(sink.wait_done())
    sink.close()
    skipped = 15 - below_blocks if below_blocks else 0  # blocks that left `below_blocks` blocks or more
    assert buf.blocks_read > 15
    assert len(os.read(wake.read_fd, 4096)) == buf.blocks_read - skipped  # the pipe holds them all
