"""What a play measured, and what observers see while it runs.

All times are milliseconds from the moment the request started. `ttfa_ms` is the first sample heard
(from the device's DAC clock, or the virtual sink's model of one), not the first byte received.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any


class PlayState(str, Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    BUFFERING = "buffering"
    PLAYING = "playing"
    UNDERRUN = "underrun"
    DRAINING = "draining"
    DONE = "done"
    FAILED = "failed"
    STOPPED = "stopped"


@dataclass
class PlayMetrics:
    format: str
    streaming: bool = True
    network: str = "none"
    sink: str = ""
    ttfb_ms: float | None = None
    first_byte_ms: float | None = None
    buffer_ready_ms: float | None = None
    ttfa_ms: float | None = None
    underruns: int = 0
    underrun_ms: float = 0.0
    device_underflows: int = 0
    avg_buffer_ms: float | None = None
    min_buffer_ms: float | None = None
    max_buffer_ms: float | None = None
    throughput_kbps: float | None = None
    arrival_rtf: float | None = None
    decode_ms_p95: float | None = None
    audio_ms: float = 0.0
    played_ms: float = 0.0
    bytes: int = 0
    chunks: int = 0
    reconnects: int = 0  # requests made again after the server had answered (a drop, a 429, a 5xx)
    retries: int = 0  # requests made again for any reason, a server that was never reached included
    resume: str | None = None  # after a reconnection: "exact" (the audio matched) or "approximate"
    decoder_errors: int = 0  # corrupt frames or pages skipped
    fallback: str | None = None  # why the stream was played buffered instead, if it was
    detected_format: str | None = None  # what the bytes turned out to be (sniffed)
    frames: int = 0  # MP3, ADTS or FLAC frames, or Ogg pages, received
    frame_kind: str = ""
    first_audio_bytes: int | None = None  # bytes received when the decoder first gave audio
    first_audio_ms: float | None = None  # ... and when
    priming_ms: float = 0.0  # encoder delay trimmed (LAME tag, Opus pre-skip)
    page_interval_ms: float | None = None  # Ogg: audio per page as the server sends it
    initial_buffer_ms: float = 0.0
    target_ms: float | None = None  # the buffer target at the end (adaptive: what it learned)
    needed_buffer_ms: float | None = None  # the smallest initial buffer that would have played this clean
    advice: str | None = None  # when audio arrived slower than real time: what would play smoothly
    total_ms: float | None = None
    device_latency_ms: float | None = None
    state: str = PlayState.DONE.value
    error: str | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, float):
                out[key] = round(value, 3) if math.isfinite(value) else None
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=False)

    def append_jsonl(self, path: str | Path, **extra: Any) -> None:
        record = {**extra, **self.to_dict()}
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


@dataclass(frozen=True)
class Snapshot:
    """A moment of a play, emitted at least 20 times a second while it runs."""

    t_ms: float  # since the request started
    state: PlayState
    buffer_ms: float
    target_ms: float
    initial_buffer_ms: float
    max_buffer_ms: float
    received_ms: float  # audio decoded so far
    played_ms: float
    bytes: int
    underruns: int
    underrun_ms: float
    device_underflows: int
    ttfa_ms: float | None
    format: str


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q / 100.0
    lo = math.floor(k)
    hi = math.ceil(k)
    if lo == hi:
        return ordered[lo]
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)
