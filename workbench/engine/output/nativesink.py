"""The device sink whose audio callback is C (`_playout.c`): PortAudio never waits for Python.

A PortAudio callback written in Python must take the interpreter lock for every block. Whoever holds
it (a busy UI laying out a screen, a garbage collection, a decoder) makes the device wait, and at a
20 ms block that is an audible underflow even though the jitter buffer is full (`bench tui` counted 26
in 3 plays with the workbench busy). Here PortAudio calls `wb_callback`, C that reads the jitter buffer's
ring and control words directly, keeps the same state machine as `JitterBuffer.read_into`, and notes
when the first sample was heard, device underflows and when the last block will have played.

The stream is opened through ctypes on the PortAudio library sounddevice has loaded (sounddevice still
finds the device and its latencies). The play's end reaches the event loop through a pipe: the callback
writes one byte. With a recorder, the callback copies each block into a second ring that a Python thread
drains. Where the C module was not built, `available()` is False and the Python callback is used.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import threading
import time
from typing import Any

import numpy as np

from ..playout.buffer import CTL_WORDS, Ctl, JitterBuffer
from ..playout.wake import BlockWake
from .sinks import DEVICE_START_LEAD_S, Recorder, Sink, SinkError, device_channels, import_sounddevice

PA_FLOAT32 = 0x00000001
RECORD_RING_S = 10.0  # what the callback can keep for the recorder between two drains (every 0.25 s)


class WbState(ctypes.Structure):
    _fields_ = [("ring", ctypes.POINTER(ctypes.c_float)), ("capacity", ctypes.c_int64),
                ("fade_in", ctypes.POINTER(ctypes.c_float)), ("fade_len", ctypes.c_int64),
                ("ctl", ctypes.POINTER(ctypes.c_int64)), ("record", ctypes.POINTER(ctypes.c_float)),
                ("record_capacity", ctypes.c_int64), ("rate", ctypes.c_int64), ("done_fd", ctypes.c_int),
                ("wake_fd", ctypes.c_int), ("channels", ctypes.c_int64)]


class _StreamParameters(ctypes.Structure):
    _fields_ = [("device", ctypes.c_int), ("channelCount", ctypes.c_int), ("sampleFormat", ctypes.c_ulong),
                ("suggestedLatency", ctypes.c_double), ("hostApiSpecificStreamInfo", ctypes.c_void_p)]


class _StreamInfo(ctypes.Structure):
    _fields_ = [("structVersion", ctypes.c_int), ("inputLatency", ctypes.c_double),
                ("outputLatency", ctypes.c_double), ("sampleRate", ctypes.c_double)]


_playout: Any = None
_portaudio: Any = None


def playout_library() -> Any:
    """The compiled `_playout` module as a ctypes library, or None when it was not built."""
    global _playout
    if _playout is None:
        try:
            from ..playout import _playout as module  # type: ignore[attr-defined]
        except ImportError:
            _playout = False
            return None
        lib = ctypes.CDLL(module.__file__)
        lib.wb_publish.argtypes = [ctypes.POINTER(ctypes.c_int64), ctypes.c_int64, ctypes.c_int64]
        lib.wb_publish.restype = None
        lib.wb_read.argtypes = [ctypes.POINTER(WbState), ctypes.POINTER(ctypes.c_float), ctypes.c_int64]
        lib.wb_read.restype = None
        lib.wb_control_words.restype = ctypes.c_int64
        if lib.wb_control_words() != CTL_WORDS or not hasattr(lib, "wb_frames_of_channels"):
            raise RuntimeError("the compiled _playout module does not match buffer.py: reinstall the workbench")
        _playout = lib
    return _playout or None


def available() -> bool:
    return playout_library() is not None


def _portaudio_library(sd: Any) -> Any:
    global _portaudio
    if _portaudio is None:
        lib = ctypes.CDLL(getattr(sd, "_libname", None) or "libportaudio.so.2")
        lib.Pa_OpenStream.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_void_p,
                                      ctypes.POINTER(_StreamParameters), ctypes.c_double, ctypes.c_ulong,
                                      ctypes.c_ulong, ctypes.c_void_p, ctypes.c_void_p]
        for name in ("Pa_StartStream", "Pa_StopStream", "Pa_CloseStream"):
            getattr(lib, name).argtypes = [ctypes.c_void_p]
        lib.Pa_GetStreamInfo.argtypes = [ctypes.c_void_p]
        lib.Pa_GetStreamInfo.restype = ctypes.POINTER(_StreamInfo)
        lib.Pa_GetErrorText.argtypes = [ctypes.c_int]
        lib.Pa_GetErrorText.restype = ctypes.c_char_p
        _portaudio = lib
    return _portaudio


def native_state(buffer: JitterBuffer, rate: int, record: np.ndarray | None = None, done_fd: int = -1,
                 wake_fd: int = -1) -> WbState:
    """The C callback's view of `buffer` (the arrays must outlive it: the buffer and the caller keep them)."""
    f32 = ctypes.POINTER(ctypes.c_float)
    return WbState(
        ring=buffer._ring.ctypes.data_as(f32), capacity=buffer.capacity,
        fade_in=buffer._fade_in.ctypes.data_as(f32), fade_len=buffer.fade_len,
        ctl=buffer.ctl.ctypes.data_as(ctypes.POINTER(ctypes.c_int64)),
        record=record.ctypes.data_as(f32) if record is not None else None,
        record_capacity=len(record) if record is not None else 0, rate=rate, done_fd=done_fd, wake_fd=wake_fd,
        channels=buffer.channels)


class NativeDeviceSink(Sink):
    """A PortAudio output stream whose callback is C; otherwise like `SoundDeviceSink`."""

    kind = "device"
    start_lead_s = DEVICE_START_LEAD_S

    def __init__(self, rate: int, block_size: int, recorder: Recorder | None = None, *,
                 device: str | int | None = None, latency: str | float = "low", channels: int = 1) -> None:
        super().__init__(rate, block_size, recorder, channels)
        self.device = device
        self.latency = latency
        self._stream: int | None = None
        self._pa: Any = None
        self._parameters: _StreamParameters | None = None
        self._state: WbState | None = None
        self._record: np.ndarray | None = None
        self._record_read = 0
        self._drain: threading.Thread | None = None
        self._closing = threading.Event()
        self._done_r, self._done_w = os.pipe()  # the callback writes a byte here when the play is done
        os.set_blocking(self._done_r, False)

    def wake_after_blocks(self) -> BlockWake | None:
        lib = playout_library()
        if lib is None or not hasattr(lib, "wb_wakes_after_blocks"):  # a build from before this: poll
            return None
        return super().wake_after_blocks()

    # -- what the C callback keeps ------------------------------------------------------------------
    def _word(self, index: int) -> int:
        return int(self.buffer.ctl[index]) if self.buffer is not None else 0

    @property
    def first_heard(self) -> float | None:
        ns = self._word(Ctl.FIRST_HEARD_NS)
        return ns / 1e9 if ns else None

    @property
    def first_sound(self) -> float | None:
        ns = self._word(Ctl.SOUND_HEARD_NS)
        return ns / 1e9 if ns else None

    @property
    def done_at(self) -> float | None:
        ns = self._word(Ctl.DONE_AT_NS)
        return ns / 1e9 if ns else self._closed_at

    @property
    def device_underflows(self) -> int:
        return self._word(Ctl.DEVICE_UNDERFLOWS)

    # -- opening, starting, closing -----------------------------------------------------------------
    def open(self) -> None:
        sd = import_sounddevice()
        self._pa = _portaudio_library(sd)
        try:
            info = sd.query_devices(self.device, kind="output")
        except (ValueError, sd.PortAudioError) as exc:
            what = f"output device {self.device!r}" if self.device is not None else "default output device"
            raise SinkError(f"no {what} found ({exc}); use --sink virtual to play without a sound card") from None
        latency = self.latency if isinstance(self.latency, float) else float(
            info[f"default_{self.latency}_output_latency"])
        self.channels = device_channels(info, self.channels)
        self._parameters = _StreamParameters(int(info["index"]), self.channels, PA_FLOAT32, latency, None)
        self._device_name = str(info["name"])
        self._device_rate = int(info["default_samplerate"])

    def start(self, buffer: JitterBuffer, run: bool = True) -> None:
        lib = playout_library()
        if lib is None:
            raise SinkError("the C playout module is not built")
        if self._parameters is None:
            self.open()
        assert self._parameters is not None
        self.buffer = buffer
        buffer.use_release_stores(lib.wb_publish)
        if self.recorder is not None:
            frames = int(RECORD_RING_S * self.rate)
            self._record = np.zeros((frames, self.channels) if self.channels > 1 else frames, dtype=np.float32)
        stream = ctypes.c_void_p()
        callback = ctypes.cast(lib.wb_callback, ctypes.c_void_p)
        for rate in (self.rate, self._device_rate):  # a device that refuses our rate plays at its own
            wake = self.block_wake.write_fd if self.block_wake is not None else -1
            self._state = native_state(buffer, rate, self._record, self._done_w, wake)
            err = self._pa.Pa_OpenStream(ctypes.byref(stream), None, ctypes.byref(self._parameters), float(rate),
                                         self.block_size, 0, callback, ctypes.cast(ctypes.pointer(self._state),
                                                                                  ctypes.c_void_p))
            if err == 0:
                break
        if err != 0:
            raise SinkError(f"cannot open output device {self._device_name!r}: "
                            f"{self._pa.Pa_GetErrorText(err).decode(errors='replace')}")
        if rate != self.rate:  # the decoders resample to the rate the device plays at
            raise SinkError(f"output device {self._device_name!r} refused {self.rate} Hz")
        self._stream = stream.value
        self.latency_s = float(self._pa.Pa_GetStreamInfo(self._stream).contents.outputLatency)
        self.description = f"{self._device_name} @ {self.rate} Hz, {self.latency_s * 1000:.0f} ms latency"
        if self._record is not None:
            self._drain = threading.Thread(target=self._drain_records, name="record-drain", daemon=True)
            self._drain.start()
        if run:
            self.run()

    def run(self) -> None:
        if self._stream is None or self.started_at is not None:
            return
        self.started_at = time.perf_counter()
        err = self._pa.Pa_StartStream(self._stream)
        if err != 0:
            raise SinkError(f"cannot start output device {self._device_name!r}: "
                            f"{self._pa.Pa_GetErrorText(err).decode(errors='replace')}")

    def _drain_records(self) -> None:
        while not self._closing.wait(0.25):
            self._take_records()
        self._take_records()

    def _take_records(self) -> None:
        """Move what the callback copied since the last time into the recorder (a wrapped ring)."""
        ring, recorder = self._record, self.recorder
        if ring is None or recorder is None or self.buffer is None:
            return
        written = int(self.buffer.ctl[Ctl.REC_WRITE])
        start = max(self._record_read, written - len(ring))  # anything older was overwritten
        n, i = written - start, start % len(ring)
        if n > 0:
            wrapped = i + n > len(ring)
            recorder.add(np.concatenate([ring[i:], ring[: i + n - len(ring)]]) if wrapped else ring[i : i + n])
        self._record_read = written

    async def wait_done(self) -> None:
        """Return once the buffer is done and its last block has left the device; the C callback says so
        through the pipe, so nothing polls and no thread waits."""
        loop = asyncio.get_running_loop()
        if self.done_at is None:
            done: asyncio.Future[None] = loop.create_future()

            def readable() -> None:
                if not done.done():
                    done.set_result(None)

            loop.add_reader(self._done_r, readable)
            try:
                await done
            finally:
                loop.remove_reader(self._done_r)
        remaining = (self.done_at or time.perf_counter()) - time.perf_counter()
        if remaining > 0:
            await asyncio.sleep(remaining)

    def close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self._pa.Pa_StopStream(stream)
            self._pa.Pa_CloseStream(stream)
        self._closing.set()
        if self._drain is not None and self._drain is not threading.current_thread():
            self._drain.join(timeout=2.0)
        if self._closed_at is None and not self._word(Ctl.DONE_AT_NS):
            self._closed_at = time.perf_counter()
        try:
            os.write(self._done_w, b"\1")  # wake a waiter: there will be no more blocks
        except OSError:
            pass
        self._finished.set()

    def __del__(self) -> None:
        for fd in (self._done_r, self._done_w):
            try:
                os.close(fd)
            except OSError:
                pass
