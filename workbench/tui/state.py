"""What the workbench remembers: traces of plays, the run history and per-format stream settings.

Plain data with no Textual in it, so it is easy to test and to push into the UI from tests.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..engine.figures.metrics import PlayMetrics, PlayState, Snapshot
from ..engine.settings import FORMATS, Settings, format_value

TRACE_POINTS = 3000  # at 10 Hz, five minutes of play; older points fall off
MERGE_MS, MERGE_SHARE = 5.0, 0.1  # a bucket's low and high this close are drawn as one point
STREAM_FIELDS = ("buffer_ms", "chunk_size", "max_buffer_s")  # kept per format
# one name each, as the settings, the messages and the docs say them (voicemode's key beside it in the panel)
STREAM_LABELS = {"buffer_ms": "initial buffer", "chunk_size": "chunk size", "max_buffer_s": "max buffer"}


@dataclass
class Trace:
    """The buffer level over one play, as the graph draws it."""

    t_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TRACE_POINTS))
    level_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TRACE_POINTS))
    target_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TRACE_POINTS))
    rate: deque[float] = field(default_factory=lambda: deque(maxlen=TRACE_POINTS))  # elastic playout's
    underrun_at_ms: list[float] = field(default_factory=list)
    last: Snapshot | None = None  # the newest snapshot: the play's counters as they stand
    stretched: bool = False  # the playout rate left 1.0 (elastic playout at work): the graph draws it

    def add(self, snap: Snapshot) -> None:
        seen = self.last.underruns if self.last is not None else 0
        if snap.underruns > seen:
            self.underrun_at_ms.extend([snap.t_ms] * (snap.underruns - seen))
        self.last = snap
        self.t_ms.append(snap.t_ms)
        self.level_ms.append(snap.level_ms)
        self.target_ms.append(snap.target_ms)
        self.rate.append(snap.rate)
        self.stretched = self.stretched or snap.rate != 1.0

    @property
    def initial_buffer_ms(self) -> float:
        return self.last.initial_buffer_ms if self.last is not None else 0.0

    @property
    def ttfa_ms(self) -> float | None:
        return self.last.ttfa_ms if self.last is not None else None

    @property
    def peak_ms(self) -> float:
        """The highest line the graph draws (buffer, target or initial buffer)."""
        return max(max(self.level_ms, default=0.0), max(self.target_ms, default=0.0), self.initial_buffer_ms)

    @property
    def duration_ms(self) -> float:
        return self.t_ms[-1] if self.t_ms else 0.0

    def __len__(self) -> int:
        return len(self.t_ms)

    def downsampled_with_rate(self, points: int) -> tuple[list[float], list[float], list[float], list[float]]:
        """About `points` buckets for drawing: time, buffer level, target and playout rate. Each bucket
        keeps its lowest and highest level (min/max decimation: a one-sample dip toward an underrun and a
        one-sample spike both survive) and the rate furthest from 1.0 (a short slow-down stays visible).
        Vectorised: at 10 Hz on a five-minute trace this runs in well under a millisecond."""
        n = len(self.t_ms)
        rates = np.fromiter(self.rate, float, n) if len(self.rate) == n else np.ones(n)
        if n <= 2 * points or points < 2:
            return list(self.t_ms), list(self.level_ms), list(self.target_ms), rates.tolist()
        t, b, g = (np.fromiter(d, float, n) for d in (self.t_ms, self.level_ms, self.target_ms))
        starts = (np.arange(points) * n) // points
        ends = np.append(starts[1:], n) - 1  # each bucket's last sample
        low, high = np.minimum.reduceat(b, starts), np.maximum.reduceat(b, starts)
        slow, fast = np.minimum.reduceat(rates, starts), np.maximum.reduceat(rates, starts)
        rate = np.where(1.0 - slow >= fast - 1.0, slow, fast)
        # a bucket whose extremes are close draws as its low point alone (a zigzag through every bucket
        # of a smooth rise costs the graph twice the drawing for nothing to see); otherwise both, the
        # high first where the bucket falls, each at one end of the bucket
        close = high - low <= np.maximum(MERGE_MS, MERGE_SHARE * high)
        falling = b[starts] > b[ends]
        first = np.where(falling, high, low)
        second = np.where(falling, low, high)
        xs, ys, zs, rs = [], [], [], []
        for i in range(points):
            if close[i]:
                xs.append(t[ends[i]])
                ys.append(low[i])
                zs.append(g[ends[i]])
                rs.append(rate[i])
            else:
                xs += [t[starts[i]], t[ends[i]]]
                ys += [first[i], second[i]]
                zs += [g[starts[i]], g[ends[i]]]
                rs += [rate[i], rate[i]]
        return [float(v) for v in xs], [float(v) for v in ys], [float(v) for v in zs], [float(v) for v in rs]


@dataclass(frozen=True)
class StreamValues:
    """The stream settings that each format keeps for itself."""

    buffer_ms: int
    chunk_size: int
    max_buffer_s: float

    @classmethod
    def of(cls, s: Settings) -> StreamValues:
        return cls(s.buffer_ms, s.chunk_size, s.max_buffer_s)


def format_values_message(fmt: str, values: StreamValues, before: str, before_values: StreamValues) -> str:
    """What a format change means for the stream values: each format keeps its own."""
    own = (f"initial buffer {values.buffer_ms} ms, chunk size {values.chunk_size} B, max buffer "
           f"{format_value(values.max_buffer_s)} s")
    if values == before_values:
        return f"{fmt} plays with the same values as {before}: {own}"
    return (f"{fmt} plays with its own values: {own}; {before} keeps its {before_values.buffer_ms} ms · o carries "
            f"{before}'s over")


def format_profiles(settings: Settings) -> dict[str, StreamValues]:
    """Every format starts from the configured values; each then keeps its own edits."""
    return {fmt: StreamValues.of(settings) for fmt in FORMATS}


@dataclass
class RunRecord:
    """One play in the run history."""

    number: int
    text: str
    settings: Settings
    metrics: PlayMetrics | None = None
    trace: Trace = field(default_factory=Trace)
    label: str = ""

    @property
    def state(self) -> str:
        if self.metrics is not None:
            return self.metrics.state
        return self.trace.last.state.value if self.trace.last is not None else PlayState.CONNECTING.value

    def summary(self) -> dict[str, Any]:
        s = self.settings
        return {
            "run": self.number, "label": self.label, "format": s.audio_format, "network": s.network,
            "streaming": s.streaming_enabled, "buffer_ms": s.buffer_ms, "chunk_size": s.chunk_size,
            "max_buffer_s": s.max_buffer_s, "voice": s.voice, "model": s.model,
            "metrics": self.metrics.to_dict() if self.metrics else None,
        }
