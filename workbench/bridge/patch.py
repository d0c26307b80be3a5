"""The patch applied to `voice_mode.streaming` when voicemode imports it (see `boot`).

What it relies on in voicemode (8.12 and 9.0.x have them alike), and nothing else:
- `voice_mode.streaming.sd`: the module's reference to `sounddevice`. It becomes `SoundDeviceShim`,
  whose `OutputStream` plays through the engine (`stream.EngineOutputStream`); everything else is
  sounddevice's own. Every playback loop in that module (live PCM, the paused remainder, skip-back
  replay) then plays through the engine, while voicemode's loops, control handling, history capture,
  event log, `save_audio` and metrics run unchanged.
- `voice_mode.streaming.stream_tts_audio(text, openai_client, request_params, debug, save_audio,
  audio_dir, conversation_id)`, which `core.text_to_speech` calls for every streamed reply. It is wrapped
  so that every format goes down voicemode's own PCM loop, `stream_pcm_audio` (same arguments), with a
  client whose reply is decoded as it arrives (`decode.DecodingClient`). A format the engine cannot
  decode here (PyAV missing) goes voicemode's own way, with one log line.
- `voice_mode.streaming.SAMPLE_RATE`, the rate voicemode's PCM loop opens its stream at.
- `voice_mode.control_channel.get_control_state().snapshot()` (9.x; absent, pause and the cuts during
  the final drain are left to voicemode's own loop).

`WORKBENCH_VOICEMODE_BRIDGE=off` in voicemode's environment turns the patch off without uninstalling it.
"""

from __future__ import annotations

import contextvars
import inspect
import os
import types
from typing import Any

from ..engine.settings import SettingsError, load_settings
from .decode import DecodingClient, can_decode
from .publish import Publisher
from .stream import EngineOutputStream, warn_once

CURRENT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("workbench_reply", default=None)
MARK = "_workbench_bridge"


def disabled() -> bool:
    return os.environ.get("WORKBENCH_VOICEMODE_BRIDGE", "on").strip().lower() in ("off", "0", "false", "no")


class SoundDeviceShim(types.ModuleType):
    """`sounddevice` as voicemode's streaming module sees it with the bridge on."""

    def __init__(self, real: Any, publisher: Publisher | None, control: Any) -> None:
        super().__init__("sounddevice")
        self._real = real
        self._publisher = publisher
        self._control = control
        setattr(self, MARK, True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def OutputStream(self, *args: Any, **kwargs: Any) -> EngineOutputStream:  # sounddevice's name
        return EngineOutputStream(*args, real=self._real, control=self._control, publisher=self._publisher,
                                  describe=lambda: dict(CURRENT.get() or {}), **kwargs)


def _control_snapshot() -> Any:
    try:
        from voice_mode.control_channel import get_control_state
    except Exception:  # 8.12 without a control channel, or any breakage there
        return None
    return lambda: get_control_state().snapshot()


def install(streaming: Any) -> bool:
    """Patch voicemode's streaming module (once; a second call changes nothing). False when off."""
    if disabled():
        return False
    if getattr(streaming.sd, MARK, False):
        return True
    missing = [name for name in ("sd", "stream_tts_audio", "stream_pcm_audio", "SAMPLE_RATE")
               if not hasattr(streaming, name)]
    if missing:
        warn_once(f"not playing through the engine: voice_mode.streaming has no {', '.join(missing)} "
                  "(a voicemode this bridge does not know)")
        return False
    publisher = Publisher()
    streaming.sd = SoundDeviceShim(streaming.sd, publisher, _control_snapshot())
    original = streaming.stream_tts_audio
    signature = inspect.signature(original)

    async def stream_tts_audio(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        call = dict(bound.arguments)
        params = call.get("request_params") or {}
        fmt = str(params.get("response_format", "pcm"))
        why = can_decode(fmt)
        if why is not None:
            warn_once(f"{fmt} plays voicemode's own way: {why}")
            return await original(*args, **kwargs)
        try:
            settings = load_settings()
            pcm_rate, explicit = settings.pcm_rate, "pcm_rate" in settings.origins
        except SettingsError as exc:  # the stream says so too, and plays voicemode's way
            warn_once(f"a setting is not valid ({exc})")
            pcm_rate, explicit = int(streaming.SAMPLE_RATE), False
        call["openai_client"] = DecodingClient(call["openai_client"], fmt, out_rate=int(streaming.SAMPLE_RATE),
                                               pcm_rate=pcm_rate, pcm_explicit=explicit)
        token = CURRENT.set({"format": fmt, "voice": params.get("voice"), "text_chars": len(str(call.get("text", "")))})
        try:
            return await streaming.stream_pcm_audio(**{k: v for k, v in call.items() if k in _PCM_ARGS})
        finally:
            CURRENT.reset(token)

    stream_tts_audio.__doc__ = original.__doc__
    stream_tts_audio.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(stream_tts_audio, MARK, True)
    streaming.stream_tts_audio = stream_tts_audio
    return True


_PCM_ARGS = ("text", "openai_client", "request_params", "debug", "save_audio", "audio_dir", "conversation_id")
