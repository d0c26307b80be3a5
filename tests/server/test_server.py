"""The embedded server over real HTTP: API shape, formats, pacing and every fault knob."""

from __future__ import annotations

import io
import math
import time

import av
import httpx2
import numpy as np
import pytest

from workbench.server.app import Knobs
from workbench.server.encoders import CONTENT_TYPES
from workbench.server.runner import EmbeddedServer
from workbench.server.speech import OUTPUT_RATE, estimate_duration_s
from workbench.server.speech import test_signal as tone_chunks

TEXT = "one two three four five six"


@pytest.fixture(scope="module")
def srv():  # type: ignore[no-untyped-def]
    with EmbeddedServer(knobs=Knobs(ttfb_ms=30, pace=0.25, flush_ms=20)) as server:
        yield server


def post(server: EmbeddedServer, body: dict, **query: object) -> tuple[httpx2.Response, list[tuple[float, bytes]]]:
    """POST and read the body as it streams, noting when each piece arrived."""
    pieces: list[tuple[float, bytes]] = []
    with httpx2.Client(timeout=30) as client:
        t0 = time.perf_counter()
        with client.stream("POST", server.base_url + "/audio/speech", json=body,
                           params={k: str(v) for k, v in query.items()}) as response:
            if response.status_code == 200:
                for piece in response.iter_raw():
                    pieces.append((time.perf_counter() - t0, piece))
            else:
                response.read()
    return response, pieces


def speech(fmt: str, voice: str = "test-signal", text: str = TEXT) -> dict:
    return {"model": "tts-1", "input": text, "voice": voice, "response_format": fmt}


def decode_with_pyav(fmt: str, data: bytes) -> np.ndarray:
    if fmt == "pcm":
        return np.frombuffer(data, dtype="<i2").astype(np.float32) / 32768
    container = av.open(io.BytesIO(data), format={"mp3": "mp3", "opus": "ogg", "aac": "aac", "flac": "flac",
                                                   "wav": "wav"}[fmt])
    resampler = av.AudioResampler(format="flt", layout="mono", rate=OUTPUT_RATE)
    out = []
    for frame in container.decode(audio=0):
        for f in resampler.resample(frame):
            out.append(f.to_ndarray().reshape(-1))
    for f in resampler.resample(None):
        out.append(f.to_ndarray().reshape(-1))
    return np.concatenate(out)


def test_health_models_voices(srv: EmbeddedServer) -> None:
    with httpx2.Client() as client:
        assert client.get(srv.base_url.replace("/v1", "/health")).json()["status"] == "ok"
        models = client.get(srv.base_url + "/models").json()
        assert {"tts-1", "tts-1-hd", "gpt-4o-mini-tts"} <= {m["id"] for m in models["data"]}
        assert "test-signal" in client.get(srv.base_url + "/audio/voices").json()["voices"]


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_every_format_streams_progressively_and_decodes_to_the_right_length(srv: EmbeddedServer, fmt: str) -> None:
    response, pieces = post(srv, speech(fmt))
    assert response.status_code == 200
    assert response.headers["content-type"] == CONTENT_TYPES[fmt]
    first, last = pieces[0][0], pieces[-1][0]
    duration = estimate_duration_s(TEXT)
    assert last - first > 0.5 * duration * 0.25  # paced: bytes keep coming while "generating"
    assert len(pieces) > 5
    audio = decode_with_pyav(fmt, b"".join(p for _, p in pieces))
    # lossy codecs add priming and padding; never more than ~0.1 s
    assert abs(len(audio) / OUTPUT_RATE - duration) < (0.002 if fmt in ("pcm", "wav", "flac") else 0.12)


def test_the_test_signal_is_phase_continuous_across_chunks() -> None:
    whole = np.concatenate(list(tone_chunks(TEXT, chunk_samples=977)))
    n = len(whole)
    reference = 10 ** (-6 / 20) * np.sin(2 * math.pi * 440 / OUTPUT_RATE * np.arange(n))
    assert np.allclose(whole, reference, atol=1e-6)
    assert np.max(np.abs(whole)) == pytest.approx(10 ** (-6 / 20), abs=1e-3)
    assert n == round(estimate_duration_s(TEXT) * OUTPUT_RATE)


def test_speech_voices_are_real_and_distinct(srv: EmbeddedServer) -> None:
    bodies = {}
    for voice in ("alloy", "onyx"):
        response, pieces = post(srv, speech("pcm", voice=voice, text="Hello there"))
        assert response.status_code == 200
        bodies[voice] = np.frombuffer(b"".join(p for _, p in pieces), dtype="<i2")
        assert len(bodies[voice]) > 0.3 * OUTPUT_RATE and np.abs(bodies[voice]).max() > 3000
    assert len(bodies["alloy"]) != len(bodies["onyx"]) or not np.array_equal(bodies["alloy"], bodies["onyx"])


def test_pacing_ttfb_and_pace_knobs(srv: EmbeddedServer) -> None:
    _, pieces = post(srv, speech("pcm"), ttfb_ms=300, pace=0.5, flush_ms=0)
    first, last = pieces[0][0], pieces[-1][0]
    duration = estimate_duration_s(TEXT)
    assert 0.29 < first < 0.6
    assert (last - first) == pytest.approx(duration * 0.5, rel=0.15)


@pytest.mark.parametrize(("body", "status", "param"), [
    ({"model": "tts-1", "voice": "alloy"}, 400, "input"),
    ({"model": "tts-1", "voice": "alloy", "input": ""}, 400, "input"),
    ({"model": "tts-1", "voice": "alloy", "input": "x" * 4097}, 400, "input"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "response_format": "ogg"}, 400, "response_format"),
    ({"model": "tts-1", "voice": "nobody", "input": "hi"}, 400, "voice"),
    ({"model": "tts-1", "voice": "alloy", "input": "hi", "speed": 9}, 400, "speed"),
    ({"voice": "alloy", "input": "hi"}, 400, "model"),
])
def test_bad_bodies_get_openai_style_errors(srv: EmbeddedServer, body: dict, status: int, param: str) -> None:
    response, _ = post(srv, body)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param and error["message"]


def test_unparseable_json_and_unknown_knob(srv: EmbeddedServer) -> None:
    with httpx2.Client() as client:
        r = client.post(srv.base_url + "/audio/speech", content=b"{nope", headers={"content-type": "application/json"})
        assert r.status_code == 400 and "JSON" in r.json()["error"]["message"]
    response, _ = post(srv, speech("pcm"), warp_speed=9)
    assert response.status_code == 400 and "unknown knob" in response.json()["error"]["message"]


# -- fault knobs: the client sees exactly that fault -----------------------------------------------------
@pytest.mark.parametrize("status", [500, 401, 429, 503])
def test_fault_status(srv: EmbeddedServer, status: int) -> None:
    response, _ = post(srv, speech("pcm"), status=status, retry_after=3)
    assert response.status_code == status
    assert "injected fault" in response.json()["error"]["message"]
    if status in (429, 503):
        assert response.headers["retry-after"] == "3"


def test_fault_drop_after_bytes(srv: EmbeddedServer) -> None:
    with pytest.raises(httpx2.RemoteProtocolError):
        post(srv, speech("pcm"), drop_after_bytes=10_000)
    # and exactly 10,000 bytes arrived before the drop
    got = 0
    with httpx2.Client() as client, client.stream("POST", srv.base_url + "/audio/speech", json=speech("pcm"),
                                                  params={"drop_after_bytes": "10000"}) as r:
        with pytest.raises(httpx2.RemoteProtocolError):
            for piece in r.iter_raw():
                got += len(piece)
    assert got == 10_000


def test_fault_drop_after_ms(srv: EmbeddedServer) -> None:
    t = time.perf_counter()
    with pytest.raises(httpx2.RemoteProtocolError):
        post(srv, speech("pcm"), drop_after_ms=200)
    assert 0.15 < time.perf_counter() - t < 1.0


def test_fault_truncate_ends_cleanly_early(srv: EmbeddedServer) -> None:
    response, pieces = post(srv, speech("pcm"), truncate_bytes=5001)
    assert response.status_code == 200 and sum(len(p) for _, p in pieces) == 5001


def test_fault_corrupt_changes_exactly_those_bytes(srv: EmbeddedServer) -> None:
    _, clean = post(srv, speech("pcm"))
    _, bad = post(srv, speech("pcm"), corrupt_at=1000, corrupt_len=8)
    a, b = b"".join(p for _, p in clean), b"".join(p for _, p in bad)
    assert len(a) == len(b)
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    assert diff == list(range(1000, 1008))


def test_fault_stall(srv: EmbeddedServer) -> None:
    _, pieces = post(srv, speech("pcm"), stall_ms=600, stall_at=4000, flush_ms=0)
    offsets = np.cumsum([len(p) for _, p in pieces])
    gaps = np.diff([t for t, _ in pieces])
    biggest = int(np.argmax(gaps))
    assert gaps[biggest] > 0.55
    assert offsets[biggest] == 4000  # the stall came right after byte 4000


def test_fault_wrong_content_type(srv: EmbeddedServer) -> None:
    response, _ = post(srv, speech("pcm"), content_type="audio/mpeg")
    assert response.headers["content-type"] == "audio/mpeg"


def test_fault_send_format_sends_other_bytes_under_the_asked_label(srv: EmbeddedServer) -> None:
    response, pieces = post(srv, speech("pcm"), send_format="mp3")
    assert response.headers["content-type"] == "audio/pcm"
    assert b"".join(p for _, p in pieces)[:3] == b"ID3"
    _, alaw_pieces = post(srv, speech("wav"), send_format="wav-alaw")
    alaw = b"".join(p for _, p in alaw_pieces)
    assert alaw[:4] == b"RIFF" and alaw.find(b"fmt ") > 0
    fmt_at = alaw.find(b"fmt ") + 8
    assert int.from_bytes(alaw[fmt_at : fmt_at + 2], "little") == 6  # WAVE_FORMAT_ALAW
    bad, _ = post(srv, speech("pcm"), send_format="ogg")
    assert bad.status_code == 400 and "send_format" in bad.json()["error"]["message"]


def test_mp3_states_its_encoder_delay_in_an_info_frame(srv: EmbeddedServer) -> None:
    from workbench.engine.decoding.framing import Mp3Scanner

    _, pieces = post(srv, speech("mp3"))
    body = b"".join(p for _, p in pieces)
    scanner = Mp3Scanner()
    scanner.feed(body)
    scanner.flush()
    assert scanner.xing is not None and scanner.xing.tag == "Info" and scanner.xing.delay == 576
    # a client that trims what the tag states hears the tone from its first sample (FFmpeg's demuxer
    # reads the delay too, but with no frame count in the tag it decodes the Info frame as 576 silent
    # samples, so it is not the reference here)
    from workbench.engine.decoding.decoders import StreamDecoder

    dec = StreamDecoder("mp3", pcm_rate=OUTPUT_RATE, out_rate=OUTPUT_RATE)
    decoded = np.concatenate([dec.feed(body), dec.flush()])
    assert dec.trimmed_ms == pytest.approx((576 + 529) / 24)
    assert np.flatnonzero(np.abs(decoded) > 0.05)[0] < 4


def test_knobs_in_a_header(srv: EmbeddedServer) -> None:
    with httpx2.Client() as client:
        r = client.post(srv.base_url + "/audio/speech", json=speech("pcm"), headers={"X-Workbench-Knobs": "status=500"})
    assert r.status_code == 500


def test_api_key_is_checked_when_set() -> None:
    with EmbeddedServer(knobs=Knobs(ttfb_ms=0, pace=0), api_key="k1") as server, httpx2.Client() as client:
        url = server.base_url + "/audio/speech"
        assert client.post(url, json=speech("pcm")).status_code == 401
        assert client.post(url, json=speech("pcm"), headers={"Authorization": "Bearer k2"}).status_code == 401
        assert client.post(url, json=speech("pcm"), headers={"Authorization": "Bearer k1"}).status_code == 200


def test_binds_to_loopback_by_default() -> None:
    with EmbeddedServer() as server:
        assert server.host == "127.0.0.1" and server.base_url.startswith("http://127.0.0.1:")


@pytest.mark.parametrize("fmt", list(CONTENT_TYPES))
def test_a_broken_stream_resumes_from_a_byte(srv: EmbeddedServer, fmt: str) -> None:
    """X-Workbench-Resume-Byte: the same bytes from that offset on, echoed, paced from there."""
    def fetch(headers: dict[str, str], **query: str) -> tuple[httpx2.Response, bytes, float]:
        with httpx2.Client(timeout=30) as client:
            t0 = time.perf_counter()
            response = client.post(srv.base_url + "/audio/speech", json=speech(fmt, text=TEXT * 2),
                                   headers=headers, params=query)
            return response, response.content, time.perf_counter() - t0

    _, whole, whole_s = fetch({})
    offset = len(whole) * 2 // 3
    response, rest, rest_s = fetch({"X-Workbench-Resume-Byte": str(offset)})
    assert response.headers["x-workbench-resume-byte"] == str(offset)
    assert rest == whole[offset:]
    assert rest_s < whole_s * 0.8  # the audio before the offset is not paced out again
    response, again, _ = fetch({"X-Workbench-Resume-Byte": str(offset)}, resume="0")  # a server that cannot
    assert "x-workbench-resume-byte" not in response.headers and again == whole
    response, _, _ = fetch({"X-Workbench-Resume-Byte": "x"})
    assert response.status_code == 400


def test_repeat_says_the_input_that_many_times(srv: EmbeddedServer) -> None:
    _, once = post(srv, speech("pcm"))
    _, thrice = post(srv, speech("pcm"), repeat=3)
    body = b"".join(p for _, p in once)
    assert b"".join(p for _, p in thrice) == body * 3
    bad, _ = post(srv, speech("pcm"), repeat=0)
    assert bad.status_code == 400 and "repeat" in bad.json()["error"]["message"]


def test_the_same_speech_request_gets_the_same_bytes(srv: EmbeddedServer) -> None:
    """espeak-ng alone says the same text a few samples differently each time; the server keeps the
    last utterances so a request asked again (a resumed stream) continues the same audio."""
    body = speech("pcm", voice="nova", text="The same words twice, byte for byte.")
    _, first = post(srv, body)
    _, second = post(srv, body)
    a, b = b"".join(p for _, p in first), b"".join(p for _, p in second)
    assert len(a) > 24_000 and a == b
