"""A sounddevice-like `OutputStream` that plays through this engine: what voicemode's playback loops get
instead of `sounddevice.OutputStream` when the bridge is on.

voicemode opens a stream, `start()`s it, `write()`s 16-bit (or float) blocks as they arrive, and ends
with `stop()` (play what is left, then stop) or `abort()` (cut now). Here `start()` opens the device and
starts the jitter buffer and elastic playout (`BridgePlayout`); `write()` hands the samples to it and
waits only while the buffer is full (the real `write()` blocks too, for as long as the device needs);
`stop()` plays the rest out; `abort()` cuts within a block, with a 5 ms fade.

While a stream is open a watcher thread follows voicemode's control state: a pause holds the playout at
the sample where it is (voicemode stops writing, but a second of buffered audio would otherwise play on),
resume continues from there, and a stop, a skip forward or a skip back cut the audio at once even while
`stop()` is playing the rest out (voicemode looks at its control state only between chunks).

When the engine cannot start (no PortAudio, no device, a bad setting, a bug), the stream becomes the real
`sounddevice.OutputStream`, opened with voicemode's own arguments, and the reason is logged once: the
reply plays voicemode's way, once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from ..engine.decoding.base import Resampler
from ..engine.output.sinkfactory import make_sink
from ..engine.output.sinks import Sink
from ..engine.output.start import build_chain
from ..engine.playout.buffer import Ctl
from ..engine.settings import Settings, load_settings
from .publish import Publisher, ReplyFigures

log = logging.getLogger("voicemode.workbench_bridge")
WATCH_S = 0.02  # how often the control state is looked at while a stream is open

ControlSnapshot = Callable[[], Any]  # voicemode's get_control_state().snapshot, or None
_warned: set[str] = set()


def warn_once(reason: str) -> None:
    """Log `reason` the first time only: a bridge that cannot work says so once, not on every reply."""
    if reason not in _warned:
        _warned.add(reason)
        log.warning("workbench bridge: %s", reason)


class BridgePlayout:
    """The engine's playout for one voicemode stream: the device sink, the jitter buffer and (with
    `WORKBENCH_PLAYOUT=elastic`, the default) elastic playout, built from the same settings the workbench
    reads (voicemode.env files and the environment)."""

    def __init__(self, settings: Settings, in_rate: int, publisher: Publisher | None = None,
                 sink: Sink | None = None) -> None:
        self.settings = s = settings
        if sink is None:
            sink, notice = make_sink(s.sink if s.sink != "auto" else "device", rate=s.output_rate,
                                     block_size=s.block_size, device=s.output_device)
            if notice:
                warn_once(notice)
        self.sink = sink
        self.sink.open()  # raises SinkError: the caller falls back to voicemode's own stream
        rate = self.sink.rate
        chain = build_chain(s, self.sink, float(s.buffer_ms), trailing_silence_s=0.0)
        self.buffer, self.elastic, self.feed = chain.buffer, chain.elastic, chain.feed
        target = chain.target_ms
        self.resampler = Resampler(in_rate, rate)
        playout = "elastic" if chain.elastic is not None else "fixed"
        self.figures = ReplyFigures(playout=playout, buffer_target_ms=target, max_buffer_ms=s.max_buffer_s * 1000)
        self.publisher = publisher
        self.started = time.perf_counter()
        self.first_write: float | None = None
        self.received = 0  # samples handed to the feed
        self.closed = False
        # started when the ring can start, by the engine's own rule: voicemode opens and starts its stream
        # before the request
        chain.start()

    def write(self, samples: np.ndarray, stopped: Callable[[], bool]) -> None:
        """Hand `samples` (float32 mono at the stream's rate) on, waiting while the buffer is full."""
        if self.closed:
            return
        self._hand_on(self.resampler.process(samples), stopped)

    def _hand_on(self, samples: np.ndarray, stopped: Callable[[], bool]) -> None:
        if self.first_write is None and len(samples):
            self.first_write = time.perf_counter()
        self.received += len(samples)
        off = 0
        while off < len(samples):
            off += self.feed.write(samples[off:])
            if off < len(samples):
                if stopped() or self.buffer.done:
                    return
                time.sleep(self.sink.block_period_s)

    def pause(self) -> None:
        self.feed.pause()

    def resume(self) -> None:
        self.feed.resume()

    @property
    def paused(self) -> bool:
        return self.buffer.paused

    def finish(self, cut: Callable[[], bool]) -> None:
        """No more audio: play the rest out (elastic playout plays it at 1.0), then close. `cut` is
        asked while waiting: true, and what is left is faded out at once."""
        if self.closed:
            return
        if not self.feed.ended:
            tail = self.resampler.process(np.zeros(0, dtype=np.float32), last=True)  # what it held back
            if len(tail):
                self._hand_on(tail, cut)
            self.feed.end()
        while self.sink.running and not self.buffer.done and self.sink.done_at is None:  # never ran: nothing to play
            if cut():
                self.buffer.stop()
            time.sleep(self.sink.block_period_s)
        self.close()

    def abort(self) -> None:
        """Cut now: the device fades out within a block."""
        self.buffer.stop()
        deadline = time.perf_counter() + 0.2
        while self.sink.running and not self.buffer.done and time.perf_counter() < deadline:
            time.sleep(self.sink.block_period_s / 2)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.elastic is not None:
            self.elastic.stop()
        self.sink.close()
        self._final_figures()

    # -- figures --------------------------------------------------------------------------------------
    def live(self) -> ReplyFigures:
        f = self.figures
        b = self.buffer
        rate = b.rate
        f.level_ms = self.feed.level_ms
        f.target_ms = self.feed.target_ms
        f.rate = self.elastic.rate if self.elastic is not None else 1.0
        f.received_ms = self.received * 1000.0 / rate
        f.played_ms = b.played_samples * 1000.0 / rate
        f.underruns = b.underruns
        f.underrun_ms = b.underrun_ms
        f.paused_ms = b.paused_ms
        f.paused = b.paused
        sound = self.sink.first_sound
        if sound is not None and self.first_write is not None:
            f.first_write_to_sound_ms = (sound - self.first_write) * 1000.0
        f.elapsed_ms = (time.perf_counter() - self.started) * 1000.0
        return f

    def _final_figures(self) -> None:
        f = self.live()
        f.state = "stopped" if self.buffer.ctl[Ctl.STOP] else "done"  # cut by abort() or voicemode's control
        f.device_underflows = self.sink.device_underflows
        f.avg_buffer_ms = self.buffer.avg_level_ms
        f.min_buffer_ms = self.buffer.min_level_ms
        if self.elastic is not None:
            f.stretch_added_ms = self.elastic.added_ms
            f.stretch_removed_ms = self.elastic.removed_ms
            f.min_rate, f.max_rate = self.elastic.min_rate, self.elastic.max_rate
        f.ended = True
        if self.publisher is not None:
            self.publisher.reply(f)


class EngineOutputStream:
    """What voicemode gets for `sd.OutputStream(...)`: plays through `BridgePlayout`, or, when the engine
    cannot start, is the real stream (`fallback`)."""

    def __init__(self, *args: Any, real: Any, control: ControlSnapshot | None = None,
                 settings: Callable[[], Settings] = load_settings, publisher: Publisher | None = None,
                 describe: Callable[[], dict[str, Any]] | None = None, **kwargs: Any) -> None:
        self._args, self._kwargs = args, kwargs
        self._real = real  # the sounddevice module
        self._control = control
        self._settings = settings
        self._publisher = publisher
        self._describe = describe or dict
        self.samplerate = float(kwargs.get("samplerate") or (args[0] if args else 24_000))
        self.channels = int(kwargs.get("channels") or 1)
        self.dtype = str(kwargs.get("dtype") or "float32")
        self.engine: BridgePlayout | None = None
        self.fallback: Any = None
        self._watcher: threading.Thread | None = None
        self._closing = threading.Event()
        self._cut = threading.Event()  # a stop or a transport request came: cut, whatever is playing

    # -- sounddevice's surface, as voicemode uses it ----------------------------------------------------
    def start(self) -> None:
        if self.engine is not None or self.fallback is not None:
            return
        try:
            settings = self._settings()
            self.engine = BridgePlayout(settings, int(self.samplerate), self._publisher)
            self.engine.figures.update(self._describe())
        except Exception as exc:  # any failure before the first sample plays voicemode's way
            warn_once(f"playing voicemode's own way: the engine could not start ({type(exc).__name__}: {exc})")
            self.engine = None
            self.fallback = self._real.OutputStream(*self._args, **self._kwargs)
            self.fallback.start()
            return
        if self._control is not None or self._publisher is not None:
            self._watcher = threading.Thread(target=self._watch, name="workbench-bridge-watch", daemon=True)
            self._watcher.start()

    def write(self, data: Any) -> bool:
        if self.fallback is not None:
            return bool(self.fallback.write(data))
        if self.engine is None:
            self.start()
            if self.fallback is not None:
                return bool(self.fallback.write(data))
        assert self.engine is not None
        self.engine.write(self._to_float(data), self._cut.is_set)
        return False  # sounddevice: True when the device underflowed (the engine counts those itself)

    def stop(self, ignore_errors: bool = True) -> None:
        if self.fallback is not None:
            self.fallback.stop()
            return
        if self.engine is not None:
            self.engine.finish(self._cut.is_set)
            self._end_watch()

    def abort(self, ignore_errors: bool = True) -> None:
        if self.fallback is not None:
            self.fallback.abort()
            return
        if self.engine is not None:
            self.engine.abort()
            self._end_watch()

    def close(self, ignore_errors: bool = True) -> None:
        if self.fallback is not None:
            self.fallback.close()
            return
        if self.engine is not None:
            self.engine.close()
            self._end_watch()

    @property
    def latency(self) -> float:
        if self.fallback is not None:
            return float(self.fallback.latency)
        return self.engine.sink.latency_s if self.engine is not None else 0.0

    @property
    def active(self) -> bool:
        if self.fallback is not None:
            return bool(self.fallback.active)
        return self.engine is not None and not self.engine.closed

    @property
    def stopped(self) -> bool:
        return not self.active

    def __enter__(self) -> EngineOutputStream:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- the rest -----------------------------------------------------------------------------------------
    def _to_float(self, data: Any) -> np.ndarray:
        a = np.asarray(data)
        if a.dtype == np.int16:
            x = a.astype(np.float32) * (1.0 / 32768.0)
        elif a.dtype == np.int32:
            x = a.astype(np.float32) * (1.0 / 2147483648.0)
        elif a.dtype == np.uint8:
            x = (a.astype(np.float32) - 128.0) * (1.0 / 128.0)
        else:
            x = a.astype(np.float32, copy=False)
        if x.ndim == 2 and x.shape[1] > 1:
            x = x.mean(axis=1, dtype=np.float32)
        elif x.ndim == 1 and self.channels > 1:
            x = x[: len(x) // self.channels * self.channels].reshape(-1, self.channels).mean(axis=1, dtype=np.float32)
        return np.ascontiguousarray(x.reshape(-1), dtype=np.float32)

    def _watch(self) -> None:
        """Follow voicemode's control state while the stream is open, and publish the live figures."""
        engine = self.engine
        assert engine is not None
        ticks = 0
        while not self._closing.wait(WATCH_S):
            if self._control is not None:
                try:
                    snap = self._control()
                except Exception:  # voicemode's state must never break playback
                    snap = None
                if snap is not None:
                    if snap.is_stopped or getattr(snap, "is_skip_forward", False) or snap.pending_transport:
                        self._cut.set()
                        engine.buffer.stop()  # within a block, faded; voicemode aborts the stream next
                    elif snap.is_paused and not engine.paused:
                        engine.pause()
                    elif not snap.is_paused and engine.paused:
                        engine.resume()
            ticks += 1
            if self._publisher is not None and ticks % 10 == 0:  # 5 times a second
                self._publisher.live(engine.live())

    def _end_watch(self) -> None:
        self._closing.set()
        if self._watcher is not None and self._watcher is not threading.current_thread():
            self._watcher.join(timeout=1.0)
        if self._publisher is not None and self.engine is not None:
            self._publisher.live(None)
