"""MP3 and AAC (ADTS): sync-word frames, their headers, ID3v2 tags and the Xing/LAME tag."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# -- MP3 ----------------------------------------------------------------------------------------------

_MP3_BITRATES = {  # kbit/s by (MPEG-1?, layer)
    (True, 1): (0, 32, 64, 96, 128, 160, 192, 224, 256, 288, 320, 352, 384, 416, 448),
    (True, 2): (0, 32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384),
    (True, 3): (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    (False, 1): (0, 32, 48, 56, 64, 80, 96, 112, 128, 144, 160, 176, 192, 224, 256),
    (False, 2): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
    (False, 3): (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}
_MP3_RATES = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}  # by version bits
MP3_DECODER_DELAY = 529  # samples every MP3 decoder adds (528 + 1), trimmed with the encoder's delay


@dataclass(frozen=True)
class Mp3Header:
    version: int  # version bits: 3 MPEG-1, 2 MPEG-2, 0 MPEG-2.5
    layer: int  # 1, 2 or 3
    bitrate: int  # bit/s
    sample_rate: int
    padding: int
    channels: int
    protected: bool

    @property
    def mpeg1(self) -> bool:
        return self.version == 3

    @property
    def samples(self) -> int:
        if self.layer == 1:
            return 384
        if self.layer == 3 and not self.mpeg1:
            return 576
        return 1152

    @property
    def length(self) -> int:
        if self.layer == 1:
            return (12 * self.bitrate // self.sample_rate + self.padding) * 4
        coeff = 72 if self.layer == 3 and not self.mpeg1 else 144
        return coeff * self.bitrate // self.sample_rate + self.padding

    def same_stream(self, other: Mp3Header) -> bool:
        return (self.version, self.layer, self.sample_rate) == (other.version, other.layer, other.sample_rate)


def parse_mp3_header(b: bytes | bytearray | memoryview, i: int = 0) -> Mp3Header | None:
    """The MPEG audio header at `b[i:i+4]`, or None if those bytes are not a valid one."""
    if len(b) - i < 4 or b[i] != 0xFF or (b[i + 1] & 0xE0) != 0xE0:
        return None
    version = (b[i + 1] >> 3) & 3
    layer_bits = (b[i + 1] >> 1) & 3
    bitrate_index = b[i + 2] >> 4
    rate_index = (b[i + 2] >> 2) & 3
    if version == 1 or layer_bits == 0 or bitrate_index in (0, 15) or rate_index == 3 or (b[i + 3] & 3) == 2:
        return None  # reserved version/layer/rate/emphasis; free-format bitrate is not supported
    layer = 4 - layer_bits
    bitrate = _MP3_BITRATES[(version == 3, layer)][bitrate_index] * 1000
    return Mp3Header(version=version, layer=layer, bitrate=bitrate, sample_rate=_MP3_RATES[version][rate_index],
                     padding=(b[i + 2] >> 1) & 1, channels=1 if (b[i + 3] >> 6) == 3 else 2,
                     protected=not (b[i + 1] & 1))


@dataclass
class XingInfo:
    tag: str  # "Xing" (VBR) or "Info" (CBR)
    frames: int | None
    encoder: str  # "LAME3.100", or "" without a LAME tag
    delay: int | None  # encoder delay in samples, from the LAME tag
    padding: int | None  # samples of padding at the end, from the LAME tag


def parse_xing(frame: bytes, header: Mp3Header) -> XingInfo | None:
    """The Xing/Info tag (and LAME tag) in the first frame of a LAME-encoded file, if it is one."""
    if header.mpeg1:
        side = 17 if header.channels == 1 else 32
    else:
        side = 9 if header.channels == 1 else 17
    at = 4 + (2 if header.protected else 0) + side
    tag = frame[at : at + 4]
    if tag not in (b"Xing", b"Info"):
        return None
    flags = int.from_bytes(frame[at + 4 : at + 8], "big")
    pos = at + 8
    frames = None
    if flags & 1:
        frames = int.from_bytes(frame[pos : pos + 4], "big")
        pos += 4
    if flags & 2:
        pos += 4  # byte count
    if flags & 4:
        pos += 100  # seek table
    if flags & 8:
        pos += 4  # quality
    encoder = frame[pos : pos + 9]
    delay = padding = None
    if len(frame) >= pos + 24 and encoder[:4] in (b"LAME", b"Lavc", b"Lavf"):
        raw = frame[pos + 21 : pos + 24]
        delay = (raw[0] << 4) | (raw[1] >> 4)
        padding = ((raw[1] & 0x0F) << 8) | raw[2]
    return XingInfo(tag=tag.decode(), frames=frames, encoder=encoder.decode("latin-1").rstrip("\x00 "),
                    delay=delay, padding=padding)


def id3v2_length(b: bytes | bytearray, i: int = 0) -> int | None:
    """Total length of an ID3v2 tag starting at `b[i]`, or None if there is none (or it is not complete
    enough to tell: fewer than 10 bytes)."""
    if len(b) - i < 10 or b[i : i + 3] != b"ID3":
        return None
    size_bytes = b[i + 6 : i + 10]
    if any(x & 0x80 for x in size_bytes) or b[i + 3] == 0xFF:
        return None
    size = (size_bytes[0] << 21) | (size_bytes[1] << 14) | (size_bytes[2] << 7) | size_bytes[3]
    footer = 10 if b[i + 5] & 0x10 else 0
    return 10 + size + footer


class _SyncScanner:
    """Splits a stream of sync-word frames (MP3, ADTS) into frames.

    Until it is in sync, a header is accepted only if the next frame's header follows where its
    length says and describes the same stream; once in sync, a valid header at the expected place is
    enough (the last frame of a stream has no successor). Bytes that are not frames (garbage, a
    corrupted header) are skipped: `skipped_bytes` counts them, `losses` counts each corrupt stretch
    once. ID3v2 tags are skipped whole.
    """

    kind = "frames"
    header_size = 4

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.audio_frames = 0
        self.skipped_bytes = 0
        self.resyncs = 0
        self.losses = 0
        self.loss_marks: list[int] = []  # audio_frames when each loss happened: a gap before that frame
        self.id3_bytes = 0
        self.header: Any = None  # of the last frame
        self._ref: Any = None  # the stream's identity, from its first confirmed frame
        self._in_sync = False  # False at the start and after every resync: confirm the next header
        self._lost_at_start = False
        self._id3_left = 0

    def _parse(self, b: bytes | bytearray, i: int = 0) -> Any:
        raise NotImplementedError

    def _is_audio(self, frame: bytes, header: Any) -> bool:
        return True

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        return self._scan(final=False)

    def flush(self) -> list[bytes]:
        out = self._scan(final=True)
        if self._buf:  # a truncated last frame, or trailing garbage
            self.skipped_bytes += len(self._buf)
            self._buf.clear()
        return out

    def _lose_sync(self, skip: int) -> None:
        if self._in_sync or self._ref is None and not self._lost_at_start:
            self.losses += 1
            self.loss_marks.append(self.audio_frames)
            self._lost_at_start = self._ref is None
        self.resyncs += 1
        self._in_sync = False
        del self._buf[:skip]
        self.skipped_bytes += skip

    def _scan(self, final: bool) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buf
        while True:
            if self._id3_left:
                take = min(self._id3_left, len(buf))
                del buf[:take]
                self._id3_left -= take
                if self._id3_left:
                    return out
            if len(buf) < max(self.header_size, 10 if buf[:3] == b"ID3" else 0):
                return out
            if buf[:3] == b"ID3":
                tag = id3v2_length(buf)
                if tag is not None:
                    self.id3_bytes += tag
                    self._id3_left = tag
                    continue
            header = self._parse(buf)
            if header is None or (self._ref is not None and not header.same_stream(self._ref)):
                nxt = buf.find(b"\xff", 1)  # the next byte that could start a header
                self._lose_sync(nxt if nxt > 0 else len(buf))
                continue
            length = header.length
            if len(buf) < length:
                return out
            if not self._in_sync:
                if len(buf) < length + self.header_size:
                    if not final:
                        return out
                    confirmed = len(buf) == length  # a single complete frame at the very end
                else:
                    follow = self._parse(buf, length)
                    confirmed = (follow is not None and follow.same_stream(header)) \
                        or buf[length : length + 3] == b"ID3"
                if not confirmed:
                    self._lose_sync(1)
                    continue
                self._in_sync = True
                self._ref = self._ref or header
            frame = bytes(buf[:length])
            del buf[:length]
            self.frames += 1
            self.header = header
            if self._is_audio(frame, header):
                self.audio_frames += 1
                out.append(frame)


class Mp3Scanner(_SyncScanner):
    """MP3 frames; the first frame, if it is a Xing/Info frame, is read (LAME tag) and not passed on."""

    header_size = 4

    def __init__(self) -> None:
        super().__init__()
        self.xing: XingInfo | None = None

    def _parse(self, b: bytes | bytearray, i: int = 0) -> Mp3Header | None:
        return parse_mp3_header(b, i)

    def _is_audio(self, frame: bytes, header: Mp3Header) -> bool:
        if self.frames == 1 and header.layer == 3:
            self.xing = parse_xing(frame, header)
            return self.xing is None  # the Info frame holds no audio
        return True


# -- AAC in ADTS ----------------------------------------------------------------------------------------

_ADTS_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


@dataclass(frozen=True)
class AdtsHeader:
    profile: int
    sample_rate: int
    channels: int
    length: int  # the whole frame, header included
    blocks: int
    header_length: int

    @property
    def samples(self) -> int:
        return 1024 * self.blocks

    def same_stream(self, other: AdtsHeader) -> bool:
        return (self.profile, self.sample_rate, self.channels) == (other.profile, other.sample_rate, other.channels)


def parse_adts_header(b: bytes | bytearray | memoryview, i: int = 0) -> AdtsHeader | None:
    if len(b) - i < 7 or b[i] != 0xFF or (b[i + 1] & 0xF6) != 0xF0:
        return None  # sync 0xFFF, layer 00
    rate_index = (b[i + 2] >> 2) & 0x0F
    if rate_index >= len(_ADTS_RATES):
        return None
    channels = ((b[i + 2] & 1) << 2) | (b[i + 3] >> 6)
    length = ((b[i + 3] & 3) << 11) | (b[i + 4] << 3) | (b[i + 5] >> 5)
    header_length = 7 if b[i + 1] & 1 else 9
    if length <= header_length:
        return None
    return AdtsHeader(profile=b[i + 2] >> 6, sample_rate=_ADTS_RATES[rate_index], channels=channels,
                      length=length, blocks=(b[i + 6] & 3) + 1, header_length=header_length)


class AdtsScanner(_SyncScanner):
    """AAC in ADTS frames."""

    header_size = 7

    def _parse(self, b: bytes | bytearray, i: int = 0) -> AdtsHeader | None:
        return parse_adts_header(b, i)
