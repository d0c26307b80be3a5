"""Frame and page scanners and sniffing, on streams our server's encoders produce (no network)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workbench.engine.decoding.formats import format_from_content_type
from workbench.engine.decoding.framing import (
    AdtsScanner,
    FlacScanner,
    Mp3Scanner,
    OggScanner,
    id3v2_length,
    ogg_crc,
    parse_adts_header,
    parse_mp3_header,
    parse_xing,
    sniff,
)
from workbench.server.codecs import AvEncoder, lame_info_frame

RATE = 24_000


def encode(fmt: str, seconds: float = 1.0) -> bytes:
    t = np.arange(int(RATE * seconds)) / RATE
    signal = (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    enc = AvEncoder(fmt)
    parts = [enc.encode(signal[i : i + 480]) for i in range(0, len(signal), 480)]
    parts.append(enc.flush())
    return b"".join(parts)


class _Streams(dict):  # type: ignore[type-arg]
    """One encoded second per format, made on first use (a plain object: Hypothesis prints no fixture)."""

    def __missing__(self, fmt: str) -> bytes:
        self[fmt] = encode(fmt)
        return self[fmt]

    def __repr__(self) -> str:
        return "streams"


streams = _Streams()


def scan_in_pieces(scanner, data: bytes, cuts: list[int]) -> list[bytes]:  # type: ignore[no-untyped-def]
    out: list = []
    last = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        out += scanner.feed(data[last:cut])
        last = cut
    out += scanner.flush()
    return [p if isinstance(p, bytes) else p.data for p in out]


# -- headers --------------------------------------------------------------------------------------------

def test_mp3_header_fields_and_frame_length() -> None:
    h = parse_mp3_header(bytes.fromhex("fff344c4"))  # what our server's libmp3lame writes
    assert h is not None
    assert (h.version, h.layer, h.bitrate, h.sample_rate, h.channels) == (2, 3, 32_000, 24_000, 1)
    assert h.length == 96 and h.samples == 576
    mpeg1 = parse_mp3_header(bytes.fromhex("fffb9064"))  # MPEG-1 layer III 128 kbit/s 44.1 kHz
    assert mpeg1 is not None and mpeg1.samples == 1152 and mpeg1.length == 417 and mpeg1.channels == 2
    padded = parse_mp3_header(bytes.fromhex("fffb9264"))  # the same with the padding bit
    assert padded is not None and padded.length == 418


@pytest.mark.parametrize("raw", [
    "fff144c4",  # layer bits 00 (reserved)
    "ffeb44c4",  # version bits 01 (reserved)
    "fff3f4c4",  # bitrate index 15
    "fff304c4",  # bitrate index 0 (free format: not supported)
    "fff34cc4",  # sample rate index 3
    "fff344c6",  # emphasis 2 (reserved)
    "ff1344c4",  # no sync
])
def test_reserved_or_bad_mp3_headers_are_rejected(raw: str) -> None:
    assert parse_mp3_header(bytes.fromhex(raw)) is None


def test_adts_header() -> None:
    h = parse_adts_header(bytes.fromhex("fff158403f1ffc"))
    assert h is not None and h.sample_rate == 24_000 and h.channels == 1 and h.samples == 1024
    assert h.length == 504  # 13 bits spread over bytes 3 to 5
    assert parse_adts_header(bytes.fromhex("fff358403f1ffc")) is None  # layer bits set: MPEG audio, not ADTS


def test_id3v2_length_reads_a_syncsafe_size() -> None:
    assert id3v2_length(b"ID3\x04\x00\x00\x00\x00\x01\x7f" + bytes(255)) == 10 + 255
    assert id3v2_length(b"ID3\x04\x00\x10\x00\x00\x00\x05") == 10 + 5 + 10  # with a footer
    assert id3v2_length(b"ID3\x04\x00\x00\x00\x00\x80\x00") is None  # not syncsafe
    assert id3v2_length(b"ID3") is None


def test_lame_info_frame_round_trips() -> None:
    frame = lame_info_frame(bytes.fromhex("fff344c4"), delay=576, padding=1234)
    header = parse_mp3_header(frame)
    assert header is not None and header.length == len(frame) >= 192
    info = parse_xing(frame, header)
    assert info is not None and (info.tag, info.delay, info.padding) == ("Info", 576, 1234)


def test_ogg_crc_matches_a_known_page() -> None:
    page = streams["opus"][: 27 + streams["opus"][26] + sum(streams["opus"][27 : 27 + streams["opus"][26]])]
    stored = int.from_bytes(page[22:26], "little")
    assert ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) == stored


# -- scanners on real streams, any split ---------------------------------------------------------------

SCANNERS = {"mp3": Mp3Scanner, "aac": AdtsScanner, "opus": OggScanner, "flac": FlacScanner}


@pytest.mark.parametrize("fmt", ["mp3", "aac", "opus", "flac"])
def test_scanners_find_every_frame(fmt: str) -> None:
    scanner = SCANNERS[fmt]()
    frames = scan_in_pieces(scanner, streams[fmt], [])
    assert scanner.skipped_bytes == 0 and scanner.resyncs == 0
    # the frames are the whole stream, in order (apart from an ID3 tag and the Info frame)
    body = b"".join(frames)
    assert streams[fmt].endswith(body)
    if fmt == "mp3":
        assert scanner.id3_bytes > 0 and scanner.xing is not None and scanner.xing.delay == 576
        assert scanner.audio_frames == scanner.frames - 1 == len(frames)
        assert len(frames) * 576 >= RATE  # one second of audio
    if fmt == "aac":
        assert len(frames) * 1024 >= RATE
    if fmt == "opus":
        assert scanner.codec == "opus" and scanner.pre_skip == 312 and scanner.channels == 1
        assert scanner.page_interval_ms == pytest.approx(20.0)  # the server's short pages
        assert scanner.audio_frames == scanner.frames - 2  # OpusHead and OpusTags
    if fmt == "flac":
        assert scanner.streaminfo is not None and len(scanner.streaminfo) == 34
        assert scanner.metadata_bytes + len(body) == len(streams[fmt])  # metadata (8 KB padding) + frames
        assert len(frames) * 2304 >= RATE


@settings(max_examples=60, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("fmt", ["mp3", "aac", "opus", "flac"])
def test_every_split_point_gives_the_same_frames(fmt: str, data: st.DataObject) -> None:
    stream = streams[fmt]
    whole = scan_in_pieces(SCANNERS[fmt](), stream, [])
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(stream) - 1), max_size=40))
    assert scan_in_pieces(SCANNERS[fmt](), stream, cuts) == whole


@settings(max_examples=40, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("fmt", ["mp3", "aac", "opus", "flac"])
def test_a_corrupt_stretch_costs_only_the_frames_it_touches(fmt: str,
                                                            data: st.DataObject) -> None:
    stream = bytearray(streams[fmt])
    whole = scan_in_pieces(SCANNERS[fmt](), bytes(stream), [])
    start = data.draw(st.integers(min_value=len(stream) // 4, max_value=len(stream) // 2))
    length = data.draw(st.integers(min_value=1, max_value=64))
    for i in range(start, start + length):
        stream[i] ^= 0xA5
    scanner = SCANNERS[fmt]()
    frames = scan_in_pieces(scanner, bytes(stream), data.draw(st.lists(st.integers(1, len(stream) - 1), max_size=10)))
    # every frame that lies wholly after the damage is found again, byte for byte
    tail = [f for f in whole if bytes(streams[fmt]).rfind(f) > start + length + 2000]
    assert tail and frames[-len(tail) :] == tail
    assert len(frames) >= len(whole) - 40
    if fmt == "opus":
        assert scanner.bad_pages >= 1  # the CRC catches any change


def test_garbage_between_frames_is_skipped_and_counted_once() -> None:
    mp3 = streams["mp3"]
    whole = scan_in_pieces(Mp3Scanner(), mp3, [])
    cut = mp3.find(whole[10])
    junk = bytes(range(256)) * 3  # includes 0xFF bytes that look like a sync
    scanner = Mp3Scanner()
    frames = scan_in_pieces(scanner, mp3[:cut] + junk + mp3[cut:], [cut + 100])
    assert frames == whole
    assert scanner.losses == 1 and scanner.skipped_bytes == len(junk)


def test_truncated_last_frame_is_dropped_not_passed_on() -> None:
    for fmt in ("mp3", "aac", "opus", "flac"):
        whole = scan_in_pieces(SCANNERS[fmt](), streams[fmt], [])
        scanner = SCANNERS[fmt]()
        cut = len(streams[fmt]) - len(whole[-1]) // 2
        frames = scan_in_pieces(scanner, streams[fmt][:cut], [])
        if fmt == "flac":  # FLAC frames carry no length: the tail goes on, and the decoder's CRC-16 rejects it
            assert frames[:-1] == whole[:-1] and whole[-1].startswith(frames[-1])
            continue
        assert frames == whole[:-1], fmt
        assert scanner.skipped_bytes > 0


# -- sniffing ----------------------------------------------------------------------------------------

def test_sniff_magic_numbers_win() -> None:
    for fmt in ("mp3", "aac", "opus", "flac"):
        data = streams[fmt]
        assert sniff(data[:4096], requested="pcm", content_type="audio/mpeg") == fmt, fmt
    assert sniff(b"RIFF\x00\x00\x00\x00WAVEfmt ", "audio/mpeg") == "wav"
    assert sniff(b"\x00\x00\x00\x20ftypM4A ", "audio/aac") == "mp4"


def test_sniff_waits_for_enough_bytes() -> None:
    assert sniff(b"Og") is None
    assert sniff(streams["aac"][:10], "audio/aac") is None  # a sync, not yet confirmed by the next one
    assert sniff(streams["aac"][:10], "audio/aac", final=True) == "aac"


def test_sniff_trusts_pcm_labels_over_lookalike_syncs() -> None:
    # s16le samples can contain FF Fx by chance: a PCM-labelled stream stays PCM without strong magic
    samples = np.array([-1, -16, 300, -1, -16, 300] * 100, dtype="<i2").tobytes()
    assert sniff(samples, "audio/pcm") == "pcm"
    assert sniff(samples, None, requested="pcm") == "pcm"


def test_content_types() -> None:
    assert format_from_content_type("audio/mpeg; charset=binary") == "mp3"
    assert format_from_content_type("AUDIO/OGG") == "opus"
    assert format_from_content_type("application/octet-stream") is None
    assert format_from_content_type(None) is None


# -- the whole decoder, any split ------------------------------------------------------------------------

def decode_in_pieces(fmt: str, data: bytes, cuts: list[int]) -> np.ndarray:
    from workbench.engine.decoding.decoders import StreamDecoder

    dec = StreamDecoder(fmt, pcm_rate=RATE, out_rate=RATE)
    parts = []
    last = 0
    for cut in sorted(set(cuts)) + [len(data)]:
        parts.append(dec.feed(data[last:cut]))
        last = cut
    parts.append(dec.flush())
    assert dec.detected == fmt and dec.errors == 0 and dec.fallback is None
    return np.concatenate(parts)


@settings(max_examples=15, deadline=None)
@given(data=st.data())
@pytest.mark.parametrize("fmt", ["mp3", "aac", "opus", "flac"])
def test_decoded_audio_does_not_depend_on_where_the_stream_was_split(fmt: str, data: st.DataObject) -> None:
    stream = streams[fmt]
    cuts = data.draw(st.lists(st.integers(min_value=1, max_value=len(stream) - 1), max_size=30))
    whole = decode_in_pieces(fmt, stream, [])
    assert abs(len(whole) - RATE) < 2048  # one second, give or take the codec's frame padding
    np.testing.assert_array_equal(decode_in_pieces(fmt, stream, cuts), whole)
