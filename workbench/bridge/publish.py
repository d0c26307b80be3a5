"""Where the bridge leaves what it saw of voicemode's replies, for `workbench voicemode watch` and the
workbench: two files in `~/.config/stream-workbench/voicemode/`.

- `live.json`: the reply being played now (level, target, rate, underruns, first sound), rewritten five
  times a second while one plays (written whole to a temporary file, then renamed: a reader never sees
  half of it), and removed when the reply ends.
- `replies.jsonl`: one JSON line per reply with its final figures. Bounded: past `MAX_BYTES` it is
  renamed `replies.1.jsonl` (the one before is dropped), so it never grows without end.

Writing never raises into voicemode's playback: a full disk or a read-only home costs the figures only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 512 * 1024


def folder(home: Path | None = None) -> Path:
    return (home or Path.home()) / ".config" / "stream-workbench" / "voicemode"


@dataclass
class ReplyFigures:
    """One voicemode reply as the bridge played it."""

    at: float = dataclasses.field(default_factory=time.time)  # wall clock when the stream opened
    format: str = "pcm"  # what voicemode asked for
    voice: str | None = None
    text_chars: int | None = None
    playout: str = "elastic"
    buffer_target_ms: float = 150.0  # VOICEMODE_STREAM_BUFFER_MS as read
    max_buffer_ms: float = 2000.0
    state: str = "playing"
    level_ms: float = 0.0
    target_ms: float = 0.0
    rate: float = 1.0
    received_ms: float = 0.0
    played_ms: float = 0.0
    underruns: int = 0
    underrun_ms: float = 0.0
    paused: bool = False
    paused_ms: float = 0.0
    first_write_to_sound_ms: float | None = None  # the first audio handed on to the first sound heard
    elapsed_ms: float = 0.0
    device_underflows: int = 0
    avg_buffer_ms: float | None = None
    min_buffer_ms: float | None = None
    stretch_added_ms: float = 0.0
    stretch_removed_ms: float = 0.0
    min_rate: float = 1.0
    max_rate: float = 1.0
    ended: bool = False
    pid: int = dataclasses.field(default_factory=os.getpid)

    def update(self, values: dict[str, Any]) -> None:
        for key, value in values.items():
            if hasattr(self, key):
                setattr(self, key, value)

    def to_dict(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReplyFigures:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


class Publisher:
    def __init__(self, where: Path | None = None) -> None:
        self.where = where or folder()
        self._lock = threading.Lock()

    @property
    def live_path(self) -> Path:
        return self.where / "live.json"

    @property
    def replies_path(self) -> Path:
        return self.where / "replies.jsonl"

    def live(self, figures: ReplyFigures | None) -> None:
        """The reply playing now (None: none)."""
        try:
            with self._lock:
                if figures is None:
                    self.live_path.unlink(missing_ok=True)
                    return
                self.where.mkdir(parents=True, exist_ok=True)
                tmp = self.live_path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(figures.to_dict()))
                os.replace(tmp, self.live_path)
        except OSError:
            pass

    def reply(self, figures: ReplyFigures) -> None:
        """A reply ended: its line in replies.jsonl."""
        try:
            with self._lock:
                self.where.mkdir(parents=True, exist_ok=True)
                path = self.replies_path
                if path.exists() and path.stat().st_size > MAX_BYTES:
                    os.replace(path, self.where / "replies.1.jsonl")
                with path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(figures.to_dict()) + "\n")
        except OSError:
            pass


def read_replies(where: Path | None = None, last: int | None = None) -> list[ReplyFigures]:
    """The replies recorded (the rotated file's first), oldest first; lines that do not parse are skipped."""
    base = where or folder()
    out: list[ReplyFigures] = []
    for path in (base / "replies.1.jsonl", base / "replies.jsonl"):
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError:
            continue
        for line in lines:
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict):
                out.append(ReplyFigures.from_dict(data))
    return out[-last:] if last else out


def read_live(where: Path | None = None) -> ReplyFigures | None:
    try:
        data = json.loads(((where or folder()) / "live.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return ReplyFigures.from_dict(data) if isinstance(data, dict) else None
