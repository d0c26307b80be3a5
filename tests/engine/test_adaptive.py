"""The adaptive buffer target on a deterministic clock, and the player using it on a flaky network."""

from __future__ import annotations

import pytest

from workbench.engine.player import StreamPlayer
from workbench.engine.playout.adaptive import AdaptiveTarget, Arrival, Steering, needed_buffer_ms, slow_server_ms
from workbench.engine.playrun import PlayRun
from workbench.engine.report import recommend_buffer_ms
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory


def feed_steady(a: AdaptiveTarget, t0: float, seconds: float, *, piece_s: float = 0.04, speedup: float = 2.0,
                start_s: float = 0.0, stall_at: float | None = None, stall_s: float = 0.0) -> float:
    """Audio arriving `speedup` times faster than real time in `piece_s` pieces; optionally one stall."""
    t, pos = t0, start_s
    while pos < start_s + seconds:
        if stall_at is not None and pos >= stall_at:
            for k in range(int(stall_s / 0.1)):  # ticks while nothing arrives
                a.tick(t + k * 0.1)
            t += stall_s
            stall_at = None
        a.arrival(t, pos, piece_s)
        pos += piece_s
        t += piece_s / speedup
    return t


def test_a_steady_stream_keeps_the_initial_target() -> None:
    a = AdaptiveTarget(150.0, 2000.0, 20.0)
    feed_steady(a, 0.0, 20.0)
    assert a.target_ms == pytest.approx(150.0)
    assert a.percentile_ms() <= 40.0


def test_a_stall_raises_the_floor_by_about_its_length() -> None:
    a = AdaptiveTarget(150.0, 2000.0, 20.0)
    feed_steady(a, 0.0, 10.0, stall_at=3.0, stall_s=0.6)
    assert 500.0 <= a.target_ms <= 800.0


def test_an_underrun_raises_at_once_then_decays_after_steady_time() -> None:
    a = AdaptiveTarget(150.0, 2000.0, 20.0)
    t = feed_steady(a, 0.0, 2.0)
    a.underrun(t)
    assert a.target_ms == pytest.approx(250.0)  # +100 ms beats 1.5x at this size
    a.underrun(t)
    assert a.target_ms == pytest.approx(375.0)  # 1.5x
    t = feed_steady(a, t, 8.0, start_s=2.0)  # under ten seconds since the underrun: held
    assert a.target_ms == pytest.approx(375.0)
    feed_steady(a, t, 60.0, start_s=10.0)  # steady: decays towards the floor (the initial buffer)
    assert a.target_ms < 160.0


def test_the_learned_target_carries_over_to_the_next_play_within_new_bounds() -> None:
    a = AdaptiveTarget(150.0, 2000.0, 20.0)
    t = feed_steady(a, 0.0, 10.0, stall_at=3.0, stall_s=0.6)
    learned = a.target_ms
    assert a.begin(150.0, 2000.0) == pytest.approx(learned)
    assert a.begin(150.0, 400.0) == pytest.approx(400.0)  # clamped by a smaller max buffer
    assert a.begin(900.0, 2000.0) == pytest.approx(900.0)  # never below the initial buffer
    assert t > 0


def test_the_wait_after_the_last_piece_is_not_lateness() -> None:
    a = AdaptiveTarget(150.0, 2000.0, 20.0)
    t = feed_steady(a, 0.0, 3.0)
    a.end()
    for k in range(50):  # five seconds of playing out what was buffered
        a.tick(t + k * 0.1)
    assert a.target_ms == pytest.approx(150.0)


def test_the_target_is_capped_by_the_max_buffer() -> None:
    a = AdaptiveTarget(150.0, 500.0, 20.0)
    for k in range(10):
        a.underrun(float(k))
    assert a.target_ms == pytest.approx(500.0)


def test_needed_buffer_replays_the_arrivals() -> None:
    # 2 s of audio in 100 ms pieces at 4x real time, with a 1.2 s stall before the piece at 1.0 s
    arrivals, t = [], 0.0
    for i in range(20):
        if i == 10:
            t += 1.2
        arrivals.append(Arrival(t, i * 0.1, 0.1))
        t += 0.025
    # the piece at 1.0 s arrives at 1.45 s; with anything up to 1 s buffered, playback starts by 0.225 s
    # and needs it by 1.225 s: an underrun. Only a buffer that waits for that piece (> 1.0 s) is clean.
    assert needed_buffer_ms(arrivals) == pytest.approx(1010.0)
    # without the stall nothing is needed
    steady = [Arrival(i * 0.025, i * 0.1, 0.1) for i in range(20)]
    assert needed_buffer_ms(steady) == 0.0
    assert needed_buffer_ms([]) == 0.0


def test_slow_server_estimate() -> None:
    assert slow_server_ms(10.0, 0.8) == pytest.approx(2500.0)  # 10 s more at 0.8x: 2.5 s short
    assert slow_server_ms(10.0, 1.2) == 0.0


async def test_underruns_on_a_flaky_network_raise_the_target_and_lose_no_audio(server: EmbeddedServer) -> None:
    factory = virtual_factory(speed=1.0)
    settings = make_settings(voices=("test-signal",), network="flaky", network_seed=2, buffer_ms=50, playout="fixed",
                             max_buffer_s=3.0)
    player = StreamPlayer(settings, base_url=server.base_url, sink_factory=factory,
                          extra_query={"pace": "0.9"})  # 1.1x real time: the network decides
    text = "one two three four five six seven eight nine ten eleven twelve"
    m = await player.play(text)
    assert m.state == "done" and m.error is None
    assert m.underruns >= 1, "this seed stalls the flaky link"
    assert m.played_ms == pytest.approx(m.audio_ms)  # silence was inserted, no audio was lost
    assert player.adaptive is not None and player.adaptive.target_ms > 50.0
    assert m.target_ms is not None and m.target_ms > 50.0
    assert m.needed_buffer_ms is not None and m.needed_buffer_ms > 50.0
    # the next play starts with what was learned
    second = await player.play("one two three")
    assert second.initial_buffer_ms == 50.0 and player.buffer is not None
    assert player.adaptive.target_ms >= m.target_ms * 0.5


async def test_adaptive_off_keeps_the_fixed_target(server: EmbeddedServer) -> None:
    factory = virtual_factory(speed=8.0)
    player = StreamPlayer(make_settings(voices=("test-signal",), adaptive=False), base_url=server.base_url,
                          sink_factory=factory)
    m = await player.play("one two three")
    assert m.target_ms == pytest.approx(150.0)
    assert m.needed_buffer_ms is not None  # still measured, for the recommendation
    assert recommend_buffer_ms(player.needed_history) == pytest.approx(-(-m.needed_buffer_ms // 10) * 10)


def test_recommendation_is_the_worst_play_rounded_up() -> None:
    assert recommend_buffer_ms([35.0, 212.5, 90.0]) == 220.0
    assert recommend_buffer_ms([]) is None


def test_advice_names_a_lighter_format_only_when_audio_came_too_slowly() -> None:
    from workbench.engine.figures.metrics import PlayMetrics
    from workbench.engine.report import quality_advice

    slow_pcm = PlayMetrics(format="pcm", arrival_rtf=0.6, throughput_kbps=230.0, audio_ms=5000.0,
                           needed_buffer_ms=2100.0)
    advice = quality_advice(slow_pcm)
    assert advice is not None and "0.60x real time" in advice and "mp3 needs about 32 kbit/s" in advice
    assert "2100 ms" in advice
    assert quality_advice(PlayMetrics(format="pcm", arrival_rtf=1.4, throughput_kbps=540.0, audio_ms=5000.0)) is None
    slow_mp3 = quality_advice(PlayMetrics(format="mp3", arrival_rtf=0.8, throughput_kbps=26.0, audio_ms=5000.0))
    assert slow_mp3 is not None and "slower than speech" in slow_mp3


def test_pieces_of_one_read_are_kept_as_one_arrival() -> None:
    from workbench.engine.playout.adaptive import AdaptiveTarget, needed_buffer_ms

    target = AdaptiveTarget(150, 2000, 10)
    for read_at in (0.0, 0.1, 0.2):  # three network reads, each decoded in four pieces at once
        for k in range(4):
            target.arrival(read_at + k * 1e-5, read_at + k * 0.025, 0.025)
    assert [(round(a.t, 3), round(a.start_s, 3), round(a.length_s, 3)) for a in target.arrivals] == [
        (0.0, 0.0, 0.1), (0.1, 0.1, 0.1), (0.2, 0.2, 0.1)]
    assert needed_buffer_ms(target.arrivals) == 0.0  # each read came in time: nothing needed


class _Feed:
    """The two things steering reads and writes of a feed (a fake: steering is tested without a play)."""

    def __init__(self) -> None:
        self.target_ms = 0.0
        self.ended = False
        self.writes: list[float] = []

    def set_target_ms(self, ms: float) -> None:
        self.target_ms = ms
        self.writes.append(ms)


class _Ring:
    underruns = 0


def _steering(feed: _Feed, user_ms: float, adaptive: AdaptiveTarget | None, *, expected_s: float = 0.0,
              first_audio_at: float = 1.0) -> Steering:
    run = PlayRun("pcm", t0=0.0)
    run.first_audio_at = first_audio_at
    return Steering(lambda: feed, lambda: _Ring(), user_ms, adaptive=adaptive, run=run,  # type: ignore[arg-type,return-value]
                    expected_s=expected_s)


def test_steering_applies_a_live_edit_at_once_and_learning_goes_on_from_it() -> None:
    feed = _Feed()
    adaptive = AdaptiveTarget(150.0, 2000.0, 20.0)
    steering = _steering(feed, 150.0, adaptive)
    steering.apply()
    assert feed.writes == [150.0]
    steering.set_user_ms(400.0)
    assert feed.target_ms == 400.0 and adaptive.initial_ms == 400.0  # now, not at the next tick
    steering.step(0.5)  # nothing arrived: nothing learned, nothing written again
    assert feed.writes == [150.0, 400.0]
    adaptive.underrun(0.6)  # learning raises it; the next step writes what it learned
    steering.step(0.7)
    assert feed.target_ms == pytest.approx(600.0)


def test_steering_without_adaptive_buffering_follows_the_user_only() -> None:
    feed = _Feed()
    steering = Steering(lambda: feed, lambda: None, 150.0)  # type: ignore[arg-type,return-value]
    steering.set_user_ms(80.0)
    steering.step(5.0)
    assert feed.writes == [80.0]


def test_steering_raises_the_target_for_a_slow_server_while_it_sends_and_only_then() -> None:
    feed = _Feed()
    adaptive = AdaptiveTarget(150.0, 2000.0, 20.0)
    steering = _steering(feed, 150.0, adaptive, expected_s=10.0, first_audio_at=100.0)
    t = feed_steady(adaptive, 100.0, 2.0, speedup=0.8)  # 2 s of audio in 2.5 s: 0.8x real time
    steering.step(t)
    assert steering.slow_server_ms > 1000.0
    assert feed.target_ms == pytest.approx(min(steering.slow_server_ms, 2000.0))
    assert any("0.80x real time" in n for n in steering._run.notices)  # type: ignore[union-attr]
    feed.ended = True  # the download is over: the rest is in hand
    steering.step(t + 0.1)
    assert steering.slow_server_ms == 0.0 and feed.target_ms < 1000.0
