"""What one play keeps while it runs: made new for each play, so nothing carries over by accident."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .decoding.layout import mono_of
from .decoding.pcmformat import PcmFormat
from .figures.metrics import PlayState, Sample
from .text.safetext import clean_text


class ResumeCheck:
    """After a reconnection whose response starts the reply again: the samples already buffered are
    dropped from it, and the last `CHECK` of them are compared with what it brings instead.

    `result` is "exact" when the server said the same thing again (sample for sample, within a
    rounding step), "different" when it did not (or when its reply ended before reaching the point
    where the first one broke); None until a resumed response has been checked. After "different",
    `filter` hands on nothing more: the fetch stops the reply there rather than splice in other audio.
    """

    CHECK = 2048

    def __init__(self) -> None:
        self.received = 0  # samples handed on so far, this reply (this fragment, when the text is split)
        self.recent = np.zeros(self.CHECK, dtype=np.float32)  # the latest of them
        self.result: str | None = None
        self._skip_left = 0
        self._expected = np.zeros(0, dtype=np.float32)
        self._seen = np.zeros(0, dtype=np.float32)

    def note(self, samples: np.ndarray) -> None:
        """Samples handed on: keep the latest, to check a resumed response against (in stereo, their mean)."""
        self.received += len(samples)
        samples = mono_of(samples)
        keep = min(len(samples), self.CHECK)
        if keep < self.CHECK:
            self.recent = np.concatenate([self.recent[keep:], samples[-keep:]])
        else:
            self.recent = samples[-self.CHECK :].copy()

    def begin(self) -> None:
        """The next response starts the reply from its beginning."""
        self._skip_left = self.received
        self._expected = self.recent[-min(self.CHECK, self.received) :].copy() if self.received else \
            np.zeros(0, dtype=np.float32)
        self._seen = np.zeros(0, dtype=np.float32)

    @property
    def skipping(self) -> bool:
        """A resumed response is still being matched against what was handed on before."""
        return self._skip_left > 0

    def filter(self, samples: np.ndarray) -> np.ndarray:
        """Drop the samples a resumed response repeats, and check they are what was played."""
        if self.result == "different":
            return samples[:0]
        if self._skip_left <= 0 or not len(samples):
            return samples
        take = min(self._skip_left, len(samples))
        check_from = self._skip_left - len(self._expected)  # where the check window starts in this piece
        lo, hi = max(check_from, 0), take
        if hi > lo:
            self._seen = np.concatenate([self._seen, mono_of(samples[lo:hi])])
        self._skip_left -= take
        if self._skip_left == 0 and len(self._expected):
            same = len(self._seen) == len(self._expected) and bool(
                np.allclose(self._seen, self._expected, atol=1e-3))
            self.result = "exact" if same else "different"
            if not same:
                return samples[:0]
        return samples[take:]

    def ended(self) -> None:
        """The resumed response ended: one that never reached the point where the first broke is different."""
        if self._skip_left > 0:
            self._skip_left = 0
            self.result = "different"

    def release(self) -> None:
        """The reply is done: keep the counts, drop the arrays (a long split reply has many of these)."""
        self.recent = self._expected = self._seen = np.zeros(0, dtype=np.float32)


@dataclass
class PlayRun:
    """One play's state and counters (the player's own; the buffer and the sink keep theirs)."""

    format: str
    t0: float = field(default_factory=time.perf_counter)  # time zero of every metric
    stopping: bool = False
    final_state: PlayState | None = None
    backpressure_s: float = 0.0  # time the download waited on a full buffer
    first_audio_at: float | None = None  # when the decoder first gave samples
    pcm: PcmFormat | None = None  # what the decoder was made with (rate and channels, and whence)
    leading_trimmed: int = 0  # samples of leading silence skipped (WORKBENCH_TRIM_LEADING_SILENCE)
    decode_ms: Sample = field(default_factory=Sample)  # per chunk, bounded
    retries: int = 0  # requests made again, for any reason
    reconnects: int = 0  # ... of them, after the server had answered
    decoders: list[object | None] = field(default_factory=list)  # each reply's StreamDecoder, once its bytes came
    resumes: list[ResumeCheck] = field(default_factory=list)  # each reply's (one per fragment)
    received_samples: int = 0  # handed to the buffer, this play (a split reply's joins included)
    fragment_at: list[float | None] = field(default_factory=list)  # split: perf_counter() of each one's headers
    joins_underrun_ms: list[float] = field(default_factory=list)  # split: the buffer's underrun_ms as each ended
    join_pauses_ms: list[float] = field(default_factory=list)  # split: each join's silence as played
    skipped_fragments: list[str] = field(default_factory=list)  # split: fragments that came back empty (their text)
    notices: list[str] = field(default_factory=list)

    @property
    def resume_result(self) -> str | None:
        """"different" when any resumed reply was, else "exact" when one was checked, else None."""
        results = {r.result for r in self.resumes}
        return "different" if "different" in results else "exact" if "exact" in results else None

    def notice(self, text: str) -> None:
        """A notice for the user; outside text (a server's message, FFmpeg's) arrives cleaned and cut."""
        text = clean_text(text, 500)
        if text not in self.notices:
            self.notices.append(text)
