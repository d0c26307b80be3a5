"""Progressive encoders for the embedded server: float32 mono 24 kHz in, response bytes out as they go."""

from __future__ import annotations

import struct
from typing import Protocol

import numpy as np

from ..engine.decoding.formats import CONTENT_TYPES as ENGINE_CONTENT_TYPES
from .speech import OUTPUT_RATE

RATE = OUTPUT_RATE
CONTENT_TYPES = ENGINE_CONTENT_TYPES  # as Kokoro-FastAPI and OpenAI send them: the engine's format registry


class Encoder(Protocol):
    def encode(self, samples: np.ndarray) -> bytes: ...

    def flush(self) -> bytes: ...


def float_to_pcm16(samples: np.ndarray) -> bytes:
    return (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2").tobytes()


class PcmEncoder:
    """OpenAI's `pcm`: headerless s16le, 24 kHz, mono; or at another rate (the `pcm_rate` test knob, as a
    Piper server sends 22050 Hz)."""

    def __init__(self, rate: int = RATE) -> None:
        from ..engine.decoding.base import Resampler

        self._resampler = Resampler(RATE, rate)

    def encode(self, samples: np.ndarray) -> bytes:
        return float_to_pcm16(self._resampler.process(samples))

    def flush(self) -> bytes:
        return float_to_pcm16(self._resampler.process(np.zeros(0, dtype=np.float32), last=True))


def wav_header(rate: int = RATE, channels: int = 1, bits: int = 16, data_size: int = 0xFFFFFFFF) -> bytes:
    """A 44-byte RIFF/WAVE header; a streamed one carries 0xFFFFFFFF sizes (the length is unknown)."""
    block_align = channels * bits // 8
    riff_size = 0xFFFFFFFF if data_size == 0xFFFFFFFF else 36 + data_size
    return (
        b"RIFF" + struct.pack("<I", riff_size) + b"WAVE"
        + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate, rate * block_align, block_align, bits)
        + b"data" + struct.pack("<I", data_size)
    )


class WavEncoder:
    """A streamed WAV: the header first (sizes unknown), then s16le samples."""

    def __init__(self) -> None:
        self._header_sent = False

    def encode(self, samples: np.ndarray) -> bytes:
        body = float_to_pcm16(samples)
        if not self._header_sent:
            self._header_sent = True
            return wav_header() + body
        return body

    def flush(self) -> bytes:
        if not self._header_sent:
            self._header_sent = True
            return wav_header()
        return b""


def make_encoder(fmt: str, *, mp3_tag: bool = True, pcm_rate: int = RATE) -> Encoder:
    if fmt == "pcm":
        return PcmEncoder(pcm_rate)
    if fmt == "wav":
        return WavEncoder()
    from .codecs import make_compressed_encoder  # PyAV, loaded only when needed

    return make_compressed_encoder(fmt, mp3_tag=mp3_tag)
