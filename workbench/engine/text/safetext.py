"""Text from outside (a server's error message, a response body, an FFmpeg message) made safe to show.

A server can send anything: a megabyte of JSON, escape sequences that clear the screen or retitle
the window, control characters that break a log line. Everything the workbench shows or logs that
did not come from us goes through `clean_text` first: control characters and escape sequences
removed, whitespace runs (line breaks included) made one space, and the whole cut to a length a
person reads.
"""

from __future__ import annotations

import re

# CSI (ESC [ ... final byte), OSC (ESC ] ... BEL or ESC \), and any other two-byte escape
_ESCAPES = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]?|\x9b[0-?]*[ -/]*[@-~]")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff\u200b-\u200f\u202a-\u202e\u2066-\u2069]")
_SPACES = re.compile(r"\s+")
MESSAGE_LIMIT = 300  # characters of an outside message shown or logged


def clean_text(text: object, limit: int = MESSAGE_LIMIT) -> str:
    """`text` on one line, without escapes or control characters, at most `limit` characters."""
    s = text if isinstance(text, str) else str(text)
    if len(s) > limit * 8:  # never run the patterns over a megabyte to keep a few hundred characters
        s = s[: limit * 8]
    s = _ESCAPES.sub("", s)
    s = _CONTROLS.sub("", s.replace("\t", " ").replace("\n", " ").replace("\r", " "))
    s = _SPACES.sub(" ", s).strip()
    # lone surrogates (from undecodable bytes) cannot be printed or written as UTF-8
    s = s.encode("utf-8", "replace").decode("utf-8")
    return s if len(s) <= limit else s[: limit - 1].rstrip() + "…"


_SPOKEN_CONTROLS = re.compile(  # all but line breaks and tabs; bidi and zero-width marks too
    r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ufeff\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def speakable_text(text: str) -> tuple[str, int]:
    """Text to send to a TTS server: escape sequences and control characters out (line breaks and tabs
    stay, a CR becomes a line break), and how many characters went. A terminal's colour codes pasted
    into a reply, or a NUL, would otherwise reach the server: some read them out, some fail on them."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n")
    cleaned = _SPOKEN_CONTROLS.sub("", _ESCAPES.sub("", lines))
    removed = len(lines) - len(cleaned)
    return cleaned.replace("\u2028", "\n").replace("\u2029", "\n\n"), removed
