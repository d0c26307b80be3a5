"""What every suite shares: its report, the server in its own process, timing, progress and output."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from ..engine.figures.metrics import PlayMetrics, median
from ..engine.output.sinkfactory import sink_factory
from ..engine.player import StreamPlayer
from ..engine.settings import Settings, defaults

Progress = Callable[[str], None]
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def rss_bytes(pid: int | None = None) -> int:
    statm = Path(f"/proc/{pid or 'self'}/statm").read_text().split()
    return int(statm[1]) * PAGE


def process_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


BENCH_TEXT = ("The quick brown fox jumps over the lazy dog while the workbench measures how soon the first "
              "sound comes out and how much of a core the stream costs.")


@dataclass
class Run:
    label: str
    metrics: PlayMetrics
    cpu_s: float
    wall_s: float


@dataclass
class Report:
    title: str
    machine: str
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (figure, value, how)
    data: dict[str, Any] = field(default_factory=dict)
    extra: str = ""  # more Markdown after the figures (a suite's own table)
    files: dict[str, str] = field(default_factory=dict)  # more files to write beside it (the matrix's SVG)

    def markdown(self) -> str:
        lines = [f"## {self.title}", "", f"Machine: {self.machine}", ""]
        if self.rows:
            lines += ["| figure | value | how |", "|---|---|---|"]
            lines += [f"| {a} | {b} | {c} |" for a, b, c in self.rows]
            lines.append("")
        return "\n".join(lines) + ("\n" + self.extra if self.extra else "")


def machine_description() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {cpu}, Python {sys.version.split()[0]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """The embedded server in its own process, so its CPU is not counted as the engine's."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ServerProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "workbench", "serve", "--port", str(self.port),
                                      "--test-knobs"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        self.__exit__()
        raise RuntimeError("the benchmark's TTS server process did not start")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


async def timed(player: StreamPlayer, label: str, text: str) -> Run:
    cpu0, wall0 = time.process_time(), time.perf_counter()
    metrics = await player.play(text)
    return Run(label, metrics, time.process_time() - cpu0, time.perf_counter() - wall0)


def clock_baseline_pct(period_s: float, seconds: float = 3.0) -> float:
    """CPU share of a thread that only wakes up every `period_s` (what any audio clock costs here)."""
    import threading

    def run() -> None:
        end = time.perf_counter() + seconds
        next_tick = time.perf_counter()
        while next_tick < end:
            next_tick += period_s
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)

    cpu0, wall0 = time.process_time(), time.perf_counter()
    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    return 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def device_baseline_pct(rate: int, block_size: int, seconds: float = 3.0) -> float:
    """CPU share of an open PortAudio stream whose callback only writes silence (the audio stack's cost)."""
    import sounddevice as sd

    def callback(outdata: Any, frames: int, time_info: Any, status: Any) -> None:
        outdata.fill(0)

    with sd.OutputStream(samplerate=rate, channels=1, dtype="float32", blocksize=block_size, latency="low",
                         callback=callback):
        time.sleep(0.3)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        time.sleep(seconds)
        return 100.0 * (time.process_time() - cpu0) / (time.perf_counter() - wall0)


def med(values: list[float]) -> float:
    """The median of figures about to be formatted (NaN, shown as 'nan', when there are none)."""
    return median(values, empty=math.nan)  # type: ignore[return-value]


def bench_options(**overrides: Any) -> Settings:
    """Settings for a benchmark play: the defaults (no voicemode files, no environment), espeak's alloy
    voice and these values."""
    return defaults(**{"voices": ("alloy",), **overrides})


def bench_player(fmt: str, base_url: str, query: dict[str, str], speed: float = 1.0, **extra: Any) -> StreamPlayer:
    """A player on a virtual sink (at `speed` times real time), adaptive buffering off."""
    s = bench_options(sink="virtual", audio_format=fmt, adaptive=False, **extra)
    return StreamPlayer(s, base_url=base_url, extra_query=query,
                        sink_factory=sink_factory("virtual", speed=speed))


async def interleaved(players: dict[Any, StreamPlayer], plays: int, text: str, progress: Progress,
                      what: Callable[[Any, int], str]) -> dict[Any, list[PlayMetrics]]:
    """`plays` rounds, each player once a round: drift on the machine (and a simulated network's dice)
    hits them alike. A failed play stops the benchmark: its figures would not mean what they say."""
    out: dict[Any, list[PlayMetrics]] = {key: [] for key in players}
    for i in range(plays):
        for key, player in players.items():
            progress(what(key, i))
            m = await player.play(text)
            if m.error:
                raise RuntimeError(f"{what(key, i)}: {m.error}")
            out[key].append(m)
    return out


def progress_printer(suite: str, stderr: TextIO) -> Progress:
    """One updating line on a terminal; otherwise a line per step."""
    def progress(text: str) -> None:
        if stderr.isatty():
            stderr.write(f"\r\033[K{suite}: {text}")
            stderr.flush()
        else:
            print(f"{suite}: {text}", file=stderr)

    return progress


def write_report(report: Report, name: str, out_dir: Path, stderr: TextIO) -> list[Path]:
    """NAME.md, NAME.json and the report's own files in `out_dir`; returns their paths."""
    if stderr.isatty():
        stderr.write("\r\033[K")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [out_dir / f"{name}.md", out_dir / f"{name}.json", *(out_dir / f for f in report.files)]
    paths[0].write_text(report.markdown())
    paths[1].write_text(json.dumps(report.data, indent=1))
    for filename, text in report.files.items():
        (out_dir / filename).write_text(text)
    return paths
