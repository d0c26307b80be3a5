"""Speech as server-sent events (`stream_format: "sse"`): OpenAI's newer models, Speaches and others.

Each `speech.audio.delta` event carries base64 audio (in `audio`, or `data` in some servers); a final
`speech.audio.done` carries `usage`; `speech.audio.error` (or `error`) carries the server's message.
The parser is tolerant: CRLF or LF, comments, several `data:` lines per event, an event's JSON split
across reads, base64 split anywhere. What it cannot read becomes a note, and the audio around it plays.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from typing import Any

from .safetext import clean_text

_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="


class SseError(Exception):
    """The server said, in the stream, that it failed; `str()` is its message."""


class SseAudio:
    """Bytes of an SSE body in, audio bytes out, as the events complete."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []  # the current event's data lines
        self._b64 = b""  # base64 characters carried to the next delta (not a whole quantum yet)
        self.done = False
        self.usage: dict[str, Any] | None = None
        self.events = 0
        self.notes: list[str] = []
        self.decode_ms: list[float] = []  # base64 decoding time per read

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while True:
            cut = self._buffer.find(b"\n")
            if cut < 0:
                break
            line, self._buffer = self._buffer[:cut].rstrip(b"\r"), self._buffer[cut + 1 :]
            if not line:
                out += self._dispatch()
            elif line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" "))
            # comments (":"), "event:", "id:" and "retry:" lines carry nothing we need
        return bytes(out)

    def finish(self) -> bytes:
        """The body ended: an event left without its blank line is still read."""
        out = self._dispatch() if self._data else b""
        if not self.done:
            self._note("the event stream ended without speech.audio.done; what arrived was played")
        return out

    def _dispatch(self) -> bytes:
        if not self._data:
            return b""
        raw, self._data = b"\n".join(self._data), []
        if raw.strip() == b"[DONE]":
            self.done = True
            return b""
        try:
            event = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self._note(f"an event that is not JSON was skipped ({clean_text(raw[:60].decode('utf-8', 'replace'), 60)})")
            return b""
        if not isinstance(event, dict):
            self._note("an event that is not a JSON object was skipped")
            return b""
        self.events += 1
        kind = str(event.get("type", ""))
        if kind in ("speech.audio.error", "error") or (kind == "" and "error" in event):
            err = event.get("error", event)
            message = err.get("message") if isinstance(err, dict) else err
            raise SseError(clean_text(str(message or "the server reported an error in the stream"), 300))
        if kind == "speech.audio.done":
            self.done = True
            usage = event.get("usage")
            self.usage = usage if isinstance(usage, dict) else None
            return b""
        if kind.endswith(".delta") or (kind == "" and ("audio" in event or "data" in event)):
            payload = event.get("audio", event.get("data"))
            if not isinstance(payload, str):
                self._note("a delta event without base64 audio was skipped")
                return b""
            return self._decode(payload)
        return b""  # another kind of event: nothing to play

    def _decode(self, payload: str) -> bytes:
        started = time.perf_counter()
        piece = payload.strip().encode("ascii", "replace")
        if piece.translate(None, _BASE64) or b"=" in piece.rstrip(b"="):
            self._note("a delta whose audio is not base64 was skipped")
            return b""
        text = self._b64 + piece
        whole = len(text) - len(text) % 4
        if text.endswith(b"="):  # padding ends a base64 string: nothing carries over
            whole = len(text)
        chunk, self._b64 = text[:whole], text[whole:]
        try:
            audio = base64.b64decode(chunk, validate=True)
        except (binascii.Error, ValueError):
            self._note("a delta whose audio is not base64 was skipped")
            audio = b""
        self.decode_ms.append((time.perf_counter() - started) * 1000.0)
        return audio

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
