"""What every decoder shares: the interface, the error, the resampler, PCM conversion.

`decoders` (PCM, WAV and the format-sniffing `StreamDecoder`) and `avdecoders` (the compressed formats,
through PyAV) both build on this module, and neither needs the other's internals.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np
import soxr

from .layout import per_frame

EMPTY = np.zeros(0, dtype=np.float32)


class DecodeError(Exception):
    """The stream cannot be decoded (for example a WAV stream without a RIFF header)."""


class Decoder(Protocol):
    format: str
    warnings: list[str]

    @property
    def source_rate(self) -> int | None: ...  # known once the header (if any) has been read

    def feed(self, data: bytes) -> np.ndarray: ...

    def flush(self) -> np.ndarray: ...


class Resampler:
    """Streaming resampler (soxr) that passes audio through untouched when the rates match."""

    def __init__(self, in_rate: int, out_rate: int, channels: int = 1) -> None:
        self.in_rate = in_rate
        self.out_rate = out_rate
        self.channels = channels  # frames x channels when more than one
        self._stream = None if in_rate == out_rate else soxr.ResampleStream(in_rate, out_rate, channels,
                                                                            dtype="float32")

    def process(self, samples: np.ndarray, last: bool = False) -> np.ndarray:
        if self._stream is None:
            return samples
        if self.channels > 1 and not len(samples):
            samples = np.zeros((0, self.channels), dtype=np.float32)
        return self._stream.resample_chunk(samples, last=last)


def pcm16_to_float(data: bytes | bytearray | memoryview) -> np.ndarray:
    return np.frombuffer(data, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)


GAP_FADE_MS = 5.0  # fade out before and in after audio that is missing (a corrupt frame or delta skipped)


def fade_in(samples: np.ndarray, rate: int) -> np.ndarray:
    n = min(len(samples), max(1, int(rate * GAP_FADE_MS / 1000.0)))
    out = samples.copy()
    out[:n] *= per_frame(np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32), out)
    return out


def fade_out(samples: np.ndarray, rate: int) -> np.ndarray:
    n = min(len(samples), max(1, int(rate * GAP_FADE_MS / 1000.0)))
    out = samples.copy()
    out[len(out) - n :] *= per_frame(np.linspace(0.0, 1.0, n, endpoint=False, dtype=np.float32)[::-1], out)
    return out
