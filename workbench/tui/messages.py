"""The session's events as Textual messages: the one way the engine's news reaches the screen.

The session calls the app's observer on the event loop, for each play about 10 times a second; the app
posts each event as a `SessionMessage`. A newer progress event for the same run replaces one still
waiting in the queue (and a tune's step the step before), so a busy UI skips frames instead of falling
behind; nothing is lost by it, since the session has already added every snapshot to its run's trace.
"""

from __future__ import annotations

from textual.message import Message

from .events import Event, PlayProgress, TuneProgress


class SessionMessage(Message):
    """An event of the session (`events.py`), delivered to the app."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        if not isinstance(message, SessionMessage):
            return False
        new, old = self.event, message.event
        if isinstance(new, PlayProgress) and isinstance(old, PlayProgress):
            return new.record is old.record and not old.changed
        return isinstance(new, TuneProgress) and isinstance(old, TuneProgress)
