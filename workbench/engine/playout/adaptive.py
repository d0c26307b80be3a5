"""Adaptive buffering: a buffer target learned from how late audio arrives (after WebRTC's NetEQ, simplified).

- Lateness of a piece of audio: (its arrival - the first arrival) - (where it starts in the audio),
  minus the smallest such value over the last two seconds, floored at zero. A steady stream, however
  fast, has lateness near zero; a stall shows up as lateness as long as the stall.
- Every half second the largest lateness seen goes into a histogram of 20 ms buckets that forgets
  (each old entry weighs 0.98 of what it did half a second before). The floor of the target is the
  histogram's 95th percentile plus one device block, clamped between the initial buffer and the max.
- An underrun raises the target at once (1.5x, or +100 ms, whichever is more). After ten seconds with
  no underrun the target decays towards the floor, a tenth of the way every half second.
- The learned target carries over to the next utterance: `begin()` starts a play without forgetting.
- A server slower than real time (arrival pace r < 1) needs about remaining * (1/r - 1) of buffer,
  which no percentile of lateness catches in time: `slow_server_ms` estimates it.

Everything takes times as arguments, so tests drive it with a deterministic clock.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..playrun import PlayRun
from .buffer import JitterBuffer
from .controller import play_target_ms

if TYPE_CHECKING:
    from .elastic import Feed

BUCKET_MS = 20.0
FORGET = 0.98
PERCENTILE = 0.95
TICK_S = 0.5
WINDOW_S = 2.0
RAISE_FACTOR = 1.5
RAISE_MIN_MS = 100.0
STEADY_S = 10.0
DECAY = 0.1


MERGE_S = 0.001  # pieces that arrive this close together, one after the other, are kept as one
MAX_ARRIVALS = 100_000  # a bound on what one play keeps (an hour of 40 ms bursts is ~90,000)


@dataclass(slots=True)
class Arrival:
    t: float  # seconds since the play's first arrival
    start_s: float  # where this piece starts in the audio
    length_s: float


class AdaptiveTarget:
    def __init__(self, initial_ms: float, max_ms: float, block_ms: float) -> None:
        self.initial_ms = initial_ms
        self.max_ms = max_ms
        self.block_ms = block_ms
        self.target_ms = initial_ms
        self.buckets = [0.0] * (int(max_ms // BUCKET_MS) + 2)
        self.underruns = 0
        self._last_underrun: float | None = None
        self._t0: float | None = None
        self._window: deque[tuple[float, float]] = deque()  # (t, raw lateness) over the last WINDOW_S
        self._tick_max = 0.0
        self._next_tick = 0.0
        self._ended = False
        self.arrivals: list[Arrival] = []  # this play's, for `needed_buffer_ms`

    # -- a play -----------------------------------------------------------------------------------
    def begin(self, initial_ms: float, max_ms: float) -> float:
        """Start a play: returns the target to start it with (the learned one, within the new bounds)."""
        self.initial_ms = initial_ms
        if max_ms != self.max_ms:
            self.max_ms = max_ms
            self.buckets = (self.buckets + [0.0] * int(max_ms // BUCKET_MS + 2))[: int(max_ms // BUCKET_MS) + 2]
        self.target_ms = min(max(self.target_ms, initial_ms), max_ms)
        self._t0 = None
        self._ended = False
        self._window.clear()
        self._tick_max = 0.0
        self.arrivals = []
        return self.target_ms

    def end(self) -> None:
        """The download is complete: the wait after the last piece is not lateness."""
        self._ended = True

    def arrival(self, now: float, start_s: float, length_s: float) -> None:
        """A piece of audio arrived at `now` (any clock, in seconds)."""
        if self._t0 is None:
            self._t0 = now
            self._next_tick = now + TICK_S
        t = now - self._t0
        last = self.arrivals[-1] if self.arrivals else None
        if last is not None and t - last.t < MERGE_S and abs(last.start_s + last.length_s - start_s) < 1e-9:
            last.length_s += length_s  # one network read decoded in pieces: at most 1 ms optimistic
        elif len(self.arrivals) < MAX_ARRIVALS:
            self.arrivals.append(Arrival(t, start_s, length_s))
        raw = t - start_s
        window = self._window
        window.append((t, raw))
        while window and window[0][0] < t - WINDOW_S:
            window.popleft()
        lateness_ms = max(raw - min(r for _, r in window), 0.0) * 1000.0
        self._tick_max = max(self._tick_max, lateness_ms)
        self.tick(now)

    def tick(self, now: float) -> None:
        """Call often (also when nothing arrives: a stall is when it matters)."""
        if self._t0 is None:
            return
        if self._window and not self._ended:  # lateness keeps growing while nothing arrives
            t = now - self._t0
            waiting_ms = (t - self._window[-1][0]) * 1000.0
            self._tick_max = max(self._tick_max, waiting_ms)
        while now >= self._next_tick:
            self._next_tick += TICK_S
            self._add(self._tick_max)
            self._tick_max = 0.0
            self._update(now)

    def underrun(self, now: float) -> None:
        self.underruns += 1
        self._last_underrun = now
        self.target_ms = min(self.max_ms, max(self.target_ms * RAISE_FACTOR, self.target_ms + RAISE_MIN_MS))

    # -- the histogram ----------------------------------------------------------------------------
    def _add(self, lateness_ms: float) -> None:
        buckets = self.buckets
        for i in range(len(buckets)):
            buckets[i] *= FORGET
        i = min(int(lateness_ms // BUCKET_MS), len(buckets) - 1)
        buckets[i] += 1.0

    def percentile_ms(self, q: float = PERCENTILE) -> float:
        total = sum(self.buckets)
        if total <= 0:
            return 0.0
        acc = 0.0
        for i, weight in enumerate(self.buckets):
            acc += weight
            if acc >= q * total:
                return (i + 1) * BUCKET_MS
        return len(self.buckets) * BUCKET_MS

    @property
    def floor_ms(self) -> float:
        return min(max(self.percentile_ms() + self.block_ms, self.initial_ms), self.max_ms)

    def _update(self, now: float) -> None:
        floor = self.floor_ms
        steady = self._last_underrun is None or now - self._last_underrun >= STEADY_S
        if self.target_ms < floor:
            self.target_ms = floor
        elif steady and self.target_ms > floor:
            self.target_ms = max(floor, self.target_ms - (self.target_ms - floor) * DECAY)


CHARS_PER_S = 15.0  # speech from text, roughly: neural TTS and espeak-ng both say about 15 characters a second


def estimate_speech_s(text: str, speed: float | None = None) -> float:
    return len(text.strip()) / CHARS_PER_S / (speed or 1.0)


def slow_server_ms(remaining_s: float, arrival_rtf: float) -> float:
    """Buffer a stream arriving at `arrival_rtf` seconds of audio per second needs for the rest."""
    if arrival_rtf <= 0 or arrival_rtf >= 1.0:
        return 0.0
    return remaining_s * (1.0 / arrival_rtf - 1.0) * 1000.0


def needed_buffer_ms(arrivals: list[Arrival], *, step_ms: float = 10.0, limit_ms: float = 10_000.0) -> float:
    """The smallest initial buffer with which these arrivals would have played without an underrun.

    Replays the play: with an initial buffer B, playback starts when B of audio has arrived, and each
    piece is needed at that start plus its place in the audio; a piece that arrives after it is needed
    is an underrun.
    """
    if not arrivals:
        return 0.0

    def clean(b_ms: float) -> bool:
        start = next((a.t for a in arrivals if a.start_s + a.length_s >= b_ms / 1000.0), None)
        if start is None:  # the whole reply is shorter than B: it plays after the last arrival
            return True
        return all(a.t <= start + a.start_s for a in arrivals)

    lo, hi = 0, int(limit_ms // step_ms)  # in steps; more buffer never starts sooner, so search
    if not clean(hi * step_ms):
        return limit_ms
    while lo < hi:
        mid = (lo + hi) // 2
        if clean(mid * step_ms):
            hi = mid
        else:
            lo = mid + 1
    return lo * step_ms


class Steering:
    """The one writer of a play's buffer target (fixed playout: the ring's start level; elastic playout:
    the level it grows to). It follows the user's live value and, with adaptive buffering (`adaptive`),
    the learned target and what a server slower than real time needs for the rest of the reply;
    `controller.play_target_ms` says how they combine. Every write goes through `apply`."""

    def __init__(self, feed_of: Callable[[], Feed | None], buffer_of: Callable[[], JitterBuffer | None],
                 user_ms: float, *, adaptive: AdaptiveTarget | None = None, run: PlayRun | None = None,
                 expected_s: float = 0.0) -> None:
        self.user_ms = user_ms
        self.adaptive = adaptive
        self.slow_server_ms = 0.0  # what the rest of the reply needs from a slow server (0: none)
        self._feed_of, self._buffer_of = feed_of, buffer_of
        self._run, self._expected_s = run, expected_s
        self._seen_underruns = 0
        self._warned = False

    @property
    def target_ms(self) -> float:
        return play_target_ms(self.user_ms, self.adaptive.target_ms if self.adaptive is not None else None,
                              self.slow_server_ms, self.adaptive.max_ms if self.adaptive is not None else self.user_ms)

    def set_user_ms(self, ms: float) -> None:
        """A live edit of the initial buffer: the user's value wins now; adaptation goes on from it."""
        self.user_ms = ms
        if self.adaptive is not None:
            self.adaptive.initial_ms = ms
            self.adaptive.target_ms = min(ms, self.adaptive.max_ms)
        self.apply()

    def apply(self) -> None:
        feed = self._feed_of()
        if feed is not None and abs(self.target_ms - feed.target_ms) >= 1.0:
            feed.set_target_ms(self.target_ms)

    def step(self, now: float) -> None:
        """Feed the clock and the ring's underruns to the adaptive target; when the server is slower than
        real time, aim for what the rest of the reply needs; then apply."""
        adaptive, run = self.adaptive, self._run
        buffer, feed = self._buffer_of(), self._feed_of()
        if adaptive is None or run is None or buffer is None or feed is None:
            return
        if feed.ended:  # the download is over (elastic: long before the ring plays out)
            adaptive.end()
        if buffer.underruns > self._seen_underruns:
            self._seen_underruns = buffer.underruns
            adaptive.underrun(now)
        adaptive.tick(now)
        arrivals = adaptive.arrivals
        self.slow_server_ms = 0.0  # only while the download goes on
        if arrivals and arrivals[-1].t >= 1.0 and not feed.ended:
            received_s = arrivals[-1].start_s + arrivals[-1].length_s
            # time spent waiting on a full buffer is ours, not the server's
            pace = received_s / max(now - (run.first_audio_at or now) - run.backpressure_s, 1e-3)
            self.slow_server_ms = slow_server_ms(max(self._expected_s - received_s, 0.0), pace)
            if self.slow_server_ms > 0 and not self._warned and pace < 0.95:
                self._warned = True
                run.notice(f"the server sends audio at {pace:.2f}x real time: buffering up to "
                           f"{min(self.slow_server_ms, adaptive.max_ms):.0f} ms to play the rest through")
        self.apply()

    async def run(self) -> None:
        """Ten times a second while the play runs."""
        while True:
            await asyncio.sleep(0.1)
            self.step(time.perf_counter())
