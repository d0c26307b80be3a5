"""Speech as server-sent events (issue 16): the parser on its own, and plays against the embedded server."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.player import StreamPlayer
from workbench.engine.sse import SseAudio, SseError
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory

TEXT = "one two three four five six"


def events(audio: bytes, pieces: int, field: str = "audio", crlf: bool = False) -> bytes:
    nl = "\r\n" if crlf else "\n"
    size = max(1, len(audio) // pieces)
    out = [": a comment" + nl + nl]
    for i in range(0, len(audio), size):
        event = {"type": "speech.audio.delta", field: base64.b64encode(audio[i : i + size]).decode()}
        out.append("event: delta" + nl + f"data: {json.dumps(event)}" + nl + nl)
    out.append(f"data: {json.dumps({'type': 'speech.audio.done', 'usage': {'total_tokens': 7}})}" + nl + nl)
    return "".join(out).encode()


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 9), st.sampled_from(["audio", "data"]), st.booleans(),
       st.lists(st.integers(1, 400), max_size=12))
def test_any_split_of_the_stream_gives_the_audio_back(audio: bytes, pieces: int, field: str, crlf: bool,
                                                     cuts: list[int]) -> None:
    body = events(audio, pieces, field, crlf)
    parser, out, pos = SseAudio(), bytearray(), 0
    for cut in sorted(cuts):
        out += parser.feed(body[pos:cut])
        pos = max(pos, cut)
    out += parser.feed(body[pos:]) + parser.finish()
    assert bytes(out) == audio and parser.done and parser.usage == {"total_tokens": 7} and not parser.notes


def test_bad_events_are_notes_and_the_rest_plays() -> None:
    good = base64.b64encode(b"\x01\x02\x03\x04").decode()
    body = ("data: {not json\n\n"
            'data: {"type": "speech.audio.delta", "audio": "***"}\n\n'
            f'data: {{"type": "speech.audio.delta", "audio": "{good}"}}\n\n').encode()
    parser = SseAudio()
    assert parser.feed(body) + parser.finish() == b"\x01\x02\x03\x04"
    assert any("not JSON" in n for n in parser.notes) and any("not base64" in n for n in parser.notes)
    assert any("ended without speech.audio.done" in n for n in parser.notes)


def test_an_error_event_is_the_servers_message() -> None:
    parser = SseAudio()
    with pytest.raises(SseError, match="model overloaded"):
        parser.feed(b'data: {"type": "speech.audio.error", "error": {"message": "model overloaded"}}\n\n')


async def play(server: EmbeddedServer, fmt: str = "pcm", **query: str):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=8.0)
    player = StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt, stream_format="sse",
                                        playout="fixed"), base_url=server.base_url, sink_factory=factory,
                          extra_query=query or None)
    m = await player.play(TEXT)
    return m, factory.made[-1].recorder.samples()


@pytest.mark.parametrize("fmt", ["pcm", "mp3", "opus"])
async def test_sse_plays_the_same_audio_as_the_raw_stream(server: EmbeddedServer, fmt: str) -> None:
    m, rec = await play(server, fmt)
    factory = virtual_factory(speed=8.0)
    raw = await StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt, playout="fixed"),
                             base_url=server.base_url, sink_factory=factory).play(TEXT)
    assert m.error is None and m.stream_format == "sse" and raw.stream_format == "audio"
    assert m.sse_usage is not None and m.sse_usage["total_tokens"] > 0
    assert m.audio_ms == pytest.approx(raw.audio_ms)
    assert m.bytes > raw.bytes * 1.3  # base64 and the events' JSON, on the wire
    played = rec[np.flatnonzero(rec)[0] :]
    raw_rec = factory.made[-1].recorder.samples()
    np.testing.assert_array_equal(played[: len(played) // 2], raw_rec[np.flatnonzero(raw_rec)[0] :][: len(played) // 2])
    assert m.decode_ms_p95 is not None


async def test_the_data_field_variant_and_an_error_event(server: EmbeddedServer) -> None:
    m, _ = await play(server, sse_field="data")
    assert m.error is None and m.audio_ms > 1000
    m, _ = await play(server, sse_error="the voice model crashed")
    assert m.error is not None and "the voice model crashed" in m.error and m.retries == 0


async def test_a_dropped_sse_stream_resumes_from_its_audio_byte(server: EmbeddedServer) -> None:
    whole, _ = await play(server)
    m, _ = await play(server, drop_after_bytes="30000", fault_times="1", fault_id="sse-drop")
    assert m.error is None and m.reconnects == 1 and m.resume == "exact"
    assert m.audio_ms == pytest.approx(whole.audio_ms)
