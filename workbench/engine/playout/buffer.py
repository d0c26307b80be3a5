"""The jitter buffer: a preallocated single-producer, single-consumer ring of float32 frames.

A frame is one sample per channel: mono (the fast path) or stereo, interleaved. Every count and position
here is in frames; "samples" below means frames.

The producer (the player, on the event loop) writes decoded audio; the consumer (the audio callback,
or the virtual sink's clock thread) reads a block at a time. No lock is shared: each side advances only
its own counter. The producer writes samples before it publishes the new write counter, and says the
stream ended only after its last write, so the consumer never reads a sample that is not there.

The consumer also runs the playback state machine, because that is where starvation is noticed:

    BUFFERING --level >= target, or ended--> PLAYING --runs dry--> UNDERRUN --refilled--> PLAYING
    PLAYING --ended and empty--> TRAILING (trailing silence) --> DONE

Everything both sides share lives in one int64 array (`ctl`, laid out as `Ctl` says), next to the ring.
That lets the consumer run in C (`_playout.c`, for the device: PortAudio then never waits for Python's
interpreter lock) or here in Python (`read_into`, for the virtual sink and tests), by the same rules. The
read path allocates nothing: it copies into the block it is given and fills silence itself.
"""

from __future__ import annotations

import ctypes
import time
from collections.abc import Callable
from enum import Enum, IntEnum
from typing import Any

import numpy as np

from ..figures.onset import first_sound


class BufferState(str, Enum):
    BUFFERING = "buffering"  # before the first sample plays
    PLAYING = "playing"
    UNDERRUN = "underrun"  # ran dry mid-stream: silence until refilled to the target
    TRAILING = "trailing"  # all audio played; trailing silence
    DONE = "done"


STATES = (BufferState.BUFFERING, BufferState.PLAYING, BufferState.UNDERRUN, BufferState.TRAILING,
          BufferState.DONE)  # by their code in `ctl`
BUFFERING, PLAYING, UNDERRUN, TRAILING, DONE = range(5)


class Ctl(IntEnum):
    """Where each shared word sits in `ctl`; `_playout.c` has the same list (tests/engine/test_control_words.py
    reads it from the C source and checks it name by name, offset by offset)."""

    WRITE = 0  # samples ever written (producer)
    READ = 1  # samples ever read (consumer)
    ENDED = 2  # producer: no more audio will come
    STOP = 3  # producer: fade out and finish now
    STATE = 4  # consumer: the state's code
    TARGET = 5  # producer: samples to have before playing (again)
    TRAILING_LEFT = 6
    UNDERRUNS = 7
    UNDERRUN_SAMPLES = 8
    PLAYED = 9
    SILENCE = 10
    LEVEL_SUM = 11
    LEVEL_COUNT = 12
    LEVEL_MIN = 13
    LEVEL_MAX = 14
    FIRST_OFFSET = 15  # position in its block of the first real sample; -1 until then
    FIRST_BLOCK = 16  # ... and which block that was
    BLOCKS = 17
    FADE_IN_PENDING = 18
    END_FADED = 19  # producer: end() faded the last samples itself (fewer than a fade were left)
    RESUME = 20  # producer: samples to have before playing again after an underrun (0: the target)
    # the native sink's words, written by the C callback only
    DEVICE_UNDERFLOWS = 21
    FIRST_HEARD_NS = 22
    DONE_AT_NS = 23
    REC_WRITE = 24
    REC_LOST = 25
    CALLBACKS = 26
    # the first sound (onset.first_sound), found as it is written and followed to the block that plays it
    SOUND_AT = 27  # producer: its index among all samples written; -1 until one is written
    SOUND_OFFSET = 28  # consumer: its position in the block that played it; -1 until then
    SOUND_BLOCK = 29  # ... and which block that was
    SOUND_HEARD_NS = 30  # the native sink: its DAC time
    # elastic playout's pump: after a block, the sink wakes it only if fewer samples than this are left
    # in the ring (0: after every block)
    WAKE_BELOW = 31
    # pause: the producer holds the playout; the consumer fades out what it was playing, then plays silence
    # without reading, and on resume fades the next sample in (a pause is never an underrun)
    PAUSE = 32  # producer: 1 while paused
    PAUSE_HELD = 33  # consumer: the pause has taken hold (its fade-out played)
    PAUSED_SAMPLES = 34  # consumer: silence played while paused
    # a device started with its first audio drops the first few ms it is given (PulseAudio through ALSA:
    # 2.5 to 5 ms, recorded): this much silence is played ahead of the first sample (producer), counted
    # down by the consumer, and not audio (the first sample's time is after it)
    LEAD = 35
    LEAD_LEFT = 36


CTL_WORDS = 37


class JitterBuffer:
    def __init__(
        self,
        rate: int,
        capacity_s: float,
        target_ms: float,
        *,
        trailing_silence_s: float = 0.0,
        fade_ms: float = 5.0,
        clock: Callable[[], float] = time.perf_counter,
        channels: int = 1,
    ) -> None:
        self.rate = rate
        self.channels = channels
        self.capacity = max(1, int(round(capacity_s * rate)))
        self._ring = np.zeros((self.capacity, channels) if channels > 1 else self.capacity, dtype=np.float32)
        self.ctl = np.zeros(CTL_WORDS, dtype=np.int64)
        self.ctl[Ctl.LEVEL_MIN] = -1
        self.ctl[Ctl.FIRST_OFFSET] = -1
        self.ctl[Ctl.FIRST_BLOCK] = -1
        for word in (Ctl.SOUND_AT, Ctl.SOUND_OFFSET, Ctl.SOUND_BLOCK):
            self.ctl[word] = -1
        self._clock = clock
        self._publish: Callable[[int, int], None] = self._store  # the native sink swaps in a release store
        self._floor_ms = 0.0  # the start needs at least this, whatever the target (`set_start_floor_ms`)
        self.set_target_ms(target_ms)
        self.trailing_total = int(round(trailing_silence_s * rate))
        self.ctl[Ctl.TRAILING_LEFT] = self.trailing_total
        self.fade_len = max(1, int(rate * fade_ms / 1000.0))
        self._fade_in = np.linspace(0.0, 1.0, self.fade_len, endpoint=False, dtype=np.float32)
        self._fade_out = self._fade_in[::-1].copy()
        # a fade-out over fewer samples than a whole fade (all that is left before an underrun or a stop) is
        # still a whole ramp down to 0, (f - 1 - i) / f: the tail of the long one began at a few percent and
        # clicked. Made once: the read path allocates nothing
        self._short_outs = [np.zeros(0, dtype=np.float32)] + [
            np.arange(f - 1, -1, -1, dtype=np.float32) / np.float32(f) for f in range(1, self.fade_len)]
        if channels > 1:  # each a gain per frame, for every channel of it (the C side reads `_fade_in` flat)
            self._fin, self._fout = self._fade_in[:, None], self._fade_out[:, None]
            self._shorts = [r[:, None] for r in self._short_outs]
        else:
            self._fin, self._fout, self._shorts = self._fade_in, self._fade_out, self._short_outs
        # producer side
        self.ready_time: float | None = None  # clock() when the initial target was first met
        self.on_ready: Callable[[], None] | None = None  # called then, once, on the thread that wrote
        self.written_samples = 0

    def _store(self, index: int, value: int) -> None:
        self.ctl[index] = value

    def use_release_stores(self, publish: Any) -> None:
        """A C consumer on another thread reads `ctl` without the interpreter lock: the producer's words
        are published with a release store (`wb_publish`), so the samples before them are seen first."""
        address = self.ctl.ctypes.data_as(ctypes.POINTER(ctypes.c_int64))
        self._publish = lambda index, value: publish(address, index, value)

    # -- configuration (any thread) -------------------------------------------------------------
    def set_target_ms(self, target_ms: float) -> None:
        """Level that must be buffered before playback starts or resumes. May change live.

        0 means "play whatever has arrived": at least one sample, or an empty buffer would count as
        ready and underrun again at once, round and round inside one callback. Never below the start's
        floor (`set_start_floor_ms`).
        """
        self._asked_ms = target_ms
        ms = max(target_ms, self._floor_ms)
        self._publish(Ctl.TARGET, min(self.capacity, max(1, int(round(ms * self.rate / 1000.0)))))

    def set_start_floor_ms(self, floor_ms: float) -> None:
        """The least the ring must hold for playback to start, whatever target is set later: a device
        started with its first audio reads its whole buffer at once, and a target below that (a live edit,
        the adaptive target every 100 ms) would make the start itself an underrun."""
        self._floor_ms = floor_ms
        self.set_target_ms(self._asked_ms)

    def set_wake_below(self, samples: int) -> None:
        """After a block, the sink wakes the thread refilling the ring (elastic playout's pump) only if
        fewer than `samples` are left in it; 0: after every block."""
        self._publish(Ctl.WAKE_BELOW, max(0, samples))

    def set_lead_ms(self, lead_ms: float) -> None:
        """Silence played ahead of the first sample (see `Ctl.LEAD`); set before the consumer starts."""
        self._publish(Ctl.LEAD, max(0, int(round(lead_ms * self.rate / 1000.0))))

    def set_resume_ms(self, resume_ms: float | None) -> None:
        """After an underrun, play again once this much is buffered (None: the whole target). Waiting
        for the whole target turns a 20 ms hiccup into a silence as long as the target; a block is
        enough to resume without a stutter."""
        samples = 0 if resume_ms is None else max(1, int(round(resume_ms * self.rate / 1000.0)))
        self._publish(Ctl.RESUME, min(self.capacity, samples))

    @property
    def target(self) -> int:
        return int(self.ctl[Ctl.TARGET])

    @property
    def target_ms(self) -> float:
        return self.target * 1000.0 / self.rate

    # -- producer ---------------------------------------------------------------------------------
    @property
    def level(self) -> int:
        return int(self.ctl[Ctl.WRITE] - self.ctl[Ctl.READ])

    @property
    def level_ms(self) -> float:
        return self.level * 1000.0 / self.rate

    def free(self) -> int:
        return self.capacity - self.level

    def write(self, samples: np.ndarray) -> int:
        """Copy as many samples as fit; return how many were taken. Never blocks."""
        if self.ctl[Ctl.ENDED]:
            raise RuntimeError("write after end()")
        n = min(len(samples), self.free())
        if n <= 0:
            return 0
        w = int(self.ctl[Ctl.WRITE])
        start = w % self.capacity
        first = min(n, self.capacity - start)
        self._ring[start : start + first] = samples[:first]
        if n > first:
            self._ring[: n - first] = samples[first:n]
        if self.ctl[Ctl.SOUND_AT] < 0:
            at = first_sound(samples[:n])
            if at >= 0:
                self._publish(Ctl.SOUND_AT, w + at)  # before the write counter: the reader sees it in time
        self._publish(Ctl.WRITE, w + n)  # publish after the copy
        self.written_samples = w + n
        if self.ready_time is None and self.level >= min(self.target, self.capacity):
            self._ready()
        return n

    def _ready(self) -> None:
        self.ready_time = self._clock()
        if self.on_ready is not None:
            self.on_ready()

    def end(self) -> None:
        """No more audio will come. The last `fade_ms` fade out as they play (see `_fade_end`); when less
        than that is left unplayed, it is faded here, over what is left."""
        if self.ready_time is None and self.ctl[Ctl.WRITE] > 0:
            self._ready()
        if 0 < self.level < self.fade_len:
            self.fade_tail()
            self._publish(Ctl.END_FADED, 1)  # before ENDED: the reader sees both or neither
        self._publish(Ctl.ENDED, 1)

    @property
    def ended(self) -> bool:
        return bool(self.ctl[Ctl.ENDED])

    def stop(self) -> None:
        """Fade out over a few milliseconds and finish, whatever is still buffered."""
        self._publish(Ctl.STOP, 1)

    def pause(self) -> None:
        """Hold the playout: what is playing fades out within a block, then silence, nothing read."""
        self._publish(Ctl.PAUSE, 1)

    def resume(self) -> None:
        """Go on from the sample where the pause took hold, faded in."""
        self._publish(Ctl.PAUSE, 0)

    @property
    def paused(self) -> bool:
        return bool(self.ctl[Ctl.PAUSE])

    def fade_tail(self) -> None:
        """Producer: the audio written next does not follow on from what was written last (a corrupt
        frame was skipped), so fade out the last few unplayed samples; the next write is faded in by
        whoever knows where the gap is (the decoder). If the audio thread is reading those very samples,
        some may play unfaded: harmless, and the ring's bounds are never at risk."""
        f = min(self.fade_len, self.level)
        if f <= 0:
            return
        end = int(self.ctl[Ctl.WRITE])
        for i in range(f):  # at most fade_len (5 ms) samples, rarely: a loop is clearer than two slices
            self._ring[(end - f + i) % self.capacity] *= (f - 1 - i) / f  # a whole ramp, down to 0

    # -- what the consumer keeps --------------------------------------------------------------------
    @property
    def state(self) -> BufferState:
        return STATES[int(self.ctl[Ctl.STATE])]

    @property
    def done(self) -> bool:
        return int(self.ctl[Ctl.STATE]) == DONE

    underruns = property(lambda self: int(self.ctl[Ctl.UNDERRUNS]))
    underrun_samples = property(lambda self: int(self.ctl[Ctl.UNDERRUN_SAMPLES]))
    played_samples = property(lambda self: int(self.ctl[Ctl.PLAYED]))
    silence_samples = property(lambda self: int(self.ctl[Ctl.SILENCE]))
    first_audio_offset = property(lambda self: int(self.ctl[Ctl.FIRST_OFFSET]))
    first_audio_block = property(lambda self: int(self.ctl[Ctl.FIRST_BLOCK]))
    blocks_read = property(lambda self: int(self.ctl[Ctl.BLOCKS]))
    sound_offset = property(lambda self: int(self.ctl[Ctl.SOUND_OFFSET]))
    sound_block = property(lambda self: int(self.ctl[Ctl.SOUND_BLOCK]))

    # -- consumer (Python) --------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> None:
        """Fill `out` (a float32 block: frames, or frames x channels) with audio or silence and advance the
        state machine.

        The same rules as `wb_read` in `_playout.c`, which the device's callback runs instead."""
        c = self.ctl
        n = len(out)
        pos = 0
        c[Ctl.BLOCKS] += 1
        if c[Ctl.STOP] and c[Ctl.STATE] != DONE:
            self._finish_with_fade(out)
            return
        if c[Ctl.PAUSE] and c[Ctl.STATE] < TRAILING:
            self._hold(out)
            return
        if c[Ctl.PAUSE_HELD]:  # resumed: the next sample played fades in
            c[Ctl.PAUSE_HELD] = 0
            c[Ctl.FADE_IN_PENDING] = c[Ctl.STATE] == PLAYING
        if c[Ctl.STATE] == PLAYING and not c[Ctl.ENDED]:  # the final drain is not a buffer level
            level = int(c[Ctl.WRITE] - c[Ctl.READ])
            c[Ctl.LEVEL_SUM] += level
            c[Ctl.LEVEL_COUNT] += 1
            if c[Ctl.LEVEL_MIN] < 0 or level < c[Ctl.LEVEL_MIN]:
                c[Ctl.LEVEL_MIN] = level
            if level > c[Ctl.LEVEL_MAX]:
                c[Ctl.LEVEL_MAX] = level
        while pos < n:
            state = int(c[Ctl.STATE])
            if state == BUFFERING or state == UNDERRUN:
                need = c[Ctl.RESUME] if state == UNDERRUN and c[Ctl.RESUME] else c[Ctl.TARGET]
                if c[Ctl.ENDED] or c[Ctl.WRITE] - c[Ctl.READ] >= need:
                    c[Ctl.STATE] = PLAYING
                    c[Ctl.FADE_IN_PENDING] = state == UNDERRUN
                    if state == BUFFERING:
                        c[Ctl.LEAD_LEFT] = c[Ctl.LEAD]
                    continue
                out[pos:] = 0.0
                if state == UNDERRUN:
                    c[Ctl.UNDERRUN_SAMPLES] += n - pos
                c[Ctl.SILENCE] += n - pos
                pos = n
            elif state == PLAYING and c[Ctl.LEAD_LEFT] > 0:
                s = min(int(c[Ctl.LEAD_LEFT]), n - pos)
                out[pos : pos + s] = 0.0
                c[Ctl.LEAD_LEFT] -= s
                c[Ctl.SILENCE] += s
                pos += s
            elif state == PLAYING:
                ended = bool(c[Ctl.ENDED])  # read before the write counter: once ended, it is final
                left = int(c[Ctl.WRITE] - c[Ctl.READ])
                take = min(left, n - pos)
                if take > 0:
                    self._copy_out(out, pos, take)
                    if ended and left - take < self.fade_len and not c[Ctl.END_FADED]:
                        self._fade_end(out, pos, take, left)
                    if c[Ctl.FIRST_OFFSET] < 0:
                        c[Ctl.FIRST_OFFSET] = pos
                        c[Ctl.FIRST_BLOCK] = c[Ctl.BLOCKS]
                    pos += take
                if pos < n:
                    if ended and c[Ctl.WRITE] == c[Ctl.READ]:
                        c[Ctl.STATE] = TRAILING
                    else:
                        if take > 0:  # fade what we have so the gap does not click
                            self._ramp_down(out, pos, min(self.fade_len, take))
                        c[Ctl.UNDERRUNS] += 1
                        c[Ctl.STATE] = UNDERRUN
                elif take > 0 and not ended and c[Ctl.WRITE] == c[Ctl.READ]:
                    # ran dry exactly at the block's end: the next block can fade nothing that was played, so
                    # fade out now, and fade in what comes next (a 10 ms dip if it comes in time, not a click)
                    self._ramp_down(out, pos, min(self.fade_len, take))
                    c[Ctl.FADE_IN_PENDING] = 1
            elif state == TRAILING:
                s = min(int(c[Ctl.TRAILING_LEFT]), n - pos)
                out[pos : pos + s] = 0.0
                c[Ctl.TRAILING_LEFT] -= s
                c[Ctl.SILENCE] += s
                pos += s
                if c[Ctl.TRAILING_LEFT] == 0:
                    c[Ctl.STATE] = DONE
            else:  # DONE
                out[pos:] = 0.0
                pos = n

    def _copy_out(self, out: np.ndarray, pos: int, take: int) -> None:
        c = self.ctl
        r = int(c[Ctl.READ])
        start = r % self.capacity
        first = min(take, self.capacity - start)
        out[pos : pos + first] = self._ring[start : start + first]
        if take > first:
            out[pos + first : pos + take] = self._ring[: take - first]
        if c[Ctl.FADE_IN_PENDING]:  # 1 + how much of the fade-in was played: it goes on into the next block
            at = int(c[Ctl.FADE_IN_PENDING]) - 1
            f = min(self.fade_len - at, take)
            out[pos : pos + f] *= self._fin[at : at + f]
            c[Ctl.FADE_IN_PENDING] = at + f + 1 if at + f < self.fade_len else 0
        sound = int(c[Ctl.SOUND_AT])
        if c[Ctl.SOUND_BLOCK] < 0 and 0 <= sound - r < take:
            c[Ctl.SOUND_OFFSET] = pos + sound - r
            c[Ctl.SOUND_BLOCK] = c[Ctl.BLOCKS]
        c[Ctl.READ] = r + take  # publish after the copy
        c[Ctl.PLAYED] += take

    def _fade_end(self, out: np.ndarray, pos: int, take: int, left: int) -> None:
        """The stream's last `fade_len` samples fade out, so a reply cut mid-waveform (a truncated
        stream, retries run out) does not click; speech that ends in silence is unchanged. Sample j
        of this block is `left - j` samples from the end; the last one is played at gain 0."""
        j0 = max(0, left - self.fade_len)
        out[pos + j0 : pos + take] *= self._fout[self.fade_len - (left - j0) : self.fade_len - (left - take)]

    def _finish_with_fade(self, out: np.ndarray) -> None:
        c = self.ctl
        take = self._fade_out_now(out) if not c[Ctl.PAUSE_HELD] else 0
        out[take:] = 0.0
        c[Ctl.STATE] = DONE

    def _fade_out_now(self, out: np.ndarray) -> int:
        """While playing: the next few samples, faded out, at the start of `out`; how many."""
        c = self.ctl
        take = 0
        if c[Ctl.STATE] == PLAYING:
            take = min(int(c[Ctl.WRITE] - c[Ctl.READ]), len(out), self.fade_len)
            if take > 0:
                self._copy_out(out, 0, take)
                self._ramp_down(out, take, take)
        return take

    def _ramp_down(self, out: np.ndarray, end: int, f: int) -> None:
        """Fade out[end - f : end] down to 0: the whole fade, or a whole shorter ramp."""
        out[end - f : end] *= self._fout if f == self.fade_len else self._shorts[f]

    def _hold(self, out: np.ndarray) -> None:
        """A block while paused: the first one fades out what was playing, every one is silence after that."""
        c = self.ctl
        take = 0
        if not c[Ctl.PAUSE_HELD]:
            take = self._fade_out_now(out)
            c[Ctl.PAUSE_HELD] = 1
        out[take:] = 0.0
        c[Ctl.PAUSED_SAMPLES] += len(out) - take

    @property
    def paused_ms(self) -> float:
        return self.samples_to_ms(int(self.ctl[Ctl.PAUSED_SAMPLES]))

    # -- figures ----------------------------------------------------------------------------------
    def samples_to_ms(self, samples: float) -> float:
        return samples * 1000.0 / self.rate

    @property
    def underrun_ms(self) -> float:
        return self.samples_to_ms(self.underrun_samples)

    @property
    def avg_level_ms(self) -> float | None:
        count = int(self.ctl[Ctl.LEVEL_COUNT])
        return self.samples_to_ms(int(self.ctl[Ctl.LEVEL_SUM]) / count) if count else None

    @property
    def min_level_ms(self) -> float | None:
        low = int(self.ctl[Ctl.LEVEL_MIN])
        return self.samples_to_ms(low) if low >= 0 else None

    @property
    def max_level_ms(self) -> float | None:
        return self.samples_to_ms(int(self.ctl[Ctl.LEVEL_MAX])) if self.ctl[Ctl.LEVEL_COUNT] else None
