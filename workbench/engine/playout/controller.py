"""The playout controller: what elastic playout's pump does next, decided by one pure function.

The pump (`elastic.ElasticPlayout`) only executes: each time it could hand the stretcher's next hop to
the ring it describes the playout as a `Status` and does what `decide` returns. Nothing here reads a
clock, a buffer or a thread, so a change to how the playout reacts to a stall is made in `decide` and
tested without audio, on statuses written by hand or recorded from real plays (`tests/engine/traces/`).
WebRTC NetEQ's `DecisionLogic` is the model: one decision per pull, the DSP steps elsewhere.

Rates are playout speeds: below 1 plays slower and adds time, above 1 removes it. Time goes into pauses
first (NetEQ stretches non-speech freely and speech little): the stretcher says whether the frame it
would play next is a pause (40 dB under the voice's recent level, or under -60 dBFS).

- Once the whole reply has been handed to the stretcher: 1.0. Nothing can run dry any more.
- Before the device has started, with audio arriving at least twice as fast as it plays: 1.0. Nothing
  plays yet and more is on its way (slowing the first audio to fill the ring sooner played the first
  100 ms of every reply as 130-340 ms at 5x real time). Arriving slower, the start waits until the ring's
  start and two stretcher look-aheads are in hand (`SLOW_START_LOOKAHEADS`, about 130 ms on a device):
  started sooner, the first words of a reply played at 0.6-0.8x. `WORKBENCH_ELASTIC_START=early` gives
  that choice back to the user: it starts after a block, the first words slowed.
- About to run dry (what can still be stretched, outside the ring, is under 1.5 times the stretcher's
  look-ahead, about 37 ms): the slowest rate, speech or not, before any silence. Under 3 times: pauses
  at the slowest rate, speech at 0.92.
- Stalled (no audio for `STALL_AFTER_MS`, far longer than the gap between bursts) with too little in
  hand to last as long as the target again: pauses at the slowest rate; speech just slow enough to last
  that long, down to 0.92 (`SPEECH_SLOWEST`). Otherwise the stall's tail meets the rules above.
- Below what pauses grow the buffer to (its peak over the last quarter second): pauses at 0.5 (a pause
  lasts twice as long), speech at 1.0. That is the target, or on a server not known to be fast a 700 ms
  cushion for stalls that come without warning (`cushion_ms`).
- Far above the target (a second, or twice the target), while time added by slowing is still owed:
  pauses at 1.25 (or the fastest rate, if higher), to give it back; speech at 1.0. A large reserve costs
  a spoken reply nothing once it has started, so it is not trimmed for its own sake.
- No hop can be made yet (the stretcher needs more input) while the device is about to run dry: what is
  here is handed on as it is. Not before the start, nor while resuming with less than the start in hand:
  that input is kept until the stretcher can slow it down, so a late second piece is met by a slower
  voice rather than by silence.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from .buffer import BufferState

GROWING = 0.92  # speech near empty: 8 % slower, which a listener hardly notices
PAUSE_GROWING = 0.5  # below the target: pauses play this slow (a 100 ms pause lasts 200 ms), speech at 1.0
PAUSE_FASTEST = 1.25  # giving time back: pauses play this fast (speech at 1.0), if WORKBENCH_FASTEST_RATE > 1
FAST_ARRIVAL = 2.0  # audio arriving this much faster than real time: the start is not stretched
STALL_AFTER_MS = 150.0  # no audio for this long: the input has stalled (bursts come every 20-100 ms)
SPEECH_SLOWEST = 0.92  # a stall the audio in hand cannot outlast: speech this slow at most, before near-empty
SLOW_SERVER_CUSHION_MS = 700.0  # audio not arriving FAST_ARRIVAL x real time: pauses grow the buffer to this
# ... and it starts once the ring's start and this many stretcher look-aheads are in hand (~130 ms on a
# device), not with its first piece slowed: started sooner, the first words played at 0.6-0.8x (bench quality)
SLOW_START_LOOKAHEADS = 2.0


@dataclass(frozen=True)
class RateLimits:
    slowest: float = 0.5  # about to run dry: half speed (pitch periods repeated) rather than silence
    fastest: float = 1.08  # giving back time added by slowing

    @property
    def growing(self) -> float:
        return max(GROWING, self.slowest)


class Op(enum.Enum):
    HOLD = "hold"  # hand nothing on yet: the start waits for more in hand
    PLAY = "play"  # the stretcher's next hops, at `rate`
    DRAIN = "drain"  # no hop can be made and the device is about to run dry: what is here, as it is
    WAIT = "wait"  # no hop can be made: wait for audio


@dataclass(frozen=True)
class Status:
    """The playout as the pump sees it before a hop. Levels are in ms of audio at the device's rate."""

    level_ms: float  # everything not yet played: the ring, the stretcher's input and the reserve
    peak_ms: float  # the level's highest over the last quarter second (audio comes in bursts)
    in_ring_ms: float  # what is in the ring, committed to its rate
    ring_base_ms: float  # the ring's start and a block or two: never counted as stretchable
    ring_kept_ms: float  # what the pump keeps in the ring (the base and its own lateness)
    start_ms: float  # what the ring needs to start, or to resume after an underrun
    lookahead_ms: float  # the stretcher's: a frame and its search tolerance
    target_ms: float  # the buffer target (the user's initial buffer, or the adaptive target)
    cushion_ms: float  # what pauses grow the buffer to (`cushion_ms()`)
    stalled_ms: float  # since audio last came
    owed_ms: float  # time added by slowing not yet given back
    state: BufferState  # the ring's
    arriving_fast: bool  # `arriving_fast()`
    input_ended: bool  # the whole reply has been handed to the stretcher
    quiet_next: bool | None  # the next hop is a pause (None: not known, treated as speech)
    stretcher_ms: float = 0.0  # the stretcher's unplayed input
    hop_blocked: bool = False  # the stretcher could not make a hop with what it has
    steady_start: bool = True  # WORKBENCH_ELASTIC_START=steady: a slow server's start waits (else: early)


@dataclass(frozen=True)
class Decision:
    op: Op
    rate: float = 1.0
    hop_by_hop: bool = False  # look again before every hop (a pause to stretch is being sought)


HOLD = Decision(Op.HOLD)
WAIT = Decision(Op.WAIT)
DRAIN = Decision(Op.DRAIN)
PLAIN = Decision(Op.PLAY)


def decide(s: Status, limits: RateLimits) -> Decision:
    """What the pump does next, from the playout's status (see the module's docstring for the rules)."""
    if s.hop_blocked:
        running = s.state is BufferState.PLAYING or (
            s.state is BufferState.UNDERRUN and s.stretcher_ms >= s.start_ms)
        return DRAIN if s.in_ring_ms < s.start_ms and running else WAIT
    if s.input_ended:
        return PLAIN
    if s.state is BufferState.BUFFERING:
        if s.arriving_fast:
            return PLAIN  # nothing plays yet and more is coming fast: nothing can run dry
        if s.steady_start and s.level_ms < s.ring_kept_ms + SLOW_START_LOOKAHEADS * s.lookahead_ms:
            return HOLD
    quiet = bool(s.quiet_next)
    peak = max(s.peak_ms, s.level_ms)
    # what can still be stretched: all but the ring's first block or two (the slack the pump keeps for its
    # own lateness is counted as stretchable, or a large slack would pin the slowest rate)
    uncommitted = s.level_ms - min(s.in_ring_ms, s.ring_base_ms)
    if uncommitted < 1.5 * s.lookahead_ms:  # about to run dry: slow right down (pitch periods again)
        return Decision(Op.PLAY, limits.slowest)
    if uncommitted < 3.0 * s.lookahead_ms:  # near empty: slow down more than to grow
        return Decision(Op.PLAY, limits.slowest if quiet else limits.growing)
    if s.stalled_ms >= STALL_AFTER_MS:
        # a stall that has lasted this long may well last the target again: the network's usual worst
        # lateness, which a stall is
        lasting = s.level_ms / s.target_ms  # the rate at which the level lasts that long
        if lasting < limits.growing:
            return Decision(Op.PLAY, limits.slowest if quiet else max(lasting, SPEECH_SLOWEST, limits.slowest))
    if peak < s.cushion_ms:
        if quiet:
            return Decision(Op.PLAY, max(limits.slowest, PAUSE_GROWING))
        return Decision(Op.PLAY, 1.0, hop_by_hop=True)
    if s.owed_ms > 0 and s.level_ms > s.target_ms + max(1000.0, 2.0 * s.target_ms) and limits.fastest > 1.0:
        if quiet:
            return Decision(Op.PLAY, max(limits.fastest, PAUSE_FASTEST))
        return Decision(Op.PLAY, 1.0, hop_by_hop=True)
    return PLAIN


def cushion_ms(target_ms: float, arriving_fast: bool, room_ms: float) -> float:
    """What pauses are lengthened to reach: the target, or on a server not `FAST_ARRIVAL` times faster than
    real time, at least `SLOW_SERVER_CUSHION_MS` (`room_ms`, half the maximum buffer, at most). Such a
    server's stalls come without warning; time put into pauses beforehand is not heard, time found in speech
    once it stalls is (measured with real speech: `workbench bench quality`)."""
    if arriving_fast:
        return target_ms
    return max(target_ms, min(SLOW_SERVER_CUSHION_MS, room_ms))


def arriving_fast(audio_s: float, first: float | None, last: float | None) -> bool:
    """`audio_s` seconds of audio, the first piece at `first` and the last at `last` (seconds), came at least
    `FAST_ARRIVAL` times faster than it plays (a lone first piece does not tell: it may be all for a
    while)."""
    if first is None or last is None or last <= first:
        return False
    return audio_s >= FAST_ARRIVAL * (last - first)


def play_target_ms(user_ms: float, learned_ms: float | None, slow_server_ms: float, max_ms: float) -> float:
    """The buffer a play aims for: the user's initial buffer or, with adaptive buffering, the learned target
    (which starts from the user's value and moves with lateness and underruns); raised, within the
    maximum, to what a server slower than real time needs to play the rest of the reply through."""
    target = user_ms if learned_ms is None else learned_ms
    if slow_server_ms > 0:
        target = max(target, min(slow_server_ms, max_ms))
    return target


def ring_wanted_ms(ring_kept_ms: float, level_ms: float, target_ms: float) -> float:
    """How far ahead of the device the ring is filled: `ring_kept_ms`, and what is beyond the target too
    (audio the policy would not slow down is committed, so a pump kept waiting by the interpreter has all
    that in hand)."""
    return max(ring_kept_ms, level_ms - target_ms)
