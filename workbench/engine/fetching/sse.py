"""Speech as server-sent events (`stream_format: "sse"`): OpenAI's newer models, Speaches and others.

Each `speech.audio.delta` event carries base64 audio (in `audio`, or `data` in some servers); a final
`speech.audio.done` carries `usage`; `speech.audio.error` (or `error`) carries the server's message.

Read as the SSE specification says: lines end in CR, LF or CRLF (a CR at the end of one read may be
the first half of a CRLF split across two), comments and other fields are skipped, several `data:`
lines make one event, and an event's JSON may be split across reads.

Each delta's base64 stands on its own (every encoder pads it to a multiple of four characters): one
that does not, or that holds a character outside base64, is skipped whole, with a note and a gap
(`take_gap`), so that one bad delta can never shift the bytes of the ones after it. Events after
`speech.audio.done` are ignored with a note. An error event ends the stream: the audio of the events
before it is returned first, and `error` is set for the caller to raise once that audio is handed on.

A body labelled `text/event-stream` that does not start like an event stream (a server that sent the
audio itself under the wrong label) is passed through as it is (`raw`), with a note.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
from typing import Any

from ..figures.metrics import Sample
from ..text.safetext import clean_text

_BASE64 = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/="
# how an event stream may start: a BOM, blank lines, then a field name and a colon, or a comment
_SSE_START = re.compile(rb"^(?:\xef\xbb\xbf)?[\r\n]*(?::|(?:data|event|id|retry)(?::|[\r\n]))")
_FIELD_NAMES = (b"data", b"event", b"id", b"retry")
SNIFF_BYTES = 16  # enough of the body to tell an event stream from audio


class SseError(Exception):
    """The server said, in the stream, that it failed; `str()` is its message."""


class SseAudio:
    """Bytes of an SSE body in, audio bytes out, as the events complete."""

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[bytes] = []  # the current event's data lines
        self._sniffed = False
        self.raw = False  # the body is not an event stream: its bytes are the audio
        self.done = False
        self.error: SseError | None = None  # an error event came: nothing after it is read
        self.usage: dict[str, Any] | None = None
        self.events = 0  # JSON events read
        self.deltas = 0  # ... of them audio deltas that played
        self.skipped = 0  # deltas skipped (not base64, or base64 of a wrong length)
        self.after_done = 0  # events that came after speech.audio.done (ignored)
        self.notes: list[str] = []
        self.decode_ms = Sample()  # base64 decoding time per delta (bounded)
        self._gap = False

    def feed(self, data: bytes) -> bytes:
        if self.error is not None:
            return b""
        if self.raw:
            return data
        self._buffer += data
        if not self._sniffed:
            head = self._buffer.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
            if len(head) < SNIFF_BYTES and b"\r" not in head and b"\n" not in head:
                return b""  # not enough to tell yet
            self._sniffed = True
            if not self._looks_like_events(self._buffer):
                self.raw = True
                self._note("the server labelled its reply text/event-stream but sent the audio itself; playing it")
                raw, self._buffer = self._buffer, b""
                return raw
        out = bytearray()
        for line in self._lines():
            if not line:
                out += self._dispatch()
                if self.error is not None:
                    break
            elif line.startswith(b"data:"):
                self._data.append(line[5:].removeprefix(b" "))
            elif line == b"data":  # a field with no colon has an empty value
                self._data.append(b"")
            # comments (":"), "event:", "id:" and "retry:" lines carry nothing we need
        return bytes(out)

    def finish(self) -> bytes:
        """The body ended: an event left without its blank line is still read."""
        if self.raw or self.error is not None:
            return b""
        if not self._sniffed and self._buffer:
            self._sniffed = True
            if not self._looks_like_events(self._buffer):
                self.raw = True
                out, self._buffer = self._buffer, b""
                return out
        tail, self._buffer = self._buffer, b""
        if tail.startswith(b"data:"):  # a last line without its line break
            self._data.append(tail.rstrip(b"\r")[5:].removeprefix(b" "))
        out = self._dispatch() if self._data else b""
        if not self.done and self.error is None:
            self._note("the event stream ended without speech.audio.done")
        return out

    def take_gap(self) -> bool:
        """True once after a delta was skipped: the audio that follows does not follow on."""
        gap, self._gap = self._gap, False
        return gap

    # -- lines and events ---------------------------------------------------------------------------
    def _lines(self) -> list[bytes]:
        """The complete lines in the buffer (CR, LF or CRLF ends one); the rest stays for the next read.
        A CR that ends the buffer is kept back: its LF may come in the next read."""
        lines: list[bytes] = []
        buf, start, n = self._buffer, 0, len(self._buffer)
        while start < n:
            cr, lf = buf.find(b"\r", start), buf.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                if cr + 1 == n:  # CR last: a CRLF may be split here
                    break
                lines.append(buf[start:cr])
                start = cr + 2 if buf[cr + 1 : cr + 2] == b"\n" else cr + 1
            else:
                lines.append(buf[start:lf])
                start = lf + 1
        self._buffer = buf[start:]
        return lines

    @staticmethod
    def _looks_like_events(head: bytes) -> bool:
        if _SSE_START.match(head):
            return True
        # a body too short for the pattern (at its end): a field name's start still counts as events
        stripped = head.removeprefix(b"\xef\xbb\xbf").lstrip(b"\r\n")
        return len(stripped) < 6 and any(name.startswith(stripped) for name in _FIELD_NAMES)

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
        if self.done:
            self.after_done += 1
            self._note("events after speech.audio.done were ignored")
            return b""
        if kind in ("speech.audio.error", "error") or (kind == "" and "error" in event):
            err = event.get("error", event)
            message = err.get("message") if isinstance(err, dict) else err
            self.error = SseError(clean_text(str(message or "the server reported an error in the stream"), 300))
            return b""
        if kind == "speech.audio.done":
            self.done = True
            usage = event.get("usage")
            self.usage = usage if isinstance(usage, dict) else None
            return b""
        if kind.endswith(".delta") or (kind == "" and ("audio" in event or "data" in event)):
            payload = event.get("audio", event.get("data"))
            if not isinstance(payload, str):
                self._skip("a delta event without base64 audio was skipped")
                return b""
            return self._decode(payload)
        return b""  # another kind of event: nothing to play

    def _decode(self, payload: str) -> bytes:
        started = time.perf_counter()
        piece = payload.strip().encode("ascii", "replace")
        if piece.translate(None, _BASE64) or b"=" in piece.rstrip(b"="):
            self._skip("a delta whose audio is not base64 was skipped")
            return b""
        if len(piece) % 4:
            self._skip(f"a delta whose base64 has a wrong length ({len(piece)} characters, not a multiple of 4) "
                       "was skipped")
            return b""
        try:
            audio = base64.b64decode(piece, validate=True)
        except (binascii.Error, ValueError):
            self._skip("a delta whose audio is not base64 was skipped")
            return b""
        self.deltas += 1
        self.decode_ms.add((time.perf_counter() - started) * 1000.0)
        return audio

    def _skip(self, note: str) -> None:
        self.skipped += 1
        self._gap = True
        self._note(note)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
