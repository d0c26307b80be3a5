"""Where sound starts: the one definition of "first sound" the engine, `verify` and the tests share.

A sample is sound when its magnitude reaches -50 dBFS (0.00316 of full scale). That is far below any
speech (a quiet consonant sits around -40 dBFS; speech peaks near -6 dBFS) and far above what a decoder
leaves in silence (MP3 and AAC priming decodes to exact zeros or values near -90 dBFS; dither from a
16-bit server is at -90 dBFS). A fixed threshold, not one relative to the reply's level, so the moment
is known the instant that sample is written, before the rest of the reply exists.
"""

from __future__ import annotations

import numpy as np

SOUND_DBFS = -50.0
SOUND_THRESHOLD = float(10.0 ** (SOUND_DBFS / 20.0))


def first_sound(samples: np.ndarray, threshold: float = SOUND_THRESHOLD) -> int:
    """Index of the first sample (frame, in more than one channel: any of its channels) whose magnitude
    reaches `threshold`, or -1 when there is none."""
    if not len(samples):
        return -1
    loud = np.abs(samples) >= threshold
    if loud.ndim == 2:
        loud = loud.any(axis=1)
    index = int(np.argmax(loud))
    return index if loud[index] else -1


class LeadingSilenceTrim:
    """Skips a reply's leading silence (`WORKBENCH_TRIM_LEADING_SILENCE`): samples below the threshold,
    up to `limit`, keeping the last `keep` of them before the first sound (a soft onset rises through
    the threshold: its start stays). Deterministic from the stream's first sample, so a reply asked for
    again from its start is trimmed the same way and resumes sample for sample."""

    def __init__(self, limit: int, keep: int) -> None:
        self.left = limit
        self.keep = keep
        self.trimmed = 0
        self._held = np.zeros(0, dtype=np.float32)

    @property
    def active(self) -> bool:
        return self.left > 0

    def apply(self, samples: np.ndarray, *, final: bool = False) -> np.ndarray:
        if not self.active:
            return samples
        pending = np.concatenate([self._held, samples]) if len(self._held) else samples
        at = first_sound(pending)
        if at >= 0 or final:
            drop = min(max((at if at >= 0 else len(pending)) - self.keep, 0), self.left)
            self.left = 0
        else:  # all quiet so far: drop what is not kept, and hold the rest until the sound (or the limit)
            drop = min(max(len(pending) - self.keep, 0), self.left)
            self.left -= drop
        self.trimmed += drop
        if self.active:
            self._held = pending[drop:].copy()
            return pending[:0]
        self._held = pending[:0]
        return pending[drop:]
