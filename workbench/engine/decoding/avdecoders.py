"""Compressed formats decoded progressively with PyAV (FFmpeg), behind the same interface as PCM and WAV.

- MP3, AAC (ADTS) and FLAC: our scanners (`framing`) cut the stream into frames; each frame goes to
  an FFmpeg codec context as one packet. A frame that fails to decode is dropped and counted; the next
  one plays. For FLAC, FFmpeg checks each frame's CRC-16.
- Ogg/Opus: FFmpeg's demuxer, opened with tiny probe settings on a blocking reader that a
  worker thread drains. `feed()` hands bytes to the reader and waits until the demuxer has used them
  all (it is asking for more) or has finished, so each call returns everything those bytes decoded
  to. For Ogg, only pages whose CRC checks out reach the demuxer.
- `decode_whole`: the buffered fallback, any container FFmpeg can probe.

Every output is float32 frames in the play's layout (mono, or stereo) at the sink's rate. `feed()` can
take milliseconds, so the player calls it from a worker thread, never on the event loop and never in the
audio callback.
"""

from __future__ import annotations

import collections
import io
import threading
from typing import Any, cast

import av
import av.error
import numpy as np
from av.audio.codeccontext import AudioCodecContext

from ..figures.onset import first_sound
from . import framing
from .base import EMPTY, DecodeError, Resampler, fade_in, fade_out
from .formats import FORMATS
from .framing import MP3_DECODER_DELAY, AdtsScanner, FlacScanner, Mp3Scanner, OggScanner
from .layout import MONO, Layout, channels_of

FFmpegError = av.error.FFmpegError


def frame_to_array(frame: Any) -> np.ndarray:
    """An `av.AudioFrame` of any sample format as float32 frames: 1-D when mono, else frames x channels."""
    array = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if not frame.format.is_planar and channels > 1:
        array = array.reshape(-1, channels).T
    kind = array.dtype
    if kind == np.int16:
        scale = 1.0 / 32768.0
    elif kind == np.int32:
        scale = 1.0 / 2147483648.0
    elif kind == np.uint8:
        array = array.astype(np.float32) - 128.0
        scale = 1.0 / 128.0
    else:
        scale = 1.0
    samples = array.astype(np.float32, copy=False)
    out = samples[0] if samples.shape[0] == 1 else samples.T
    if scale != 1.0:
        out = out * np.float32(scale)
    return np.ascontiguousarray(out, dtype=np.float32)


def frame_to_mono(frame: Any) -> np.ndarray:
    """An `av.AudioFrame` as mono float32 (its channels averaged)."""
    return MONO.apply(frame_to_array(frame))


# The priming an encoder and decoder put before the audio, in samples at the codec's rate, when no tag
# says how much: LAME's encoder delay (576) plus every MP3 decoder's (529); AAC's one frame (1024).
MP3_USUAL_PRIMING = 576 + MP3_DECODER_DELAY
AAC_USUAL_PRIMING = 1024


class _Output:
    """Collects decoded audio at the source rate, trims priming, resamples to the output rate.

    Priming is trimmed exactly when a tag states it (`trim_left`). Without one (an MP3 streamed through a
    pipe, as FFmpeg and Kokoro-FastAPI send it; ADTS AAC always), only its near-silent part is trimmed
    (`quiet_left`): leading samples below -50 dBFS, up to the usual priming. Where the audio starts loud
    at once, the codec's pre-echo crosses that level before the priming ends, and trimming stops there:
    what is left is a few milliseconds of quiet pre-echo, never a sample of the audio itself.
    """

    def __init__(self, out_rate: int, layout: Layout = MONO) -> None:
        self.out_rate = out_rate
        self.layout = layout
        self.channels = 0  # the stream's (its first frame's)
        self.source_rate: int | None = None
        self.trim_left = 0  # priming samples (source rate) still to drop
        self.quiet_left = 0  # ... or, with no tag, at most this many more of them, while they are near-silent
        self.trimmed = 0
        self.samples_in = 0  # at the source rate, after trimming
        self._resampler: Resampler | None = None

    def add(self, frames: np.ndarray, rate: int) -> np.ndarray:
        if self._resampler is None:
            self.source_rate = rate
            self.channels = channels_of(frames)
            self._resampler = Resampler(rate, self.out_rate, self.layout.channels)
        elif rate != self.source_rate:
            raise DecodeError(f"the sample rate changed mid-stream ({self.source_rate} -> {rate} Hz)")
        mono = self.layout.apply(frames)  # (in the play's layout: mono unless it is stereo)
        if self.trim_left:
            cut = min(self.trim_left, len(mono))
            mono = mono[cut:]
            self.trim_left -= cut
            self.trimmed += cut
        if self.quiet_left and len(mono):
            loud = first_sound(mono[: self.quiet_left])
            cut = loud if loud >= 0 else min(self.quiet_left, len(mono))
            mono = mono[cut:]
            self.quiet_left = 0 if loud >= 0 else self.quiet_left - cut
            self.trimmed += cut
        self.samples_in += len(mono)
        return self._resampler.process(mono) if len(mono) else EMPTY

    def flush(self) -> np.ndarray:
        return self._resampler.process(EMPTY, last=True) if self._resampler else EMPTY

    @property
    def trimmed_ms(self) -> float:
        return self.trimmed * 1000.0 / self.source_rate if self.source_rate else 0.0


def _join(parts: list[np.ndarray]) -> np.ndarray:
    parts = [p for p in parts if len(p)]
    if not parts:
        return EMPTY
    return parts[0] if len(parts) == 1 else np.concatenate(parts)




class FramedDecoder:
    """MP3, AAC (ADTS) or FLAC: scanner frames -> one FFmpeg packet each -> samples.

    FLAC's decoder gets the stream's STREAMINFO and checks every frame's CRC-16 (a damaged frame is an
    error, not noise). FFmpeg's own FLAC parser (and the demuxer built on it) looks about ten frames
    ahead before it hands one on, which here cost 160 ms of TTFA; our scanner needs one header ahead.
    """

    blocking = True

    def __init__(self, fmt: str, out_rate: int, layout: Layout = MONO) -> None:
        spec = FORMATS.get(fmt)
        if spec is None or spec.decoder != "framed" or spec.scanner is None or spec.codec is None:
            raise ValueError(fmt)
        self.format = fmt
        self.scanner: Mp3Scanner | AdtsScanner | FlacScanner = getattr(framing, spec.scanner)()
        self._codec = cast(AudioCodecContext, av.CodecContext.create(spec.codec, "r"))
        if fmt == "flac":
            self._codec.options = {"err_detect": "crccheck+explode"}
        self._configured = fmt != "flac"
        self._out = _Output(out_rate, layout)
        self.warnings: list[str] = []
        self.decode_errors = 0
        self._priming_known = fmt != "mp3"  # MP3: read from the LAME tag, if there is one
        self.priming = ""  # how the priming was found: "tag", "near-silent start", or "" (none)
        if fmt == "aac":  # ADTS carries no priming: it is AAC's usual frame, where it is near-silent
            self._out.quiet_left, self.priming = AAC_USUAL_PRIMING, "near-silent start"
        self._gap_pending = False  # a frame was lost after the last audio handed on
        self.gap_at_start = False  # the last output does not follow on from the one before it

    @property
    def source_rate(self) -> int | None:
        return self._out.source_rate

    @property
    def frames(self) -> int:
        return self.scanner.audio_frames

    @property
    def channels(self) -> int:
        return self._out.channels

    @property
    def errors(self) -> int:
        return self.decode_errors + self.scanner.losses

    @property
    def trimmed_ms(self) -> float:
        return self._out.trimmed_ms

    def _decode(self, frames: list[bytes]) -> np.ndarray:
        if not self._priming_known and isinstance(self.scanner, Mp3Scanner) and (frames or self.scanner.frames):
            self._priming_known = True
            xing = self.scanner.xing
            if xing is not None and xing.delay is not None:
                self._out.trim_left, self.priming = xing.delay + MP3_DECODER_DELAY, "tag"
            else:
                self._out.quiet_left, self.priming = MP3_USUAL_PRIMING, "near-silent start"
        if not self._configured and frames:
            self._configured = True
            info = getattr(self.scanner, "streaminfo", None)
            if info:
                self._codec.extradata = info
        # frames lost in the scanner (a corrupt stretch) are gaps before the frame that followed them
        first = self.scanner.audio_frames - len(frames)
        marks = self.scanner.loss_marks
        gaps = {m - first for m in marks if m < first + len(frames)}
        self._gap_pending |= any(m <= first for m in marks)
        del marks[: sum(1 for m in marks if m < first + len(frames))]
        decoded_parts: list[tuple[np.ndarray, int]] = []
        for i, data in enumerate(frames):
            if i in gaps:
                self._gap_pending = True
            try:
                decoded = self._codec.decode(av.Packet(data))
            except FFmpegError:
                self.decode_errors += 1
                self._gap_pending = True  # the next frame follows a hole
                continue
            for frame in decoded:
                mono, rate = frame_to_array(frame), frame.sample_rate
                if self._gap_pending and len(mono):
                    # fade out what came before the hole and in after it, so the jump does not click
                    if decoded_parts:
                        last, last_rate = decoded_parts[-1]
                        decoded_parts[-1] = (fade_out(last, last_rate), last_rate)
                    elif self._out.samples_in:
                        self.gap_at_start = True  # the audio before it was handed on already
                    mono = fade_in(mono, rate)
                    self._gap_pending = False
                decoded_parts.append((mono, rate))
        return _join([self._out.add(mono, rate) for mono, rate in decoded_parts])

    def feed(self, data: bytes) -> np.ndarray:
        return self._decode(self.scanner.feed(data))

    def flush(self) -> np.ndarray:
        parts = [self._decode(self.scanner.flush())]
        try:
            for frame in self._codec.decode(None):
                parts.append(self._out.add(frame_to_array(frame), frame.sample_rate))
        except FFmpegError:
            self.decode_errors += 1
        if self.scanner.frames == 0:
            raise DecodeError(f"no {self.format} frame found in the stream")
        parts.append(self._out.flush())
        return _join(parts)

    def close(self) -> None:
        pass


class _Pipe:
    """The blocking, non-seekable file the demuxer reads from; `feed()` writes into it."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._closed = False
        self.waiting = False  # the reader is blocked for want of data
        self.finished = False  # the reader's thread has ended

    def write(self, data: bytes) -> None:
        with self._cond:
            self._chunks.append(data)
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def finish(self) -> None:
        with self._cond:
            self.finished = True
            self._cond.notify_all()

    def read(self, n: int = -1) -> bytes:
        with self._cond:
            while not self._chunks and not self._closed:
                self.waiting = True
                self._cond.notify_all()
                self._cond.wait()
            self.waiting = False
            if not self._chunks:
                return b""
            chunk = self._chunks.popleft()
            if 0 < n < len(chunk):
                self._chunks.appendleft(chunk[n:])
                chunk = chunk[:n]
            return chunk

    def wait_idle(self, timeout: float) -> bool:
        """Wait until the reader has taken everything and asks for more (or has ended)."""
        with self._cond:
            return self._cond.wait_for(lambda: self.finished or (self.waiting and not self._chunks), timeout)


DEMUX_PROBE = {"probesize": "32", "analyzeduration": "0"}


class DemuxDecoder:
    """Ogg/Opus through FFmpeg's demuxer on a worker thread (see the module docstring). Only pages
    whose CRC checks out reach the demuxer."""

    blocking = True
    IDLE_TIMEOUT_S = 2.0

    def __init__(self, fmt: str, out_rate: int, layout: Layout = MONO) -> None:
        if fmt != "opus":
            raise ValueError(fmt)
        self.format = fmt
        self.scanner = OggScanner()
        self._out = _Output(out_rate, layout)
        self._lock = threading.Lock()
        self._decoded: list[tuple[np.ndarray, int]] = []
        self._error: BaseException | None = None
        self.warnings: list[str] = []
        self.decode_errors = 0
        self._gap_pending = False
        self.gap_at_start = False
        self._handed = 0  # samples feed() has returned
        self._pipe = _Pipe()
        self._thread = threading.Thread(target=self._run, name=f"demux-{fmt}", daemon=True)

    @property
    def source_rate(self) -> int | None:
        return self._out.source_rate

    @property
    def frames(self) -> int:
        return self.scanner.audio_frames

    @property
    def channels(self) -> int:
        return self._out.channels

    @property
    def errors(self) -> int:
        return self.decode_errors + self.scanner.bad_pages

    @property
    def priming(self) -> str:
        return "tag" if self.scanner.pre_skip else ""

    @property
    def trimmed_ms(self) -> float:
        # FFmpeg applies Opus pre-skip itself (from OpusHead); report it as trimmed
        return (self.scanner.pre_skip or 0) * 1000.0 / 48000.0

    def _run(self) -> None:
        container = None
        try:
            container = av.open(self._pipe, mode="r", format="ogg", options=DEMUX_PROBE)
            stream = container.streams.audio[0]
            codec = stream.codec_context
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                try:
                    frames = codec.decode(packet)
                except FFmpegError:
                    self.decode_errors += 1
                    continue
                self._keep(frames)
            try:
                self._keep(codec.decode(None))
            except FFmpegError:
                self.decode_errors += 1
        except BaseException as exc:  # reported to the caller of feed()/flush()
            self._error = exc
        finally:
            if container is not None:
                try:
                    container.close()
                except Exception:  # closing a half-opened container must not hide the real error
                    pass
            self._pipe.finish()

    def _keep(self, frames: list[Any]) -> None:
        decoded = [(frame_to_array(f), f.sample_rate) for f in frames]
        if decoded:
            with self._lock:
                self._decoded.extend(decoded)

    def _take(self) -> np.ndarray:
        with self._lock:
            decoded, self._decoded = self._decoded, []
        return _join([self._out.add(mono, rate) for mono, rate in decoded])

    def _check(self) -> None:
        if self._error is not None:
            exc = self._error
            if isinstance(exc, FFmpegError):
                raise DecodeError(f"FFmpeg's Ogg demuxer failed: {exc}") from exc
            raise DecodeError(f"Ogg demuxer failed: {exc!r}") from exc

    def _write(self, pages: list[Any]) -> None:
        if self._thread.ident is None:  # not started yet
            self._thread.start()
        self._pipe.write(b"".join(p.data for p in pages))

    def feed(self, data: bytes) -> np.ndarray:
        lost = self.scanner.bad_pages
        pages = self.scanner.feed(data)
        self._gap_pending |= self.scanner.bad_pages > lost
        if not pages:
            return self._faded(self._take())
        self._write(pages)
        self._pipe.wait_idle(self.IDLE_TIMEOUT_S)
        out = self._take()
        self._check()
        return self._faded(out)

    def _faded(self, out: np.ndarray) -> np.ndarray:
        """After a lost page, fade in what follows, and ask for the audio before it to be faded out.
        (The gap is placed at the start of this output: pages decode on another thread, so where
        exactly within it a lost page fell is not known; with 20 ms pages it is rarely elsewhere.)"""
        if self._gap_pending and len(out):
            self._gap_pending = False
            self.gap_at_start = self._handed > 0
            out = fade_in(out, self._out.out_rate)
        self._handed += len(out)
        return out

    def flush(self) -> np.ndarray:
        pages = self.scanner.flush()
        if pages:
            self._write(pages)
        if self._thread.ident is None:
            raise DecodeError("no Ogg page found in the stream")
        self._pipe.close()
        self._thread.join(timeout=10.0)
        out = self._take()
        self._check()
        return _join([out, self._out.flush()])

    def close(self) -> None:
        self._pipe.close()


def decode_whole(body: bytes, out_rate: int, layout: Layout = MONO) -> tuple[np.ndarray, str, int, int]:
    """Decode a complete file of any format FFmpeg can probe: (frames in `layout` at `out_rate`, codec, rate,
    the stream's channels)."""
    try:
        with av.open(io.BytesIO(body), mode="r") as container:
            if not container.streams.audio:
                raise DecodeError("the response holds no audio stream")
            stream = container.streams.audio[0]
            out = _Output(out_rate, layout)
            parts = []
            for frame in container.decode(stream):
                parts.append(out.add(frame_to_array(frame), frame.sample_rate))
            parts.append(out.flush())
            return _join(parts), stream.codec_context.name, out.source_rate or 0, out.channels
    except FFmpegError as exc:
        raise DecodeError(f"FFmpeg cannot decode the response either: {exc}") from exc
