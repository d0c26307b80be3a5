"""What the session tells whoever watches it (the app, the compare screen, a test): plain events, with no
Textual in them. The session calls its observers on the event loop; the app turns each event into one
Textual message (`messages.SessionMessage`), so a busy screen skips progress it has not drawn yet."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..engine.figures.metrics import Snapshot
from .state import RunRecord


@dataclass(frozen=True)
class RunStarted:
    """A play was added to the history (it may still be waiting for the endpoint)."""

    record: RunRecord


@dataclass(frozen=True)
class PlayProgress:
    """A moment of a running play, already added to its record's trace; `changed`: its state moved."""

    record: RunRecord
    snapshot: Snapshot
    changed: bool


@dataclass(frozen=True)
class PlayFinished:
    """A play ended, or could not start: `record.metrics` holds its figures; `.error` says why it failed."""

    record: RunRecord


@dataclass(frozen=True)
class SettingsReplaced:
    """The settings were replaced wholesale (a preset loaded, a tune for voicemode): show them again."""

    text: str


@dataclass(frozen=True)
class ServerReady:
    """The embedded server is listening."""

    base_url: str


@dataclass(frozen=True)
class ServerFailed:
    reason: str


@dataclass(frozen=True)
class TuneProgress:
    """A step of a running tune."""

    text: str


@dataclass(frozen=True)
class TuneFinished:
    """A tune ended: `buffer_ms`/`max_buffer_s` are set when it found a value; `text` is for the user."""

    text: str
    buffer_ms: int | None = None
    max_buffer_s: float | None = None
    format: str | None = None


Event = (RunStarted | PlayProgress | PlayFinished | SettingsReplaced | ServerReady | ServerFailed | TuneProgress
         | TuneFinished)
Observer = Callable[[Event], None]
