"""Headerless PCM at the rate the response states (issue 16): X-Sample-Rate, Content-Type parameters, L16,
the setting as a fallback and as an override."""

from __future__ import annotations

import pytest

from workbench.engine.decoding.pcmformat import PcmFormat, resolve, stated
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer
from workbench.server.speech import estimate_duration_s

from ..conftest import make_settings, virtual_factory

TEXT = "one two three four five six"
SENT_MS = estimate_duration_s(TEXT) * 1000.0
BLOCK_MS = 20.0


@pytest.mark.parametrize(("headers", "rate", "channels", "whence"), [
    ({"content-type": "audio/pcm_s16le", "x-sample-rate": "22050", "x-channels": "1", "x-sample-width": "2"},
     22050, 1, "X-Sample-Rate"),
    ({"content-type": "audio/pcm;rate=22050"}, 22050, None, "Content-Type"),
    ({"content-type": "audio/L16; rate=16000; channels=2"}, 16000, 2, "Content-Type"),
    ({"content-type": "audio/pcm"}, None, None, ""),
])
def test_what_the_response_states(headers: dict[str, str], rate: int | None, channels: int | None,
                                   whence: str) -> None:
    notes: list[str] = []
    got_rate, rate_from, got_channels, _ = stated(headers, notes)
    assert (got_rate, rate_from, got_channels) == (rate, whence, channels) and notes == []


@pytest.mark.parametrize(("headers", "fragment"), [
    ({"content-type": "audio/pcm;rate=fast"}, "Content-Type rate 'fast' is not a number"),
    ({"x-sample-rate": "999999"}, "X-Sample-Rate 999999 is out of range"),
    ({"x-sample-rate": "22050", "x-sample-width": "3"}, "PCM is played as 16-bit"),
])
def test_bad_statements_are_noted_and_the_rest_plays(headers: dict[str, str], fragment: str) -> None:
    notes: list[str] = []
    chosen = resolve(headers, 24_000, False, notes)
    assert any(fragment in n for n in notes), notes
    assert chosen.rate in (22050, 24_000)


def test_an_explicit_setting_wins_with_a_note() -> None:
    notes: list[str] = []
    chosen = resolve({"x-sample-rate": "22050"}, 16_000, True, notes)
    assert chosen == PcmFormat(16_000, 1, "WORKBENCH_PCM_RATE", "default")
    assert "says 22050 Hz (X-Sample-Rate) but WORKBENCH_PCM_RATE=16000" in notes[0]
    assert resolve({}, 16_000, False, []).rate_from == "default"


async def play(server: EmbeddedServer, **overrides: object):  # type: ignore[no-untyped-def]
    query = {k: str(v) for k, v in overrides.items() if k in ("pcm_rate", "rate_style")}
    settings = make_settings(voices=("test-signal",), playout="fixed",
                             **{k: v for k, v in overrides.items() if k not in query})
    player = StreamPlayer(settings, base_url=server.base_url, sink_factory=virtual_factory(speed=8.0),
                          extra_query=query)
    return await player.play(TEXT)


@pytest.mark.parametrize("style", ["header", "content-type", "l16"])
@pytest.mark.parametrize("rate", [16_000, 22_050, 44_100])
async def test_every_stated_rate_plays_at_the_right_speed(server: EmbeddedServer, style: str, rate: int) -> None:
    m = await play(server, pcm_rate=rate, rate_style=style)
    assert m.error is None and m.pcm_rate == rate and m.pcm_channels == 1
    assert m.pcm_from == ("X-Sample-Rate" if style == "header" else "Content-Type")
    assert abs(m.audio_ms - SENT_MS) < BLOCK_MS, (m.audio_ms, SENT_MS)  # its duration, within a block


async def test_a_rate_said_nowhere_is_the_setting(server: EmbeddedServer) -> None:
    """22050 Hz said nowhere plays 9 % fast (what happened to every Piper server before); the setting mends it."""
    wrong = await play(server, pcm_rate=22_050, rate_style="none")
    assert wrong.pcm_from == "default" and wrong.audio_ms == pytest.approx(SENT_MS * 22_050 / 24_000, abs=BLOCK_MS)
    right = await _with_setting(server)
    assert right.pcm_from == "WORKBENCH_PCM_RATE" and abs(right.audio_ms - SENT_MS) < BLOCK_MS


async def _with_setting(server: EmbeddedServer):  # type: ignore[no-untyped-def]
    settings = make_settings(voices=("test-signal",), playout="fixed", pcm_rate=22_050)
    player = StreamPlayer(settings, base_url=server.base_url, sink_factory=virtual_factory(speed=8.0),
                          extra_query={"pcm_rate": "22050", "rate_style": "none"})
    return await player.play(TEXT)
