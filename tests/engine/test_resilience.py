"""Reconnection without replay: dropped connections, rate limits and retries, checked sample by sample
with the server's test signal and the recording sink."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from workbench.engine.player import StreamPlayer
from workbench.engine.playrun import ResumeCheck
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory
from .test_player import TEXT, assert_whole_tone_played_once, tone_samples

_ids = itertools.count()


def once(**faults: object) -> dict[str, str]:
    """Knobs for a fault that happens on the first request only (a fresh fault_id each time)."""
    return {"fault_times": "1", "fault_id": f"resilience-{next(_ids)}", **{k: str(v) for k, v in faults.items()}}


async def play(server: EmbeddedServer, query: dict[str, str] | None, fmt: str = "pcm", speed: float = 2.0,  # type: ignore[no-untyped-def]
               **settings: object):
    # at twice real time the audio buffered before a drop outlasts the reconnection, so any change
    # in the recording is a repeat or a skip, not underrun silence
    factory = virtual_factory(speed=speed)
    # fixed playout: resuming is checked sample for sample (tests/engine/test_elastic.py: through elastic)
    player = StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt, **{"playout": "fixed", **settings}),
                          base_url=server.base_url, sink_factory=factory, extra_query=query)
    metrics = await player.play(TEXT)
    return metrics, factory.made[-1].recorder.samples()


# Two ways back: the server resumes from the byte asked for (ours, by default), or it cannot and sends
# the whole reply again (resume=0, like most servers), and the player skips what it already has.
RESUME_WAYS = {"from-byte": {}, "whole-again": {"resume": "0"}}


@pytest.mark.parametrize("way", RESUME_WAYS)
@pytest.mark.parametrize("drop_at", [9_001, 50_000, 101_000])  # inside a sample, and later on
async def test_pcm_drop_resumes_sample_exact(server: EmbeddedServer, drop_at: int, way: str) -> None:
    m, recorded = await play(server, {**once(drop_after_bytes=drop_at), **RESUME_WAYS[way]})
    assert m.state == "done" and m.error is None, m.error
    assert m.reconnects == 1 and m.resume == "exact" and m.underruns == 0
    assert_whole_tone_played_once(recorded)  # no repeat, no skip, nothing after the end
    assert m.audio_ms == pytest.approx(tone_samples() / 24, abs=0.1)
    assert any("asking again" in w for w in m.warnings)
    assert any("resumed at byte" in w for w in m.warnings) == (way == "from-byte")


def heard(recorded: np.ndarray) -> np.ndarray:
    nonzero = np.flatnonzero(np.abs(recorded) > 1e-6)
    return recorded[nonzero[0] : nonzero[-1] + 1]


@pytest.mark.parametrize("way", RESUME_WAYS)
@pytest.mark.parametrize("fmt", ["mp3", "opus"])
@pytest.mark.parametrize("drop_at", [2_500, 7_000])
async def test_compressed_drop_resumes_exactly_where_it_stopped(server: EmbeddedServer, fmt: str,
                                                                drop_at: int, way: str) -> None:
    clean, clean_rec = await play(server, None, fmt)
    m, recorded = await play(server, {**once(drop_after_bytes=drop_at), **RESUME_WAYS[way]}, fmt)
    assert m.state == "done" and m.error is None, m.error
    assert m.reconnects == 1 and m.resume == "exact" and m.underruns == 0
    assert m.audio_ms == pytest.approx(clean.audio_ms)
    a, b = heard(clean_rec), heard(recorded)
    assert len(a) == len(b)
    np.testing.assert_allclose(b, a, atol=1e-6)  # what was heard is identical to an undisturbed play


async def test_retry_after_is_honoured(server: EmbeddedServer) -> None:
    t = time.perf_counter()
    m, recorded = await play(server, once(status=429, retry_after=1))
    assert m.state == "done" and m.reconnects == 1
    assert time.perf_counter() - t >= 1.0
    assert m.first_byte_ms is not None and m.first_byte_ms >= 1000.0  # it waited as told
    assert_whole_tone_played_once(recorded)


async def test_server_errors_are_retried_with_backoff(server: EmbeddedServer) -> None:
    m, recorded = await play(server, {**once(status=503), "fault_times": "2"})
    assert m.state == "done" and m.reconnects == 2
    assert m.first_byte_ms is not None and m.first_byte_ms >= 250.0 + 500.0  # waited 0.25 s, then 0.5 s
    assert_whole_tone_played_once(recorded)


@pytest.mark.parametrize("way", RESUME_WAYS)
async def test_when_retries_run_out_what_was_buffered_plays_and_the_error_is_clear(server: EmbeddedServer,
                                                                                   way: str) -> None:
    # every response drops after 30000 bytes: resumed from a byte, each retry brings 30000 - 1024 new
    # bytes (the overlap is compared, not played); sent whole again, each brings nothing new
    # (the initial buffer outlasts the reply, so it plays in one piece once the retries give up)
    m, recorded = await play(server, {"drop_after_bytes": "30000", **RESUME_WAYS[way]}, max_retries=2,
                             buffer_ms=1900)
    assert m.state == "failed" and m.reconnects == 2
    assert "gave up after 2 retries" in (m.error or "")
    n = (30_000 + 2 * (30_000 - 1024)) // 2 if way == "from-byte" else 15_000
    assert m.audio_ms == pytest.approx(n / 24, abs=0.1)  # each sample once
    assert m.played_ms == pytest.approx(m.audio_ms)
    onset = int(np.flatnonzero(recorded)[0]) - 1
    from .test_player import assert_tone

    assert_tone(recorded, onset, n)  # what arrived, once, its cut end faded
    assert not recorded[onset + n :].any()  # nothing repeated after the retries


async def test_a_resumed_response_that_differs_is_dropped_and_the_reply_asked_for_whole(
        server: EmbeddedServer) -> None:
    # the first two responses corrupt their bytes 100-115: the resumed one therefore does not start
    # with the bytes that came before the drop, so it is abandoned and the whole reply asked for
    m, recorded = await play(server, {**once(drop_after_bytes=40_000, corrupt_at=100), "fault_times": "2"})
    assert m.state == "done" and m.error is None, m.error
    # the whole reply, compared sample for sample with what was handed on, is the same: exact
    assert m.reconnects == 2 and m.resume == "exact"
    assert any("did not continue" in w for w in m.warnings)
    assert m.audio_ms == pytest.approx(tone_samples() / 24, abs=0.1)  # still no repeat, no skip


async def test_a_client_error_is_not_retried(server: EmbeddedServer) -> None:
    m, _ = await play(server, {"status": "401"})
    assert m.state == "failed" and m.reconnects == 0


async def test_no_retries_when_disabled(server: EmbeddedServer) -> None:
    m, _ = await play(server, once(drop_after_bytes=20_000), max_retries=0)
    assert m.state == "failed" and m.reconnects == 0 and "mid-stream" in (m.error or "")


def test_a_different_second_response_is_found_out_and_nothing_of_it_is_handed_on() -> None:
    check = ResumeCheck()
    played = np.sin(np.arange(5000, dtype=np.float32) / 10)
    check.note(played[:1234])
    check.note(played[1234:])
    check.begin()
    other = np.cos(np.arange(6000, dtype=np.float32) / 7)  # the server said something else this time
    assert not len(check.filter(other)) and check.result == "different"  # never spliced in
    assert not len(check.filter(other))

    check = ResumeCheck()
    check.note(played)
    check.begin()
    check.filter(played[:3000])
    check.ended()  # the new response ended before the point where the first one broke
    assert check.result == "different"

    check = ResumeCheck()
    check.note(played)
    check.begin()
    same = np.concatenate([played, np.ones(100, dtype=np.float32)])
    rest = np.concatenate([check.filter(same[:3000]), check.filter(same[3000:])])
    assert check.result == "exact"
    np.testing.assert_array_equal(rest, np.ones(100, dtype=np.float32))


@pytest.mark.parametrize(("fmt", "drop_at", "most", "least"), [("pcm", 50_000, 1024, 1024), ("mp3", 6_000, 256, 128)])
async def test_the_overlap_asked_for_again_is_a_few_tens_of_ms_of_audio(server: EmbeddedServer, fmt: str,
                                                                       drop_at: int, most: int, least: int) -> None:
    # a fixed kilobyte was a quarter of a second of MP3, sent again at the server's pace while the
    # buffer drained: on a server at real time, 60-210 ms gaps after every drop (issue 32)
    m, _ = await play(server, once(drop_after_bytes=drop_at), fmt=fmt)
    assert m.state == "done" and m.resume == "exact", m.error
    at = next(int(w.rsplit(" ", 1)[1]) for w in m.warnings if "resumed at byte" in w)
    assert least <= drop_at - at <= most
