"""Compressed formats for the embedded server, encoded progressively with PyAV (FFmpeg).

The muxer writes into a write-only object; after each block we hand on whatever bytes it has
produced, so a client receives audio while synthesis is still running. Ogg/Opus uses 20 ms pages
(`page_duration`) instead of the muxer's default of about one second, as a streaming server should.

FFmpeg's MP3 muxer writes its Xing/Info frame only to seekable files. A stream gets none, so a client
cannot know the encoder delay. We insert a LAME-style Info frame stating it (as LAME does in a file),
so clients can trim the priming silence; the end padding is unknown while streaming and stated as 0.
"""

from __future__ import annotations

from typing import Any, cast

import av
import numpy as np
from av.audio.stream import AudioStream

from .speech import OUTPUT_RATE as RATE

# format -> (container, codec, codec rate, muxer options). Every format's bytes are the same for the
# same request (a broken stream is resumed from a byte offset); Ogg needs bitexact for that, or each
# stream gets a random serial number.
CONTAINERS: dict[str, tuple[str, str, int, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", RATE, {}),
    "opus": ("ogg", "libopus", 48_000, {"page_duration": "20000", "fflags": "+bitexact"}),
    "aac": ("adts", "aac", RATE, {}),
    "flac": ("flac", "flac", RATE, {}),
    "wav-alaw": ("wav", "pcm_alaw", RATE, {}),  # for the send_format fault knob: not an OpenAI format
}


class _Collector:
    """The write-only file object the muxer writes into."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._written = 0

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._written += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self._written

    def take(self) -> bytes:
        out = b"".join(self._parts)
        self._parts.clear()
        return out


MP3_ENCODER_DELAY = 576  # libmp3lame's encoder delay (samples), as LAME's own tag states it


def _crc16_ansi(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def lame_info_frame(first_header: bytes, delay: int, padding: int = 0) -> bytes:
    """An MP3 Info frame (no audio) with a LAME tag stating the encoder delay, shaped like `first_header`."""
    from workbench.engine.decoding.framing import parse_mp3_header

    header = bytearray(first_header[:4])
    header[1] |= 0x01  # no CRC
    header[2] &= ~0x02 & 0xFF  # no padding
    parsed = parse_mp3_header(bytes(header))
    if parsed is None or parsed.layer != 3:
        raise ValueError("not an MPEG layer III header")
    # the tag's CRC covers the frame's first 190 bytes: pick the lowest bitrate whose frame is that long
    for index in range(1, 15):
        header[2] = (header[2] & 0x0F) | (index << 4)
        parsed = parse_mp3_header(bytes(header))
        if parsed is not None and parsed.length >= 192:
            break
    assert parsed is not None
    side = (17 if parsed.channels == 1 else 32) if parsed.mpeg1 else (9 if parsed.channels == 1 else 17)
    frame = bytearray(parsed.length)
    frame[:4] = header
    at = 4 + side
    frame[at : at + 8] = b"Info" + (0).to_bytes(4, "big")  # no optional fields: the length is unknown
    tag = at + 8
    frame[tag : tag + 9] = b"Lavc" + b" " * 5
    # 9 encoder + 1 revision + 1 lowpass + 4 peak + 2 + 2 gains + 1 flags + 1 bitrate = 21: delay/padding
    frame[tag + 21 : tag + 24] = bytes([delay >> 4, ((delay & 0x0F) << 4) | (padding >> 8), padding & 0xFF])
    frame[tag + 34 : tag + 36] = _crc16_ansi(bytes(frame[:190])).to_bytes(2, "big")
    return bytes(frame)


class AvEncoder:
    def __init__(self, fmt: str, bitrate: int | None = None, *, mp3_tag: bool = True) -> None:
        container, codec, codec_rate, options = CONTAINERS[fmt]
        self.format = fmt
        self._sink = _Collector()
        self._out = av.open(self._sink, "w", format=container, options=options)
        self._stream = cast(AudioStream, self._out.add_stream(codec, rate=codec_rate))
        self._stream.layout = "mono"
        if bitrate:
            self._stream.bit_rate = bitrate
        self._pts = 0
        self._closed = False
        self._info_pending = fmt == "mp3" and mp3_tag
        self._held = b""

    def encode(self, samples: np.ndarray) -> bytes:
        if len(samples):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
            )
            frame.sample_rate = RATE
            frame.pts = self._pts
            self._pts += len(samples)
            for packet in self._stream.encode(frame):
                self._out.mux(packet)
        return self._with_info(self._sink.take())

    def flush(self) -> bytes:
        if not self._closed:
            self._closed = True
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
        out = self._with_info(self._sink.take())
        if self._held:  # never found a frame: send what there is
            out, self._held = self._held + out, b""
        return out

    def _with_info(self, data: bytes) -> bytes:
        """MP3: put the Info frame in front of the first audio frame (after the ID3 tag)."""
        if not self._info_pending:
            return data
        from workbench.engine.decoding.framing import id3v2_length, parse_mp3_header

        held = self._held + data
        start = id3v2_length(held) or 0
        if len(held) < start + 4:
            self._held = held
            return b""
        self._info_pending = False
        self._held = b""
        if parse_mp3_header(held, start) is None:
            return held  # not what we expected: leave the stream alone
        info = lame_info_frame(held[start : start + 4], MP3_ENCODER_DELAY)
        return held[:start] + info + held[start:]


def make_compressed_encoder(fmt: str, *, mp3_tag: bool = True) -> AvEncoder:
    if fmt not in CONTAINERS:
        raise ValueError(f"unknown format {fmt!r}")
    return AvEncoder(fmt, mp3_tag=mp3_tag)
