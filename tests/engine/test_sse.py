"""Speech as server-sent events (issue 16): the parser on its own, and plays against the embedded server."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.fetching.sse import SseAudio, SseError
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory

TEXT = "one two three four five six"


def events(audio: bytes, pieces: int, field: str = "audio", nl: str = "\n") -> bytes:
    size = max(1, len(audio) // pieces)
    out = [": a comment" + nl + nl]
    for i in range(0, len(audio), size):
        event = {"type": "speech.audio.delta", field: base64.b64encode(audio[i : i + size]).decode()}
        out.append("event: delta" + nl + f"data: {json.dumps(event)}" + nl + nl)
    out.append(f"data: {json.dumps({'type': 'speech.audio.done', 'usage': {'total_tokens': 7}})}" + nl + nl)
    return "".join(out).encode()


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=1, max_size=3000), st.integers(1, 9), st.sampled_from(["audio", "data"]),
       st.sampled_from(["\n", "\r\n", "\r"]), st.lists(st.integers(1, 400), max_size=12))
def test_any_split_of_the_stream_gives_the_audio_back(audio: bytes, pieces: int, field: str, nl: str,
                                                     cuts: list[int]) -> None:
    # the SSE specification's three line endings (a CRLF may be cut between its CR and its LF)
    body = events(audio, pieces, field, nl)
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


def delta(audio: bytes | str) -> bytes:
    text = audio if isinstance(audio, str) else base64.b64encode(audio).decode()
    return f'data: {{"type": "speech.audio.delta", "audio": "{text}"}}\n\n'.encode()


def test_an_error_event_ends_the_stream_after_the_audio_before_it() -> None:
    parser = SseAudio()
    out = parser.feed(delta(b"\x01\x02") + b'data: {"type": "speech.audio.error", "error": {"message": '
                      b'"model overloaded"}}\n\n' + delta(b"\x03\x04"))
    assert out == b"\x01\x02"  # the audio that came before the error is not thrown away
    assert isinstance(parser.error, SseError) and str(parser.error) == "model overloaded"
    assert parser.feed(delta(b"\x05\x06")) == b"" and parser.finish() == b""  # nothing after it


def test_a_delta_one_character_short_is_skipped_whole_and_the_rest_stays_aligned() -> None:
    samples = np.arange(1, 3001, dtype="<i2").tobytes()
    good = [base64.b64encode(samples[i : i + 600]).decode() for i in range(0, len(samples), 600)]
    body = delta(good[0]) + delta(good[1][:-1]) + delta(good[2]) + delta(good[3])
    parser = SseAudio()
    out = parser.feed(body)
    assert out == samples[:600] + samples[1200:2400]  # whole samples, in step: never shifted by a byte
    assert parser.skipped == 1 and parser.take_gap() and not parser.take_gap()
    assert any("wrong length" in n for n in parser.notes)


def test_events_after_done_are_ignored_with_a_note() -> None:
    parser = SseAudio()
    out = parser.feed(delta(b"\x01\x02") + b'data: {"type": "speech.audio.done"}\n\n' + delta(b"\x03\x04"))
    assert out + parser.finish() == b"\x01\x02" and parser.done and parser.after_done == 1
    assert any("after speech.audio.done" in n for n in parser.notes)


@pytest.mark.parametrize("body", [np.arange(-500, 500, dtype="<i2").tobytes(), b"ID3\x04\x00" + bytes(300)])
def test_audio_labelled_as_an_event_stream_is_passed_through(body: bytes) -> None:
    parser = SseAudio()
    out = b"".join(parser.feed(body[i : i + 7]) for i in range(0, len(body), 7)) + parser.finish()
    assert out == body and parser.raw and any("sent the audio itself" in n for n in parser.notes)


def test_a_stream_of_blank_lines_and_comments_is_not_taken_for_audio() -> None:
    parser = SseAudio()
    assert parser.feed(b"\r\n\r\n") == b"" and not parser.raw
    # bare CRs: the last one may be the first half of a CRLF, so its event is read with what follows
    assert parser.feed(b": keep-alive\r\n\r\n" + delta(b"\x01\x02").replace(b"\n", b"\r")) == b""
    assert parser.feed(delta(b"\x03\x04")) == b"\x01\x02\x03\x04" and not parser.raw


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
