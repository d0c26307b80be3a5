"""`workbench tune` against the embedded server with a stall on every reply: it must find a buffer that
covers the stall, verify it, and give up clearly when the max buffer cannot."""

from __future__ import annotations

import pytest

from workbench.server.runner import EmbeddedServer
from workbench.usecases.tune import TuneFailed, tune

from ..conftest import make_settings
from .test_player import TEXT

# a real-time server (the buffer holds what the initial buffer held) that stops for 400 ms after 1 s
STALL = {"pace": "1.0", "stall_ms": "400", "stall_at": "48000"}


async def test_tune_finds_verifies_and_writes_a_buffer_that_covers_the_stall(server: EmbeddedServer) -> None:
    settings = make_settings(voices=("test-signal",), adaptive=False, buffer_ms=150, sink="virtual")
    seen: list[str] = []
    result = await tune(settings, server.base_url, 1, TEXT, seen.append, extra_query=STALL)
    assert 400 <= result.buffer_ms <= 700  # the stall, plus a block or two, not a wild guess
    assert result.steps[0].startswith("Probe: 1 plays at 150 ms")
    assert any(step == f"Verify {result.buffer_ms} ms: 0 of 1 plays underran." for step in result.steps)
    assert result.max_buffer_s < 2.0 and result.buffer_ms / 1000 <= result.max_buffer_s  # fixed: max tuned too
    assert result.ttfa_ms > result.buffer_ms and result.plays >= 3
    preset = result.preset("tuned")
    assert preset.values["VOICEMODE_STREAM_BUFFER_MS"] == str(result.buffer_ms)
    assert preset.values["VOICEMODE_STREAM_MAX_BUFFER"] == f"{result.max_buffer_s:g}"
    assert seen and seen[0] == "probe at 150 ms: play 1/1"
    # the result depends on the TTS's pace, and says so (a 5x server needs less than the 1.1x one that
    # shipped presets were chosen for)
    assert result.arrival_rtf is not None and 0.5 < result.arrival_rtf < 3.0  # pace 1.0 and a stall: about 1x
    assert f"{result.arrival_rtf:.1f}x real time" in result.pace_note
    assert any("x real time (median of the verified plays)" in line for line in preset.description)


async def test_tune_gives_up_clearly_when_the_max_buffer_cannot_cover_it(server: EmbeddedServer) -> None:
    settings = make_settings(voices=("test-signal",), adaptive=False, buffer_ms=150, max_buffer_s=0.3,
                             sink="virtual")
    with pytest.raises(TuneFailed, match="even the max buffer"):
        await tune(settings, server.base_url, 1, TEXT, extra_query=STALL)


async def test_tune_refuses_buffered_playback(server: EmbeddedServer) -> None:
    with pytest.raises(ValueError, match="streaming on"):
        await tune(make_settings(streaming_enabled=False), server.base_url, 1, TEXT)


async def test_tune_for_voicemode_picks_a_format_and_chunk_that_play_the_whole_reply(server: EmbeddedServer) -> None:
    """Issue 14: `tune --player voicemode` measures each format and chunk size as voicemode 9.0 plays them;
    WAV, of which voicemode plays only the first 32 KB, can never win."""
    from workbench.usecases.tune import VOICEMODE_CANDIDATES

    s = make_settings(voices=("test-signal",), player="voicemode", network="none")
    result = await tune(s, server.base_url, 1, "one two three four five six seven")
    assert result.player == "voicemode" and result.plays == len(VOICEMODE_CANDIDATES)
    assert len(result.steps) == len(VOICEMODE_CANDIDATES)
    wav = next(step for step in result.steps if step.startswith("wav"))
    assert int(wav.split("played ")[1].split(" %")[0]) < 90
    chosen = result.settings
    assert (chosen.audio_format, chosen.chunk_size) in VOICEMODE_CANDIDATES and chosen.audio_format != "wav"
    assert chosen.buffer_ms == s.buffer_ms  # voicemode does not use it: left as it was
    text = result.preset("mine").text()
    assert "tune --player voicemode" in text and f"VOICEMODE_STREAM_CHUNK_SIZE={chosen.chunk_size}" in text
