"""Priming without a tag: an MP3 with no LAME/Info frame (FFmpeg in a pipe, Kokoro-FastAPI) and ADTS AAC
(which never has one) start with the codec's delay, 1105 and 1024 samples. The decoder trims its near-silent
part and never a sample of the audio: checked against the same bitstream decoded with the delay known."""

from __future__ import annotations

import numpy as np
import pytest

from workbench.engine.decoding import avdecoders
from workbench.engine.decoding.avdecoders import AAC_USUAL_PRIMING, MP3_USUAL_PRIMING
from workbench.engine.decoding.decoders import StreamDecoder
from workbench.engine.player import StreamPlayer
from workbench.server.codecs import AvEncoder
from workbench.server.runner import EmbeddedServer

from ..conftest import make_settings, virtual_factory

RATE = 24_000


def chirp(lead_s: float) -> np.ndarray:
    """A rising chirp (no period, so it aligns one way only) at -6 dBFS, loud from its first sample (a
    cosine), after `lead_s` of digital silence."""
    t = np.arange(RATE) / RATE
    body = 0.5 * np.cos(2 * np.pi * (200 * t + 1500 * t * t))
    return np.concatenate([np.zeros(int(lead_s * RATE)), body]).astype(np.float32)


def encode(fmt: str, signal: np.ndarray, *, mp3_tag: bool = True) -> bytes:
    encoder = AvEncoder(fmt, mp3_tag=mp3_tag)
    return b"".join(encoder.encode(signal[i : i + 480]) for i in range(0, len(signal), 480)) + encoder.flush()


def decode(fmt: str, data: bytes) -> tuple[np.ndarray, StreamDecoder]:
    decoder = StreamDecoder(fmt, pcm_rate=RATE, out_rate=RATE)
    parts = [decoder.feed(data[i : i + 4096]) for i in range(0, len(data), 4096)]
    return np.concatenate([*parts, decoder.flush()]), decoder


@pytest.mark.parametrize("lead_s", [0.0, 0.1])
def test_an_untagged_mp3_loses_only_near_silent_priming(lead_s: float) -> None:
    signal = chirp(lead_s)
    tagged, t_dec = decode("mp3", encode("mp3", signal))
    untagged, u_dec = decode("mp3", encode("mp3", signal, mp3_tag=False))
    assert t_dec.priming == "tag" and u_dec.priming == "near-silent start"
    cut = round(u_dec.trimmed_ms * RATE / 1000)
    left = MP3_USUAL_PRIMING - cut  # the priming still in front of the audio
    # the same frames decode to the same samples: the untagged output is the tagged one after `left`
    np.testing.assert_array_equal(untagged[left:], tagged)
    assert np.abs(untagged[:left]).max(initial=0.0) < 0.25  # what is left is pre-echo, below the chirp (0.5)
    if lead_s:  # speech starts after a pause: the whole priming is near-silent and goes
        assert cut == MP3_USUAL_PRIMING
    else:  # loud at once: the codec's pre-echo crosses -50 dBFS first, and trimming stops there
        assert 0 < cut < MP3_USUAL_PRIMING


@pytest.mark.parametrize("lead_s", [0.0, 0.1])
def test_aac_loses_only_near_silent_priming(lead_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    signal = chirp(lead_s)
    data = encode("aac", signal)
    with monkeypatch.context() as patch:
        patch.setattr(avdecoders, "AAC_USUAL_PRIMING", 0)
        raw, _ = decode("aac", data)  # the reference: FFmpeg's output as it is
    trimmed, dec = decode("aac", data)
    cut = round(dec.trimmed_ms * RATE / 1000)
    np.testing.assert_array_equal(trimmed, raw[cut:])
    assert dec.priming == "near-silent start"
    # where the chirp really starts in the raw output: one frame in, as AAC encoders put it
    n, lead = RATE // 4, int(lead_s * RATE)
    start = int(np.argmax([np.dot(raw[k : k + n], signal[lead : lead + n]) for k in range(lead + 2 * 1024)]))
    assert start - lead == AAC_USUAL_PRIMING
    if lead_s:  # a pause first: the whole priming goes, and no more
        assert cut == AAC_USUAL_PRIMING
    else:  # loud at once: trimming stops at the pre-echo, before the chirp
        assert 0 < cut < AAC_USUAL_PRIMING


async def test_the_player_reports_untagged_mp3_priming_and_starts_where_the_tagged_one_does(
        server: EmbeddedServer) -> None:
    """The speech voice starts with a short pause, as TTS voices do: tagged or not, the same audio plays."""
    async def play(tag: int):  # type: ignore[no-untyped-def]
        factory = virtual_factory(speed=8.0)
        player = StreamPlayer(make_settings(audio_format="mp3", playout="fixed"), base_url=server.base_url,
                              sink_factory=factory, extra_query={"mp3_tag": str(tag)})
        m = await player.play("Hello there.")
        return m, factory.made[-1].recorder.samples()

    (mt, rec_t), (mu, rec_u) = await play(1), await play(0)
    assert (mt.priming, mu.priming) == ("tag", "near-silent start")
    assert mu.priming_ms == pytest.approx(mt.priming_ms)  # 1105 samples either way
    def audio(rec: np.ndarray) -> np.ndarray:  # from the first sample played (the blocks before are the device's)
        return rec[int(np.flatnonzero(rec)[0]) :]

    np.testing.assert_array_equal(audio(rec_u), audio(rec_t))
    assert mu.leading_silence_ms == pytest.approx(mt.leading_silence_ms, abs=0.5)
