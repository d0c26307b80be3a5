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


async def test_tune_gives_up_clearly_when_the_max_buffer_cannot_cover_it(server: EmbeddedServer) -> None:
    settings = make_settings(voices=("test-signal",), adaptive=False, buffer_ms=150, max_buffer_s=0.3,
                             sink="virtual")
    with pytest.raises(TuneFailed, match="even the max buffer"):
        await tune(settings, server.base_url, 1, TEXT, extra_query=STALL)


async def test_tune_refuses_buffered_playback(server: EmbeddedServer) -> None:
    with pytest.raises(ValueError, match="streaming on"):
        await tune(make_settings(streaming_enabled=False), server.base_url, 1, TEXT)
