"""First sound: the threshold, the leading-silence trim (any split of the stream gives the same audio),
and what a play reports with and without the trim."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.figures.onset import SOUND_THRESHOLD, LeadingSilenceTrim, first_sound
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory


def test_the_threshold_is_minus_50_dbfs_inclusive() -> None:
    assert 20 * np.log10(SOUND_THRESHOLD) == pytest.approx(-50.0)
    x = np.array([0.0, -0.003, SOUND_THRESHOLD * 0.999, -SOUND_THRESHOLD, 0.5], dtype=np.float32)
    assert first_sound(x) == 3  # the sign does not matter; just below does not count
    assert first_sound(x[:3]) == -1 and first_sound(x[:0]) == -1


def reply(lead: int, rng: np.random.Generator) -> np.ndarray:
    quiet = rng.uniform(-0.002, 0.002, lead)  # room noise at -54 dBFS
    speech = rng.uniform(-0.5, 0.5, 300)
    speech[0] = 0.5  # the first sound is the first sample after `lead`
    return np.concatenate([quiet, speech]).astype(np.float32)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 400), st.integers(0, 300), st.integers(0, 50), st.lists(st.integers(1, 700), max_size=8),
       st.integers(0, 2**32 - 1))
def test_the_trim_gives_the_same_audio_however_the_stream_is_split(lead: int, limit: int, keep: int,
                                                                 cuts: list[int], seed: int) -> None:
    audio = reply(lead, np.random.default_rng(seed))
    trim = LeadingSilenceTrim(limit, keep)
    out, pos = [], 0
    for cut in sorted(cuts):
        out.append(trim.apply(audio[pos:cut]))
        pos = max(pos, cut)
    out.append(trim.apply(audio[pos:], final=True))
    played = np.concatenate(out)
    expected_cut = min(max(lead - keep, 0), limit)  # quiet samples before the sound, less the kept ones
    assert trim.trimmed == expected_cut
    np.testing.assert_array_equal(played, audio[expected_cut:])  # nothing else lost, nothing reordered


def test_a_reply_that_is_all_silence_is_played_whole_past_the_limit() -> None:
    trim = LeadingSilenceTrim(100, 10)
    quiet = np.zeros(250, dtype=np.float32)
    out = np.concatenate([trim.apply(quiet[:120]), trim.apply(quiet[120:], final=True)])
    assert trim.trimmed == 100 and len(out) == 150


async def test_a_play_reports_its_first_sound_and_the_trim_moves_it_to_10_ms_after_the_first_sample(
        server: EmbeddedServer) -> None:
    """Speech from the embedded server starts with about 12 ms of silence (espeak-ng's): the first sound is
    that long after the first sample; with the trim on, 10 ms (what is kept) and the rest is skipped. The
    virtual sink runs at 8x, so its times are an eighth of the audio's."""
    speed = 8.0

    async def play(trim_ms: int):  # type: ignore[no-untyped-def]
        factory = virtual_factory(speed=speed)
        player = StreamPlayer(make_settings(trim_leading_ms=trim_ms, playout="fixed"), base_url=server.base_url,
                              sink_factory=factory)
        m = await player.play("Hello there.")
        assert player.buffer is not None
        first = (player.buffer.first_audio_block - 1) * 480 + player.buffer.first_audio_offset
        return m, factory.made[-1].recorder.samples()[first:]  # what was played, from its first sample

    (plain, played_plain), (trimmed, played_trimmed) = await play(0), await play(500)
    for m, played in ((plain, played_plain), (trimmed, played_trimmed)):
        assert m.first_sound_ms is not None and m.ttfa_ms is not None
        assert m.leading_silence_ms == pytest.approx(m.first_sound_ms - m.ttfa_ms)
        # the sink's figure is where the recording's first -50 dBFS sample is
        assert m.leading_silence_ms * speed == pytest.approx(first_sound(played) / 24.0, abs=0.01)
    assert plain.silence_skipped_ms == 0 and plain.leading_silence_ms * speed > 10.0
    assert trimmed.leading_silence_ms * speed == pytest.approx(10.0, abs=0.01)
    assert trimmed.silence_skipped_ms == pytest.approx(plain.leading_silence_ms * speed - 10.0, abs=0.01)
