"""What voicemode does with each key a preset carries, so that no preset claims more than it delivers.

Read from voicemode's source (`voice_mode/config.py`, `core.py`, `streaming.py`; 8.12 to 9.0.x play
alike, and 9.0.1's code is 9.0.0's): it reads `VOICEMODE_STREAM_BUFFER_MS` and
`VOICEMODE_STREAM_MAX_BUFFER` and never uses them in playback. What changes its playback: streaming
on or off, the chunk size, the format, the trailing silence (and the endpoint, voice and speed).
The version targeted is the installed one when `voice-mode` is installed here, else 9.0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


# what each key does when voicemode plays through this engine (`workbench voicemode enable`)
BRIDGED: dict[str, str] = {
    "VOICEMODE_STREAMING_ENABLED": "on: pcm, mp3, opus and wav play through this engine as they arrive; off: "
                                   "voicemode's buffered path, as without the bridge",
    "VOICEMODE_STREAM_CHUNK_SIZE": "the largest piece handed on at a time; bytes are no longer held back until a "
                                   "chunk is full",
    "VOICEMODE_STREAM_BUFFER_MS": "the buffer target: elastic playout grows to it as it plays, fixed playout waits "
                                  "for it",
    "VOICEMODE_STREAM_MAX_BUFFER": "the most audio this engine holds ahead of what is playing",
    "VOICEMODE_TTS_AUDIO_FORMAT": "the format asked for; aac and flac still go voicemode's buffered way",
    "VOICEMODE_TTS_TRAILING_SILENCE": "not used: a streamed reply ends where its audio does (faded over 5 ms)",
}
# this engine's own keys that voicemode's replies play with, with the bridge on
BRIDGE_ENGINE_KEYS = frozenset({"WORKBENCH_PLAYOUT", "WORKBENCH_SLOWEST_RATE", "WORKBENCH_FASTEST_RATE",
                                "WORKBENCH_OUTPUT_DEVICE", "WORKBENCH_SINK", "WORKBENCH_BLOCK_SIZE",
                                "WORKBENCH_OUTPUT_RATE", "WORKBENCH_PCM_RATE"})


def bridge_on(home: Path | None = None) -> bool:
    """Whether `workbench voicemode enable` is in effect (from what it recorded: no interpreter is run)."""
    from .bridge import is_ours, read_manifest

    manifest = read_manifest(home)
    return manifest is not None and is_ours(Path(manifest.pth))


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


def key_notes(keys: list[str], t: Target | None = None, bridged: bool | None = None) -> list[str]:
    """One line per key: whether the targeted voicemode uses it, and how; then what it does with the
    bridge on (`bridged`: whether it is on, None to look)."""
    t = t or target()
    on = bridge_on() if bridged is None else bridged
    width = max((len(k) for k in keys), default=0)
    out = []
    for key in keys:
        use = KEY_USE.get(key)
        if use is None:
            engine = not key.startswith("VOICEMODE_")
            verdict = "this engine only (voicemode ignores it)" if engine else "voicemode's, not a stream setting"
            with_bridge = None
            if engine:
                with_bridge = "voicemode's replies play with it" if key in BRIDGE_ENGINE_KEYS else \
                    "not used (it is for the workbench's own plays)"
        elif use.used:
            verdict = f"used by voicemode {t.version}: {use.what}"
            with_bridge = BRIDGED.get(key)
        else:
            verdict = f"NOT used by voicemode {t.version} ({use.what}); this engine uses it"
            with_bridge = BRIDGED.get(key)
        out.append(f"{key:<{width}}  {verdict}")
        if with_bridge:
            out.append(f"{'':<{width}}  with the bridge {'(on now)' if on else '(off now)'}: {with_bridge}")
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
    if bridge_on():
        parts.append("The voicemode bridge is on: voicemode plays through this engine, and the buffer keys take "
                     "effect.")
    else:
        parts.append("With the voicemode bridge on (workbench voicemode enable), voicemode plays through this engine "
                     "and the buffer keys take effect.")
    if t.caveat:
        parts.append(t.caveat + ".")
    return " ".join(parts)


SHORT = {"VOICEMODE_STREAMING_ENABLED": "streaming on/off", "VOICEMODE_STREAM_CHUNK_SIZE": "the chunk size",
         "VOICEMODE_STREAM_BUFFER_MS": "the buffer", "VOICEMODE_STREAM_MAX_BUFFER": "the max buffer",
         "VOICEMODE_TTS_AUDIO_FORMAT": "the format", "VOICEMODE_TTS_TRAILING_SILENCE": "the trailing silence"}


def _short(key: str) -> str:
    return SHORT.get(key, key)
