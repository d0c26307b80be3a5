"""Every format end to end through the same StreamPlayer against the embedded server: the lossy ones
checked for duration and continuity of the test tone, corrupt data, truncation, sniffing, fallback."""

from __future__ import annotations

import asyncio
import threading

import numpy as np
import pytest

from workbench.engine.decoding import decoders as decoders_module
from workbench.engine.decoding.decoders import DecodeError, StreamDecoder, WavDecoder
from workbench.engine.player import StreamPlayer
from workbench.server.runner import EmbeddedServer
from workbench.server.speech import OUTPUT_RATE, estimate_duration_s

from ..conftest import make_settings, virtual_factory

TEXT = "one two three four five six seven eight"  # about 2.7 s of test signal
LOSSY = ["mp3", "aac", "opus", "flac"]
FRAME_MS = {"mp3": 24.0, "aac": 42.7, "opus": 20.0, "flac": 96.0}
SENT_MS = estimate_duration_s(TEXT) * 1000.0


async def play(server: EmbeddedServer, fmt: str, *, speed: float = 8.0, **query: object):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=speed)
    # fixed playout: these tests compare what each decoder gave sample for sample (elastic playout would
    # stretch the start; tests/engine/test_elastic.py covers it)
    player = StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt, playout="fixed"),
                          base_url=server.base_url,
                          sink_factory=factory, extra_query={k: str(v) for k, v in query.items()} or None)
    metrics = await player.play(TEXT)
    return metrics, factory.made[-1].recorder.samples()


def tone_span(recorded: np.ndarray, threshold: float = 0.1) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(recorded) > threshold)
    assert len(loud), "no tone was played"
    return int(loud[0]), int(loud[-1]) + 1


def longest_gap_ms(recorded: np.ndarray, start: int, end: int, window: int = 240) -> float:
    """The longest stretch inside the tone whose 10 ms RMS falls below half the tone's RMS."""
    body = recorded[start:end]
    n = len(body) // window
    rms = np.sqrt((body[: n * window].reshape(n, window) ** 2).mean(axis=1))
    quiet = rms < 0.5 * 0.5 / np.sqrt(2)
    longest = run = 0
    for q in quiet:
        run = run + 1 if q else 0
        longest = max(longest, run)
    return longest * window * 1000.0 / OUTPUT_RATE


@pytest.mark.parametrize("fmt", LOSSY)
async def test_each_format_plays_the_whole_tone_once(server: EmbeddedServer, fmt: str) -> None:
    m, recorded = await play(server, fmt)
    assert m.state == "done" and m.error is None, m.error
    assert m.detected_format == fmt and m.fallback is None and m.decoder_errors == 0
    start, end = tone_span(recorded)
    played_tone_ms = (end - start) * 1000.0 / OUTPUT_RATE
    # the duration played matches the duration sent, to within a frame (codecs smear the edges)
    assert abs(played_tone_ms - SENT_MS) < FRAME_MS[fmt] + 5, (played_tone_ms, SENT_MS)
    assert longest_gap_ms(recorded, start, end) == 0.0, "a gap inside the tone"
    assert m.played_ms == pytest.approx(m.audio_ms)
    assert m.frames > 10 and m.frame_kind
    assert m.first_audio_bytes is not None and 0 < m.first_audio_bytes < m.bytes
    assert m.first_audio_ms is not None and m.first_audio_ms <= m.ttfa_ms
    assert m.decode_ms_p95 is not None


async def test_mp3_priming_is_trimmed_so_the_tone_starts_on_the_first_sample(server: EmbeddedServer) -> None:
    m, recorded = await play(server, "mp3")
    assert m.priming_ms == pytest.approx((576 + 529) / 24.0)
    start, _ = tone_span(recorded, threshold=0.01)
    heard, _ = tone_span(recorded, threshold=1e-6)  # the first sample that is not silence
    assert start - heard < 3  # no ~46 ms of encoder delay before the tone


async def test_opus_pre_skip_and_page_interval_are_reported(server: EmbeddedServer) -> None:
    m, _ = await play(server, "opus")
    assert m.priming_ms == pytest.approx(312 / 48.0)
    assert m.page_interval_ms == pytest.approx(20.0)
    assert m.frame_kind == "pages"


@pytest.mark.parametrize("fmt", LOSSY)
@pytest.mark.parametrize("where", [0.35, 0.6, 0.85])
async def test_corrupt_bytes_are_skipped_and_counted_and_playback_goes_on(server: EmbeddedServer, fmt: str,
                                                                          where: float) -> None:
    # at fractions of the body, so that FLAC's 8 KB of header padding is not all that gets hit
    whole, _ = await play(server, fmt)
    m, recorded = await play(server, fmt, corrupt_at=int(whole.bytes * where), corrupt_len=400)
    assert m.state == "done" and m.error is None, m.error
    assert m.decoder_errors >= 1
    start, end = tone_span(recorded)
    assert (end - start) * 1000.0 / OUTPUT_RATE > 0.6 * SENT_MS  # most of it still played
    assert m.played_ms == pytest.approx(m.audio_ms)


@pytest.mark.parametrize("fmt", LOSSY)
async def test_a_truncated_body_plays_what_decoded_and_ends_cleanly(server: EmbeddedServer, fmt: str) -> None:
    whole, _ = await play(server, fmt)
    m, recorded = await play(server, fmt, truncate_bytes=whole.bytes // 2)
    assert m.state == "done" and m.error is None
    assert m.bytes == whole.bytes // 2
    assert 0.3 * whole.audio_ms < m.audio_ms < 0.7 * whole.audio_ms
    assert m.played_ms == pytest.approx(m.audio_ms)
    start, end = tone_span(recorded)
    assert longest_gap_ms(recorded, start, end) == 0.0


@pytest.mark.parametrize("fmt", ["mp3", "opus"])
async def test_a_dropped_connection_plays_what_arrived(server: EmbeddedServer, fmt: str) -> None:
    m, _ = await play(server, fmt, drop_after_bytes=4000, resume=0)  # every reply breaks, none resumes: gives up
    assert m.state == "failed" and "mid-stream" in (m.error or "")
    assert m.audio_ms > 0 and m.played_ms == pytest.approx(m.audio_ms)


async def test_a_wrong_content_type_is_reported_and_the_real_format_decoded(server: EmbeddedServer) -> None:
    m, recorded = await play(server, "mp3", content_type="audio/pcm")
    assert m.state == "done" and m.detected_format == "mp3"
    assert any("Content-Type says audio/pcm" in w for w in m.warnings)
    start, end = tone_span(recorded)
    assert abs((end - start) * 1000.0 / OUTPUT_RATE - SENT_MS) < 30


@pytest.mark.parametrize(("asked", "sent"), [("pcm", "mp3"), ("mp3", "opus"), ("wav", "aac"), ("opus", "pcm")])
async def test_a_different_format_than_asked_is_sniffed_and_played(server: EmbeddedServer, asked: str,
                                                                   sent: str) -> None:
    if sent == "pcm":  # headerless PCM has no magic: only a truthful Content-Type can reveal it
        m, recorded = await play(server, asked, send_format=sent, content_type="audio/pcm")
    else:
        m, recorded = await play(server, asked, send_format=sent)
    assert m.state == "done" and m.error is None
    assert m.detected_format == sent
    assert any(f"asked for {asked} but the stream is {sent}" in w for w in m.warnings)
    start, end = tone_span(recorded)
    assert abs((end - start) * 1000.0 / OUTPUT_RATE - SENT_MS) < 60
    assert longest_gap_ms(recorded, start, end) == 0.0


async def test_an_undecodable_stream_falls_back_to_buffered_playback(server: EmbeddedServer) -> None:
    # A-law WAV: our progressive RIFF reader does not do A-law; FFmpeg decodes the whole body
    m, recorded = await play(server, "wav", send_format="wav-alaw")
    assert m.state == "done" and m.error is None
    assert m.fallback is not None and "unsupported WAV encoding" in m.fallback
    assert any("played buffered" in w for w in m.warnings)
    start, end = tone_span(recorded)
    assert abs((end - start) * 1000.0 / OUTPUT_RATE - SENT_MS) < 5
    assert longest_gap_ms(recorded, start, end) == 0.0
    assert m.ttfa_ms > m.first_byte_ms


def test_fallback_after_some_audio_never_replays_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A decoder that fails part-way: the buffered decode resumes exactly after what was handed on."""
    rate = 24_000
    n = rate  # one second, every sample distinct
    samples = ((np.arange(n) % 2000) - 1000).astype("<i2")
    body = (b"RIFF" + (36 + 2 * n).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
            + (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little")
            + (2 * rate).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
            + b"data" + (2 * n).to_bytes(4, "little") + samples.tobytes())

    class FailsPartWay(WavDecoder):
        fed = 0

        def feed(self, data: bytes) -> np.ndarray:
            self.fed += len(data)
            if self.fed > 20_000:
                raise DecodeError("simulated failure part-way")
            return super().feed(data)

    monkeypatch.setattr(decoders_module, "make_decoder", lambda fmt, **kw: FailsPartWay(kw["out_rate"]))
    dec = StreamDecoder("wav", pcm_rate=rate, out_rate=rate)
    parts = [dec.feed(body[i : i + 4096]) for i in range(0, len(body), 4096)]
    progressive = sum(len(p) for p in parts)
    parts.append(dec.flush())
    out = np.concatenate(parts)
    assert 0 < progressive < n and dec.fallback == "simulated failure part-way"
    assert len(out) == n
    np.testing.assert_array_equal(out, samples.astype(np.float32) / 32768.0)


@pytest.mark.parametrize("fmt", ["opus"])
async def test_stopping_a_demuxed_stream_ends_its_reader_thread(server: EmbeddedServer, fmt: str) -> None:
    factory = virtual_factory(speed=1.0)
    # fixed playout: these tests compare what each decoder gave sample for sample (elastic playout would
    # stretch the start; tests/engine/test_elastic.py covers it)
    player = StreamPlayer(make_settings(voices=("test-signal",), audio_format=fmt, playout="fixed"),
                          base_url=server.base_url,
                          sink_factory=factory)
    task = asyncio.create_task(player.play(TEXT * 3))
    for _ in range(200):
        await asyncio.sleep(0.02)
        if player.last_metrics is None and player.buffer is not None and player.buffer.played_samples > 0:
            break
    player.stop()
    m = await asyncio.wait_for(task, 5.0)
    assert m.state == "stopped"
    for _ in range(100):
        if not any(t.name.startswith("demux-") for t in threading.enumerate()):
            break
        await asyncio.sleep(0.02)
    assert not any(t.name.startswith("demux-") for t in threading.enumerate())


def test_the_fallback_copy_of_the_body_is_dropped_once_the_decoder_has_proven_itself() -> None:
    """An hour-long reply must not keep all its bytes: after a minute of audio decoded progressively,
    the copy kept for the buffered fallback is let go."""
    from workbench.engine.decoding.decoders import FALLBACK_PROVEN_S, StreamDecoder

    dec = StreamDecoder("pcm", pcm_rate=24_000, out_rate=24_000)
    second = np.zeros(24_000, dtype="<i2").tobytes()
    for _ in range(int(FALLBACK_PROVEN_S) - 1):
        dec.feed(second)
    assert dec._history is not None and len(dec._history) == len(second) * (int(FALLBACK_PROVEN_S) - 1)
    dec.feed(second)
    dec.feed(second)
    assert dec._history is None  # proven: nothing more is kept
