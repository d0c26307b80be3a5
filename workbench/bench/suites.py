"""The benchmark suites, one entry each, and the runner. The CLI builds its `bench` command from `SUITES`.

A suite is a module of this package with a `run(options, progress) -> Report` function. Adding one is
that module and one entry below. Options are shared (`BenchOptions`); each suite reads what it needs and
says in one line what it cannot use (`BenchError`). Nothing heavy is imported until a suite runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from .harness import Progress, Report


class BenchError(ValueError):
    """A benchmark option that cannot be used; `str()` is one line for the user."""


@dataclass
class BenchOptions:
    plays: int | None = None
    quick: bool = False
    sink: str = "virtual"
    out: Path = Path("bench-results")
    text: str | None = None
    formats: str | None = None  # matrix
    networks: str | None = None  # matrix, adaptive
    settings: str | None = None  # matrix, split, soak; heard, quality: the servers
    base_url: str | None = None  # matrix
    pace: float | None = None  # matrix, split: the embedded server's wall seconds per second of audio
    headline: bool = True  # matrix
    players: str | None = None  # matrix: workbench, voicemode; heard, quality: naive, fixed, elastic
    streams: str | None = None  # stress
    minutes: float | None = None  # soak
    speed: float | None = None  # soak

    def plays_or(self, default: int, quick: int) -> int:
        plays = self.plays if self.plays is not None else (quick if self.quick else default)
        if plays < 1:
            raise BenchError("--plays must be at least 1")
        return plays


def parse_list(spec: str, known: Sequence[str], what: str) -> list[str]:
    """Comma-separated names, each one of `known`."""
    items = [x.strip() for x in spec.split(",") if x.strip()]
    bad = [x for x in items if x not in known]
    if bad or not items:
        raise BenchError(f"unknown {what} {', '.join(bad) or '(none given)'}; known: {', '.join(known)}")
    return items


@dataclass(frozen=True)
class Suite:
    name: str
    help: str
    module: str  # in this package; its `run(options, progress)` makes the report

    def runner(self) -> Callable[[BenchOptions, Progress], Report]:
        run: Callable[[BenchOptions, Progress], Report] = importlib.import_module(
            f"{__package__}.{self.module}").run
        return run


SUITES: dict[str, Suite] = {s.name: s for s in (
    Suite("matrix", "formats x networks x settings x repeats against the buffered and naive-streaming "
          "baselines, with a picture and a 30 s-reply headline (the default)", "matrix"),
    Suite("engine", "the engine's own cost: CPU per stream and TTFA against the buffered baseline", "engine"),
    Suite("server", "the embedded server's encode speed, first byte per format and concurrent streams", "server"),
    Suite("formats", "TTFA, bytes to first audio, decode speed and CPU for every format", "formats"),
    Suite("tui", "underruns and device underflows headless, with the workbench open, and with it busy", "tui"),
    Suite("adaptive", "fixed 150 ms against the adaptive target on simulated networks", "adaptive"),
    Suite("chunks", "TTFA and underruns by VOICEMODE_STREAM_CHUNK_SIZE", "chunks"),
    Suite("split", "sentence pipelining against a server that does not stream: first sound, length and joins "
          "(--settings off,sentence,auto; --base-url; --pace, default 0.33)", "split"),
    Suite("stress", "N concurrent MP3 players (--streams)", "stress"),
    Suite("heard", "where the listener is: first byte to first sound and silent gaps recorded from the device's "
          "monitor, naive blocking writes, fixed 150 ms and elastic playout on paced servers (--settings "
          "fast,jittery,slow; --formats pcm,mp3,opus; --players)", "heard"),
    Suite("quality", "real speech (Piper's joe voice) through fast, nrt and slow paced servers: PLCMOS, DNSMOS, "
          "silences and where the stretch fell, naive, fixed 150 ms and elastic in the same run (--settings "
          "fast,nrt,slow; --players; --text; the quality extra)", "quality"),
    Suite("cold", "a one-shot play from process start to its request on the wire, against --help and a bare "
          "interpreter", "cold"),
    Suite("cache", "a voice assistant's short phrases said again: TTFA from the reply cache against from the "
          "endpoint, and the hit rate, in the same run", "cache"),
    Suite("channels", "what stereo costs against mono (CPU per second of audio, TTFA, underruns) and a placed "
          "voice's levels as played, in the same run", "channels"),
    Suite("soak", "resident memory over an hour-long stream (--minutes, --speed; --settings sentence: split)", "soak"),
)}


def run_suite(name: str, options: BenchOptions, stderr: TextIO) -> tuple[Report, list[Path]]:
    """Run a suite with a progress line on `stderr`; write its Markdown, JSON and any files it made.
    Raises `BenchError` for options it cannot use and `RuntimeError` when the benchmark itself failed."""
    from .harness import progress_printer, write_report

    report = SUITES[name].runner()(options, progress_printer(name, stderr))
    return report, write_report(report, name, options.out, stderr)
