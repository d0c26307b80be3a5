"""What voicemode does with each key a preset carries, so that no preset claims more than it delivers.

Read from voicemode's source (`voice_mode/config.py`, `core.py`, `streaming.py`; 8.12 to 9.0.x play
alike, and 9.0.1's code is 9.0.0's): it reads `VOICEMODE_STREAM_BUFFER_MS` and
`VOICEMODE_STREAM_MAX_BUFFER` and never uses them in playback. What changes its playback: streaming
on or off, the chunk size, the format, the trailing silence (and the endpoint, voice and speed).
The version targeted is the installed one when `voice-mode` is installed here, else 9.0.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..engine.vmplayer import VOICEMODE_VERSION as KNOWN  # the release these notes describe (8.12 and 9.0.x alike)
from ..engine.vmplayer import installed_voicemode


@dataclass(frozen=True)
class KeyUse:
    used: bool | None  # True: changes voicemode's playback; False: read, not used; None: not voicemode's
    what: str


KEY_USE: dict[str, KeyUse] = {
    "VOICEMODE_STREAMING_ENABLED": KeyUse(True, "on: PCM plays as it arrives, MP3 its first 32 KB then the rest "
                                          "after the download, Opus after the download, WAV only its first 32 KB; "
                                          "off: the whole reply first"),
    "VOICEMODE_STREAM_CHUNK_SIZE": KeyUse(True, "each read is collected to this many bytes before it is played or "
                                          "decoded"),
    "VOICEMODE_STREAM_BUFFER_MS": KeyUse(False, "read, not used"),
    "VOICEMODE_STREAM_MAX_BUFFER": KeyUse(False, "read, not used"),
    "VOICEMODE_TTS_AUDIO_FORMAT": KeyUse(True, "the format asked for; AAC and FLAC never stream"),
    "VOICEMODE_TTS_TRAILING_SILENCE": KeyUse(True, "silence added after the reply (not in PCM streaming)"),
}


@dataclass(frozen=True)
class Target:
    version: str  # the voicemode these notes are for
    installed: str | None  # the version installed here, if any
    checked: bool  # False: the installed version is newer than what the notes were read from

    @property
    def caveat(self) -> str | None:
        if self.installed is None or self.checked:
            return None
        return f"voicemode {self.installed} is installed; these notes were read from {KNOWN}'s source"


def target() -> Target:
    installed, checked = installed_voicemode()
    if installed is None:
        return Target(KNOWN, None, True)
    return Target(installed if checked else KNOWN, installed, checked)


def unused_line(t: Target) -> str:
    """The comment above a key voicemode reads but does not use."""
    return f"voicemode {t.version} reads this but does not use it: kept for this engine, and for when voicemode does"


def key_notes(keys: list[str], t: Target | None = None) -> list[str]:
    """One line per key: whether the targeted voicemode uses it, and how."""
    t = t or target()
    width = max((len(k) for k in keys), default=0)
    out = []
    for key in keys:
        use = KEY_USE.get(key)
        if use is None:
            verdict = "this engine only (voicemode ignores it)" if not key.startswith("VOICEMODE_") else \
                "voicemode's, not a stream setting"
        elif use.used:
            verdict = f"used by voicemode {t.version}: {use.what}"
        else:
            verdict = f"NOT used by voicemode {t.version} ({use.what}); this engine uses it"
        out.append(f"{key:<{width}}  {verdict}")
    if t.caveat:
        out.append(t.caveat)
    return out


def summary(keys: list[str], t: Target | None = None) -> str:
    """The same in a few sentences, for a dialog."""
    t = t or target()
    used = [k for k in keys if KEY_USE.get(k, KeyUse(None, "")).used is True]
    unused = [k for k in keys if KEY_USE.get(k, KeyUse(None, "")).used is False]
    ours = [k for k in keys if k not in KEY_USE]
    parts = []
    if used:
        parts.append(f"voicemode {t.version} uses {', '.join(_short(k) for k in used)}.")
    if unused:
        parts.append(f"It reads but does not use {' and '.join(_short(k) for k in unused)}: kept for this engine, "
                     "and for when voicemode does.")
    if ours:
        parts.append(f"{', '.join(ours)}: this engine's only; voicemode ignores {'it' if len(ours) == 1 else 'them'}.")
    if t.caveat:
        parts.append(t.caveat + ".")
    return " ".join(parts)


SHORT = {"VOICEMODE_STREAMING_ENABLED": "streaming on/off", "VOICEMODE_STREAM_CHUNK_SIZE": "the chunk size",
         "VOICEMODE_STREAM_BUFFER_MS": "the buffer", "VOICEMODE_STREAM_MAX_BUFFER": "the max buffer",
         "VOICEMODE_TTS_AUDIO_FORMAT": "the format", "VOICEMODE_TTS_TRAILING_SILENCE": "the trailing silence"}


def _short(key: str) -> str:
    return SHORT.get(key, key)
