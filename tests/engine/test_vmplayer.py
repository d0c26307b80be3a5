"""The model of voicemode 9.0's playback (issue 14): each format's path, played against the embedded
server and measured by our sinks, as the engine is."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.player import StreamPlayer
from workbench.engine.vmplayer import (
    EARLY_DECODE_BYTES,
    LEADING_SILENCE_S,
    VoicemodePlayer,
    decode_file,
    rechunk,
    voicemode_format,
)
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory

SHORT = "one two three four five six seven eight"  # about 2.7 s of the test signal
LONG = " ".join(["word"] * 25)  # about 8.6 s


async def vm_play(server: EmbeddedServer, fmt: str, text: str = SHORT, speed: float = 8.0,
                  query: dict[str, str] | None = None, **over: object):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=speed)
    async with VoicemodePlayer(make_settings(voices=("test-signal",), audio_format=fmt, **over),
                               base_url=server.base_url, sink_factory=factory, extra_query=query) as player:
        m = await player.play(text)
    return m, factory.made[-1].recorder.samples()


async def engine_play(server: EmbeddedServer, fmt: str, text: str = SHORT, speed: float = 8.0,
                      query: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=speed)
    async with StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt), base_url=server.base_url,
                            sink_factory=factory, extra_query=query) as player:
        return await player.play(text)


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=5000), st.lists(st.integers(0, 5000), max_size=8), st.integers(2, 700))
def test_rechunk_holds_bytes_back_as_httpx_iter_bytes_does(data: bytes, cuts: list[int], size: int) -> None:
    bounds = sorted({0, len(data), *[c for c in cuts if c < len(data)]})
    pieces = [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]

    async def source():  # type: ignore[no-untyped-def]
        for p in pieces:
            yield p

    async def collect() -> list[bytes]:
        return [c async for c in rechunk(source(), size)]

    out = asyncio.run(collect())
    assert b"".join(out) == data
    assert all(len(c) == size for c in out[:-1]) and (not out or 0 < len(out[-1]) <= size)


def test_aac_is_opus_except_on_openai() -> None:
    assert voicemode_format("aac", "http://127.0.0.1:8880/v1") == "opus"
    assert voicemode_format("aac", "https://api.openai.com/v1") == "aac"
    assert voicemode_format("mp3", "http://127.0.0.1:8880/v1") == "mp3"


def test_a_wav_without_its_header_does_not_decode() -> None:
    from workbench.engine.decoding.base import DecodeError

    with pytest.raises(DecodeError):
        decode_file(b"\x01\x02" * 20_000, "wav")
    assert len(decode_file(b"\x00\x01" * 100, "pcm")) == 100


async def test_pcm_plays_as_it_comes_and_reports_the_first_chunk(server: EmbeddedServer) -> None:
    m, rec = await vm_play(server, "pcm")
    ours = await engine_play(server, "pcm")
    assert m.error is None and m.player == "voicemode" and m.streaming and m.initial_buffer_ms == 0.0
    assert m.played_ms == pytest.approx(ours.audio_ms, abs=25.0)  # all of it
    assert m.voicemode_reported_ttfa_ms is not None and m.ttfa_ms is not None
    assert m.voicemode_reported_ttfa_ms < m.ttfa_ms  # it logs the chunk's arrival, not the sound
    assert len(rec) > 0


async def test_pcm_gaps_when_the_server_is_late(server: EmbeddedServer) -> None:
    slow = {"pace": "0.9", "pause_at_s": "1", "pause_ms": "400"}
    m, _ = await vm_play(server, "pcm", speed=1.0, query=slow)
    assert m.error is None and m.underruns >= 1 and m.underrun_ms >= 200  # no buffer to ride it out


async def test_wav_plays_its_first_32_kb_only(server: EmbeddedServer) -> None:
    m, _ = await vm_play(server, "wav", LONG)
    ours = await engine_play(server, "wav", LONG)
    assert m.error is None and ours.error is None
    first_part_ms = (EARLY_DECODE_BYTES + 4096) / 48.0  # bytes at 48 kB/s, less the header, plus a chunk
    assert m.played_ms <= first_part_ms and m.played_ms < 0.2 * ours.played_ms
    assert any("plays no more" in w for w in m.warnings)


async def test_opus_waits_for_the_whole_download(server: EmbeddedServer) -> None:
    query = {"pace": "0.2", "ttfb_ms": "50"}
    m, _ = await vm_play(server, "opus", LONG, query=query)
    ours = await engine_play(server, "opus", LONG, query=query)
    assert m.error is None and m.first_sound_ms is not None and ours.first_sound_ms is not None
    download_ms = 50 + 0.2 * ours.audio_ms  # the server's pace: the whole reply is there after this
    assert m.first_sound_ms >= 0.9 * download_ms > 2 * ours.first_sound_ms


async def test_mp3_plays_its_first_part_then_waits_for_the_rest(server: EmbeddedServer) -> None:
    m, rec = await vm_play(server, "mp3", LONG * 2, query={"pace": "0.2", "ttfb_ms": "50"})
    assert m.error is None
    assert m.underruns >= 1  # the gap between the first 32 KB and the rest, decoded after the download
    quiet = np.abs(rec) < 10 ** (-50 / 20)
    sound = np.flatnonzero(~quiet)
    inner = quiet[sound[0] : sound[-1]]
    runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], inner.astype(np.int8), [0]]))))[::2]
    assert runs.max() > 0.1 * 24_000  # heard: a gap of more than 100 ms inside the reply


async def test_buffered_waits_for_all_then_starts_after_100_ms_of_silence(server: EmbeddedServer) -> None:
    m, _ = await vm_play(server, "flac")  # voicemode never streams FLAC
    assert m.error is None and not m.streaming
    assert any("does not stream flac" in w for w in m.warnings)
    # the virtual sink plays 8x faster than real time: 100 ms of audio pass in 12.5 ms
    assert m.leading_silence_ms == pytest.approx(LEADING_SILENCE_S * 1000.0 / 8.0, abs=3.0)
    assert m.voicemode_reported_ttfa_ms is not None and m.ttfa_ms is not None
    assert m.voicemode_reported_ttfa_ms <= m.ttfa_ms
    off, _ = await vm_play(server, "pcm", streaming_enabled=False)
    assert off.error is None and not off.streaming and off.played_ms > 0


async def test_stop_ends_a_voicemode_play(server: EmbeddedServer) -> None:
    factory = virtual_factory(speed=1.0)
    player = VoicemodePlayer(make_settings(voices=("test-signal",)), base_url=server.base_url, sink_factory=factory)
    task = asyncio.create_task(player.play(LONG))
    await asyncio.sleep(0.6)
    player.stop()
    m = await asyncio.wait_for(task, 3.0)
    assert m.state == "stopped" and m.played_ms < m.audio_ms + 1 and m.played_ms < 8000


async def test_an_unknown_installed_voicemode_is_named_and_9_0_is_played(server: EmbeddedServer,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.engine import vmplayer

    monkeypatch.setattr(vmplayer.metadata, "version", lambda name: "9.4.0")
    assert vmplayer.installed_voicemode() == ("9.4.0", False)
    m, _ = await vm_play(server, "pcm", text="one two")
    assert m.error is None
    assert any("voicemode 9.4.0 is installed; this player plays as voicemode 9.0 does" in n for n in m.warnings)
