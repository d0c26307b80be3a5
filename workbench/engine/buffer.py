"""The jitter buffer: a preallocated single-producer, single-consumer ring of float32 samples.

The producer (the player, on the event loop) writes decoded audio; the consumer (the sink's audio
callback or its clock thread) reads a block at a time. No lock is shared: each side only advances its
own monotonic counter (`_write` or `_read`), and CPython's GIL makes each counter update atomic. The
producer writes samples before it publishes the new `_write`, and sets `_ended` only after its last
write, so the consumer never reads a sample that is not there.

The consumer also runs the playback state machine, because that is where starvation is noticed:

    BUFFERING --level >= target, or ended--> PLAYING --runs dry--> UNDERRUN --refilled--> PLAYING
    PLAYING --ended and empty--> TRAILING (trailing silence) --> DONE

The read path allocates nothing: it copies into the block it is given and fills silence itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import Enum

import numpy as np


class BufferState(str, Enum):
    BUFFERING = "buffering"  # before the first sample plays
    PLAYING = "playing"
    UNDERRUN = "underrun"  # ran dry mid-stream: silence until refilled to the target
    TRAILING = "trailing"  # all audio played; trailing silence
    DONE = "done"


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
    ) -> None:
        self.rate = rate
        self.capacity = max(1, int(round(capacity_s * rate)))
        self._ring = np.zeros(self.capacity, dtype=np.float32)
        self._write = 0  # samples ever written (producer only)
        self._read = 0  # samples ever read (consumer only)
        self._ended = False
        self._end_faded = False  # end() faded the last samples itself (fewer than fade_len were left)
        self._stop = False
        self._clock = clock
        self.target = 0
        self.set_target_ms(target_ms)
        self.trailing_total = int(round(trailing_silence_s * rate))
        self._trailing_left = self.trailing_total
        self.fade_len = max(1, int(rate * fade_ms / 1000.0))
        self._fade_in = np.linspace(0.0, 1.0, self.fade_len, endpoint=False, dtype=np.float32)
        self._fade_out = self._fade_in[::-1].copy()
        self._fade_in_pending = False
        self.state = BufferState.BUFFERING
        # consumer-side counters (plain ints: readers on other threads see whole values)
        self.underruns = 0
        self.underrun_samples = 0
        self.played_samples = 0
        self.silence_samples = 0
        self.level_sum = 0
        self.level_count = 0
        self.level_min = -1
        self.level_max = 0
        # position in the most recent block where the first real sample went; -1 until it has
        self.first_audio_offset = -1
        self.first_audio_block = -1
        self.blocks_read = 0
        # producer side
        self.ready_time: float | None = None  # clock() when the initial target was first met
        self.written_samples = 0

    # -- configuration (any thread) -------------------------------------------------------------
    def set_target_ms(self, target_ms: float) -> None:
        """Level that must be buffered before playback starts or resumes. May change live.

        0 means "play whatever has arrived": at least one sample, or an empty buffer would count as
        ready and underrun again at once, round and round inside one callback.
        """
        self.target = min(self.capacity, max(1, int(round(target_ms * self.rate / 1000.0))))

    @property
    def target_ms(self) -> float:
        return self.target * 1000.0 / self.rate

    # -- producer ---------------------------------------------------------------------------------
    @property
    def level(self) -> int:
        return self._write - self._read

    @property
    def level_ms(self) -> float:
        return self.level * 1000.0 / self.rate

    def free(self) -> int:
        return self.capacity - (self._write - self._read)

    def write(self, samples: np.ndarray) -> int:
        """Copy as many samples as fit; return how many were taken. Never blocks."""
        if self._ended:
            raise RuntimeError("write after end()")
        n = min(len(samples), self.free())
        if n <= 0:
            return 0
        start = self._write % self.capacity
        first = min(n, self.capacity - start)
        self._ring[start : start + first] = samples[:first]
        if n > first:
            self._ring[: n - first] = samples[first:n]
        self._write += n  # publish after the copy
        self.written_samples = self._write
        if self.ready_time is None and self._write - self._read >= min(self.target, self.capacity):
            self.ready_time = self._clock()
        return n

    def end(self) -> None:
        """No more audio will come. The last `fade_ms` fade out as they play (see `_fade_end`); when less
        than that is left unplayed, it is faded here, over what is left."""
        if self.ready_time is None and self._write > 0:
            self.ready_time = self._clock()
        if 0 < self._write - self._read < self.fade_len:
            self.fade_tail()
            self._end_faded = True  # published before _ended: the reader sees both or neither
        self._ended = True

    @property
    def ended(self) -> bool:
        return self._ended

    def stop(self) -> None:
        """Fade out over a few milliseconds and finish, whatever is still buffered."""
        self._stop = True

    @property
    def done(self) -> bool:
        return self.state is BufferState.DONE

    # -- consumer ---------------------------------------------------------------------------------
    def read_into(self, out: np.ndarray) -> None:
        """Fill `out` (a float32 block) with audio or silence and advance the state machine."""
        n = len(out)
        pos = 0
        self.blocks_read += 1
        if self._stop and self.state is not BufferState.DONE:
            self._finish_with_fade(out)
            return
        if self.state is BufferState.PLAYING and not self._ended:  # the final drain is not a buffer level
            level = self._write - self._read
            self.level_sum += level
            self.level_count += 1
            if self.level_min < 0 or level < self.level_min:
                self.level_min = level
            if level > self.level_max:
                self.level_max = level
        while pos < n:
            state = self.state
            if state is BufferState.BUFFERING or state is BufferState.UNDERRUN:
                ended = self._ended
                if ended or self._write - self._read >= self.target:
                    self.state = BufferState.PLAYING
                    self._fade_in_pending = state is BufferState.UNDERRUN
                    continue
                out[pos:] = 0.0
                if state is BufferState.UNDERRUN:
                    self.underrun_samples += n - pos
                self.silence_samples += n - pos
                pos = n
            elif state is BufferState.PLAYING:
                ended = self._ended  # read before _write: once ended, _write is final
                take = min(self._write - self._read, n - pos)
                if take > 0:
                    left = self._write - self._read  # samples still to play, these included
                    self._copy_out(out, pos, take)
                    if ended and left - take < self.fade_len and not self._end_faded:
                        self._fade_end(out, pos, take, left)
                    if self.first_audio_offset < 0:
                        self.first_audio_offset = pos
                        self.first_audio_block = self.blocks_read
                    pos += take
                if pos < n:
                    if ended and self._write == self._read:
                        self.state = BufferState.TRAILING
                    else:
                        if take > 0:  # fade what we have so the gap does not click
                            f = min(self.fade_len, take)
                            out[pos - f : pos] *= self._fade_out[self.fade_len - f :]
                        self.underruns += 1
                        self.state = BufferState.UNDERRUN
            elif state is BufferState.TRAILING:
                s = min(self._trailing_left, n - pos)
                out[pos : pos + s] = 0.0
                self._trailing_left -= s
                self.silence_samples += s
                pos += s
                if self._trailing_left == 0:
                    self.state = BufferState.DONE
            else:  # DONE
                out[pos:] = 0.0
                pos = n

    def _copy_out(self, out: np.ndarray, pos: int, take: int) -> None:
        start = self._read % self.capacity
        first = min(take, self.capacity - start)
        out[pos : pos + first] = self._ring[start : start + first]
        if take > first:
            out[pos + first : pos + take] = self._ring[: take - first]
        if self._fade_in_pending:
            f = min(self.fade_len, take)
            out[pos : pos + f] *= self._fade_in[:f]
            self._fade_in_pending = False
        self._read += take  # publish after the copy
        self.played_samples += take

    def _fade_end(self, out: np.ndarray, pos: int, take: int, left: int) -> None:
        """The stream's last `fade_len` samples fade out, so a reply cut mid-waveform (a truncated
        stream, retries run out) does not click; speech that ends in silence is unchanged. Sample j
        of this block is `left - j` samples from the end; the last one is played at gain 0."""
        j0 = max(0, left - self.fade_len)
        out[pos + j0 : pos + take] *= self._fade_out[self.fade_len - (left - j0) : self.fade_len - (left - take)]

    def fade_tail(self) -> None:
        """Producer: the audio written next does not follow on from what was written last (a corrupt
        frame was skipped), so fade out the last few unplayed samples; the next write is faded in by
        whoever knows where the gap is (the decoder). If the audio thread is reading those very samples,
        some may play unfaded: harmless, and the ring's bounds are never at risk."""
        f = min(self.fade_len, self._write - self._read)
        if f <= 0:
            return
        end = self._write
        for i in range(f):  # at most fade_len (5 ms) samples, rarely: a loop is clearer than two slices
            self._ring[(end - f + i) % self.capacity] *= (f - 1 - i) / f  # a whole ramp, down to 0

    def _finish_with_fade(self, out: np.ndarray) -> None:
        n = len(out)
        if self.state is BufferState.PLAYING:
            take = min(self._write - self._read, n, self.fade_len)
            if take > 0:
                self._copy_out(out, 0, take)
                out[:take] *= self._fade_out[self.fade_len - take :]
            out[take:] = 0.0
        else:
            out[:] = 0.0
        self.state = BufferState.DONE

    # -- figures ----------------------------------------------------------------------------------
    def samples_to_ms(self, samples: int) -> float:
        return samples * 1000.0 / self.rate

    @property
    def underrun_ms(self) -> float:
        return self.samples_to_ms(self.underrun_samples)

    @property
    def avg_level_ms(self) -> float | None:
        return self.samples_to_ms(self.level_sum / self.level_count) if self.level_count else None

    @property
    def min_level_ms(self) -> float | None:
        return self.samples_to_ms(self.level_min) if self.level_min >= 0 else None

    @property
    def max_level_ms(self) -> float | None:
        return self.samples_to_ms(self.level_max) if self.level_count else None
