"""The playout controller as a pure function: statuses written by hand for each rule, and statuses recorded
from real plays (`traces/`) replayed through it. No audio, no threads, no clock."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from workbench.engine.playout.buffer import BufferState
from workbench.engine.playout.controller import (
    GROWING,
    PAUSE_FASTEST,
    PAUSE_GROWING,
    SLOW_SERVER_CUSHION_MS,
    SLOW_START_LOOKAHEADS,
    SPEECH_SLOWEST,
    STALL_AFTER_MS,
    Decision,
    Op,
    RateLimits,
    Status,
    arriving_fast,
    cushion_ms,
    decide,
    play_target_ms,
)

TRACES = Path(__file__).parent / "traces"
LIMITS = RateLimits()
LOOKAHEAD = 25.0  # the stretcher's frame (20 ms) and search tolerance (5 ms)
ROOM = 1000.0  # half of a 2 s maximum buffer


def status(level: float = 100.0, *, target: float = 150.0, fast: bool = False, **changes: Any) -> Status:
    """A device playing, its ring empty (every ms of level can be stretched): the playout of a 2 s buffer,
    a 20 ms start and 20 ms blocks."""
    s = Status(level_ms=level, peak_ms=level, in_ring_ms=0.0, ring_base_ms=40.0, ring_kept_ms=40.0,
               start_ms=20.0, lookahead_ms=LOOKAHEAD, target_ms=target, cushion_ms=cushion_ms(target, fast, ROOM),
               stalled_ms=0.0, owed_ms=0.0, state=BufferState.PLAYING, arriving_fast=fast, input_ended=False,
               quiet_next=None)
    return dataclasses.replace(s, **changes)


def rate(s: Status, limits: RateLimits = LIMITS) -> float:
    d = decide(s, limits)
    assert d.op is Op.PLAY, d
    return d.rate


def test_below_the_target_it_lengthens_pauses_and_slows_speech_only_near_empty() -> None:
    for quiet in (False, True, None):  # about to run dry: the slowest rate, speech or not
        assert rate(status(10.0, quiet_next=quiet)) == LIMITS.slowest
    assert rate(status(55.0, quiet_next=False)) == GROWING  # near empty: speech a little slower ...
    assert rate(status(55.0, quiet_next=True)) == LIMITS.slowest  # ... a pause much slower
    assert rate(status(100.0, quiet_next=True)) == PAUSE_GROWING  # below the target: pauses grow it ...
    assert decide(status(100.0, quiet_next=False), LIMITS) == Decision(Op.PLAY, 1.0, hop_by_hop=True)  # ... speech
    assert rate(status(100.0, quiet_next=None)) == 1.0  # (not known: as speech)
    assert rate(status(100.0, peak_ms=200.0, quiet_next=True)) == PAUSE_GROWING  # not known to be fast: ...
    assert rate(status(600.0, quiet_next=True)) == PAUSE_GROWING  # ... pauses grow a cushion for its stalls
    assert rate(status(600.0, quiet_next=False)) == 1.0  # (speech at its own tempo)
    assert decide(status(SLOW_SERVER_CUSHION_MS + 10, quiet_next=True), LIMITS) == Decision(Op.PLAY, 1.0)
    # a fast server: the target is all
    assert rate(status(100.0, fast=True, peak_ms=200.0, quiet_next=True)) == 1.0  # between bursts: the peak
    assert rate(status(400.0, fast=True, quiet_next=True)) == 1.0  # above it: a large buffer costs nothing
    assert rate(status(10.0, input_ended=True)) == 1.0  # everything has arrived: nothing can run dry


def test_audio_in_the_ring_is_committed_to_its_rate_but_the_pumps_slack_is_not() -> None:
    # 60 ms in all, 40 of them the ring's base: 20 ms left to stretch, about to run dry
    assert rate(status(60.0, in_ring_ms=40.0, quiet_next=False)) == LIMITS.slowest
    # 200 ms in the ring, most of it slack the pump keeps for its own lateness: still stretchable
    assert rate(status(200.0, in_ring_ms=200.0, ring_kept_ms=200.0, quiet_next=True)) == PAUSE_GROWING


def test_before_the_device_starts_nothing_is_stretched_and_a_slow_server_start_waits() -> None:
    """Nothing plays yet and audio is coming fast, so nothing can run dry: the first audio goes to the ring
    as it is (slowing it played the first 100 ms of every reply as 130-340 ms at 5x real time). On a server
    not known to be fast the start waits for the ring's start and two look-aheads, slowing nothing."""
    buffering = BufferState.BUFFERING
    assert decide(status(10.0, fast=True, state=buffering, quiet_next=False), LIMITS) == Decision(Op.PLAY, 1.0)
    held = 40.0 + SLOW_START_LOOKAHEADS * LOOKAHEAD
    assert decide(status(held - 1.0, state=buffering), LIMITS).op is Op.HOLD
    assert decide(status(held + 1.0, state=buffering, quiet_next=False), LIMITS).op is Op.PLAY
    assert decide(status(10.0, state=buffering, input_ended=True), LIMITS) == Decision(Op.PLAY, 1.0)  # all here
    # WORKBENCH_ELASTIC_START=early: no wait; the first audio is slowed to grow the buffer instead
    assert decide(status(50.0, state=buffering, quiet_next=False), LIMITS).op is Op.HOLD
    assert rate(status(50.0, state=buffering, steady_start=False, quiet_next=False)) == GROWING
    assert decide(status(10.0, fast=True, state=buffering, steady_start=False), LIMITS) == Decision(Op.PLAY, 1.0)
    # after an underrun the device is running: the start rule is not the resume rule
    assert rate(status(10.0, state=BufferState.UNDERRUN)) == LIMITS.slowest


def test_arriving_fast_needs_two_pieces_and_twice_real_time() -> None:
    assert not arriving_fast(0.015, 100.0, 100.0)  # a lone first piece does not tell
    assert not arriving_fast(0.015, None, None)
    assert arriving_fast(0.015, 100.0, 100.005)  # 15 ms of audio in 5 ms
    assert not arriving_fast(0.015, 100.0, 100.1)  # over 100 ms: slower than twice real time


def test_the_cushion_is_for_servers_not_known_to_be_fast_and_fits_the_buffer() -> None:
    assert cushion_ms(150.0, True, ROOM) == 150.0
    assert cushion_ms(150.0, False, ROOM) == SLOW_SERVER_CUSHION_MS
    assert cushion_ms(150.0, False, 300.0) == 300.0  # half a 0.6 s maximum buffer at most
    assert cushion_ms(900.0, False, ROOM) == 900.0  # never below the target


def test_far_above_the_target_it_gives_back_what_slowing_added_in_pauses() -> None:
    assert rate(status(2000.0, fast=True, quiet_next=True)) == 1.0  # nothing owed
    owed = {"owed_ms": 100.0, "fast": True}
    assert rate(status(2000.0, quiet_next=True, **owed)) == PAUSE_FASTEST  # a pause shortened
    assert decide(status(2000.0, quiet_next=False, **owed), LIMITS) == Decision(Op.PLAY, 1.0, hop_by_hop=True)
    assert rate(status(600.0, quiet_next=True, **owed)) == 1.0  # not when the reserve is only moderately large
    no_speedup = RateLimits(fastest=1.0)  # WORKBENCH_FASTEST_RATE=1.0: nothing is given back
    assert rate(status(2000.0, quiet_next=True, **owed), no_speedup) == 1.0


def test_a_stalled_input_is_met_by_a_voice_slowed_just_enough_to_outlast_the_target() -> None:
    """No audio for a while: what is in hand is stretched to last the target again (the network's usual
    worst lateness): pauses at the slowest rate, speech no slower than SPEECH_SLOWEST; with enough in hand,
    or before the input has stalled, the rules are those without a stall."""
    stalled = STALL_AFTER_MS + 10.0

    def stall(level: float, **changes: Any) -> float:
        return rate(status(level, target=600.0, **{"stalled_ms": stalled, **changes}))

    assert stall(300.0, stalled_ms=STALL_AFTER_MS - 10.0) == 1.0  # a gap between bursts
    assert stall(300.0) == SPEECH_SLOWEST  # 0.5 would be needed: capped
    assert stall(300.0, quiet_next=True) == LIMITS.slowest  # a pause: not
    assert stall(545.0) == SPEECH_SLOWEST  # would not last at 1.0
    assert stall(580.0) == 1.0  # lasts at the growing rate
    assert stall(900.0) == 1.0  # above the target: nothing to fear
    assert stall(10.0) == LIMITS.slowest  # near empty rules first
    assert stall(300.0, input_ended=True) == 1.0  # the input has ended: no stall


def test_with_no_hop_to_make_it_drains_only_a_running_device_about_to_run_dry() -> None:
    blocked = {"hop_blocked": True, "level": 15.0}
    assert decide(status(in_ring_ms=10.0, **blocked), LIMITS).op is Op.DRAIN  # playing, under the start
    assert decide(status(in_ring_ms=30.0, **blocked), LIMITS).op is Op.WAIT  # enough in the ring still
    # not before the start: the first audio waits until the stretcher can slow it down
    assert decide(status(in_ring_ms=0.0, state=BufferState.BUFFERING, **blocked), LIMITS).op is Op.WAIT
    # resuming after an underrun: only with the start in hand
    underrun = {"in_ring_ms": 0.0, "state": BufferState.UNDERRUN, **blocked}
    assert decide(status(stretcher_ms=10.0, **underrun), LIMITS).op is Op.WAIT
    assert decide(status(stretcher_ms=25.0, **underrun), LIMITS).op is Op.DRAIN


# -- recorded traces --------------------------------------------------------------------------------------
def load_trace(name: str) -> list[tuple[Status, Decision]]:
    rows = []
    for line in (TRACES / name).read_text().splitlines():
        row = json.loads(line)
        s = row["status"]
        s["state"] = BufferState[s["state"]]
        d = row["decision"]
        rows.append((Status(**s), Decision(Op(d["op"]), d["rate"], d["hop_by_hop"])))
    return rows


TRACE_FILES = sorted(p.name for p in TRACES.glob("*.jsonl"))


def test_the_recorded_traces_cover_the_rules() -> None:
    decisions = {(d.op, d.rate, bool(s.quiet_next)) for name in TRACE_FILES for s, d in load_trace(name)}
    assert (Op.HOLD, 1.0, False) in decisions  # a start held until enough is in hand
    assert (Op.PLAY, PAUSE_GROWING, True) in decisions  # a pause lengthened
    assert (Op.PLAY, SPEECH_SLOWEST, False) in decisions  # speech slowed in a stall
    assert (Op.PLAY, 1.0, False) in decisions


@pytest.mark.parametrize("name", TRACE_FILES)
def test_a_recorded_play_is_decided_again_the_same_way(name: str) -> None:
    """Every decision the pump took in a real play, taken again from its status by the function alone. A
    change to the rules that is meant changes these: record them again (scripts/record_playout_trace.py)."""
    trace = load_trace(name)
    assert len(trace) >= 20
    for s, d in trace:
        assert decide(s, LIMITS) == d, s


@pytest.mark.parametrize("name", TRACE_FILES)
def test_in_a_recorded_play_speech_leaves_its_tempo_only_near_empty_or_in_a_stall(name: str) -> None:
    for s, d in load_trace(name):
        if d.op is not Op.PLAY or s.quiet_next:
            continue
        uncommitted = s.level_ms - min(s.in_ring_ms, s.ring_base_ms)
        if d.rate < SPEECH_SLOWEST:
            assert uncommitted < 1.5 * s.lookahead_ms, s  # the last resort, right before a silence
        elif d.rate < 1.0:
            assert uncommitted < 3.0 * s.lookahead_ms or s.stalled_ms >= STALL_AFTER_MS, s
        assert d.rate <= 1.0, s  # speech is never hurried


def test_the_play_target_is_the_users_or_the_learned_one_raised_for_a_slow_server_within_the_maximum() -> None:
    assert play_target_ms(150.0, None, 0.0, 2000.0) == 150.0  # fixed: the user's value
    assert play_target_ms(150.0, 300.0, 0.0, 2000.0) == 300.0  # adaptive: what it learned
    assert play_target_ms(150.0, 300.0, 900.0, 2000.0) == 900.0  # a slow server needs more
    assert play_target_ms(150.0, 300.0, 5000.0, 2000.0) == 2000.0  # ... never past the maximum
    assert play_target_ms(150.0, 300.0, 100.0, 2000.0) == 300.0  # ... and never lowers it
