"""`workbench verify`: the engine's figures against a recording of what the device really played.

Each play goes through the real device while an input records it: by default the PulseAudio/PipeWire
monitor of the output (what the sound card is sent), or any input named (a loopback cable, or a
microphone for the acoustic latency, as `jack_iodelay` and Audacity's latency test do). The recording's
samples carry the input's ADC times, on the same clock as the engine's, so where sound starts in it is
compared with where the engine said it would be heard (`first_sound_ms`), and the silences heard inside
the reply with the underruns the engine counted.

The difference beyond PortAudio's own figure is the latency PortAudio does not report; it can be stored
(`WORKBENCH_LATENCY_CORRECTION_MS`, in the workbench's own settings file) and the engine adds it to the
device's times from then on.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..engine.figures.metrics import PlayMetrics
from ..engine.figures.onset import SOUND_THRESHOLD, first_sound
from ..engine.settings import Settings, workbench_env_path

TEST_TEXT = "one two three four five six"  # the test signal: about 2 s of a 440 Hz tone, no pause in it
SPEECH_TEXT = "Hello. This is the stream workbench, checking what you hear against what it says."
GAP_MS = 10.0  # a silence this long inside the test tone is a gap a listener hears
NOISE_S = 0.25  # recorded before each play: the input's own noise, for its threshold
TAIL_S = 0.4  # recorded after each play, for the last samples to arrive from the monitor
CORRECTION_KEY = "WORKBENCH_LATENCY_CORRECTION_MS"


class VerifyError(Exception):
    """Verification cannot run here; `str()` is one line for the user."""


@dataclass
class Case:
    label: str  # what the report calls it: "pcm", "mp3 (no tag)" ...
    fmt: str
    voice: str
    text: str
    query: dict[str, str] | None = None
    continuous: bool = True  # the test tone: any silence inside it is a gap


@dataclass
class Check:
    case: str
    engine_ms: float | None  # the engine's first sound, from time zero
    heard_ms: float | None  # where the recording's first sound is, from the same time zero
    underruns: int
    gaps_heard: list[float] = field(default_factory=list)  # ms, each silence inside the reply
    error: str | None = None

    @property
    def difference_ms(self) -> float | None:
        return None if self.engine_ms is None or self.heard_ms is None else self.heard_ms - self.engine_ms


@dataclass
class VerifyResult:
    input_name: str
    device: str
    reported_latency_ms: float
    checks: list[Check]  # made with no stored correction: PortAudio's own figure is what is tested

    def differences(self, case: str | None = None) -> list[float]:
        return [c.difference_ms for c in self.checks
                if c.difference_ms is not None and (case is None or c.case == case)]

    @property
    def median_difference_ms(self) -> float | None:
        diffs = self.differences()
        return statistics.median(diffs) if diffs else None

    @property
    def gaps_agree(self) -> bool:
        """Every play that the engine says ran dry was heard with a gap, and no other was."""
        return all((c.underruns > 0) == bool(c.gaps_heard) for c in self.checks if c.error is None)


class Recorder:
    """An input stream recording mono float32, each block with its ADC time on perf_counter()."""

    def __init__(self, sd: Any, rate: int, device: str | int | None) -> None:
        self.rate = rate
        self.blocks: list[np.ndarray] = []
        self.times: list[float] = []
        self._lock = threading.Lock()
        try:
            self.stream = sd.InputStream(samplerate=rate, channels=1, dtype="float32", device=device,
                                         callback=self._callback)
        except (ValueError, sd.PortAudioError) as exc:
            what = f"input {device!r}" if device is not None else "the default input"
            raise VerifyError(f"cannot record from {what}: {exc}") from None
        self.name = str(sd.query_devices(self.stream.device)["name"])

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.perf_counter()
        with self._lock:
            self.blocks.append(indata[:, 0].copy())
            self.times.append(now + (time_info.inputBufferAdcTime - time_info.currentTime))

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Everything recorded so far, and each sample's ADC time; starts afresh."""
        with self._lock:
            blocks, times = self.blocks, self.times
            self.blocks, self.times = [], []
        if not blocks:
            return np.zeros(0, dtype=np.float32), np.zeros(0)
        data = np.concatenate(blocks)
        at = np.concatenate([t + np.arange(len(b)) / self.rate for b, t in zip(blocks, times, strict=True)])
        return data, at


def monitor_source() -> str | None:
    """The monitor of PulseAudio's (or PipeWire's) default output, or None where there is none."""
    pactl = shutil.which("pactl")
    if pactl is None:
        return None
    try:
        out = subprocess.run([pactl, "info"], capture_output=True, text=True, timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if line.startswith("Default Sink:"):
            name = line.split(":", 1)[1].strip()
            return f"{name}.monitor" if name else None
    return None


def record_the_monitor(way_out: str) -> str:
    """Make the output's monitor the input PulseAudio's client library opens next; its name. Where there
    is none, `VerifyError` saying so and `way_out`."""
    monitor = monitor_source()
    if monitor is None:
        raise VerifyError("no monitor of the output device to record (PulseAudio or PipeWire is not running, or "
                          f"pactl is missing): {way_out}")
    os.environ["PULSE_SOURCE"] = monitor  # read by PulseAudio's client library as the input opens
    return monitor


def onset(data: np.ndarray, at: np.ndarray, threshold: float, after: float) -> int | None:
    """Index of the first sample after `after` (perf_counter) at or above `threshold`, or None."""
    start = int(np.searchsorted(at, after))
    loud = first_sound(data[start:], threshold)
    return start + loud if loud >= 0 else None


def gaps_ms(data: np.ndarray, rate: int, first: int, threshold: float, min_ms: float = GAP_MS) -> list[float]:
    """Silences of at least `min_ms` between the first and the last sample at `threshold` (a sine dips
    below it twice a period, for less than a millisecond: far shorter than a gap)."""
    loud = np.flatnonzero(np.abs(data[first:]) >= threshold)
    if len(loud) < 2:
        return []
    steps = np.diff(loud)
    return [float(s) * 1000.0 / rate for s in steps if s * 1000.0 / rate >= min_ms]


def cases(formats: list[str], *, speech: bool, embedded: bool, speech_voice: str) -> list[Case]:
    out = [Case(fmt, fmt, "test-signal", TEST_TEXT) for fmt in formats]
    if embedded and "mp3" in formats:  # an MP3 with no LAME tag, as FFmpeg in a pipe sends it
        out.append(Case("mp3 (no tag)", "mp3", "test-signal", TEST_TEXT, query={"mp3_tag": "0"}))
    if speech:
        out += [Case(f"{fmt}, speech", fmt, speech_voice, SPEECH_TEXT, continuous=False) for fmt in formats]
    return out


async def run_verify(settings: Settings, base_url: str, *, input_device: str | int | None, formats: list[str],
                     plays: int, speech: bool, embedded: bool,
                     progress: Callable[[str], None] = lambda _: None) -> VerifyResult:
    from ..engine.output.sinkfactory import sink_factory
    from ..engine.output.sinks import SinkError, import_sounddevice
    from ..engine.player import StreamPlayer

    if input_device is None:
        record_the_monitor("name an input with --input (a loopback cable, or a microphone for the acoustic latency)")
    if settings.sink not in ("auto", "device"):
        raise VerifyError(f"verify plays through the device; the sink is {settings.sink!r} (use --sink device)")
    try:
        sd = import_sounddevice()
    except SinkError as exc:
        raise VerifyError(str(exc)) from None
    settings = settings.replace(sink="device", latency_correction_ms=0.0)  # test the device's own figure
    recorder = Recorder(sd, settings.output_rate, input_device)
    checks: list[Check] = []
    device, latency = "", 0.0
    recorder.stream.start()
    try:
        for case in cases(formats, speech=speech, embedded=embedded, speech_voice=settings.voice):
            s = settings.replace(audio_format=case.fmt, voices=(case.voice,))
            async with StreamPlayer(s, base_url=base_url, sink_factory=sink_factory(), extra_query=case.query) as p:
                for i in range(plays):
                    progress(f"{case.label}: play {i + 1} of {plays}")
                    await asyncio.sleep(NOISE_S)
                    metrics = await p.play(case.text)
                    await asyncio.sleep(TAIL_S)
                    data, at = recorder.take()
                    if p.sink is not None and p.sink.kind == "device":
                        device, latency = p.sink.description, p.sink.latency_s * 1000.0
                    elif metrics.error is None:
                        raise VerifyError(f"no audio device to verify ({metrics.sink or 'no sink'} played)")
                    checks.append(_check(case, metrics, data, at, p.request_started, recorder.rate))
    finally:
        recorder.stream.stop()
        recorder.stream.close()
    return VerifyResult(recorder.name if input_device is not None else f"{os.environ.get('PULSE_SOURCE')} (monitor)",
                        device, latency, checks)


def _check(case: Case, m: PlayMetrics, data: np.ndarray, at: np.ndarray, t0: float, rate: int) -> Check:
    if m.error is not None:
        return Check(case.label, None, None, m.underruns, error=m.error)
    before = data[at < t0]
    noise = float(np.abs(before).max()) if len(before) else 0.0
    threshold = max(SOUND_THRESHOLD, 4.0 * noise)  # a microphone's room noise: 12 dB above it
    first = onset(data, at, threshold, t0)
    if first is None:
        return Check(case.label, m.first_sound_ms, None, m.underruns, error="nothing was heard on the input")
    heard_ms = (at[first] - t0) * 1000.0
    gaps = gaps_ms(data, rate, first, max(threshold, 0.05)) if case.continuous else []
    return Check(case.label, m.first_sound_ms, heard_ms, m.underruns, gaps)


def save_correction(value_ms: float, path: Path | None = None) -> Path:
    """Store the correction in the workbench's own settings file (other lines kept; written atomically)."""
    path = path or workbench_env_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    old = path.read_text(encoding="utf-8") if path.exists() else ""
    line = f"{CORRECTION_KEY}={value_ms:.1f}"
    lines = [ln for ln in old.splitlines() if not ln.strip().startswith(f"{CORRECTION_KEY}=")]
    if not old:
        lines.append("# Stream Workbench's own settings (voicemode does not read this file)")
    lines.append(f"# measured by `workbench verify` on {time.strftime('%Y-%m-%d')}: heard this much later than "
                 "PortAudio reports")
    lines.append(line)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def render(result: VerifyResult) -> str:
    rows = [("case", "engine: first sound", "heard", "heard - engine", "underruns", "gaps heard")]
    for c in result.checks:
        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.1f} ms"
        gaps = ", ".join(f"{g:.0f} ms" for g in c.gaps_heard) or "none"
        rows.append((c.case, ms(c.engine_ms), ms(c.heard_ms) if c.error is None else c.error,
                     ms(c.difference_ms), str(c.underruns), gaps))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"recorded from {result.input_name}; played on {result.device}", ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    median = result.median_difference_ms
    lines.append("")
    if median is not None:
        lines.append(f"heard {median:+.1f} ms from where the engine says (median of {len(result.differences())} "
                     f"plays); PortAudio reports {result.reported_latency_ms:.0f} ms of output latency, so the "
                     f"device's real latency is about {result.reported_latency_ms + median:.0f} ms")
    lines.append("gaps heard agree with the underruns reported" if result.gaps_agree
                 else "gaps heard DISAGREE with the underruns reported")
    return "\n".join(lines)
