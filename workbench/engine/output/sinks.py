"""Where audio goes: a real PortAudio device, or a virtual device on a real-time clock.

A sink pulls blocks from a `JitterBuffer` on its own thread (PortAudio's callback thread, or the
virtual sink's clock thread) and works out when the first sample was really heard:

- `SoundDeviceSink` uses PortAudio's DAC time for the block (`outputBufferDacTime`), so TTFA is
  "first sound out of the device", not "first byte received".
- `VirtualSink` consumes a block every block period like a device with one block of output latency,
  optionally faster than real time for tests, and needs no PortAudio.

Either can carry a `Recorder`, which writes exactly the samples played to a WAV file.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import threading
import time
import wave
from pathlib import Path
from typing import Any

import numpy as np

from ..playout.buffer import Ctl, JitterBuffer
from ..playout.wake import BlockWake


class SinkError(Exception):
    """The sink cannot be opened or used; `str()` is meant for the user."""


class DoneSignal:
    """Set once from any thread, the audio thread included; awaited on an event loop.

    No lock: `set()` flips a flag and wakes the waiters already registered (one byte to each loop's
    self-pipe); `wait()` registers first and then checks the flag, so a `set()` between the two is
    seen either way.
    """

    def __init__(self) -> None:
        self._set = False
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        for loop, future in list(self._waiters):
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(_resolve, future)

    async def wait(self) -> None:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        self._waiters.append((loop, future))
        try:
            if not self._set:
                await future
        finally:
            self._waiters.remove((loop, future))


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Recorder:
    """Collects played blocks (a small copy per block) and writes them to a 16-bit WAV file with their
    channels."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self._blocks: collections.deque[np.ndarray] = collections.deque()

    def add(self, block: np.ndarray) -> None:  # audio thread: one small copy, no I/O
        self._blocks.append(block.copy())

    def samples(self) -> np.ndarray:
        if not self._blocks:
            return np.zeros(0, dtype=np.float32)
        return np.concatenate(list(self._blocks))

    def save(self, rate: int) -> Path | None:
        if self.path is None:
            return None
        pcm = (np.clip(self.samples(), -1.0, 1.0) * 32767.0).round().astype("<i2")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with wave.open(str(self.path), "wb") as w:
            w.setnchannels(1 if pcm.ndim == 1 else pcm.shape[1])
            w.setsampwidth(2)
            w.setframerate(rate)
            w.writeframes(pcm.tobytes())
        return self.path


class Sink:
    """Common bookkeeping; subclasses provide `open`, `start` and `close`."""

    kind = "sink"
    # silence to play ahead of the first sample when the stream starts with its first audio: a device
    # drops the first few ms it is given at its start (PulseAudio through ALSA: 2.5 to 5 ms, recorded)
    start_lead_s = 0.0

    def __init__(self, rate: int, block_size: int, recorder: Recorder | None = None, channels: int = 1) -> None:
        self.rate = rate
        self.block_size = block_size
        self.channels = channels  # asked for; a device with fewer output channels lowers it when opened
        self.recorder = recorder
        self.buffer: JitterBuffer | None = None
        self._first_heard: float | None = None
        self._first_sound: float | None = None
        self._done_at: float | None = None
        self._device_underflows = 0
        self._clock_late = 0
        self._closed_at: float | None = None
        self.latency_s = 0.0
        self.speed = 1.0  # audio seconds consumed per wall second
        self.started_at: float | None = None
        self.description = self.kind
        self._finished = DoneSignal()
        self.block_wake: BlockWake | None = None

    def wake_after_blocks(self) -> BlockWake | None:
        """A `BlockWake` notified after every block from now on, or only after those that leave the ring
        below the buffer's `Ctl.WAKE_BELOW` when that is set (call before `start`); None when this sink
        cannot tell."""
        if self.block_wake is None:
            self.block_wake = BlockWake()
        return self.block_wake

    @property
    def block_period_s(self) -> float:
        """Wall seconds between two blocks."""
        return self.block_size / self.rate / self.speed

    @property
    def first_heard(self) -> float | None:
        """perf_counter() when the first real sample was heard (the DAC's time for it)."""
        return self._first_heard

    @property
    def first_sound(self) -> float | None:
        """perf_counter() when the first sample at or above -50 dBFS was heard (`onset`): priming or a
        reply's own leading silence come before it."""
        return self._first_sound

    @property
    def done_at(self) -> float | None:
        """perf_counter() when the last block will have been heard (or when the sink was closed early)."""
        return self._done_at if self._done_at is not None else self._closed_at

    @property
    def device_underflows(self) -> int:
        """The device needed audio and the callback was late (or, virtual: the clock thread woke late)."""
        return self._device_underflows

    @property
    def clock_late(self) -> int:
        """The virtual sink only: times its clock thread woke more than a block late (a loaded machine).
        There is no device, so it has no device underflows; this is what would have been one."""
        return self._clock_late

    def _after_block(self, block: np.ndarray, buffer: JitterBuffer, heard_at: float, seconds_per_sample: float) -> None:
        """Shared per-block bookkeeping, called on the audio thread right after the buffer filled `block`."""
        if self.first_heard is None and buffer.first_audio_block == buffer.blocks_read:
            self._first_heard = heard_at + buffer.first_audio_offset * seconds_per_sample
        if self._first_sound is None and buffer.sound_block == buffer.blocks_read:
            self._first_sound = heard_at + buffer.sound_offset * seconds_per_sample
        if self.recorder is not None:
            self.recorder.add(block)
        if self.done_at is None and buffer.done:
            self._done_at = heard_at + len(block) * seconds_per_sample
            self._finished.set()
        if self.block_wake is not None:
            below = buffer.ctl[Ctl.WAKE_BELOW]
            if below <= 0 or buffer.level < below:
                self.block_wake.notify()

    def open(self) -> None:
        raise NotImplementedError

    def start(self, buffer: JitterBuffer, run: bool = True) -> None:
        """Open the stream on `buffer` and, with `run`, start it; `run()` starts one opened without (so
        the device starts with its first audio, as a blocking stream does, instead of a latency's worth
        of silence ahead of it)."""
        raise NotImplementedError

    def run(self) -> None:
        raise NotImplementedError

    @property
    def running(self) -> bool:
        return self.started_at is not None

    def close(self) -> None:
        raise NotImplementedError

    async def wait_done(self) -> None:
        """Return once the buffer is done and its last block has left the device.

        Neither polls (wake-ups cost real CPU on small machines) nor holds a worker thread while the
        reply plays out (with more plays at once than the default executor has threads, that starved
        the others' decoding: `workbench bench stress` found it).
        """
        await self._finished.wait()
        assert self.done_at is not None
        remaining = self.done_at - time.perf_counter()
        if remaining > 0:
            await asyncio.sleep(remaining)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class VirtualSink(Sink):
    """A device made of a clock: takes one block every block period on its own thread.

    Blocks are modelled as heard one block period after they are taken (one block of output latency,
    like a double-buffered device). `speed` > 1 runs the clock faster than real time, for tests. If the
    thread wakes more than a block late (a loaded machine), that counts in `clock_late`.
    """

    kind = "virtual"

    def __init__(
        self, rate: int, block_size: int, recorder: Recorder | None = None, *, speed: float = 1.0, channels: int = 1
    ) -> None:
        super().__init__(rate, block_size, recorder, channels)
        if speed <= 0:
            raise ValueError("speed must be positive")
        self.speed = speed
        self.period = block_size / rate / speed
        self.latency_s = self.period
        self.description = "virtual sink" + (f" ({speed:g}x)" if speed != 1 else "")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def open(self) -> None:
        pass

    def start(self, buffer: JitterBuffer, run: bool = True) -> None:
        self.buffer = buffer
        if run:
            self.run()

    def run(self) -> None:
        if self._thread is not None:
            return
        self.started_at = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="virtual-sink", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = self.buffer
        assert buffer is not None
        block = np.zeros((self.block_size, self.channels) if self.channels > 1 else self.block_size, dtype=np.float32)
        per_sample = 1.0 / self.rate / self.speed
        next_tick = time.perf_counter()
        while not self._stop.is_set():
            buffer.read_into(block)
            self._after_block(block, buffer, next_tick + self.latency_s, per_sample)
            if self.done_at is not None:
                break
            next_tick += self.period
            delay = next_tick - time.perf_counter()
            if delay > 0:
                time.sleep(delay)  # cheaper per wake-up than Event.wait; stop is seen within one block
            elif -delay > self.period:
                self._clock_late += 1
                next_tick = time.perf_counter()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        self._finished.set()
        if self.done_at is None:
            self._closed_at = time.perf_counter()


def device_channels(info: Any, asked: int) -> int:
    """The channels to open a device with: as asked, or as many as it has (a mono device plays mono)."""
    return max(1, min(asked, int(info.get("max_output_channels", 1) or 1)))


def import_sounddevice() -> Any:
    try:
        import sounddevice
    except OSError as exc:  # PortAudio library missing
        raise SinkError(
            f"PortAudio is not available ({exc}); install libportaudio2 or use --sink virtual"
        ) from None
    return sounddevice


def default_output_device() -> str | None:
    """Name of the default output device, or None when there is none (or no PortAudio)."""
    try:
        sd = import_sounddevice()
        info = sd.query_devices(kind="output")
    except Exception:
        return None
    if not info or int(info.get("max_output_channels", 0)) < 1:
        return None
    return str(info.get("name", "output"))


DEVICE_START_LEAD_S = 0.010


class SoundDeviceSink(Sink):
    """A PortAudio output stream (through sounddevice) with a callback that never blocks.

    The callback asks the buffer for one block (copying into PortAudio's own array), notes device
    underflows apart from buffer starvation, and converts the DAC time of the block into
    `perf_counter()` time, so the moment of first sound is what a listener hears.
    """

    kind = "device"
    start_lead_s = DEVICE_START_LEAD_S

    def __init__(
        self,
        rate: int,
        block_size: int,
        recorder: Recorder | None = None,
        *,
        device: str | int | None = None,
        latency: str | float = "low",
        channels: int = 1,
    ) -> None:
        super().__init__(rate, block_size, recorder, channels)
        self.device = device
        self.latency = latency
        self._stream: Any = None

    def open(self) -> None:
        sd = import_sounddevice()
        try:
            info = sd.query_devices(self.device, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            what = f"output device {self.device!r}" if self.device is not None else "default output device"
            raise SinkError(f"no {what} found ({exc}); use --sink virtual to play without a sound card") from None
        self.channels = device_channels(info, self.channels)
        try:
            self._stream = self._open_stream(sd, self.rate)
        except sd.PortAudioError:
            # the device refuses our rate: play at its own rate; decoders resample to it
            fallback = int(info["default_samplerate"])
            try:
                self._stream = self._open_stream(sd, fallback)
            except sd.PortAudioError as exc:
                raise SinkError(f"cannot open output device {info['name']!r}: {exc}") from None
            self.rate = fallback
        self.latency_s = float(self._stream.latency)
        self.description = f"{info['name']} @ {self.rate} Hz, {self.latency_s * 1000:.0f} ms latency"

    def _open_stream(self, sd: Any, rate: int) -> Any:
        return sd.OutputStream(
            samplerate=rate,
            blocksize=self.block_size,
            channels=self.channels,
            dtype="float32",
            device=self.device,
            latency=self.latency,
            callback=self._callback,
        )

    def start(self, buffer: JitterBuffer, run: bool = True) -> None:
        if self._stream is None:
            self.open()
        self.buffer = buffer
        if run:
            self.run()

    def run(self) -> None:
        if self._stream is None or self.started_at is not None:
            return
        self.started_at = time.perf_counter()
        self._stream.start()

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        now = time.perf_counter()
        if status.output_underflow:
            self._device_underflows += 1
        buffer = self.buffer
        block = outdata[:, 0] if self.channels == 1 else outdata
        if buffer is None:
            block.fill(0.0)
            return
        buffer.read_into(block)
        heard_at = now + (time_info.outputBufferDacTime - time_info.currentTime)
        self._after_block(block, buffer, heard_at, 1.0 / self.rate)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.stop()
            finally:
                stream.close()
        self._finished.set()
        if self.done_at is None:
            self._closed_at = time.perf_counter()
