"""The play's channel layout: what every decoder turns a stream's channels into, before resampling.

Audio through the engine is an array of frames: 1-D for mono (the fast path, and the default), frames x
channels for stereo. The layout is the sink's: mono unless the user asked for stereo (`WORKBENCH_CHANNELS`)
or placed the voice (`WORKBENCH_PAN`), and a device that has one output channel plays mono whatever was
asked. It is known once the sink is open, before the first byte is decoded.

- Mono out: a stream's channels are averaged (what the engine always did).
- Stereo out: a stereo stream keeps its channels; a mono voice goes to both, or, placed, to each with a
  constant-power gain (cos, sin of (pan + 1) x pi / 4: -3 dB each in the middle, so it sounds as loud
  wherever it is put); a stream of more than two channels is averaged and sent to both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

EMPTY = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class Layout:
    channels: int = 1  # 1 or 2
    pan: float | None = None  # -1 (left) to 1 (right): a mono voice placed; None: to both channels as it is

    @classmethod
    def on(cls, channels: int, pan: float | None) -> Layout:
        """The layout on a sink of `channels` (a voice is placed only where there are two)."""
        return cls(channels, pan if channels > 1 else None)

    @property
    def gains(self) -> tuple[float, float]:
        """A placed mono voice's gains (left, right), constant power."""
        angle = ((self.pan or 0.0) + 1.0) * math.pi / 4.0
        return math.cos(angle), math.sin(angle)

    def apply(self, samples: np.ndarray) -> np.ndarray:
        """A stream's frames (1-D, or frames x its channels) in this layout, float32."""
        mono_in = samples.ndim == 1 or samples.shape[1] == 1
        if self.channels == 1:
            if mono_in:
                return samples.reshape(-1)
            return samples.mean(axis=1, dtype=np.float32)
        if not mono_in and samples.shape[1] == 2:
            return np.ascontiguousarray(samples, dtype=np.float32)
        voice = samples.reshape(-1) if mono_in else samples.mean(axis=1, dtype=np.float32)
        out = np.empty((len(voice), 2), dtype=np.float32)
        if self.pan is None or not mono_in:
            out[:, 0] = voice
            out[:, 1] = voice
        else:
            left, right = self.gains
            np.multiply(voice, np.float32(left), out=out[:, 0])
            np.multiply(voice, np.float32(right), out=out[:, 1])
        return out

    def empty(self) -> np.ndarray:
        return EMPTY if self.channels == 1 else np.zeros((0, self.channels), dtype=np.float32)

    def describe(self) -> str:
        if self.channels == 1:
            return "mono"
        if self.pan is None:
            return "stereo"
        return f"stereo, voice placed at {self.pan:+.2f}"


MONO = Layout()


def channels_of(samples: np.ndarray) -> int:
    return 1 if samples.ndim == 1 else int(samples.shape[1])


def zeros(frames: int, like: np.ndarray) -> np.ndarray:
    """Silence of `frames` frames in the layout of `like`."""
    return np.zeros((frames, *like.shape[1:]), dtype=np.float32)


def per_frame(gains: np.ndarray, like: np.ndarray) -> np.ndarray:
    """A gain per frame shaped to multiply `like` (each frame's channels by the same gain)."""
    return gains[:, None] if like.ndim == 2 else gains


def mono_of(samples: np.ndarray) -> np.ndarray:
    """One value per frame (the channels' mean): what level, onset and likeness are measured on."""
    return samples if samples.ndim == 1 else samples.mean(axis=1, dtype=np.float32)


def to_channels(samples: np.ndarray, channels: int) -> np.ndarray:
    """Frames in `channels` channels (1 or 2) whatever they were in: averaged, or sent to both."""
    if channels_of(samples) == channels:
        return samples
    return Layout(channels).apply(samples)
