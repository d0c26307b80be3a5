"""Progressive decoders: bytes in as they arrive, float32 frames in the play's layout (`layout`: mono, or
stereo) at the sink's rate out.

Every decoder has the same small interface (`feed`, `flush`, `source_rate`, `warnings`), so the player
does not care which format it is playing. This module holds the PCM and WAV decoders and
`StreamDecoder`, which sniffs the format, picks the decoder and falls back to buffered decoding;
the compressed formats (PyAV) live in `avdecoders`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import numpy as np

from ..text.safetext import clean_text
from .base import EMPTY, DecodeError, Decoder, Resampler, pcm16_to_float
from .formats import FORMATS, NAMES, format_from_content_type
from .layout import MONO, Layout


class PcmDecoder:
    """Headerless signed 16-bit little-endian PCM (OpenAI's `pcm`), mono at a configured rate.

    A chunk may end in the middle of a sample: the odd byte is carried over to the next chunk.
    """

    format = "pcm"

    def __init__(self, source_rate: int, out_rate: int, channels: int = 1, layout: Layout = MONO) -> None:
        self.source_rate: int | None = source_rate
        self.channels = channels  # the stream's
        self.layout = layout
        self.warnings: list[str] = []
        self._frame_bytes = 2 * channels
        self._carry = b""
        self._resampler = Resampler(source_rate, out_rate, layout.channels)

    def feed(self, data: bytes) -> np.ndarray:
        if self._carry:
            data = self._carry + data
        usable = len(data) - len(data) % self._frame_bytes
        self._carry = data[usable:]
        if not usable:
            return EMPTY
        samples = pcm16_to_float(memoryview(data)[:usable])
        return self._resampler.process(self.layout.apply(samples.reshape(-1, self.channels)))

    def flush(self) -> np.ndarray:
        if self._carry:
            self.warnings.append(f"stream ended with {len(self._carry)} byte(s) of an incomplete sample; dropped")
            self._carry = b""
        return self._resampler.process(EMPTY, last=True)


WAVE_FORMAT_PCM = 0x0001
WAVE_FORMAT_IEEE_FLOAT = 0x0003
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
STREAMED_SIZES = (0, 0xFFFFFFFF)


class WavDecoder:
    """WAV read progressively with our own RIFF parser.

    Handles streamed sizes (0 or 0xFFFFFFFF in the RIFF or data header), extra chunks before the data
    (LIST, fact, ...), WAVE_FORMAT_EXTENSIBLE, 8/16/24/32-bit integer and 32/64-bit float samples, any
    channel count (turned into the play's layout), and every split point of the header across chunks. Rate and
    channels come from the header; the result is resampled to `out_rate`.
    """

    format = "wav"

    def __init__(self, out_rate: int, layout: Layout = MONO) -> None:
        self.out_rate = out_rate
        self.layout = layout
        self.source_rate: int | None = None
        self.channels = 0
        self.bits = 0
        self.sample_format = ""  # "int" or "float"
        self.warnings: list[str] = []
        self.data_size: int | None = None  # None: streamed, unbounded
        self._buf = bytearray()
        self._stage = "riff"  # riff -> chunk -> skip -> data -> (after data: chunk) ...
        self._skip = 0
        self._data_left: int | None = None
        self._seen_data = False
        self._resampler: Resampler | None = None
        self._frame_bytes = 0

    # -- header parsing -------------------------------------------------------------------------
    def _parse(self) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        while True:
            if self._stage == "riff":
                if len(self._buf) < 12:
                    return out
                if bytes(self._buf[:4]) not in (b"RIFF", b"RF64") or bytes(self._buf[8:12]) != b"WAVE":
                    head = bytes(self._buf[:12])
                    raise DecodeError(f"expected a WAV stream starting with RIFF....WAVE, got {head!r}")
                del self._buf[:12]
                self._stage = "chunk"
            elif self._stage == "chunk":
                if len(self._buf) < 8:
                    return out
                chunk_id = bytes(self._buf[:4])
                (size,) = struct.unpack("<I", self._buf[4:8])
                if self._seen_data and not _looks_like_chunk_id(chunk_id):
                    # the declared data size was wrong: what follows is more audio, not a chunk
                    self.warnings.append("WAV audio continued past the size in its header; playing it all")
                    self._data_left = None
                    self._stage = "data"
                    continue
                if chunk_id == b"fmt ":
                    if size > 4096:
                        raise DecodeError(f"WAV fmt chunk of {size} bytes is not plausible")
                    if len(self._buf) < 8 + size:
                        return out
                    self._parse_fmt(bytes(self._buf[8 : 8 + size]))
                    del self._buf[:8]
                    self._skip = size + (size & 1)
                    self._stage = "skip"
                elif chunk_id == b"data":
                    del self._buf[:8]
                    if self.source_rate is None:
                        raise DecodeError("WAV data chunk came before its fmt chunk")
                    self._seen_data = True
                    self._data_left = None if size in STREAMED_SIZES else size
                    if self.data_size is None and self._data_left is not None:
                        self.data_size = size
                    self._stage = "data"
                else:
                    del self._buf[:8]
                    self._skip = size + (size & 1)
                    self._stage = "skip"
            elif self._stage == "skip":
                take = min(self._skip, len(self._buf))
                del self._buf[:take]
                self._skip -= take
                if self._skip:
                    return out
                self._stage = "chunk"
            elif self._stage == "data":
                if self._data_left is None:
                    usable = len(self._buf) - len(self._buf) % self._frame_bytes
                else:
                    usable = min(self._data_left, len(self._buf))
                    usable -= usable % self._frame_bytes
                if usable:
                    out.append(self._convert(bytes(self._buf[:usable])))
                    del self._buf[:usable]
                    if self._data_left is not None:
                        self._data_left -= usable
                if self._data_left is not None and self._data_left < self._frame_bytes:
                    # data chunk complete; a partial trailing frame and the pad byte are skipped
                    self._skip = self._data_left + ((self.data_size or 0) & 1)
                    self._data_left = 0
                    self._stage = "skip"
                    continue
                return out

    def _parse_fmt(self, body: bytes) -> None:
        if len(body) < 16:
            raise DecodeError(f"WAV fmt chunk too short ({len(body)} bytes)")
        tag, channels, rate, _byte_rate, block_align, bits = struct.unpack("<HHIIHH", body[:16])
        if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
            (tag,) = struct.unpack("<H", body[24:26])
        if tag == WAVE_FORMAT_PCM and bits in (8, 16, 24, 32):
            self.sample_format = "int"
        elif tag == WAVE_FORMAT_IEEE_FLOAT and bits in (32, 64):
            self.sample_format = "float"
        else:
            raise DecodeError(f"unsupported WAV encoding (format tag {tag:#06x}, {bits} bits)")
        if channels < 1 or not 1000 <= rate <= 768_000:
            raise DecodeError(f"implausible WAV header: {channels} channel(s) at {rate} Hz")
        self.channels = channels
        self.bits = bits
        self.source_rate = rate
        self._frame_bytes = channels * bits // 8
        if block_align and block_align != self._frame_bytes:
            self.warnings.append(f"WAV block align {block_align} differs from {self._frame_bytes}; using the latter")
        self._resampler = Resampler(rate, self.out_rate, self.layout.channels)

    def _convert(self, data: bytes) -> np.ndarray:
        bits, fmt = self.bits, self.sample_format
        if fmt == "float":
            samples = np.frombuffer(data, dtype="<f4" if bits == 32 else "<f8").astype(np.float32)
        elif bits == 16:
            samples = pcm16_to_float(data)
        elif bits == 8:
            samples = (np.frombuffer(data, dtype=np.uint8).astype(np.float32) - 128.0) * (1.0 / 128.0)
        elif bits == 24:
            raw = np.frombuffer(data, dtype=np.uint8).reshape(-1, 3).astype(np.int32)
            ints = raw[:, 0] | (raw[:, 1] << 8) | (raw[:, 2] << 16)
            ints = np.where(ints & 0x800000, ints - 0x1000000, ints)
            samples = ints.astype(np.float32) * (1.0 / 8388608.0)
        else:
            samples = np.frombuffer(data, dtype="<i4").astype(np.float32) * (1.0 / 2147483648.0)
        assert self._resampler is not None
        return self._resampler.process(self.layout.apply(samples.reshape(-1, self.channels)))

    # -- Decoder interface ----------------------------------------------------------------------
    def feed(self, data: bytes) -> np.ndarray:
        self._buf += data
        parts = self._parse()
        if not parts:
            return EMPTY
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def flush(self) -> np.ndarray:
        if not self._seen_data:
            if self._buf or self._stage != "riff":
                raise DecodeError("WAV stream ended before its audio data began")
            raise DecodeError("WAV stream was empty")
        if self._stage == "data" and self._buf:
            self.warnings.append(f"stream ended with {len(self._buf)} byte(s) of an incomplete frame; dropped")
        elif self._data_left:
            self.warnings.append(f"WAV stream ended {self._data_left} bytes short of the size in its header")
        self._buf.clear()
        return self._resampler.process(EMPTY, last=True) if self._resampler else EMPTY


# Chunks that may follow the audio in a WAV file. Anything else after a data chunk whose declared size
# has run out is taken as more audio (some streaming servers write a wrong size).
TRAILING_CHUNKS = {b"LIST", b"id3 ", b"ID3 ", b"fact", b"cue ", b"smpl", b"bext", b"iXML", b"PEAK", b"JUNK",
                   b"junk", b"inst", b"acid", b"plst", b"labl", b"note", b"ltxt", b"data", b"_PMX", b"cart"}


def _looks_like_chunk_id(chunk_id: bytes) -> bool:
    return chunk_id in TRAILING_CHUNKS


PROGRESSIVE_FORMATS = NAMES  # every format plays progressively
FALLBACK_LIMIT = 64 * 1024 * 1024  # keep at most this much of a body for the buffered fallback ...
FALLBACK_PROVEN_S = 60.0  # ... and only until this much audio decoded progressively: by then the format
# is settled, and keeping the whole body would make an hour-long reply hold all its bytes (the memory
# soak found 15 MB per hour of MP3); a decoder failing later ends the play with what was buffered


def make_decoder(fmt: str, *, pcm_rate: int, out_rate: int, pcm_channels: int = 1,
                 layout: Layout = MONO) -> Decoder:
    """The progressive decoder for one format (no sniffing, no fallback: see `StreamDecoder`)."""
    kind = FORMATS[fmt].decoder if fmt in FORMATS else None
    if kind == "pcm":
        return PcmDecoder(pcm_rate, out_rate, pcm_channels, layout)
    if kind == "wav":
        return WavDecoder(out_rate, layout)
    if kind == "framed":
        from .avdecoders import FramedDecoder  # PyAV, loaded only when needed

        return FramedDecoder(fmt, out_rate, layout)
    if kind == "demux":
        from .avdecoders import DemuxDecoder

        return DemuxDecoder(fmt, out_rate, layout)
    raise DecodeError(f"{fmt!r} cannot be decoded progressively")


class StreamDecoder:
    """What the player feeds: sniffs the real format, decodes it progressively, falls back to buffered.

    - The format is taken from the first bytes and the Content-Type (`framing.sniff`); when it differs
      from the one requested, what arrived is decoded and a warning says so.
    - When progressive decoding fails (an encoding our parsers do not handle, a container that needs
      its end first), the rest is downloaded, the whole body is decoded by FFmpeg, and only the audio
      after what was already handed on is returned: nothing is played twice. `fallback` says why.
    - Counts what the metrics report: frames or pages, decoder errors, bytes to the first audio,
      priming trimmed.
    """

    def __init__(self, requested: str, *, pcm_rate: int, out_rate: int, content_type: str | None = None,
                 allow_fallback: bool = True, pcm_channels: int = 1, layout: Layout = MONO) -> None:
        self.requested = requested
        self.pcm_channels = pcm_channels
        self.layout = layout
        self.format = requested
        self.content_type = content_type
        self.pcm_rate = pcm_rate
        self.out_rate = out_rate
        self.allow_fallback = allow_fallback
        self.detected: str | None = None
        self.inner: Decoder | None = None
        self.fallback: str | None = None
        self.warnings: list[str] = []
        self.bytes_in = 0
        self.first_audio_bytes: int | None = None
        self.emitted = 0  # samples handed on (output rate)
        self._head = bytearray()  # bytes held while sniffing
        self._history: bytearray | None = bytearray() if allow_fallback else None
        self._fallback_channels = 0

    # -- what the player asks ---------------------------------------------------------------------
    @property
    def blocking(self) -> bool:
        """True when feed() may take long enough that it belongs on a worker thread."""
        return self.fallback is not None or bool(getattr(self.inner, "blocking", False)) or (
            self.inner is None and self.requested not in ("pcm", "wav"))

    @property
    def source_rate(self) -> int | None:
        return self.inner.source_rate if self.inner is not None else None

    @property
    def frames(self) -> int:
        return int(getattr(self.inner, "frames", 0))

    @property
    def channels(self) -> int:
        """The stream's own channels (0 until known); what is handed on is in `layout`."""
        return int(getattr(self.inner, "channels", 0) or 0) or self._fallback_channels

    @property
    def frame_kind(self) -> str:
        scanner = getattr(self.inner, "scanner", None)
        return str(scanner.kind) if scanner is not None else ""

    @property
    def errors(self) -> int:
        return int(getattr(self.inner, "errors", 0))

    @property
    def trimmed_ms(self) -> float:
        return float(getattr(self.inner, "trimmed_ms", 0.0))

    @property
    def priming(self) -> str:
        """How the priming trimmed was found: "tag" (LAME tag, Opus pre-skip), "near-silent start" (no
        tag: the near-silent part of the usual priming), or "" (none)."""
        return str(getattr(self.inner, "priming", ""))

    @property
    def page_interval_ms(self) -> float | None:
        scanner = getattr(self.inner, "scanner", None)
        return getattr(scanner, "page_interval_ms", None)

    # -- Decoder interface --------------------------------------------------------------------------
    def feed(self, data: bytes) -> np.ndarray:
        self.bytes_in += len(data)
        if self._history is not None:
            if len(self._history) + len(data) <= FALLBACK_LIMIT and self.emitted < self.out_rate * FALLBACK_PROVEN_S:
                self._history += data
            else:
                self._history = None
        if self.fallback is not None:
            return EMPTY
        if self.inner is None:
            self._head += data
            if not self._choose(final=False):
                return EMPTY
            data, self._head = bytes(self._head), bytearray()
            if self.fallback is not None:
                return EMPTY
        return self._run(lambda: self.inner.feed(data))  # type: ignore[union-attr]

    def flush(self) -> np.ndarray:
        if self.inner is None and self.fallback is None:
            if not self._head:
                raise DecodeError("the response was empty")
            self._choose(final=True)
            if self.fallback is None:
                data, self._head = bytes(self._head), bytearray()
                first = self._run(lambda: self.inner.feed(data))  # type: ignore[union-attr]
                if self.fallback is None:
                    return _concat(first, self._run(lambda: self.inner.flush()))  # type: ignore[union-attr]
        elif self.fallback is None:
            out = self._run(lambda: self.inner.flush())  # type: ignore[union-attr]
            if self.fallback is None:
                self._collect_warnings()
                return out
        return self._decode_buffered()

    def take_gap(self) -> bool:
        """True once after an output that does not follow on from the audio handed on before it (a
        corrupt frame was skipped): the player then fades out what it has buffered."""
        gap = bool(getattr(self.inner, "gap_at_start", False))
        if gap:
            self.inner.gap_at_start = False  # type: ignore[union-attr]
        return gap

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def release(self) -> None:
        """The reply is over: close, and drop the bytes kept for the buffered fallback (the figures stay)."""
        self.close()
        self._history = None
        self._head = bytearray()

    # -- internals ----------------------------------------------------------------------------------
    def _choose(self, final: bool) -> bool:
        from .framing import sniff

        fmt = sniff(bytes(self._head), self.content_type, requested=self.requested, final=final)
        if fmt is None:
            return False
        self.detected = fmt
        if fmt == "text":  # an error page or JSON sent as if it were audio: never played, never decoded
            start = clean_text(bytes(self._head[:2048]).decode("utf-8", "replace"), 160)
            raise DecodeError(f"the response is text, not audio: {start}")
        labelled = format_from_content_type(self.content_type)
        if fmt != self.requested:
            label = f" (Content-Type {self.content_type})" if self.content_type else ""
            self.warnings.append(f"asked for {self.requested} but the stream is {fmt}{label}; decoding {fmt}")
        elif labelled is not None and labelled != fmt:
            self.warnings.append(f"the Content-Type says {self.content_type} but the stream is {fmt}; decoding {fmt}")
        self.format = fmt
        try:
            self.inner = make_decoder(fmt, pcm_rate=self.pcm_rate, out_rate=self.out_rate,
                                      pcm_channels=self.pcm_channels, layout=self.layout)
        except DecodeError as exc:
            self._fall_back(str(exc))
        return True

    def _run(self, step: Callable[[], np.ndarray]) -> np.ndarray:
        try:
            out = step()
        except DecodeError as exc:
            self._fall_back(str(exc))
            return EMPTY
        if len(out):
            if self.first_audio_bytes is None:
                self.first_audio_bytes = self.bytes_in
            self.emitted += len(out)
        return out

    def _fall_back(self, reason: str) -> None:
        if self._history is None:
            raise DecodeError(reason)
        self.fallback = reason
        self.close()

    def _decode_buffered(self) -> np.ndarray:
        from .avdecoders import decode_whole

        assert self._history is not None and self.fallback is not None
        self._collect_warnings()
        samples, codec, rate, self._fallback_channels = decode_whole(bytes(self._history), self.out_rate, self.layout)
        self._history = None
        self.warnings.append(f"played buffered ({codec} at {rate} Hz): {self.fallback}")
        skip = min(self.emitted, len(samples))  # already handed on progressively: never twice
        out = samples[skip:]
        if len(out) and self.first_audio_bytes is None:
            self.first_audio_bytes = self.bytes_in
        self.emitted += len(out)
        return out

    def _collect_warnings(self) -> None:
        for w in getattr(self.inner, "warnings", []):
            if w not in self.warnings:
                self.warnings.append(w)


def _concat(a: np.ndarray, b: np.ndarray) -> np.ndarray:  # either may be EMPTY (1-D) in a stereo layout
    if not len(a):
        return b
    if not len(b):
        return a
    return np.concatenate([a, b])
