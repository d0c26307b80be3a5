"""voicemode 9.0's playback, modelled: what voicemode's users hear today, measured by our own sinks.

Read from voicemode 9.0.0's source (`voice_mode/core.py`, `streaming.py`, `config.py`, `audio_player.py`;
8.12 and 9.0.1 play alike) and reproduced step for step, so that "voicemode today" and "this engine" can
be compared on the same text, endpoint, network and device:

- **The format.** An endpoint whose URL does not contain "openai" is treated as Kokoro, which has no
  AAC: AAC is asked for as Opus there.
- **Streaming** (`VOICEMODE_STREAMING_ENABLED`, for PCM, MP3, Opus and WAV): a sounddevice stream is
  opened and started before the request, with PortAudio's default latency and no prebuffer. The body
  is read with `iter_bytes(chunk_size)`, which holds bytes back until a whole chunk is there.
  - PCM: each chunk is written to the stream with a blocking write, as it comes. Reading waits while
    the device's buffer is full; when the network is late, the device plays silence (a gap).
  - MP3 and WAV: once more than 32 KB have come, they are decoded as a file and played (a blocking
    write: the download waits meanwhile); the rest is collected until the reply ends, then decoded as a
    file and played, with `VOICEMODE_TTS_TRAILING_SILENCE` after it. For WAV that rest has no header,
    does not decode, and is never played. Opus is never decoded early: all of it waits for the end.
- **Buffered** (streaming off, or AAC and FLAC): the whole body, then a decode, 0.1 s of leading
  silence (`VOICEMODE_CHIME_LEADING_SILENCE`), and playback.
- `VOICEMODE_STREAM_BUFFER_MS` and `VOICEMODE_STREAM_MAX_BUFFER` are read by voicemode and used nowhere,
  so here too. What voicemode would log as its TTFA is kept as `voicemode_reported_ttfa_ms`: the first
  chunk's arrival for PCM, the moment a decode finished for the others, the end of the download when
  buffered. The figures the workbench reports are our sinks' (the first sample heard, gaps, the share
  played), as for the engine.

What is not modelled: the device's own quirks (on PulseAudio, voicemode's streams lose about 38 ms of
the tail in PCM and 120 to 250 ms in its buffered path; that is the device's stop, not voicemode's
logic) and its retries (voicemode asks again from the start, replaying what was heard).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import shutil
import subprocess
import time
from collections.abc import AsyncGenerator, AsyncIterator
from importlib import metadata
from typing import Any

import numpy as np

from .decoding.base import DecodeError
from .decoding.decoders import WavDecoder
from .fetching.source import SourceError, SpeechRequest, SpeechSource
from .figures.metrics import PlayMetrics, PlayState, Snapshot
from .output.sinkfactory import SinkFactory, SinkSpec
from .output.sinks import Sink, SinkError, VirtualSink
from .playerbase import PlayerBase, PlayError
from .playout.buffer import JitterBuffer
from .playrun import PlayRun
from .report import collect, heard_times
from .settings import Settings

VOICEMODE_VERSION = "9.0"
KNOWN_SERIES = ("8.12", "9.0")  # releases whose playback is this one (read from their source)
SAMPLE_RATE = 24_000  # voicemode's SAMPLE_RATE: every stream it opens runs at this rate
DEVICE_BUFFER_S = 0.035  # PortAudio's default (high) output latency on PulseAudio: what a blocking write fills
EARLY_DECODE_BYTES = 32_768  # MP3 (and WAV) are decoded once more than this has come
STREAMED = ("pcm", "mp3", "opus", "wav")  # what voicemode streams; the rest plays buffered
LEADING_SILENCE_S = 0.1  # VOICEMODE_CHIME_LEADING_SILENCE's default, put before a buffered reply
DRAIN_EXTRA_S = 0.3  # after the last write of the buffered-stream path it sleeps the latency and this
CONTAINERS = {"mp3": "mp3", "wav": "wav", "opus": "ogg", "flac": "flac", "aac": "aac"}



def installed_voicemode() -> tuple[str | None, bool]:
    """The `voice-mode` installed here (None if none), and whether its playback is the one modelled."""
    try:
        installed = metadata.version("voice-mode")
    except metadata.PackageNotFoundError:
        return None, True
    return installed, any(installed == s or installed.startswith(s + ".") for s in KNOWN_SERIES)


def voicemode_format(fmt: str, base_url: str) -> str:
    """The format voicemode asks for: its "kokoro" provider (any URL without "openai") has no AAC."""
    return "opus" if fmt == "aac" and "openai" not in base_url else fmt


def decode_file(data: bytes, fmt: str, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode bytes as a whole file of `fmt`, mono at `rate`: as voicemode does, through pydub's two
    FFmpeg processes where `ffmpeg` is on PATH (their start-up is most of what voicemode's MP3 waits
    for: the model without it started 300 ms early on a fast server); WAV, which pydub reads itself, and
    everything without `ffmpeg`, with PyAV in-process."""
    if fmt == "pcm":
        usable = len(data) - len(data) % 2
        return (np.frombuffer(data[:usable], dtype="<i2").astype(np.float32) / 32768.0)
    if fmt != "wav" and shutil.which("ffmpeg"):
        return _pydub_route(data, fmt, rate)
    import av

    from .decoding.avdecoders import _Output, frame_to_mono

    try:
        with av.open(io.BytesIO(data), mode="r", format=CONTAINERS[fmt]) as container:
            if not container.streams.audio:
                raise DecodeError("no audio stream")
            out = _Output(rate)
            parts = [out.add(frame_to_mono(frame), frame.sample_rate)
                     for frame in container.decode(container.streams.audio[0])]
            parts.append(out.flush())
    except av.FFmpegError as exc:
        raise DecodeError(f"FFmpeg cannot decode it: {exc}") from exc
    parts = [p for p in parts if len(p)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)


def _pydub_route(data: bytes, fmt: str, rate: int) -> np.ndarray:
    """pydub's `AudioSegment.from_file(BytesIO, format)` (0.25): `ffprobe` on the bytes for their sample
    format, then `ffmpeg` from a pipe to a WAV on another; the WAV read here."""
    container = CONTAINERS[fmt]
    ffprobe = shutil.which("ffprobe")
    if ffprobe:
        subprocess.run([ffprobe, "-of", "json", "-v", "info", "-show_format", "-show_streams", "-i", "cache:pipe:0"],
                       input=data, capture_output=True, timeout=60)
    done = subprocess.run([shutil.which("ffmpeg") or "ffmpeg", "-y", "-f", container, "-read_ahead_limit", "-1",
                           "-i", "cache:pipe:0", "-acodec", "pcm_s16le", "-vn", "-f", "wav", "-"],
                          input=data, capture_output=True, timeout=60)
    if done.returncode != 0 or not done.stdout:
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["no output"])[-1]
        raise DecodeError(f"ffmpeg cannot decode it: {last}")
    decoder = WavDecoder(rate)
    out = decoder.feed(done.stdout)
    with contextlib.suppress(DecodeError):
        out = np.concatenate([out, decoder.flush()])
    return out


async def rechunk(body: AsyncIterator[bytes], size: int) -> AsyncGenerator[bytes, None]:
    """httpx's `iter_bytes(chunk_size)`: pieces of exactly `size` bytes, the remainder at the end."""
    held = bytearray()
    async for piece in body:
        held += piece
        while len(held) >= size:
            yield bytes(held[:size])
            del held[:size]
    if held:
        yield bytes(held)


class VoicemodePlayer(PlayerBase):
    """Plays a reply as voicemode 9.0 does (see the module docstring). The same interface as
    `StreamPlayer` where the CLI, the benchmarks and the compare use it."""

    kind = "voicemode"

    def __init__(self, settings: Settings, *, base_url: str | None = None, sink_factory: SinkFactory | None = None,
                 http_client: Any = None, snapshot_hz: float = 20.0, extra_headers: dict[str, str] | None = None,
                 extra_query: dict[str, Any] | None = None) -> None:
        super().__init__(settings, base_url=base_url, sink_factory=sink_factory, http_client=http_client,
                         snapshot_hz=snapshot_hz, extra_headers=extra_headers, extra_query=extra_query)
        self._sink: Sink | None = None
        self.buffer: JitterBuffer | None = None
        self.source: SpeechSource | None = None
        self._run = PlayRun("pcm", notices=self.notices)
        self._reported: float | None = None  # what voicemode would log as its TTFA (perf_counter)
        self._format = "pcm"
        self._padding = 0  # samples of silence voicemode adds to this play
        installed, known = installed_voicemode()
        self.version_notice = None if known else (
            f"voicemode {installed} is installed; this player plays as voicemode {VOICEMODE_VERSION} does")

    @property
    def sink(self) -> Sink | None:
        return self._sink

    @sink.setter
    def sink(self, sink: Sink | None) -> None:
        self._sink = sink

    async def __aenter__(self) -> VoicemodePlayer:
        await self.warm_up()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._playing:
            self.stop()
        await self.aclose()

    async def warm_up(self) -> None:
        """Load what a first request would load on the clock (voicemode's process has it loaded: pydub and
        its decoder, the HTTP client, sounddevice)."""
        SpeechSource(self.base_url, http_client=self.http_client or self._pooled_client())
        await asyncio.to_thread(decode_file, b"", "pcm")
        from .decoding import avdecoders  # noqa: F401  (PyAV: the decoder of every compressed format here)
        if self.settings.sink in ("auto", "device"):
            from .output.sinks import import_sounddevice

            with contextlib.suppress(SinkError):
                await asyncio.to_thread(import_sounddevice)

    def set_initial_buffer_ms(self, ms: float) -> None:
        """voicemode reads VOICEMODE_STREAM_BUFFER_MS and uses it nowhere: neither does its model."""

    def stop(self) -> None:
        self._run.stopping = True
        if self.buffer is not None:
            self.buffer.stop()

    # -- the play ---------------------------------------------------------------------------------------
    async def play(self, text: str, *, fmt: str | None = None) -> PlayMetrics:
        if self._playing:
            raise PlayError("a play is already running")
        if not text or not text.strip():
            raise PlayError("nothing to say: the text is empty")
        t0 = time.perf_counter()
        s = self.settings
        asked = fmt or s.audio_format
        fmt = self._format = voicemode_format(asked, self.base_url)
        streaming = s.streaming_enabled and fmt in STREAMED
        self._playing = True
        self.notices.clear()
        self._reported = None
        self._padding = 0
        metrics = PlayMetrics(format=fmt, streaming=streaming, network=s.network, initial_buffer_ms=0.0)
        metrics.player = "voicemode"
        if self.version_notice:
            self.notices.append(self.version_notice)
        if fmt != asked:
            self.notices.append(f"voicemode asks this endpoint for {fmt}, not {asked} (its Kokoro has no {asked})")
        if s.streaming_enabled and not streaming:
            self.notices.append(f"voicemode does not stream {fmt}: the whole reply first")
        run = self._run = PlayRun(fmt, t0=t0, notices=self.notices)
        self.source = SpeechSource(self.base_url, api_key=s.api_key, chunk_size=1 << 20,
                                   stall_timeout=s.stall_timeout_s,
                                   http_client=self.http_client or self._pooled_client())
        request = SpeechRequest(text=text, model=s.model, voice=s.voice, response_format=fmt, speed=s.speed,
                                extra_headers=self.extra_headers, extra_query=self.extra_query)
        tasks = [asyncio.create_task(self._snapshots())] if self.observers else []
        try:
            self.sink, notice = self.sink_factory(SinkSpec.of(s, rate=SAMPLE_RATE, channels=1))  # voicemode's: mono
            if notice:
                run.notice(notice)
            await self._open(streaming)
            if streaming and fmt == "pcm":
                await self._stream_pcm(request)
            elif streaming:
                await self._stream_buffering(request, fmt)
            else:
                await self._buffered(request, fmt)
            await self._drain()
        except (SourceError, SinkError, DecodeError) as exc:
            metrics.error = str(exc)
            run.final_state = PlayState.FAILED
            if self.buffer is not None and not self.buffer.ended:
                self.buffer.end()
                await self._drain()
        except asyncio.CancelledError:
            self.stop()
            raise
        finally:
            await self._finish(tasks, metrics)
        return metrics

    async def _open(self, streaming: bool) -> None:
        """voicemode opens and starts its stream before it asks (streaming); buffered, after the download."""
        sink = self.sink
        assert sink is not None
        if hasattr(sink, "latency"):  # a sound card: voicemode's streams keep sounddevice's default latency
            sink.latency = "high"
        try:
            await asyncio.to_thread(sink.open)
        except SinkError as exc:
            if self.settings.sink != "auto":
                raise
            self._run.notice(f"{exc}; playing on the virtual sink instead")
            sink = self.sink = VirtualSink(SAMPLE_RATE, self.settings.block_size, sink.recorder)
        # a blocking write fills the device's buffer and waits; the device starts with what it has and,
        # run dry, plays silence until the next write: a ring as large as that buffer, no target
        buffer = self.buffer = JitterBuffer(sink.rate, max(DEVICE_BUFFER_S, 2 * sink.block_size / sink.rate), 0.0)
        buffer.set_resume_ms(1000.0 / sink.rate)
        if self._run.stopping:
            buffer.stop()
        if streaming:
            sink.start(buffer)

    async def _write(self, samples: np.ndarray) -> None:
        """`stream.write(samples)`: blocks until all of it is in the device's buffer."""
        buffer, sink = self.buffer, self.sink
        assert buffer is not None and sink is not None
        off = 0
        self._run.received_samples += len(samples)
        while off < len(samples) and not self._run.stopping and not buffer.done:
            off += buffer.write(samples[off:])
            if off < len(samples):
                await asyncio.sleep(sink.block_size / sink.rate / sink.speed / 2)

    def _body(self, request: SpeechRequest) -> AsyncGenerator[bytes, None]:
        assert self.source is not None
        return rechunk(self.source.stream(request), self.settings.chunk_size)

    async def _stream_pcm(self, request: SpeechRequest) -> None:
        async with contextlib.aclosing(self._body(request)) as body:
            async for chunk in body:
                if self._run.stopping:
                    return
                if self._reported is None:
                    self._reported = time.perf_counter()  # "First audio chunk received": its TTFA
                await self._write(decode_file(chunk, "pcm"))

    async def _stream_buffering(self, request: SpeechRequest, fmt: str) -> None:
        held = bytearray()
        started = False
        async with contextlib.aclosing(self._body(request)) as body:
            async for chunk in body:
                if self._run.stopping:
                    return
                if self._reported is None:
                    self._reported = time.perf_counter()
                held += chunk
                if len(held) > EARLY_DECODE_BYTES and not started and fmt != "opus":
                    try:
                        samples = await self._decode(bytes(held), fmt)
                    except DecodeError:
                        continue  # voicemode keeps collecting and tries again with the next chunk
                    self._reported = time.perf_counter()
                    started = True
                    await self._write(samples)
                    held.clear()
        if held:
            try:
                samples = await self._decode(bytes(held), fmt)
            except DecodeError as exc:
                # voicemode logs "Failed to decode final buffer" and plays nothing more
                self._run.notice(f"voicemode could not decode the rest of the reply ({exc}); it plays no more")
            else:
                if not started:
                    self._reported = time.perf_counter()
                pad = np.zeros(int(SAMPLE_RATE * self.settings.trailing_silence_s), dtype=np.float32)
                self._padding += len(pad)
                await self._write(np.concatenate([samples, pad]))

    async def _buffered(self, request: SpeechRequest, fmt: str) -> None:
        body = bytearray()
        assert self.source is not None
        async for piece in self.source.stream(request):
            if self._run.stopping:
                return
            body += piece
        self._reported = time.perf_counter()  # voicemode's TTFA: "playback_start" after the download
        samples = await self._decode(bytes(body), fmt)
        lead = int(SAMPLE_RATE * LEADING_SILENCE_S)
        self._padding += lead
        samples = np.concatenate([np.zeros(lead, dtype=np.float32), samples])
        assert self.sink is not None and self.buffer is not None
        # its player queues the whole reply and opens a stream on it: a ring that holds it all
        self.buffer = JitterBuffer(self.sink.rate, max(len(samples) / SAMPLE_RATE + 0.1, DEVICE_BUFFER_S), 0.0)
        self.buffer.write(samples)
        self._run.received_samples += len(samples)
        self.sink.start(self.buffer)

    async def _decode(self, data: bytes, fmt: str) -> np.ndarray:
        t = time.perf_counter()
        samples = await asyncio.to_thread(decode_file, data, fmt)
        self._run.decode_ms.add((time.perf_counter() - t) * 1000.0)
        if len(samples) and self._run.first_audio_at is None:
            self._run.first_audio_at = time.perf_counter()
        return samples

    async def _drain(self) -> None:
        buffer, sink = self.buffer, self.sink
        if buffer is None or sink is None:
            return
        if not buffer.ended:
            buffer.end()
        if self._run.received_samples and not self._run.stopping:
            await sink.wait_done()

    async def _finish(self, tasks: list[asyncio.Task[None]], metrics: PlayMetrics) -> None:
        run = self._run
        if self.sink is not None:
            await asyncio.to_thread(self.sink.close)
        if self.source is not None:
            await self.source.aclose()
        if run.final_state is None:
            run.final_state = PlayState.STOPPED if run.stopping else PlayState.DONE
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        collect(metrics, run, self.settings.latency_correction_ms, [self.source] if self.source else [], self.buffer,
                self.sink, None)
        metrics.initial_buffer_ms, metrics.target_ms = 0.0, None  # voicemode has neither
        metrics.voicemode_reported_ttfa_ms = (self._reported - run.t0) * 1000.0 if self._reported else None
        metrics.padding_ms = self._padding * 1000.0 / SAMPLE_RATE
        self.last_metrics = metrics
        self._emit()
        self._playing = False

    # -- observing ----------------------------------------------------------------------------------------
    def snapshot(self) -> Snapshot:
        buffer, sink, run = self.buffer, self.sink, self._run
        first, sound = heard_times(self.settings.latency_correction_ms, sink) if sink else (None, None)
        if run.final_state is not None:
            state = run.final_state
        elif buffer is None or self.source is None or self.source.first_byte_at is None:
            state = PlayState.CONNECTING
        else:
            state = PlayState.PLAYING
        return Snapshot(
            t_ms=(time.perf_counter() - run.t0) * 1000.0, state=state,
            level_ms=buffer.samples_to_ms(buffer.level) if buffer else 0.0, target_ms=0.0, initial_buffer_ms=0.0,
            max_buffer_ms=DEVICE_BUFFER_S * 1000.0, received_ms=run.received_samples * 1000.0 / SAMPLE_RATE,
            played_ms=buffer.samples_to_ms(buffer.played_samples) if buffer else 0.0,
            bytes=self.source.bytes_received if self.source else 0,
            underruns=buffer.underruns if buffer else 0, underrun_ms=buffer.underrun_ms if buffer else 0.0,
            device_underflows=sink.device_underflows if sink else 0,
            ttfa_ms=(first - run.t0) * 1000.0 if first is not None else None, format=self._format,
            rate=1.0, playout="fixed", first_sound_ms=(sound - run.t0) * 1000.0 if sound is not None else None,
            ttfb_ms=(self.source.headers_at - run.t0) * 1000.0 if self.source and self.source.headers_at else None,
            sink=sink.kind if sink else "",
        )

