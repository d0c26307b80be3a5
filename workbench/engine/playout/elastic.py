"""Elastic playout: start as soon as a little audio is in hand, then grow the buffer by playing slightly
slower (pitch kept), instead of paying for the whole buffer in silence before the first sound.

    decoder -> reserve -> stretcher (rate set every 10 ms) -> ring (a few blocks) -> device callback

Decoded audio waits in the reserve. A pump thread moves it through the `Stretcher`, at the rate the
policy chooses, into the jitter buffer's ring, keeping the ring a few blocks ahead of the device. The
device's callback still only copies. The level the policy steers is everything not yet played: ring,
stretcher and reserve.

What to do next (hold the start, a hop at which rate, hand on what is here as it is) is decided by
`controller.decide`, a pure function of the playout's `Status`; the pump builds that status and does
what it is told. The rules are written out there.

After a true underrun, playback resumes as soon as `start_ms` is back in the ring, and the buffer grows
again by stretching: never a silent wait for the whole target.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Protocol

import numpy as np

from .buffer import JitterBuffer
from .controller import (
    Decision,
    Op,
    RateLimits,
    Status,
    arriving_fast,
    cushion_ms,
    decide,
    ring_wanted_ms,
)
from .stretch import Stretcher
from .wake import BlockWake

PUMP_PERIOD_S = 0.010  # without a sink that wakes it, the pump looks at the ring this often (twice a block)
# The pump is a Python thread: a busy interpreter (the workbench redrawing) can keep it waiting, and the
# device must not run dry meanwhile. The ring holds twice the longest recent wait more, up to this much,
# forgetting a wait over a few seconds.
MAX_SLACK_MS = 250.0
WAKE_TIMEOUT_BLOCKS = 1.5  # woken by the sink: half a block past the wake-up it asked for, it looks anyway
SLACK_MEMORY_S = 3.0
PEAK_WINDOW_S = 0.25  # the status carries the highest level of the last quarter second (audio comes in bursts)


class Feed(Protocol):
    """Where the player writes decoded audio: the jitter buffer itself (fixed playout), or the elastic
    stage in front of it."""

    def write(self, samples: np.ndarray) -> int: ...

    def free(self) -> int: ...

    def end(self) -> None: ...

    def fade_tail(self) -> None: ...

    def set_target_ms(self, target_ms: float) -> None: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    @property
    def ended(self) -> bool: ...

    @property
    def level_ms(self) -> float: ...

    @property
    def target_ms(self) -> float: ...


class ElasticPlayout:
    def __init__(self, buffer: JitterBuffer, *, target_ms: float, start_ms: float, block_ms: float,
                 limits: RateLimits | None = None, slack_ms: float = 0.0, wake: BlockWake | None = None,
                 block_period_s: float | None = None, steady_start: bool = True) -> None:
        self.buffer = buffer
        self.rate_hz = buffer.rate
        self.limits = limits or RateLimits()
        self._target_ms = target_ms  # the level to grow to; the adaptive target may move it
        self.start_ms = start_ms  # what the ring needs to start, or to resume after an underrun
        # the ring is kept just a block ahead of the start: audio in it is committed to its rate, and near
        # empty the policy needs what is left uncommitted, in the stretcher, to slow down. A sink that wakes
        # the pump is asked to do so only every other block (each wake-up costs real CPU), so the ring then
        # runs two blocks ahead, and the pump finds as much in it as it would waking after every block
        self._sink_wakes = wake is not None
        self._block = max(1, int(round(block_ms * buffer.rate / 1000.0)))
        self.ring_ms = self._ring_base_ms = start_ms + block_ms * (2 if self._sink_wakes else 1)
        self.slack_ms = self.peak_slack_ms = 0.0  # more in the ring, for the pump's own lateness ...
        self.note_wait(slack_ms / 2000.0, 0.0)  # ... starting from what the last play learned
        self.stretcher = Stretcher(buffer.rate, slowest=self.limits.slowest, channels=buffer.channels)
        self._reserve: collections.deque[tuple[np.ndarray, bool]] = collections.deque()  # (audio, after a gap)
        self._gap_next = False
        self._pushed = 0  # samples into the reserve (the player's thread)
        self._taken = 0  # samples out of it (the pump's thread)
        self._ended = False
        self._stop = threading.Event()
        # the pump waits on a pipe: a byte comes when audio arrives to a short ring, at the end, at a stop,
        # and (with a sink that says so) when the device has taken a block that left the ring below what
        # the pump asked for (`set_wake_below`): then it wakes every block or two instead of looking every
        # PUMP_PERIOD_S
        self.block_wake = wake if wake is not None else BlockWake()
        self._period_s = block_period_s if block_period_s is not None else block_ms / 1000.0
        self._thread: threading.Thread | None = None
        self._lookahead_ms = (self.stretcher.frame + self.stretcher.tolerance) * 1000.0 / self.rate_hz
        self._levels: collections.deque[tuple[float, float]] = collections.deque()  # (when, level ms)
        self._last_arrival: float | None = None  # when audio last came (perf_counter)
        self._first_arrival: float | None = None  # ... and first
        self.drained = 0  # samples handed on as they were, because the device was about to run dry
        self.hungry = True  # the last step left the ring short of what it should hold (input was short)
        self.rate = 1.0  # the rate of the last hop
        self.trace: list[tuple[Status, Decision]] | None = None  # set to a list: every decision, recorded
        self.steady_start = steady_start  # see controller.Status.steady_start
        self.min_rate = 1.0
        self.max_rate = 1.0
        buffer.set_target_ms(start_ms)
        buffer.set_resume_ms(start_ms)

    # -- the player's side (a Feed) ------------------------------------------------------------------
    def write(self, samples: np.ndarray) -> int:
        """Take as much as fits in the maximum buffer; return how many were taken. Never blocks."""
        n = min(len(samples), self.free())
        if n > 0:
            self._reserve.append((samples[:n], self._gap_next))
            self._gap_next = False
            self._pushed += n
            self._last_arrival = time.perf_counter()
            if self._first_arrival is None:
                self._first_arrival = self._last_arrival
            self._notify(arrival=True)
        return max(n, 0)

    def free(self) -> int:
        return self.buffer.capacity - self.level_samples

    def fade_tail(self) -> None:
        """The next audio does not follow on from the last (a corrupt frame was skipped): the pump fades
        out the stretcher's unplayed input before it takes the next piece."""
        self._gap_next = True

    def set_target_ms(self, target_ms: float) -> None:
        self._target_ms = target_ms

    @property
    def target_ms(self) -> float:
        return self._target_ms

    def prime(self, device_ms: float) -> None:
        """A device started with its first audio reads its whole buffer (`device_ms`) at once: the ring
        must hold that and a block before it starts, or the start itself is an underrun (a recorded
        26 ms gap). After an underrun the device is running, and a block is still enough to resume."""
        need = device_ms + self._block * 1000.0 / self.rate_hz
        if need > self.start_ms:
            self.buffer.set_target_ms(need)
            self._ring_base_ms = max(self._ring_base_ms, need)
            self.ring_ms = max(self.ring_ms, self._ring_base_ms + self.slack_ms)

    def pause(self) -> None:
        """Hold the playout (the ring's consumer fades out and plays silence, reading nothing)."""
        self.buffer.pause()

    def resume(self) -> None:
        """Go on where the pause took hold. No audio came while paused because nothing played, not
        because the input stalled: the stall clock starts again now."""
        if self._last_arrival is not None:
            self._last_arrival = time.perf_counter()
        self._levels.clear()
        self.buffer.resume()
        self._notify()

    def end(self) -> None:
        """No more audio will come: the rest plays at 1.0, then the ring ends."""
        self._ended = True
        self._notify()

    @property
    def arriving_fast(self) -> bool:
        """Audio has come at least `FAST_ARRIVAL` times faster than it plays (`controller.arriving_fast`)."""
        return arriving_fast(self._pushed / self.rate_hz, self._first_arrival, self._last_arrival)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._pump, name="elastic-playout", daemon=True)
        self._thread.start()

    def stop(self, wait: bool = True) -> None:
        """Stop the pump; with `wait`, until its thread has finished (never from the event loop)."""
        self._stop.set()
        self._notify()
        if wait and self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    @property
    def ended(self) -> bool:
        return self._ended

    @property
    def level_samples(self) -> int:
        """Everything not yet played: the ring, the stretcher's input and the reserve."""
        return self.buffer.level + self.stretcher.pending + (self._pushed - self._taken)

    @property
    def level_ms(self) -> float:
        return self.level_samples * 1000.0 / self.rate_hz

    # -- the controller's view -------------------------------------------------------------------------
    def status(self, peak_ms: float | None = None, stalled_ms: float = 0.0, input_ended: bool = False,
               quiet: bool | None = None, hop_blocked: bool = False) -> Status:
        """The playout as `controller.decide` sees it now."""
        level = self.level_ms
        st = self.stretcher
        ms = 1000.0 / self.rate_hz
        fast = self.arriving_fast
        return Status(
            level_ms=level, peak_ms=level if peak_ms is None else peak_ms, in_ring_ms=self.buffer.level_ms,
            ring_base_ms=self._ring_base_ms, ring_kept_ms=self.ring_ms, start_ms=self.start_ms,
            lookahead_ms=self._lookahead_ms, target_ms=self._target_ms,
            cushion_ms=cushion_ms(self._target_ms, fast, self.buffer.capacity * 500.0 / self.rate_hz),
            stalled_ms=stalled_ms, owed_ms=(st.added - st.removed) * ms, state=self.buffer.state,
            arriving_fast=fast, input_ended=input_ended, quiet_next=quiet, stretcher_ms=st.pending * ms,
            hop_blocked=hop_blocked, steady_start=self.steady_start)

    def _decide(self, peak_ms: float, stalled_ms: float, input_ended: bool, hop_blocked: bool = False) -> Decision:
        quiet = None if hop_blocked else self.stretcher.quiet_ahead()
        status = self.status(peak_ms, stalled_ms, input_ended, quiet, hop_blocked)
        decision = decide(status, self.limits)
        if self.trace is not None:
            self.trace.append((status, decision))
        return decision

    # -- the pump: it executes -----------------------------------------------------------------------
    def step(self) -> bool:
        """Top the ring up to what the controller wants in it; returns False once everything has been
        handed to the ring."""
        buffer, stretcher = self.buffer, self.stretcher
        if buffer.ended:
            return False
        while self._reserve:
            chunk, after_gap = self._reserve.popleft()
            if after_gap:
                stretcher.fade_tail(buffer.fade_len)
            stretcher.feed(chunk)
            self._taken += len(chunk)
        ended = self._ended and self._taken == self._pushed
        if ended and not stretcher.done:
            stretcher.end()
        now = time.perf_counter()
        level = self.level_ms
        levels = self._levels  # a monotonic queue: the peak of the window is always its first entry
        while levels and levels[-1][1] <= level:
            levels.pop()
        levels.append((now, level))
        while levels[0][0] < now - PEAK_WINDOW_S:
            levels.popleft()
        peak = levels[0][1]
        stalled_ms = 0.0 if self._last_arrival is None else (now - self._last_arrival) * 1000.0
        want = int(ring_wanted_ms(self.ring_ms, self.level_ms, self._target_ms) * self.rate_hz / 1000.0) - buffer.level
        while want > 0 and not stretcher.done:
            decision = self._decide(peak, stalled_ms, ended)
            if decision.op is Op.HOLD:
                break  # the pump stays hungry, woken by the next audio
            rate = decision.rate
            # at 1.0 nothing is near a threshold: the rest of what is wanted in one go (fewer, larger
            # writes); otherwise a hop at a time, the rate decided again for each, and so while speech
            # plays at 1.0 only until a pause comes that the controller would stretch
            hops = max(1, want // stretcher.hop) if rate == 1.0 and not decision.hop_by_hop else 1
            out = stretcher.pull(rate, hops, expand=rate == self.limits.slowest)
            if len(out):
                self._note_rate(rate)
            elif self._decide(peak, stalled_ms, ended, hop_blocked=True).op is Op.DRAIN:
                out = stretcher.drain(want)
                self.drained += len(out)
            if not len(out):
                break
            written = 0
            while written < len(out) and not self._stop.is_set():
                written += buffer.write(out[written:])
                if written < len(out):
                    time.sleep(PUMP_PERIOD_S)
            want -= len(out)
        self.hungry = want > 0
        if stretcher.done:
            buffer.end()
            return False
        if self._sink_wakes:
            # topped up: wake after the second block from now, by which time the ring holds what it held
            # after one block before; short: after every block (and when audio arrives)
            buffer.set_wake_below(0 if self.hungry else buffer.level - self._block * 3 // 2)
        return True

    @property
    def wake_blocks(self) -> int:
        """After how many blocks the sink wakes the pump: two while the ring is topped up, one while it
        is short (or when the sink does not wake it at all, and the pump polls)."""
        return 1 if self.hungry or not self._sink_wakes else 2

    def _note_rate(self, rate: float) -> None:
        self.rate = rate
        self.min_rate = min(self.min_rate, rate)
        self.max_rate = max(self.max_rate, rate)

    def note_wait(self, late_s: float, since_s: float) -> None:
        """The pump woke `late_s` after it meant to, `since_s` after it last did: the ring holds twice
        the longest recent lateness more (audio in the ring is committed to its rate, so no more than
        that)."""
        memory = math.exp(-since_s / SLACK_MEMORY_S)
        self.slack_ms = min(MAX_SLACK_MS, max(2000.0 * late_s, self.slack_ms * memory))
        self.peak_slack_ms = max(self.peak_slack_ms, self.slack_ms)
        self.ring_ms = self._ring_base_ms + self.slack_ms

    def _notify(self, arrival: bool = False) -> None:
        """Wake the pump: always for the end or a stop; for audio arriving, only when the ring is short
        (otherwise it waits for the next look)."""
        if arrival and not self.hungry:
            return
        self.block_wake.notify()

    def _pump(self) -> None:
        last = time.perf_counter()
        # each wake-up costs real CPU (about 0.2-0.3 ms here, most of it not the step's work), so the pump
        # wakes right after the device took a block, every other block while the ring is topped up; a
        # lost byte costs half a block more
        while not self._stop.is_set():
            if not self.step():
                return
            if self._sink_wakes:
                period = self.wake_blocks * self._period_s
                timeout = period + (WAKE_TIMEOUT_BLOCKS - 1.0) * self._period_s
            else:
                period = timeout = PUMP_PERIOD_S
            self.block_wake.wait(timeout)
            now = time.perf_counter()
            self.note_wait(max(0.0, now - last - period), now - last)
            last = now

    # -- figures --------------------------------------------------------------------------------------
    @property
    def added_ms(self) -> float:
        return self.stretcher.added * 1000.0 / self.rate_hz

    @property
    def removed_ms(self) -> float:
        return self.stretcher.removed * 1000.0 / self.rate_hz

    @property
    def in_pauses_pct(self) -> float | None:
        """The share of the time added or removed that was added to or taken from pauses (None: none was)."""
        st = self.stretcher
        moved = st.added + st.removed
        return 100.0 * (st.added_quiet + st.removed_quiet) / moved if moved else None

    @property
    def speech_off_tempo_pct(self) -> float | None:
        """The share of speech played outside 0.95-1.05x (None: no speech played)."""
        st = self.stretcher
        return 100.0 * st.speech_off_tempo / st.speech_out if st.speech_out else None

    @property
    def stretched_pct(self) -> float:
        produced = self.stretcher.produced
        return 100.0 * self.stretcher.stretched / produced if produced else 0.0
