"""The jitter buffer's state machine, driven block by block (a deterministic clock: no threads, no sleeps)."""

import numpy as np
import pytest

from workbench.engine.playout.buffer import BufferState, Ctl, JitterBuffer

RATE = 1000  # 1 sample = 1 ms: makes the arithmetic in these tests readable
BLOCK = 10


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(target_ms: float = 50, capacity_s: float = 0.2, trailing_s: float = 0.0, fade_ms: float = 3.0,
         clock: FakeClock | None = None) -> JitterBuffer:
    return JitterBuffer(RATE, capacity_s, target_ms, trailing_silence_s=trailing_s, fade_ms=fade_ms,
                        clock=clock or FakeClock())


def ones(n: int) -> np.ndarray:
    return np.ones(n, dtype=np.float32)


def read(buf: JitterBuffer, n: int = BLOCK) -> np.ndarray:
    out = np.full(n, np.nan, dtype=np.float32)  # NaN: any sample the buffer forgot to fill shows up
    buf.read_into(out)
    assert not np.isnan(out).any()
    return out


def test_silence_until_the_initial_target_is_buffered() -> None:
    clock = FakeClock()
    buf = make(target_ms=50, clock=clock)
    buf.write(ones(40))
    assert buf.ready_time is None
    assert not read(buf).any() and buf.state is BufferState.BUFFERING
    clock.now = 1.5
    buf.write(ones(10))
    assert buf.ready_time == 1.5  # the moment the target was met
    out = read(buf)
    assert buf.state is BufferState.PLAYING and out.all()
    assert buf.first_audio_offset == 0 and buf.first_audio_block == 2
    assert buf.underruns == 0 and buf.silence_samples == BLOCK  # startup silence is not an underrun


def test_stream_shorter_than_the_target_plays_when_it_ends() -> None:
    buf = make(target_ms=50)
    buf.write(ones(15))
    assert not read(buf).any()
    buf.end()
    assert buf.ready_time is not None
    assert read(buf).all()
    out = read(buf)
    # the stream's last 3 samples (fade_ms=3) fade out to silence: no click where it stops
    assert out[:2].all() and list(out[2:5]) == pytest.approx([2 / 3, 1 / 3, 0.0]) and not out[5:].any()
    assert buf.state is BufferState.DONE  # no trailing silence configured
    assert buf.played_samples == 15 and buf.underruns == 0


def test_starvation_counts_one_underrun_with_its_length_and_refills_to_target() -> None:
    buf = make(target_ms=30)
    buf.write(ones(35))
    read(buf), read(buf), read(buf)  # 30 played, 5 left
    out = read(buf)
    assert buf.state is BufferState.UNDERRUN and buf.underruns == 1
    assert out[:5].any() and not out[5:].any()
    assert buf.underrun_samples == 5
    for _ in range(3):
        read(buf)
    assert buf.underrun_ms == pytest.approx(35.0)
    buf.write(ones(29))  # below the target: still rebuffering
    assert not read(buf).any() and buf.underruns == 1
    buf.write(ones(1))
    out = read(buf)
    assert buf.state is BufferState.PLAYING and out[1:].all()  # (out[0] is the start of a fade-in)
    assert buf.underruns == 1 and buf.underrun_ms == pytest.approx(45.0)


def test_fades_around_an_underrun_avoid_clicks() -> None:
    buf = make(target_ms=10, fade_ms=4)
    buf.write(ones(16))
    read(buf)
    out = read(buf)  # 6 samples then starvation: the last 4 fade out
    assert out[0] == 1.0 and out[1] == 1.0
    assert np.all(np.diff(out[2:6]) < 0) and out[5] < 0.5
    buf.write(ones(10))
    out = read(buf)  # resumes with a fade in
    assert out[0] == 0.0 and np.all(np.diff(out[:4]) > 0) and out[4] == 1.0


def test_no_fade_on_the_very_first_sample() -> None:
    buf = make(target_ms=10)
    ramp = np.linspace(0.5, 1.0, 10, dtype=np.float32)
    buf.write(ramp)
    buf.write(ones(5))  # more to come: the block does not end the ring (that would fade it: see below)
    assert np.array_equal(read(buf), ramp)  # the start of the reply is played exactly as sent


def test_a_ring_run_dry_right_at_a_blocks_end_fades_out_and_what_comes_next_fades_in() -> None:
    # the next block cannot fade what was already played: a cut at a block's end clicked (issue 32: a
    # stream sent a byte at a time, 0.29 full-scale steps)
    buf = make(target_ms=0, fade_ms=4)
    buf.write(ones(10))
    out = read(buf)
    assert list(out[:6]) == [1.0] * 6 and list(out[6:]) == pytest.approx([0.75, 0.5, 0.25, 0.0])
    buf.write(ones(10))  # it came in time: a dip, faded in again, not a step
    out = read(buf)
    assert list(out[:4]) == pytest.approx([0.0, 0.25, 0.5, 0.75]) and buf.underruns == 0


def test_ring_wraps_and_keeps_sample_order() -> None:
    buf = make(target_ms=0, capacity_s=0.025)  # 25 samples
    sent = np.arange(1, 101, dtype=np.float32)
    got: list[np.ndarray] = []
    pos = 0
    while pos < len(sent):
        pos += buf.write(sent[pos : pos + 13])
        got.append(read(buf, 7))
    buf.end()
    while buf.state is not BufferState.DONE:
        got.append(read(buf, 7))
    played = np.concatenate(got)
    body = played[np.flatnonzero(played)[0] :][: len(sent)]
    assert np.array_equal(body[:-3], sent[:-3])  # every sample, in order ...
    assert list(body[-3:]) == pytest.approx([98 * 2 / 3, 99 / 3, 0.0])  # ... the last 3 faded out


def test_full_buffer_takes_nothing_more_backpressure() -> None:
    buf = make(target_ms=50, capacity_s=0.1)
    assert buf.write(ones(150)) == 100
    assert buf.free() == 0 and buf.write(ones(5)) == 0
    read(buf)
    assert buf.free() == BLOCK


def test_playback_starts_when_full_even_if_target_is_larger() -> None:
    buf = make(target_ms=500, capacity_s=0.05)  # the target cannot fit: capped at capacity
    buf.write(ones(100))
    assert read(buf).all()


def test_trailing_silence_is_played_before_done() -> None:
    buf = make(target_ms=0, trailing_s=0.025)
    buf.write(ones(5))
    buf.end()
    out = read(buf)
    assert out[:4].all() and not out[4:].any() and buf.state is BufferState.TRAILING  # (the 5th faded to 0)
    read(buf)
    assert buf.state is BufferState.TRAILING
    read(buf)
    assert buf.state is BufferState.DONE
    assert buf.silence_samples == 25
    assert not read(buf).any() and buf.silence_samples == 25  # idle after done is not trailing silence


def test_stop_fades_out_and_finishes_at_once() -> None:
    buf = make(target_ms=0, fade_ms=4)
    buf.write(ones(100))
    read(buf)
    buf.stop()
    out = read(buf)
    assert buf.state is BufferState.DONE
    assert out[0] >= 0.75 and np.all(np.diff(out[:4]) < 0) and not out[4:].any()
    assert not read(buf).any()


def test_target_can_change_live() -> None:
    buf = make(target_ms=100)
    buf.write(ones(40))
    assert not read(buf).any()
    buf.set_target_ms(30)
    assert read(buf).all()
    assert buf.target_ms == 30


def test_level_statistics_exclude_startup_and_the_final_drain() -> None:
    buf = make(target_ms=20)
    buf.write(ones(20))
    read(buf)  # starts playing in this block: not a steady level yet
    buf.write(ones(30))
    read(buf)  # level 40 at the block's start
    read(buf)  # level 30
    buf.end()
    read(buf), read(buf), read(buf)  # the final drain: not counted
    assert buf.avg_level_ms == pytest.approx(35.0)
    assert buf.min_level_ms == 30.0 and buf.max_level_ms == 40.0


def test_write_after_end_is_a_bug() -> None:
    buf = make()
    buf.end()
    with pytest.raises(RuntimeError):
        buf.write(ones(1))


def test_a_zero_target_plays_whatever_has_arrived_and_waits_quietly_when_empty() -> None:
    buf = make(target_ms=0)
    assert not read(buf).any() and buf.underruns == 0  # nothing yet: silence, not a storm of underruns
    buf.write(ones(15))
    np.testing.assert_array_equal(read(buf), ones(10))  # plays from the first sample
    block = read(buf)
    assert block[:4].all() and not block[5:].any()  # (the last samples faded out)
    assert buf.underruns == 1 and buf.state is BufferState.UNDERRUN
    read(buf)
    assert buf.underruns == 1  # one underrun per gap, however long
    buf.write(ones(3))
    assert read(buf)[:3].any() and buf.underruns == 2


def test_the_end_of_a_stream_fades_out_even_across_blocks() -> None:
    """A reply that stops mid-waveform (truncated, retries run out) must not click: its last fade_ms
    fade out, wherever the block boundaries fall; what comes before is untouched."""
    buf = make(target_ms=0, fade_ms=4)
    buf.write(ones(12))
    buf.end()
    first, second = read(buf), read(buf)  # 10 + 2: the fade spans the two blocks
    assert list(first[:8]) == [1.0] * 8
    assert list(np.concatenate([first[8:], second[:2]])) == pytest.approx([0.75, 0.5, 0.25, 0.0])


def test_fade_tail_fades_what_is_buffered_before_a_gap() -> None:
    buf = make(target_ms=0, fade_ms=4)
    buf.write(ones(20))
    read(buf)  # 10 played, 10 buffered
    buf.fade_tail()
    buf.write(ones(5))  # what follows the gap
    out = read(buf)
    assert list(out[:6]) == [1.0] * 6 and list(out[6:]) == pytest.approx([0.75, 0.5, 0.25, 0.0])


def test_an_end_with_less_than_the_fade_left_fades_over_what_is_left() -> None:
    buf = make(target_ms=0, fade_ms=4)
    buf.write(ones(12))
    read(buf)  # 10 played, 2 left: too few for the whole 4-sample ramp
    buf.end()
    out = read(buf)
    assert list(out[:2]) == pytest.approx([0.5, 0.0]) and not out[2:].any()  # a whole ramp, compressed


def test_the_first_sound_is_followed_from_the_write_to_the_block_that_plays_it() -> None:
    """The first sample at -50 dBFS is found as it is written (here the 27th, after 26 quiet ones written in
    two pieces) and the reader notes the block and the place in it where that sample is played, after an
    underrun's worth of silence in between."""
    buf = make(target_ms=10)
    buf.write(np.full(16, 0.001, dtype=np.float32))  # -60 dBFS: audio, not yet sound
    assert buf.ctl[Ctl.SOUND_AT] == -1
    read(buf)  # the target is met: 10 quiet samples play
    read(buf)  # 6 more, then it runs dry
    assert buf.sound_block == -1 and buf.underruns == 1
    buf.write(np.concatenate([np.full(10, -0.003, dtype=np.float32), ones(20)]))  # 0.003 < 0.00316 is quiet
    assert buf.ctl[Ctl.SOUND_AT] == 26
    read(buf)  # back to playing: samples 16 to 25, all quiet
    assert buf.sound_block == -1
    read(buf)  # samples 26 onwards: the sound is the first of them
    assert (buf.sound_block, buf.sound_offset) == (buf.blocks_read, 0)
    buf.write(ones(5))
    read(buf)
    assert (buf.sound_block, buf.sound_offset) == (4, 0)  # the first one is kept


def test_a_reply_with_no_sound_has_no_first_sound() -> None:
    buf = make(target_ms=0)
    buf.write(np.zeros(30, dtype=np.float32))
    buf.end()
    for _ in range(5):
        read(buf)
    assert buf.done and buf.ctl[Ctl.SOUND_AT] == -1 and buf.sound_block == -1
