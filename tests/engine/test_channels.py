"""Channels: a stream's own channels through decoding, elastic playout, the ring and the sinks, and a mono
voice placed left or right with constant-power gains."""

from __future__ import annotations

import io
import math
from pathlib import Path

import av
import numpy as np
import pytest

from workbench.engine.decoding.decoders import StreamDecoder
from workbench.engine.decoding.layout import MONO, Layout, to_channels
from workbench.engine.fetching.cache import ReplyCache, ReplyKey
from workbench.engine.figures.metrics import PlayMetrics
from workbench.engine.output.sinkfactory import sink_factory
from workbench.engine.player import StreamPlayer
from workbench.engine.playout.stretch import Stretcher
from workbench.engine.settings import SettingsError, defaults, load_settings
from workbench.server.runner import EmbeddedServer

RATE = 24_000


def tones(seconds: float = 1.0, rate: int = RATE) -> np.ndarray:
    """440 Hz left, 660 Hz right: frames x 2."""
    t = np.arange(int(seconds * rate)) / rate
    return np.stack([0.4 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], axis=1).astype(np.float32)


def peak_hz(channel: np.ndarray, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(channel * np.hanning(len(channel))))
    return float(np.fft.rfftfreq(len(channel), 1 / rate)[int(spectrum.argmax())])


# -- the layout ---------------------------------------------------------------------------------------

def test_mono_averages_a_stream_and_stereo_keeps_it() -> None:
    frames = tones(0.1)
    np.testing.assert_allclose(MONO.apply(frames), frames.mean(axis=1), atol=1e-7)
    np.testing.assert_array_equal(Layout(2).apply(frames), frames)
    voice = frames[:, 0].copy()
    both = Layout(2).apply(voice)
    np.testing.assert_array_equal(both[:, 0], voice)
    np.testing.assert_array_equal(both[:, 1], voice)
    five = np.repeat(voice[:, None], 5, axis=1)  # more than two channels: averaged, to both
    np.testing.assert_allclose(Layout(2).apply(five)[:, 1], voice, atol=1e-6)
    assert MONO.apply(voice) is not None and MONO.apply(voice).ndim == 1


@pytest.mark.parametrize("pan", [-1.0, -0.5, 0.0, 0.3, 1.0])
def test_a_placed_voice_keeps_its_power_wherever_it_is(pan: float) -> None:
    voice = tones(0.2)[:, 0]
    placed = Layout(2, pan).apply(voice)
    power = (placed.astype(np.float64) ** 2).sum(axis=1)
    np.testing.assert_allclose(power, voice.astype(np.float64) ** 2, rtol=1e-5, atol=1e-9)
    left, right = Layout(2, pan).gains
    assert math.isclose(left, math.cos((pan + 1) * math.pi / 4)) and math.isclose(left**2 + right**2, 1.0)
    if pan == -1.0:
        assert not placed[:, 1].any()
    if pan == 1.0:
        assert np.abs(placed[:, 0]).max() < 1e-7


def test_a_stereo_stream_is_not_placed() -> None:
    frames = tones(0.1)
    np.testing.assert_array_equal(Layout(2, -1.0).apply(frames), frames)


def test_settings_place_a_voice_in_stereo_and_refuse_a_bad_pan() -> None:
    assert defaults().layout == MONO
    assert defaults(channels="stereo").layout == Layout(2)
    assert defaults(pan=-0.5).layout == Layout(2, -0.5)
    with pytest.raises(SettingsError, match="WORKBENCH_PAN"):
        load_settings(environ={"WORKBENCH_PAN": "left"}, read_voicemode_files=False)
    with pytest.raises(SettingsError, match="WORKBENCH_PAN"):
        load_settings(environ={"WORKBENCH_PAN": "1.5"}, read_voicemode_files=False)
    with pytest.raises(SettingsError, match="WORKBENCH_CHANNELS"):
        load_settings(environ={"WORKBENCH_CHANNELS": "5.1"}, read_voicemode_files=False)


# -- decoding -----------------------------------------------------------------------------------------

def encode(fmt: str, frames: np.ndarray, rate: int = RATE) -> bytes:
    """Stereo frames as a whole file in `fmt`, by FFmpeg (PyAV)."""
    container, codec, out_rate = {"mp3": ("mp3", "libmp3lame", rate), "opus": ("ogg", "libopus", 48_000),
                                  "flac": ("flac", "flac", rate), "aac": ("adts", "aac", rate),
                                  "wav": ("wav", "pcm_s16le", rate)}[fmt]
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        stream = out.add_stream(codec, rate=out_rate, layout="stereo")
        pcm = (np.clip(frames, -1, 1) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="stereo")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return buf.getvalue()


def decode(fmt: str, body: bytes, layout: Layout, pcm_channels: int = 1) -> tuple[np.ndarray, StreamDecoder]:
    decoder = StreamDecoder(fmt, pcm_rate=RATE, out_rate=RATE, layout=layout, pcm_channels=pcm_channels)
    parts = [decoder.feed(body[i:i + 1500]) for i in range(0, len(body), 1500)] + [decoder.flush()]
    decoder.close()
    return np.concatenate([p for p in parts if len(p)]), decoder


@pytest.mark.parametrize("fmt", ["pcm", "wav", "mp3", "opus", "flac", "aac"])
def test_every_format_decodes_with_its_channels_or_averaged(fmt: str) -> None:
    frames = tones(1.0)
    body = (np.clip(frames, -1, 1) * 32767).astype("<i2").tobytes() if fmt == "pcm" else encode(fmt, frames)
    stereo, decoder = decode(fmt, body, Layout(2), pcm_channels=2)
    assert decoder.channels == 2 and stereo.shape[1] == 2
    middle = stereo[len(stereo) // 4 : 3 * len(stereo) // 4]
    assert abs(peak_hz(middle[:, 0]) - 440) < 3 and abs(peak_hz(middle[:, 1]) - 660) < 3
    mono, _ = decode(fmt, body, MONO, pcm_channels=2)
    assert mono.ndim == 1 and abs(len(mono) - len(stereo)) < 1200


def test_a_mono_stream_resampled_into_stereo_goes_to_both_channels() -> None:
    voice = tones(0.5, 16_000)[:, 0]
    body = (voice * 32767).astype("<i2").tobytes()
    decoder = StreamDecoder("pcm", pcm_rate=16_000, out_rate=RATE, layout=Layout(2))
    out = np.concatenate([decoder.feed(body), decoder.flush()])
    assert out.shape[1] == 2 and abs(len(out) - 0.5 * RATE) < 100
    np.testing.assert_array_equal(out[:, 0], out[:, 1])


# -- elastic playout ----------------------------------------------------------------------------------

@pytest.mark.parametrize("rate", [0.8, 1.0, 1.2])
def test_stretching_stereo_moves_both_channels_alike_and_keeps_their_pitch(rate: float) -> None:
    frames = tones(1.0)
    frames[:, 1] = frames[:, 0] * np.float32(0.5) + tones(1.0)[:, 1] * np.float32(0.5)
    stereo = Stretcher(RATE, channels=2)
    stereo.feed(frames)
    stereo.end()
    out = np.concatenate([stereo.pull(rate, 20) for _ in range(200)])
    assert out.shape[1] == 2
    assert abs(len(out) - len(frames) / rate) < 0.05 * RATE
    if rate == 1.0:
        np.testing.assert_array_equal(out, frames)
    # the same splices in both channels: the left channel is what a mono stretcher of the same choices makes
    # (the choices are made on the channels' mean, so a mono stretcher of the mean splices at the same places)
    mean = Stretcher(RATE)
    mean.feed(frames.mean(axis=1))
    mean.end()
    mean_out = np.concatenate([mean.pull(rate, 20) for _ in range(200)])
    np.testing.assert_allclose(out.mean(axis=1), mean_out, atol=1e-5)
    middle = out[len(out) // 4 : 3 * len(out) // 4]
    assert abs(peak_hz(middle[:, 0]) - 440) < 6
    assert stereo.added == mean.added and stereo.removed == mean.removed


# -- the player, end to end ---------------------------------------------------------------------------

async def _play(url: str, tmp: Path, **overrides: object) -> tuple[np.ndarray, PlayMetrics]:
    import wave

    path = tmp / "out.wav"
    s = defaults(sink=f"wav:{path}", voices=("test-signal",), **overrides)
    async with StreamPlayer(s, base_url=url, sink_factory=sink_factory()) as player:
        m = await player.play("one two three")
        assert player.sink is not None and player.sink.recorder is not None
        player.sink.recorder.save(player.sink.rate)
    with wave.open(str(path)) as w:
        pcm = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").reshape(-1, w.getnchannels())
    return pcm.astype(np.float64) / 32768, m


@pytest.mark.parametrize("playout", ["elastic", "fixed"])
async def test_a_placed_voice_plays_at_its_gains_on_the_wav_sink(server: EmbeddedServer, tmp_path: Path,
                                                                 playout: str) -> None:
    pcm, m = await _play(server.base_url, tmp_path, pan=-0.5, playout=playout)
    left, right = Layout(2, -0.5).gains
    rms = np.sqrt((pcm**2).mean(axis=0))
    assert pcm.shape[1] == 2 and math.isclose(rms[0] / rms[1], left / right, rel_tol=0.01)
    assert m.output_channels == 2 and m.channels == 1 and m.pan == -0.5 and m.underruns == 0


async def test_mono_stays_mono(server: EmbeddedServer, tmp_path: Path) -> None:
    pcm, m = await _play(server.base_url, tmp_path)
    assert pcm.shape[1] == 1 and m.output_channels == 1


async def test_a_placed_reply_is_cached_placed_and_not_for_another_layout(tmp_path: Path) -> None:
    cache = ReplyCache(tmp_path / "cache")
    key = ReplyKey("http://x/v1", "Done.", "alloy", "tts-1", None, "pcm", RATE, layout=Layout(2, 0.5).describe())
    placed = Layout(2, 0.5).apply(tones(0.3)[:, 0])
    assert cache.put(key, [placed], RATE, 2) is None
    entry, _ = cache.get(key)
    assert entry is not None and entry.channels == 2
    np.testing.assert_allclose(entry.samples, placed, atol=1 / 32768)
    assert cache.get(ReplyKey(**{**key.__dict__, "layout": "mono"}))[0] is None
    np.testing.assert_allclose(to_channels(entry.samples, 1), placed.mean(axis=1), atol=1 / 32768)
