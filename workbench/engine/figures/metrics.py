"""What a play measured, and what observers see while it runs.

All times are milliseconds from the moment the request started (time zero). `ttfa_ms` is the first
sample heard (from the device's DAC clock, or the virtual sink's model of one), not the first byte
received; `first_sound_ms` is the first sample at or above -50 dBFS (`onset`): what a listener hears
as the start. The difference is `leading_silence_ms` (priming nobody could trim, or the reply's own
silence before its first word).
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
    PAUSED = "paused"  # held by pause()
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
    first_sound_ms: float | None = None
    leading_silence_ms: float | None = None
    request_sent_ms: float | None = None  # time zero to the request's last byte written to the socket
    underruns: int = 0
    underrun_ms: float = 0.0
    device_underflows: int = 0  # PortAudio said the device ran short (a real device only)
    clock_late: int = 0  # the virtual sink's clock thread woke more than a block late (the virtual sink only)
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
    resume: str | None = None  # after a reconnection: "exact" (the audio matched) or "different" (stopped)
    paused_ms: float = 0.0  # held by pause() (not an underrun)
    decoder_errors: int = 0  # corrupt frames or pages skipped
    fallback: str | None = None  # why the stream was played buffered instead, if it was
    detected_format: str | None = None  # what the bytes turned out to be (sniffed)
    pcm_rate: int | None = None  # headerless PCM: the rate and channels it was played as ...
    pcm_channels: int | None = None
    pcm_from: str | None = None  # ... and where the rate came from (X-Sample-Rate, Content-Type, the setting)
    pcm_channels_from: str | None = None
    channels: int | None = None  # the stream's own channels (from its header, or PCM's response headers)
    output_channels: int = 1  # what the sink played: 1, or 2 (WORKBENCH_CHANNELS=stereo, or a placed voice)
    pan: float | None = None  # WORKBENCH_PAN: where a mono voice was placed (-1 left, 1 right)
    stream_format: str = "audio"  # how the audio came: "audio" (its bytes) or "sse" (events of base64)
    sse_usage: dict[str, Any] | None = None  # what speech.audio.done said the reply used
    player: str = "workbench"  # who played it: this engine, or the model of voicemode 9.0's playback
    voicemode_reported_ttfa_ms: float | None = None  # player voicemode: the TTFA voicemode itself would log
    padding_ms: float = 0.0  # player voicemode: the silence it adds (trailing, or 0.1 s before a buffered reply)
    split: str = "off"  # how the text was asked for: "off" (whole), "sentence", "auto" (split, as auto chose)
    fragments: int = 1  # requests the text was cut into
    fragment_ttfb_ms: list[float | None] = field(default_factory=list)  # split: each fragment's headers
    join_gap_ms: float | None = None  # split: the longest silence at a join (its pause and any wait)
    join_wait_ms: float | None = None  # split: the longest underrun while a fragment after the first was due
    auto_format: str | None = None  # WORKBENCH_AUTO_FORMAT: why this reply's format was chosen
    fragment_formats: list[str] = field(default_factory=list)  # split with WORKBENCH_AUTO_FORMAT: each fragment's
    cache: str = "off"  # the reply cache: "hit" (played from it, no request), "miss", or "off" (not used)
    cache_stored: bool = False  # this reply was stored in the cache
    endpoint_buffered: bool | None = None  # this reply came whole, at once, late: the endpoint does not stream
    frames: int = 0  # MP3, ADTS or FLAC frames, or Ogg pages, received
    frame_kind: str = ""
    first_audio_bytes: int | None = None  # bytes received when the decoder first gave audio
    first_audio_ms: float | None = None  # ... and when
    priming_ms: float = 0.0  # encoder delay trimmed (LAME tag, Opus pre-skip, or untagged near-silence)
    priming: str = ""  # how it was found: "tag", "near-silent start" (no tag), or ""
    silence_skipped_ms: float = 0.0  # the reply's leading silence skipped (WORKBENCH_TRIM_LEADING_SILENCE)
    playout: str = "fixed"  # elastic or fixed
    stretch_added_ms: float = 0.0  # elastic: audio time added by playing slower ...
    stretch_removed_ms: float = 0.0  # ... and removed by playing faster
    stretched_pct: float = 0.0  # the share of the audio not played at 1.0
    stretch_in_pauses_pct: float | None = None  # of the time added and removed, the share in pauses
    speech_off_tempo_pct: float | None = None  # the share of speech played outside 0.95-1.05x
    min_rate: float = 1.0
    max_rate: float = 1.0
    page_interval_ms: float | None = None  # Ogg: audio per page as the server sends it
    initial_buffer_ms: float = 0.0
    target_ms: float | None = None  # the buffer target at the end (adaptive: what it learned)
    needed_buffer_ms: float | None = None  # the smallest initial buffer that would have played this clean
    advice: str | None = None  # when audio arrived slower than real time: what would play smoothly
    total_ms: float | None = None
    device_latency_ms: float | None = None
    latency_correction_ms: float = 0.0  # added to the device's times (WORKBENCH_LATENCY_CORRECTION_MS)
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
    level_ms: float  # not played yet: the ring, and in elastic playout the stretcher and its reserve
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
    rate: float = 1.0  # the playout rate now (elastic playout; 1.0 in fixed)
    first_sound_ms: float | None = None
    playout: str = "fixed"  # "elastic" or "fixed"
    ttfb_ms: float | None = None  # the response's headers, once they have come
    sink: str = ""  # "device" or "virtual" once a sink is open (a virtual sink has no device underflows)
    paused: bool = False  # held by pause()


@dataclass(frozen=True)
class Figure:
    """One measured figure as people see it: the same words in the CLI, the counters and compare."""

    field: str  # the PlayMetrics attribute
    label: str  # in full
    short: str  # in the counters' grid
    unit: str  # "ms", "" (a count), "B", "kbit/s" or "x"
    better: str | None = None  # "lower", "higher", or None when neither is


FIGURES: tuple[Figure, ...] = (
    Figure("ttfb_ms", "TTFB (headers)", "TTFB", "ms", "lower"),
    Figure("first_byte_ms", "first byte", "first byte", "ms", "lower"),
    Figure("buffer_ready_ms", "buffer ready", "buffer ready", "ms", "lower"),
    Figure("request_sent_ms", "request sent", "request sent", "ms", "lower"),
    Figure("ttfa_ms", "TTFA (first sample)", "TTFA", "ms", "lower"),
    Figure("first_sound_ms", "first sound (-50 dBFS)", "first sound", "ms", "lower"),
    Figure("leading_silence_ms", "leading silence", "lead silence", "ms", "lower"),
    Figure("underruns", "underruns", "underruns", "", "lower"),
    Figure("underrun_ms", "underrun time", "underrun time", "ms", "lower"),
    Figure("device_underflows", "device underflows", "device underflows", "", "lower"),
    Figure("clock_late", "virtual clock late", "clock late", "", "lower"),
    Figure("avg_buffer_ms", "buffer average", "buffer avg/min", "ms"),
    Figure("min_buffer_ms", "buffer minimum", "buffer min", "ms", "higher"),
    Figure("throughput_kbps", "throughput", "throughput", "kbit/s"),
    Figure("arrival_rtf", "arrival pace", "arrival (x RT)", "x", "higher"),
    Figure("decode_ms_p95", "decode p95", "decode p95", "ms", "lower"),
    Figure("bytes", "bytes received", "received", "B", "lower"),
    Figure("first_audio_bytes", "bytes to first audio", "bytes to 1st audio", "B", "lower"),
    Figure("played_ms", "audio played", "played / received", "ms"),
    Figure("retries", "retries", "retries", "", "lower"),
    Figure("reconnects", "reconnects", "reconnects", "", "lower"),
    Figure("decoder_errors", "decoder errors", "decoder errors", "", "lower"),
    Figure("frames", "frames or pages", "frames/pages", ""),
    Figure("priming_ms", "priming trimmed", "priming trimmed", "ms"),
    # the initial buffer, as adaptive buffering moved it
    Figure("target_ms", "adaptive target", "adaptive target", "ms"),
    Figure("stretched_pct", "played stretched", "stretched", "%", "lower"),
    Figure("stretch_added_ms", "time added by slowing", "added", "ms"),
    Figure("stretch_removed_ms", "time removed by speeding up", "removed", "ms"),
    Figure("stretch_in_pauses_pct", "stretch in pauses", "in pauses", "%", "higher"),
    Figure("speech_off_tempo_pct", "speech off tempo", "off tempo", "%", "lower"),
    Figure("fragments", "fragments", "fragments", ""),
    Figure("join_gap_ms", "longest join (its pause and any wait)", "longest join", "ms", "lower"),
    Figure("join_wait_ms", "longest wait at a join", "join wait", "ms", "lower"),
    Figure("needed_buffer_ms", "clean from (smallest clean initial buffer)", "clean from", "ms"),
)
FIGURE = {f.field: f for f in FIGURES}


def median(values: list[float], empty: float | None = None) -> float | None:
    """The median, or `empty` when there are no values (None for JSON; NaN where a figure is formatted)."""
    if not values:
        return empty
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2.0


class Sample(list[float]):
    """Per-chunk figures for a percentile, bounded however long the reply: past `LIMIT` values, every
    other one is dropped and from then on only every other one is kept (and so on, doubling), an even
    thinning that leaves the percentiles of a long steady stream where they were."""

    LIMIT = 4096

    def __init__(self) -> None:
        super().__init__()
        self._stride = 1
        self._skip = 0

    def add(self, value: float) -> None:
        self._skip += 1
        if self._skip < self._stride:
            return
        self._skip = 0
        self.append(value)
        if len(self) >= self.LIMIT:
            del self[1::2]
            self._stride *= 2


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


def spread(values: list[float]) -> dict[str, float | None]:
    """P50, the interquartile range (P75 - P25) and P90: how TTS latency is usually reported, a middle
    and a spread rather than one number."""
    p25, p75 = percentile(values, 25), percentile(values, 75)
    return {"p50": percentile(values, 50), "iqr": None if p25 is None or p75 is None else p75 - p25,
            "p90": percentile(values, 90)}
