"""Compressed formats for the embedded server, encoded progressively with PyAV (FFmpeg).

The muxer writes into a write-only object; after each block we hand on whatever bytes it has
produced, so a client receives audio while synthesis is still running. Ogg/Opus uses 20 ms pages
(`page_duration`) instead of the muxer's default of about one second, as a streaming server should.
"""

from __future__ import annotations

from typing import Any

import av
import numpy as np

from .encoders import RATE

# format -> (container, codec, codec rate, muxer options)
CONTAINERS: dict[str, tuple[str, str, int, dict[str, str]]] = {
    "mp3": ("mp3", "libmp3lame", RATE, {}),
    "opus": ("ogg", "libopus", 48_000, {"page_duration": "20000"}),
    "aac": ("adts", "aac", RATE, {}),
    "flac": ("flac", "flac", RATE, {}),
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


class AvEncoder:
    def __init__(self, fmt: str, bitrate: int | None = None) -> None:
        container, codec, codec_rate, options = CONTAINERS[fmt]
        self.format = fmt
        self._sink = _Collector()
        self._out = av.open(self._sink, "w", format=container, options=options)
        self._stream = self._out.add_stream(codec, rate=codec_rate)
        self._stream.layout = "mono"
        if bitrate:
            self._stream.bit_rate = bitrate
        self._pts = 0
        self._closed = False

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
        return self._sink.take()

    def flush(self) -> bytes:
        if not self._closed:
            self._closed = True
            for packet in self._stream.encode(None):
                self._out.mux(packet)
            self._out.close()
        return self._sink.take()


def make_compressed_encoder(fmt: str) -> AvEncoder:
    if fmt not in CONTAINERS:
        raise ValueError(f"unknown format {fmt!r}")
    return AvEncoder(fmt)
