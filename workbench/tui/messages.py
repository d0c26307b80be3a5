"""Typed messages from the engine to the UI.

The engine calls an observer on the event loop about 10 times a second; the observer turns each
snapshot into a `PlayProgress` message. A newer progress message for the same run replaces one still
waiting in the queue, so a busy UI skips frames instead of falling behind.
"""

from __future__ import annotations

from textual.message import Message

from ..engine.figures.metrics import PlayMetrics, Snapshot
from .state import RunRecord


class PlayProgress(Message):
    """A moment of a running play."""

    def __init__(self, run: int, snapshot: Snapshot) -> None:
        super().__init__()
        self.run = run
        self.snapshot = snapshot

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, PlayProgress) and message.run == self.run


class PlayFinished(Message):
    """A play ended (done, stopped or failed); `metrics.error` says why it failed."""

    def __init__(self, run: int, metrics: PlayMetrics) -> None:
        super().__init__()
        self.run = run
        self.metrics = metrics


class PlayRejected(Message):
    """A play could not start: bad settings, no endpoint, no device. `reason` is for the user."""

    def __init__(self, run: int, reason: str) -> None:
        super().__init__()
        self.run = run
        self.reason = reason


class RunStarted(Message):
    """A play was added to the history (it may still be waiting for the endpoint)."""

    def __init__(self, record: RunRecord) -> None:
        super().__init__()
        self.record = record


class SettingsReplaced(Message):
    """The settings were replaced wholesale (a preset loaded): the panel shows them again."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ServerReady(Message):
    """The embedded server is listening."""

    def __init__(self, base_url: str) -> None:
        super().__init__()
        self.base_url = base_url


class ServerFailed(Message):
    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason


class TuneProgress(Message):
    """A step of a running tune (`workbench tune` from the app)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TuneProgress)


class TuneFinished(Message):
    """A tune ended: `buffer_ms`/`max_buffer_s` are set when it found a value; `text` is for the user."""

    def __init__(self, text: str, buffer_ms: int | None = None, max_buffer_s: float | None = None,
                 fmt: str | None = None) -> None:
        super().__init__()
        self.text = text
        self.buffer_ms = buffer_ms
        self.max_buffer_s = max_buffer_s
        self.format = fmt
