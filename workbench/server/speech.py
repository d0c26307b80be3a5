"""Speech for the embedded server: espeak-ng through the `espeakng-loader` wheel, Piper where a neural
voice is installed (`neural`), and a test signal.

espeak-ng synthesises in small callback chunks far faster than real time; we resample to 24 kHz mono
float32 as it goes. Its library holds global state, so one lock serialises synthesis (it is fast
enough that this is no bottleneck: the server paces delivery, not synthesis).

The `test-signal` voice is a phase-continuous 440 Hz sine at -6 dBFS lasting as long as speech of the
same text would (by a words-per-minute estimate), with no pause anywhere, so any gap, repeat or skip
a client makes is visible.
"""

from __future__ import annotations

import ctypes
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator

import numpy as np
import soxr

OUTPUT_RATE = 24_000
TEST_SIGNAL_VOICE = "test-signal"
TEST_TONE_HZ = 440.0
TEST_TONE_AMPLITUDE = 10 ** (-6 / 20)  # -6 dBFS
WORDS_PER_MINUTE = 175  # espeak's default rate; also used to size the test signal

# OpenAI and Kokoro voice names -> espeak-ng voice (language+variant). Distinct voices stay distinct.
VOICE_MAP: dict[str, str] = {
    "alloy": "en-us",
    "echo": "en-us+m3",
    "fable": "en-gb-x-rp",
    "onyx": "en-us+m7",
    "nova": "en-us+f2",
    "shimmer": "en-us+f4",
    "ash": "en-us+m2",
    "ballad": "en-gb+m4",
    "coral": "en-us+f3",
    "sage": "en-gb+f1",
    "verse": "en-us+m5",
    "marin": "en-us+f5",
    "cedar": "en-us+m6",
    # Kokoro names voicemode uses by default
    "af_sky": "en-us+f3",
    "af_bella": "en-us+f2",
    "af_heart": "en-us+f4",
    "am_adam": "en-us+m3",
    "bf_emma": "en-gb+f2",
    "bm_george": "en-gb+m3",
}


def voices() -> list[str]:
    from . import neural

    return [*VOICE_MAP, *neural.voices(), TEST_SIGNAL_VOICE]


def estimate_duration_s(text: str, speed: float = 1.0) -> float:
    """How long espeak takes to say `text` at its default rate (a words-per-minute estimate)."""
    words = max(1, len(text.split()))
    return max(0.25, words * 60.0 / WORDS_PER_MINUTE / speed)


def test_signal(text: str, speed: float = 1.0, chunk_samples: int = 2400) -> Iterator[np.ndarray]:
    """A phase-continuous sine in chunks, as long as speech of `text` would be."""
    total = int(round(estimate_duration_s(text, speed) * OUTPUT_RATE))
    step = 2.0 * math.pi * TEST_TONE_HZ / OUTPUT_RATE
    for start in range(0, total, chunk_samples):
        n = min(chunk_samples, total - start)
        idx = np.arange(start, start + n, dtype=np.float64)
        yield (TEST_TONE_AMPLITUDE * np.sin(step * idx)).astype(np.float32)


class SpeechError(Exception):
    pass


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
AUDIO_OUTPUT_SYNCHRONOUS = 2
POS_CHARACTER = 1
ESPEAK_CHARS_UTF8 = 1
ESPEAK_RATE = 1


class Espeak:
    """A thin ctypes binding to libespeak-ng (only what synthesis needs)."""

    _instance: Espeak | None = None
    _lock = threading.Lock()

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as exc:  # pragma: no cover - a dependency of the package
            raise SpeechError("espeakng-loader is not installed") from exc
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib = self._lib
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_Synth.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_Synth.restype = ctypes.c_int
        data = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 100, data, 0)
        if rate <= 0:
            raise SpeechError(f"espeak-ng failed to initialise (returned {rate})")
        self.rate = rate
        self._sink: Callable[[np.ndarray], bool] | None = None
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # keep a reference for the library's lifetime
        lib.espeak_SetSynthCallback(self._callback)

    @classmethod
    def get(cls) -> Espeak:
        with cls._lock:
            if cls._instance is None:
                cls._instance = Espeak()
            return cls._instance

    def _on_audio(self, wav: ctypes.POINTER(ctypes.c_short), n: int, _events: int) -> int:  # type: ignore[valid-type]
        if n > 0 and wav and self._sink is not None:
            samples = np.ctypeslib.as_array(wav, shape=(n,)).astype(np.float32) * (1.0 / 32768.0)
            if not self._sink(samples):
                return 1  # abort synthesis
        return 0

    def synthesize(self, text: str, voice: str, speed: float, on_audio: Callable[[np.ndarray], bool]) -> None:
        """Speak `text`, calling `on_audio` with float32 chunks at `self.rate`; it returns False to abort."""
        with self._lock:
            espeak_voice = VOICE_MAP.get(voice, "en-us")
            if self._lib.espeak_SetVoiceByName(espeak_voice.encode()) != 0:
                self._lib.espeak_SetVoiceByName(b"en-us")
            self._lib.espeak_SetParameter(ESPEAK_RATE, int(max(80, min(450, WORDS_PER_MINUTE * speed))), 0)
            self._sink = on_audio
            try:
                data = text.encode("utf-8") + b"\0"
                err = self._lib.espeak_Synth(data, len(data), 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
                if err != 0:
                    raise SpeechError(f"espeak-ng could not synthesise (error {err})")
            finally:
                self._sink = None


class _SpeechCache:
    """The last utterances synthesised, whole, so the same request gets the same audio.

    espeak-ng carries state from one utterance to the next (the same text comes out a few samples
    longer or shorter each time), and a broken stream can only be resumed from a byte if the reply is
    the same: like a server that keeps what it generated, this keeps the last `MAX_ITEMS` utterances
    (at most `MAX_SAMPLES` samples in all).
    """

    MAX_ITEMS = 64
    MAX_SAMPLES = 20_000_000  # 80 MB of float32

    def __init__(self) -> None:
        self._items: OrderedDict[tuple[str, str, float], list[np.ndarray]] = OrderedDict()
        self._samples = 0
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, float]) -> list[np.ndarray] | None:
        with self._lock:
            chunks = self._items.get(key)
            if chunks is not None:
                self._items.move_to_end(key)
            return chunks

    def put(self, key: tuple[str, str, float], chunks: list[np.ndarray]) -> None:
        size = sum(len(c) for c in chunks)
        if size > self.MAX_SAMPLES:
            return
        with self._lock:
            if key in self._items:
                return
            self._items[key] = chunks
            self._samples += size
            while self._samples > self.MAX_SAMPLES or len(self._items) > self.MAX_ITEMS:
                _, old = self._items.popitem(last=False)
                self._samples -= sum(len(c) for c in old)


SPEECH_CACHE = _SpeechCache()


def synthesize_speech(text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
    """Speech as float32 chunks at 24 kHz, produced progressively: Piper for a neural voice installed
    here (`neural.voices()`), espeak-ng for every other name.

    Synthesis runs on a worker thread; chunks are handed over through a small queue, so the first
    chunk is available long before the utterance is finished. A finished utterance is kept
    (`SPEECH_CACHE`): the same request again gets the same audio.
    """
    import queue

    key = (text, voice, float(speed))
    cached = SPEECH_CACHE.get(key)
    if cached is not None:
        yield from cached
        return
    from .neural import PiperEngine

    engine: Espeak | PiperEngine = PiperEngine.get(voice) or Espeak.get()
    produced: list[np.ndarray] = []
    # unbounded: synthesis holds espeak's global lock, so it must never wait on a paced consumer
    # (that would serialise concurrent requests); an utterance is small (4096 chars ~ 4 MB of float32)
    chunks: queue.Queue[np.ndarray | None | BaseException] = queue.Queue()
    cancelled = threading.Event()
    resampler = soxr.ResampleStream(engine.rate, OUTPUT_RATE, 1, dtype="float32")

    def on_audio(samples: np.ndarray) -> bool:
        out = resampler.resample_chunk(samples)
        produced.append(out)
        while not cancelled.is_set():
            try:
                chunks.put(out, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        try:
            engine.synthesize(text, voice, speed, on_audio)
            if not cancelled.is_set():
                tail = resampler.resample_chunk(np.zeros(0, dtype=np.float32), last=True)
                chunks.put(tail)
                kept = [c for c in (*produced, tail) if len(c)]
                for c in kept:
                    c.setflags(write=False)  # shared by every reply that uses it
                SPEECH_CACHE.put(key, kept)
            chunks.put(None)
        except BaseException as exc:  # handed to the consumer
            chunks.put(exc)

    worker = threading.Thread(target=run, name="speech", daemon=True)
    worker.start()
    try:
        while True:
            item = chunks.get()
            if item is None:
                return
            if isinstance(item, BaseException):
                raise item
            if len(item):
                yield item
    finally:
        cancelled.set()


def synthesize(text: str, voice: str, speed: float = 1.0) -> Iterator[np.ndarray]:
    if voice == TEST_SIGNAL_VOICE:
        return test_signal(text, speed)
    return synthesize_speech(text, voice, speed)
