"""`WORKBENCH_AUTO_FORMAT`: the format of the next reply, chosen from what the last ones measured of this
endpoint and its link. A pure state machine: it is told what each reply measured, and says what to ask for.

- Nothing measured yet: pcm (nothing to decode, the quickest to start on a link that carries it).
- PCM that arrived under `PCM_ROOM` times real time (and never filled the buffer): the compressed format.
- The compressed format that arrived no faster, in seconds of audio, than PCM had: the server sets the
  pace, not the link, and compression does not help: back to PCM, and PCM stays (a slow server is not a
  reason to leave it) until it is seen with room again.
- The compressed format that did arrive faster: kept. A compressed stream well inside the link arrives at the
  server's pace on any link, so it cannot say when PCM would fit again: after `PROBE_FIRST` replies PCM is
  tried once more (a probe), and each probe that fails doubles the wait, up to `PROBE_MOST`.

Measured on the embedded server (a 5 s reply; see the issue's notes): PCM on the `edge` link arrived at 0.52x
real time whatever the server's pace, MP3 at the server's pace (5x) on `edge` and `lan` alike.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

PCM_ROOM = 1.2  # PCM must arrive at least this many times faster than real time
SAME_PACE = 1.15  # the compressed format must arrive this much faster than PCM did to count as faster
COMPRESSED = "mp3"  # every OpenAI-compatible server has it; 32 to 64 kbit/s
PROBE_FIRST = 3
PROBE_MOST = 24


@dataclass
class Choice:
    format: str
    reason: str
    probe: bool = False


class FormatChooser:
    def __init__(self, compressed: str = COMPRESSED) -> None:
        self.compressed = compressed
        self.current = "pcm"
        self.reason = "nothing measured yet: pcm"
        self.pcm_rtf: float | None = None  # the last PCM reply's arrival, x real time (when it was short)
        self.server_bound = False  # a compressed reply came no faster than PCM: the server sets the pace
        self.since_pcm = 0  # compressed replies since PCM was last tried
        self.probe_after = PROBE_FIRST

    def choose(self) -> Choice:
        if self.current != "pcm" and self.since_pcm >= self.probe_after:
            return Choice("pcm", f"probing whether pcm fits again, after {self.since_pcm} replies in "
                                 f"{self.current}", probe=True)
        return Choice(self.current, self.reason)

    def learn(self, choice: Choice, arrival_rtf: float | None, *, backpressured: bool = False,
              kbps: float | None = None) -> None:
        """What a reply asked for with `choice` measured: its arrival (seconds of audio per second), and
        whether it ever filled the buffer (then the link was faster than playback, whatever the figure)."""
        if choice.format == "pcm":
            if backpressured or (arrival_rtf is not None and arrival_rtf >= PCM_ROOM):
                self.current, self.since_pcm, self.probe_after = "pcm", 0, PROBE_FIRST
                self.server_bound = False
                self.reason = ("pcm arrived faster than it played" if backpressured or arrival_rtf is None
                               else f"pcm arrived at {arrival_rtf:.1f}x real time")
                return
            if arrival_rtf is None:
                return
            self.pcm_rtf = arrival_rtf
            if self.server_bound:
                self.reason = (f"pcm arrived at {arrival_rtf:.2f}x real time, but {self.compressed} came no "
                               "faster: the server sets the pace; pcm")
                return
            if choice.probe:
                self.probe_after = min(self.probe_after * 2, PROBE_MOST)
            self.current, self.since_pcm = self.compressed, 0
            link = f" ({kbps:.0f} kbit/s)" if kbps else ""
            self.reason = f"pcm arrived at only {arrival_rtf:.2f}x real time{link}: {self.compressed}"
            return
        self.since_pcm += 1
        if arrival_rtf is None or backpressured:
            return
        if self.pcm_rtf is not None and arrival_rtf < self.pcm_rtf * SAME_PACE:
            self.current, self.server_bound, self.since_pcm = "pcm", True, 0
            self.reason = (f"{choice.format} arrived at {arrival_rtf:.2f}x real time, no faster than pcm "
                           f"({self.pcm_rtf:.2f}x): the server sets the pace, not the link; pcm")
            return
        self.reason = (f"{choice.format} arrived at {arrival_rtf:.1f}x real time where pcm managed "
                       f"{self.pcm_rtf or 0:.2f}x")

    # -- kept across commands (in the endpoint memory) -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"current": self.current, "reason": self.reason, "pcm_rtf": self.pcm_rtf,
                "server_bound": self.server_bound, "since_pcm": self.since_pcm, "probe_after": self.probe_after}

    @classmethod
    def from_dict(cls, state: dict[str, Any] | None, compressed: str = COMPRESSED) -> FormatChooser:
        """A chooser as it was left; a fresh one when `state` is missing or not what `to_dict` wrote."""
        chooser = cls(compressed)
        if not state:
            return chooser
        try:
            current, reason = str(state["current"]), str(state["reason"])
            pcm_rtf = None if state["pcm_rtf"] is None else float(state["pcm_rtf"])
            since, probe_after = int(state["since_pcm"]), int(state["probe_after"])
            server_bound = bool(state["server_bound"])
        except (KeyError, TypeError, ValueError):
            return chooser
        if current not in ("pcm", compressed) or not PROBE_FIRST <= probe_after <= PROBE_MOST or since < 0:
            return chooser
        chooser.current, chooser.reason, chooser.pcm_rtf = current, reason, pcm_rtf
        chooser.since_pcm, chooser.probe_after, chooser.server_bound = since, probe_after, server_bound
        return chooser
