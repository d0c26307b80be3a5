"""Pitch-preserving time-scale modification for speech, streaming: WSOLA on numpy.

Playing a little slower or faster without changing the pitch is how elastic playout grows the buffer
without silence and trims it without a jump (WebRTC's NetEQ does the same in every voice call).

WSOLA (waveform-similarity overlap-add): the output is built from Hann-windowed frames of the input at
50 % overlap (such windows sum to exactly one). Each output hop of `hop` samples consumes `hop x rate`
samples of input: fewer when slowing down (rate < 1), more when speeding up. Where the next frame comes
from is chosen within +-`tolerance` of that nominal position, as the one most like the natural
continuation of the frame before it. Consecutive frames then line up in phase, and a voiced sound keeps
its pitch.

- At a rate of exactly 1.0 no search is made and the output is the input, sample for sample, from the
  very first sample: the first frame's falling half is seeded from the input itself.
- The rate may change at every hop (10 ms).
- At the end, what is left of the input is played as it is.

More than one channel (stereo: samples are frames x channels): every choice (where a frame comes from,
how loud it is, whether it is in phase) is made on the channels' mean, and the same frames are overlapped
in every channel, so the channels stay in step and keep their image.

Latency: a frame needs `frame + tolerance` samples of input ahead of it (25 ms at 24 kHz). The state
is a few arrays; each hop costs one correlation of `frame` samples over 2 x `tolerance` + 1 lags.
"""

from __future__ import annotations

import numpy as np

EMPTY = np.zeros(0, dtype=np.float32)
MAX_EXPAND_MS = 120.0  # longer than this, repeated pitch periods buzz: a short silence is better
# a candidate from a window narrower than a pitch period must be this alike: overlapping two equal parts
# with normalised correlation c leaves sqrt((1 + c) / 2) of the level at the splice's middle, so 0.62 keeps
# a dip under 10 % (0.9 dB; a 440 Hz tone spliced 144 degrees out, c = -0.8, dipped by 10 dB). It was 0.3,
# which let a splice after two drains dip a tone by 12 % (found by hypothesis: test_elastic's seam test)
MATCH = 0.62
SILENT_POWER = 1e-4  # mean square under -40 dBFS (an onset, a breath): a dip there is far under the voice
# a pause, for placing the stretch and counting where it went: a frame under -60 dBFS, or 40 dB under the
# loudest frame of the last second or so (the voice's level decays by LOUD_DECAY a hop, ~4 dB a second);
# `bench quality` draws the line between speech and pause there too (at 30 dB, stretched "pauses" were
# the quiet ends of words: a tenth of the time added fell where a listener hears speech)
QUIET_POWER = 1e-6
QUIET_BELOW_LOUD = 1e-4
LOUD_DECAY = 0.99
IN_TEMPO = (0.95, 1.05)  # speech played within this band counts as played at its own tempo


class Stretcher:
    def __init__(self, rate_hz: int, frame_ms: float = 20.0, tolerance_ms: float = 5.0, slowest: float = 0.5,
                 channels: int = 1) -> None:
        self.rate_hz = rate_hz
        self.channels = channels
        self.hop = max(8, int(round(rate_hz * frame_ms / 2000.0)))
        self.frame = 2 * self.hop
        self.tolerance = max(1, int(round(rate_hz * tolerance_ms / 1000.0)))
        n = np.arange(self.frame, dtype=np.float64)
        self._window = (0.5 - 0.5 * np.cos(2.0 * np.pi * n / self.frame)).astype(np.float32)  # periodic Hann
        self._empty: np.ndarray = EMPTY if channels == 1 else np.zeros((0, channels), dtype=np.float32)
        self._w = self._window if channels == 1 else self._window[:, None]  # a gain per frame, every channel
        self._input: np.ndarray = self._empty  # the input still needed, from absolute sample `_start`
        self._mono: np.ndarray = EMPTY  # ... and the channels' mean, what is measured (the input itself when mono)
        self._start = 0
        self._fed = 0  # input samples ever given
        self._ended = False
        self._finished = False
        self._tail: np.ndarray | None = None  # the last frame's falling half, to overlap with the next
        self._in_step = True  # the last frame followed on from the one before it
        self._origin = 0  # where the current run of frames began (0, or after a drain)
        self._prev = -self.hop  # where the last frame began in the input (frame -1: the seed)
        self._nominal = float(-self.hop)  # where, at the rates asked for, it should have begun
        self.produced = 0  # output samples ever made
        self.added = 0  # output samples more than the input they played (slowing down) ...
        self.removed = 0  # ... and fewer (speeding up)
        self.stretched = 0  # output samples made at a rate other than 1.0
        self.added_quiet = 0  # of `added` and `removed`, what was added or removed in pauses (`quiet`)
        self.removed_quiet = 0
        self.speech_out = 0  # output samples made from speech (frames that are not quiet) ...
        self.speech_off_tempo = 0  # ... and of them, made at a rate outside IN_TEMPO
        self._loud = 0.0  # the voice's recent level (mean square of its loudest frame, decaying)
        self._expanded = 0  # output samples in a row made without moving forward in the input ...
        self._furthest = 0  # ... beyond the furthest frame taken so far
        self._max_expand = int(rate_hz * MAX_EXPAND_MS / 1000.0)
        # expanding is also bounded over time, not only in a row: each hop may take `slowest` x hop of new
        # input less than it makes; beyond that it owes the difference (`_debt`, in input samples, paid back
        # by hops that take more). A stream that trickles in (a byte at a time) once made a new run of
        # repeats after each few samples: 300 ms of audio played as 1.5 s while the slowest rate was 0.5.
        # Owing more than MAX_EXPAND_MS at that rate, the stretcher waits for input (the device may then
        # hear an honest underrun) rather than repeat itself further
        self._slowest = slowest
        self._debt = 0.0
        self._max_debt = self._max_expand * slowest

    # -- input ----------------------------------------------------------------------------------------
    def feed(self, samples: np.ndarray) -> None:
        if self._ended:
            raise RuntimeError("feed after end()")
        if len(samples):
            chunk = np.asarray(samples, dtype=np.float32)
            self._input = np.concatenate([self._input, chunk]) if len(self._input) else chunk.copy()
            if self.channels > 1:
                mean = chunk.mean(axis=1, dtype=np.float32)
                self._mono = np.concatenate([self._mono, mean]) if len(self._mono) else mean
            else:
                self._mono = self._input
            self._fed += len(chunk)

    def fade_tail(self, n: int) -> None:
        """Fade out the last `n` samples given and not yet played (a gap in the audio follows them)."""
        first_unplayed = max(self._prev + self.hop, self._origin) if self._tail is not None else self._origin
        f = min(n, self._fed - first_unplayed)
        if f > 0:
            i = self._fed - self._start
            ramp = np.linspace(1.0, 0.0, f, endpoint=False, dtype=np.float32)
            self._input[i - f : i] *= ramp if self.channels == 1 else ramp[:, None]
            if self.channels > 1:
                self._mono[i - f : i] *= ramp

    def end(self) -> None:
        """No more input: `pull` plays what is left as it is, and then `done` is true."""
        self._ended = True

    @property
    def pending(self) -> int:
        """Input samples given and not yet played."""
        return 0 if self._finished else max(0, self._fed - max(self._prev + self.hop, self._origin))

    @property
    def done(self) -> bool:
        return self._finished

    def _at(self, position: int, length: int) -> np.ndarray:
        i = position - self._start
        return self._input[i : i + length]

    def _mono_at(self, position: int, length: int) -> np.ndarray:
        i = position - self._start
        return self._mono[i : i + length]

    # -- output ---------------------------------------------------------------------------------------
    def pull(self, rate: float, hops: int = 1, expand: bool = False) -> np.ndarray:
        """Up to `hops` hops of output at `rate` (as many as the input allows so far); once the input has
        ended, the rest as it is. With `expand`, when the place the rate asks for has not arrived yet,
        the newest frames that have are used again (pitch periods repeated: NetEQ's "expand"), up to
        `MAX_EXPAND_MS` in a row."""
        if self._finished:
            return self._empty
        out: list[np.ndarray] = []
        left = hops
        while left > 0:
            run = self._run_in_step(left) if rate == 1.0 and left > 1 and not expand else None
            piece = run if run is not None else self._hop(rate, expand)
            if piece is None:
                break
            out.append(piece)
            left -= len(piece) // self.hop
        if self._ended and left > 0:
            out.append(self._finish())
        out = [p for p in out if len(p)]
        if not out:
            return self._empty
        result = out[0] if len(out) == 1 else np.concatenate(out)
        self.produced += len(result)
        return result

    def _hop(self, rate: float, expand: bool = False) -> np.ndarray | None:
        h, n, tol = self.hop, self.frame, self.tolerance
        seeding = self._tail is None
        if seeding:  # a run's first frame: frame -1's falling half is the input's next hop itself
            if self._origin + n > self._fed:
                return None
            self._tail = self._at(self._origin, h) * self._w[h:]
        natural = self._prev + h  # where the last frame would have gone on
        nominal = self._nominal + h * rate if not seeding else self._nominal + h
        if rate == 1.0 and not seeding:
            # at 1.0 the natural continuation is the place: a search would find it too (it matches
            # itself perfectly), after a stretch left the schedule a few samples off, at every hop
            nominal = float(natural)
        if abs(nominal - natural) < 0.5 and (natural + n <= self._fed or not expand):
            position = natural  # in step: no search; the output is the input
            if natural + n > self._fed:
                return None
        else:  # (also in step but short of input, when expanding is allowed)
            # match the overlap (the next hop of the natural continuation) against candidate frames near
            # the nominal place; only frames whose input has all arrived are candidates, so near empty,
            # slow rates (which advance little) can still go on: NetEQ's "expand", pitch periods again
            # the window is 2 x tolerance wide (10 ms: a pitch period down to 100 Hz); a narrower one may
            # hold no candidate in phase (a 440 Hz tone came out at 420 Hz, or with a dip at every hop), so
            # its best candidate is used only if it really matches (or there is silence)
            centre = int(round(nominal))
            floor = max(self._start, self._origin)
            lo = max(centre - tol, floor)  # after a seeding or a drain, the window starts at the floor
            hi = min(lo + 2 * tol, self._fed - n)
            ahead = nominal > hi + tol  # the schedule asks for input that is not there yet, even at a stretch
            if ahead and self._expanded_enough:
                return None  # repeated long enough: a short silence is better than a buzz
            if hi < lo + 2 * tol:  # cut short by input that has not arrived yet
                # when slowing down, search the newest whole window instead; otherwise wait for input
                if rate >= 1.0 or (lo > hi and not (expand and not self._expanded_enough)):
                    return None
                lo = max(hi - 2 * tol, floor)
            narrow = hi - lo < 2 * tol  # not a whole window since the run began (the start, a drain)
            if natural + h > self._fed or lo > hi:
                return None
            target = self._mono_at(natural, h)
            region = self._mono_at(lo, hi - lo + h)
            dots = np.correlate(region, target, mode="valid")
            power = np.convolve(region * region, np.ones(h, dtype=np.float32), mode="valid")
            scores = dots / np.sqrt(np.maximum(power, 1e-12))
            scores -= 1e-6 * np.abs(np.arange(lo, hi + 1) - nominal)  # ties: the lag nearest its place
            position = lo + int(np.argmax(scores))
            if narrow and not self._in_phase(target, self._mono_at(position, h)):
                return None  # wait for input (or drain)
            if ahead:
                # the input, not the rate, decided where this frame came from (pitch periods repeated
                # through a stall): the schedule goes on from there. Left ahead, it gained a hop on the
                # input each time (a second after a few stalls), and every later search looked where no
                # input was yet: every rate but the slowest found nothing to play
                nominal = float(position)
        level = self._level_at(position)
        quiet = self._quiet(level)
        self._loud = max(level, self._loud * LOUD_DECAY)
        frame = self._at(position, n) * self._w
        tail = self._tail
        assert tail is not None  # seeded above
        if position == natural and self._in_step:
            piece = self._at(position, h).copy()  # in step on both sides: exactly the input
        else:
            piece = tail + frame[:h]
        self._in_step = position == natural
        self._tail = frame[h:]
        # a frame from within what was already played is no progress, however frames hop back and forth
        self._expanded = self._expanded + h if not seeding and position <= self._furthest else 0
        if not seeding:
            self._debt = max(0.0, self._debt + h * self._slowest - max(0, position - self._furthest))
        self._furthest = max(self._furthest, position)
        # what this hop really added (a frame taken again) or removed (one skipped); a seeding hop too: its
        # falling half stands for a frame at `_prev`, and after a drain the next frame need not follow it
        delta = h - (position - self._prev)
        if delta > 0:
            self.added += delta
            self.added_quiet += delta if quiet else 0
        else:
            self.removed -= delta
            self.removed_quiet -= delta if quiet else 0
        if rate != 1.0:
            self.stretched += h
        if not quiet:
            self.speech_out += h
            if not IN_TEMPO[0] <= rate <= IN_TEMPO[1]:
                self.speech_off_tempo += h
        self._prev, self._nominal = position, nominal
        self._drop(min(position, int(nominal)) - 3 * tol)  # a search may reach back 3 x tolerance
        return piece

    def _run_in_step(self, hops: int) -> np.ndarray | None:
        """Up to `hops` hops at 1.0 in one copy, when in step (the last frame followed on from the one
        before it): what `_hop` would make one hop at a time, the input as it is. None when not in step,
        or when not a single hop's input is there."""
        h, n = self.hop, self.frame
        if self._tail is None or not self._in_step:
            return None
        natural = self._prev + h
        m = min(hops, (self._fed - n - natural) // h + 1)
        if m < 1:
            return None
        piece = self._at(natural, m * h).copy()
        self._played_as_is(piece)
        last = natural + (m - 1) * h
        self._debt = max(0.0, self._debt - m * h * (1.0 - self._slowest))  # in step: pays back
        self._tail = self._at(last + h, h) * self._w[h:]
        self._expanded = self._expanded + m * h if last <= self._furthest else 0
        self._furthest = max(self._furthest, last)
        self._prev, self._nominal = last, float(last)
        self._drop(last - 3 * self.tolerance)
        return piece

    def _played_as_is(self, samples: np.ndarray) -> None:
        """Count audio played at 1.0 (a copy, a drain, the end) hop by hop: its speech is in tempo."""
        h = self.hop
        m = len(samples) // h
        if m < 1:
            return
        if samples.ndim == 2:
            samples = samples.mean(axis=1, dtype=np.float32)
        rows = samples[: m * h].reshape(m, h)
        powers = np.einsum("ij,ij->i", rows, rows) / h
        self.speech_out += h * int(np.count_nonzero(powers >= self._quiet_below()))
        self._loud = max(float(powers.max()), self._loud * LOUD_DECAY ** m)

    def _quiet_below(self) -> float:
        return max(QUIET_POWER, self._loud * QUIET_BELOW_LOUD)

    def _quiet(self, power: float) -> bool:
        return power < self._quiet_below()

    def quiet_ahead(self) -> bool | None:
        """Whether the frame the next hop at 1.0 would play is a pause (None: its input is not all here)."""
        if self._finished:
            return None
        natural = self._prev + self.hop if self._tail is not None else self._origin
        if natural + self.frame > self._fed:
            return None
        return self._quiet(self._level_at(natural))

    def _level_at(self, position: int) -> float:
        """The mean square of the frame that begins at `position`."""
        raw = self._mono_at(position, self.frame)
        return float(np.dot(raw, raw)) / self.frame

    @property
    def _expanded_enough(self) -> bool:
        """Pitch periods have been repeated long enough, in a row or over time (see `_debt`)."""
        return self._expanded >= self._max_expand or self._debt >= self._max_debt

    @staticmethod
    def _in_phase(a: np.ndarray, b: np.ndarray) -> bool:
        """Whether overlapping `a` with `b` keeps the level: they are alike (normalised correlation of
        at least `MATCH`), or one of them is nearly silent (nothing there to cancel)."""
        ea, eb = float(np.dot(a, a)), float(np.dot(b, b))
        if min(ea, eb) < SILENT_POWER * len(a):
            return True
        return float(np.dot(a, b)) >= MATCH * np.sqrt(ea * eb)

    def drain(self, limit: int) -> np.ndarray:
        """Up to `limit` samples of what has been given, as it is, without the lookahead a frame needs:
        for when the device is about to run dry. The last frame's falling half plus its rising partner
        would be the input itself, so playing the input from there on is seamless; frames start afresh
        after it."""
        start = max(self._prev + self.hop, self._origin) if self._tail is not None else self._origin
        take = min(limit, self._fed - start)
        if take <= 0:
            return self._empty
        out = self._at(start, take).copy()
        self._played_as_is(out)
        self._origin = start + take
        offset = self._nominal - self._prev  # how far the rates asked for are from where frames went
        self._prev = self._origin - self.hop
        self._nominal = self._prev + offset
        self._tail = None
        self._in_step = True
        self.produced += take
        return out

    def _finish(self) -> np.ndarray:
        """The end: the last frame's falling half plus its rising partner would be the input itself, so
        everything from where that half began is played as it is."""
        self._finished = True
        start = max(self._prev + self.hop, self._origin) if self._tail is not None else self._origin
        rest = self._at(start, self._fed - start).copy()
        self._played_as_is(rest)
        self._tail, self._input, self._mono, self._start = None, self._empty, EMPTY, self._fed
        return rest

    def _drop(self, before: int) -> None:
        """Forget input no frame will read again."""
        cut = before - self._start
        if cut > 4096:
            self._input = self._input[cut:]
            self._mono = self._mono[cut:] if self.channels > 1 else self._input
            self._start = before
