"""What a hostile server found (issue 32): one short base64 chunk, bare-CR event streams, audio under the
wrong label, empty replies, audio around `speech.audio.done` and error events, and a server that says
something different when asked again. Each is either played correctly or fails with one clear error;
nothing is noise, nothing silent is a success, nothing is spliced in without a word."""

from __future__ import annotations

import base64

import numpy as np
import pytest

from workbench.engine.player import StreamPlayer

from ..conftest import make_settings, virtual_factory
from .hostile import SSE_DONE, HostileServer, Reply, pcm, pieces, sse_delta, tone

CLEAN_STEP = 2 * np.pi * 440 / 24_000 * 0.3 * 1.05  # the tone's largest sample-to-sample step, and a little


async def play(server: HostileServer, text: str = "Hello there.", **settings: object):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=8.0)
    options: dict[str, object] = {"playout": "fixed", "max_retries": 2, **settings}
    player = StreamPlayer(make_settings(**options), base_url=server.base_url, sink_factory=factory)
    try:
        metrics = await player.play(text)
    finally:
        await player.aclose()
    recorded = factory.made[-1].recorder.samples() if factory.made else np.zeros(0, dtype=np.float32)
    return metrics, recorded


def largest_step(recorded: np.ndarray) -> float:
    return float(np.abs(np.diff(recorded)).max()) if len(recorded) > 1 else 0.0


def sse(*events: bytes) -> Reply:
    return Reply(list(events), content_type="text/event-stream")


# -- A: one bad delta cannot knock the rest out of alignment --------------------------------------------
async def test_a_delta_one_character_short_skips_that_delta_and_never_makes_noise() -> None:
    audio = pcm(tone(0.6))
    deltas = [base64.b64encode(p).decode() for p in pieces(audio, 960)]  # 20 ms each
    deltas[5] = deltas[5][:-1]  # one character short: the old parser carried it and shifted every sample after
    with HostileServer(lambda i, r: sse(*(sse_delta(d) for d in deltas), SSE_DONE)) as server:
        m, recorded = await play(server, stream_format="sse")
    assert m.state == "done", m.error
    assert largest_step(recorded) < CLEAN_STEP, "noise: the samples after the bad delta were misaligned"
    assert m.audio_ms == pytest.approx(600 - 20, abs=1)  # only that delta's 20 ms are missing
    assert any("wrong length" in w for w in m.warnings)


# -- B: an event stream read as the specification says, and audio under the wrong label ---------------
async def test_an_event_stream_with_bare_cr_line_endings_plays_whole() -> None:
    audio = pcm(tone(0.5))
    body = [sse_delta(p).replace(b"\n", b"\r") for p in pieces(audio, 960)] + [SSE_DONE.replace(b"\n", b"\r")]
    with HostileServer(lambda i, r: sse(*body)) as server:
        m, recorded = await play(server, stream_format="sse")
    assert m.state == "done" and m.audio_ms == pytest.approx(500, abs=1)
    assert largest_step(recorded) < CLEAN_STEP


async def test_raw_pcm_labelled_as_an_event_stream_is_played_as_audio_with_a_note() -> None:
    audio = pcm(tone(0.5))
    with HostileServer(lambda i, r: Reply(pieces(audio, 4000), content_type="text/event-stream")) as server:
        m, recorded = await play(server)
    assert m.state == "done" and m.audio_ms == pytest.approx(500, abs=1)
    assert any("sent the audio itself" in w for w in m.warnings)


# -- C: a reply with no audio is never a success -----------------------------------------------------------
async def test_an_empty_200_is_asked_for_again_once_then_fails_clearly() -> None:
    with HostileServer(lambda i, r: Reply([], length=True)) as server:
        m, recorded = await play(server)
        assert len(server.requests) == 2  # asked again once, not max_retries times
    assert m.state == "failed" and "empty reply" in (m.error or "") and m.played_ms == 0
    assert not recorded.any()


async def test_an_empty_reply_that_comes_right_the_second_time_plays() -> None:
    audio = pcm(tone(0.4))
    with HostileServer(lambda i, r: Reply([] if i == 0 else pieces(audio, 4000), length=i == 0)) as server:
        m, _ = await play(server)
    assert m.state == "done" and m.audio_ms == pytest.approx(400, abs=1) and m.retries == 1


async def test_an_event_stream_with_no_audio_events_fails_and_says_what_it_held() -> None:
    with HostileServer(lambda i, r: sse(b": only a comment\n\n", SSE_DONE)) as server:
        m, _ = await play(server, stream_format="sse")
    assert m.state == "failed" and "event stream with no audio" in (m.error or ""), m.error


async def test_an_empty_fragment_is_asked_again_then_named_and_the_rest_plays() -> None:
    text = "The first one is here. The second one follows it closely. The third one ends the reply."

    def script(i: int, request: dict) -> Reply:
        if "second" in request["input"]:
            return Reply([], length=True)
        return Reply(pieces(pcm(tone(0.3)), 4000))

    with HostileServer(script) as server:
        m, _ = await play(server, text, split="sentence")
        asked = [r["input"] for r in server.requests]
    assert sum("second" in a for a in asked) == 2
    assert any("first" in a for a in asked) and any("third" in a for a in asked)
    assert m.state == "failed" and "The second one follows it closely." in (m.error or ""), m.error
    assert m.audio_ms == pytest.approx(600 + 300, abs=40)  # two fragments and one sentence pause: no extra pause


async def test_a_server_that_sends_nothing_for_every_sentence_is_not_asked_for_all_of_them() -> None:
    text = " ".join(f"Sentence number {n} says very little at all." for n in range(60))
    with HostileServer(lambda i, r: Reply([], length=True)) as server:
        m, recorded = await play(server, text, split="sentence")
        asked = len(server.requests)
    assert m.state == "failed" and "no audio" in (m.error or "")
    assert asked <= 6, f"{asked} requests for a server that sends nothing"
    assert not recorded.any() and m.audio_ms == 0  # and no pauses played for fragments that never came


# -- the smaller ones: events after done, audio before an error event ---------------------------------------
async def test_audio_after_done_is_not_played() -> None:
    audio = pcm(tone(0.3))
    with HostileServer(lambda i, r: sse(*(sse_delta(p) for p in pieces(audio, 960)), SSE_DONE,
                                        sse_delta(pcm(tone(0.2, hz=1000))))) as server:
        m, _ = await play(server, stream_format="sse")
    assert m.state == "done" and m.audio_ms == pytest.approx(300, abs=1)
    assert any("after speech.audio.done" in w for w in m.warnings)


async def test_audio_before_an_error_event_is_played_then_the_error_reported() -> None:
    audio = pcm(tone(0.4))
    error = b'data: {"type": "speech.audio.error", "error": {"message": "the voice model crashed"}}\n\n'
    body = [b"".join(sse_delta(p) for p in pieces(audio, 960)) + error]  # all in one read
    with HostileServer(lambda i, r: sse(*body)) as server:
        m, recorded = await play(server, stream_format="sse")
    assert m.state == "failed" and "the voice model crashed" in (m.error or "")
    assert m.audio_ms == pytest.approx(400, abs=1) and m.played_ms == pytest.approx(400, abs=6)


# -- D: a retry that brings different audio is never spliced in ---------------------------------------------
async def test_a_different_reply_on_the_retry_stops_the_play_instead_of_splicing_it() -> None:
    first, second = pcm(tone(1.0, hz=440)), pcm(tone(1.0, hz=660))  # a neural TTS never says it the same twice

    def script(i: int, request: dict) -> Reply:
        if i == 0:
            return Reply(pieces(first[: len(first) // 2], 4000), drop=True)  # breaks at 0.5 s
        return Reply(pieces(second, 4000))  # ignores the resume header, and says it differently

    with HostileServer(script) as server:
        m, recorded = await play(server)
    assert m.state == "failed" and "different reply" in (m.error or ""), m.error
    assert m.resume == "different"
    assert m.audio_ms == pytest.approx(500, abs=1), "the other rendition was spliced in"
    spectrum = np.abs(np.fft.rfft(recorded))
    freqs = np.fft.rfftfreq(len(recorded), 1 / 24_000)
    assert spectrum[np.argmin(np.abs(freqs - 660))] < 0.01 * spectrum[np.argmin(np.abs(freqs - 440))]


async def test_the_same_reply_on_the_retry_resumes_sample_for_sample() -> None:
    audio = pcm(tone(1.0))

    def script(i: int, request: dict) -> Reply:
        return Reply(pieces(audio[: len(audio) // 2], 4000), drop=True) if i == 0 else Reply(pieces(audio, 4000))

    with HostileServer(script) as server:
        m, recorded = await play(server)
    assert m.state == "done" and m.resume == "exact" and m.audio_ms == pytest.approx(1000, abs=1)
    assert largest_step(recorded) < CLEAN_STEP


async def test_control_characters_and_escape_codes_never_reach_the_server() -> None:
    with HostileServer(lambda i, r: Reply(pieces(pcm(tone(0.2)), 4000))) as server:
        m, _ = await play(server, "\x1b[1;31mTests\x1b[0m pass.\x00\x07 Done.\r\nNext line.")
        sent = server.requests[0]["input"]
    assert sent == "Tests pass. Done.\nNext line." and m.state == "done"
    assert any("control or escape-sequence characters taken out" in w for w in m.warnings)
