import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.decoding.decoders import DecodeError, PcmDecoder, WavDecoder, make_decoder
from workbench.server.encoders import wav_header


def ramp_pcm(n: int) -> tuple[np.ndarray, bytes]:
    ints = (np.arange(n, dtype=np.int32) * 37 % 65536 - 32768).astype("<i2")
    return ints.astype(np.float32) / 32768.0, ints.tobytes()


def feed_in_pieces(decoder, data: bytes, cuts: list[int]) -> np.ndarray:  # type: ignore[no-untyped-def]
    bounds = sorted({0, len(data), *[c % (len(data) + 1) for c in cuts]})
    parts = [decoder.feed(data[a:b]) for a, b in zip(bounds, bounds[1:], strict=False)]
    parts.append(decoder.flush())
    return np.concatenate(parts)


def test_pcm_odd_chunks_carry_the_odd_byte() -> None:
    expected, data = ramp_pcm(1000)
    dec = PcmDecoder(24_000, 24_000)
    out = [dec.feed(data[i : i + 7]) for i in range(0, len(data), 7)]  # 7-byte chunks: always split samples
    out.append(dec.flush())
    assert np.array_equal(np.concatenate(out), expected)
    assert dec.warnings == []


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=4000), max_size=12))
def test_pcm_any_split_points_give_identical_samples(cuts: list[int]) -> None:
    expected, data = ramp_pcm(2000)
    assert np.array_equal(feed_in_pieces(PcmDecoder(24_000, 24_000), data, cuts), expected)


def test_pcm_trailing_half_sample_is_dropped_with_a_warning() -> None:
    dec = PcmDecoder(24_000, 24_000)
    assert len(dec.feed(b"\x00\x01\x02")) == 1
    dec.flush()
    assert "incomplete sample" in dec.warnings[0]


def test_pcm_is_resampled_when_rates_differ() -> None:
    rate_in, rate_out = 22_050, 24_000
    t = np.arange(rate_in) / rate_in
    tone = (0.5 * np.sin(2 * np.pi * 300 * t) * 32767).astype("<i2").tobytes()
    dec = PcmDecoder(rate_in, rate_out)
    out = np.concatenate([dec.feed(tone[i : i + 1001]) for i in range(0, len(tone), 1001)] + [dec.flush()])
    assert abs(len(out) - rate_out) <= 2  # one second in, one second out
    # the tone is still a 300 Hz tone at the new rate
    spectrum = np.abs(np.fft.rfft(out[: rate_out // 2 * 2]))
    assert abs(np.argmax(spectrum) * rate_out / len(out[: rate_out // 2 * 2]) - 300) < 3


def make_wav(samples: np.ndarray, *, rate: int = 24_000, channels: int = 1, bits: int = 16,
             fmt_tag: int = 1, extra_chunks: bytes = b"", data_size: int | None = None,
             riff_size: int | None = None, extensible: bool = False) -> bytes:
    """A WAV file built by hand (not with our own encoder), so the parser is tested independently."""
    if bits == 16:
        body = (np.clip(samples, -1, 1) * 32767).round().astype("<i2").tobytes()
    elif bits == 8:
        body = (np.clip(samples, -1, 1) * 127 + 128).round().astype(np.uint8).tobytes()
    elif bits == 24:
        ints = (np.clip(samples, -1, 1) * 8388607).round().astype("<i4")
        body = b"".join(int(v).to_bytes(4, "little", signed=True)[:3] for v in ints)
    elif bits == 32 and fmt_tag == 3:
        body = samples.astype("<f4").tobytes()
    else:
        body = (np.clip(samples, -1, 1) * 2147483647).round().astype("<i4").tobytes()
    block = channels * bits // 8
    if extensible:
        fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * block, block, bits, 22, bits, 0)
        fmt += struct.pack("<H", fmt_tag) + b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
    else:
        fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, rate * block, block, bits)
    size = len(body) if data_size is None else data_size
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt + extra_chunks + b"data" + struct.pack("<I", size) + body
    riff = 4 + len(chunks) if riff_size is None else riff_size
    return b"RIFF" + struct.pack("<I", riff) + b"WAVE" + chunks


def tone(n: int = 4800, rate: int = 24_000) -> np.ndarray:
    return (0.5 * np.sin(2 * np.pi * 440 * np.arange(n) / rate)).astype(np.float32)


def decode_all(data: bytes, step: int = 1000, out_rate: int = 24_000) -> tuple[np.ndarray, WavDecoder]:
    dec = WavDecoder(out_rate)
    parts = [dec.feed(data[i : i + step]) for i in range(0, len(data), step)]
    parts.append(dec.flush())
    return np.concatenate(parts), dec


def test_wav_every_split_point_of_the_header() -> None:
    data = make_wav(tone(600), extra_chunks=b"LIST" + struct.pack("<I", 5) + b"abcde\x00")
    reference, _ = decode_all(data, step=len(data))
    header_len = data.index(b"data") + 8
    for cut in range(1, header_len + 3):
        dec = WavDecoder(24_000)
        out = np.concatenate([dec.feed(data[:cut]), dec.feed(data[cut:]), dec.flush()])
        assert np.array_equal(out, reference), f"split at byte {cut}"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=3000), max_size=10))
def test_wav_any_split_points_give_identical_samples(cuts: list[int]) -> None:
    data = make_wav(tone(1200))
    reference, _ = decode_all(data, step=len(data))
    assert np.array_equal(feed_in_pieces(WavDecoder(24_000), data, cuts), reference)


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_wav_streamed_sizes_play_everything(size: int) -> None:
    samples = tone(4800)
    out, dec = decode_all(make_wav(samples, data_size=size, riff_size=size))
    assert len(out) == len(samples)
    assert np.allclose(out, samples, atol=1e-4)
    assert dec.data_size is None


def test_our_servers_streamed_header_parses() -> None:
    body = (tone(480) * 32767).round().astype("<i2").tobytes()
    out, dec = decode_all(wav_header() + body)
    assert dec.source_rate == 24_000 and len(out) == 480


def test_wav_rate_and_channels_come_from_the_header_and_are_downmixed_and_resampled() -> None:
    left = tone(2205, 22_050)
    stereo = np.stack([left, left * 0.0], axis=1).reshape(-1)  # right channel silent
    out, dec = decode_all(make_wav(stereo, rate=22_050, channels=2))
    assert (dec.source_rate, dec.channels) == (22_050, 2)
    assert abs(len(out) - 2400) <= 2  # 0.1 s at 24 kHz
    assert np.max(np.abs(out)) == pytest.approx(0.25, abs=0.02)  # mean of the two channels


@pytest.mark.parametrize(("bits", "tag", "extensible"), [(8, 1, False), (24, 1, False), (32, 1, False),
                                                          (32, 3, False), (16, 1, True), (32, 3, True)])
def test_wav_sample_formats(bits: int, tag: int, extensible: bool) -> None:
    samples = tone(960)
    out, _ = decode_all(make_wav(samples, bits=bits, fmt_tag=tag, extensible=extensible), step=333)
    assert len(out) == 960
    assert np.allclose(out, samples, atol=2 / 2 ** (bits - 1) if bits > 8 else 0.02)


def test_wav_chunks_after_the_data_are_skipped() -> None:
    samples = tone(480)
    data = make_wav(samples) + b"LIST" + struct.pack("<I", 4) + b"INFO"
    out, dec = decode_all(data, step=100)
    assert len(out) == 480 and dec.warnings == []


def test_wav_audio_past_a_too_small_data_size_is_still_played() -> None:
    samples = tone(4800)
    out, dec = decode_all(make_wav(samples, data_size=960))  # header claims 480 samples
    assert len(out) == 4800
    assert any("past the size" in w for w in dec.warnings)


def test_wav_truncated_stream_ends_cleanly_with_a_warning() -> None:
    data = make_wav(tone(4800))
    out, dec = decode_all(data[: len(data) // 2 + 1])
    assert 2300 < len(out) < 2500
    assert dec.warnings


@pytest.mark.parametrize(("data", "message"), [
    (b"ID3\x03\x00\x00\x00\x00\x00\x00\x00\x00", "RIFF....WAVE"),
    (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "before its fmt"),
    (b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00" + struct.pack("<HHIIHH", 85, 1, 24000, 0, 0, 0), "unsupported"),
])
def test_wav_bad_headers_raise_decode_errors(data: bytes, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        dec = WavDecoder(24_000)
        dec.feed(data)
        dec.flush()


def test_wav_that_ends_inside_the_header_is_an_error() -> None:
    dec = WavDecoder(24_000)
    dec.feed(make_wav(tone(10))[:30])
    with pytest.raises(DecodeError, match="before its audio"):
        dec.flush()


def test_unknown_format_is_refused() -> None:
    with pytest.raises(DecodeError):
        make_decoder("ogg", pcm_rate=24_000, out_rate=24_000)
