"""Frame and page boundaries of compressed audio streams, found by our own scanners.

The decoders hand whole frames (MP3, ADTS) or whole pages (Ogg) to FFmpeg, never arbitrary byte chunks,
so frames can be counted as they arrive, and a corrupt or truncated frame is dropped and counted
instead of derailing the stream. Every scanner takes bytes in any split (`feed`) and keeps the tail
of an incomplete frame for the next call.

- `Mp3Scanner`: frame sync, header validation, frame length from bitrate, sample rate and padding,
  confirmation by the next header (until the stream has locked on), ID3v2 tags skipped, the Xing/Info
  frame recognised and its LAME tag's encoder delay read (so priming can be trimmed).
- `AdtsScanner`: AAC in ADTS frames (sync, layer, frame length, confirmation by the next header).
- `FlacScanner`: the `fLaC` metadata (STREAMINFO kept for the decoder), then frames cut at the next
  header whose CRC-8 checks and whose frame number follows.
- `OggScanner`: Ogg pages (capture pattern, CRC-32 checked), packets reassembled from the lacing
  values, OpusHead's pre-skip read, the page interval measured from granule positions.
- `sniff`: the format of a stream from its first bytes and its Content-Type.
"""

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
                    confirmed = (follow is not None and follow.same_stream(header)) or buf[length : length + 3] == b"ID3"
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


# -- Ogg -------------------------------------------------------------------------------------------------

def _ogg_crc_table() -> list[int]:
    table = []
    for i in range(256):
        r = i << 24
        for _ in range(8):
            r = ((r << 1) ^ 0x04C11DB7) if r & 0x80000000 else (r << 1)
        table.append(r & 0xFFFFFFFF)
    return table


_OGG_CRC = _ogg_crc_table()


def ogg_crc(data: bytes | bytearray | memoryview) -> int:
    """Ogg's CRC-32 (polynomial 0x04C11DB7, not reflected, initial value 0)."""
    crc = 0
    table = _OGG_CRC
    for byte in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ table[(crc >> 24) ^ byte]
    return crc


@dataclass(frozen=True)
class OggPage:
    data: bytes  # the whole page
    header_type: int
    granule: int
    serial: int
    sequence: int
    segments: tuple[int, ...]
    header_length: int

    @property
    def body(self) -> bytes:
        return self.data[self.header_length :]


class OggScanner:
    """Splits an Ogg stream into pages, checking each page's CRC; a page that fails is dropped.

    Also reads the Opus identification header (channels, pre-skip, input rate) and measures the page
    interval from the granule positions (48 kHz for Opus).
    """

    kind = "pages"

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0  # pages accepted
        self.audio_frames = 0  # pages after the headers
        self.bad_pages = 0  # pages lost to damage (a failed CRC, a broken capture pattern)
        self._in_sync = True  # a page must start at the very beginning
        self.skipped_bytes = 0
        self.resyncs = 0
        self.codec: str | None = None  # "opus", "vorbis", "flac" or "unknown"
        self.pre_skip: int | None = None
        self.channels: int | None = None
        self._granules: list[int] = []
        self._headers_left = 2  # Opus: OpusHead, OpusTags

    @property
    def pending(self) -> int:
        return len(self._buf)

    @property
    def page_interval_ms(self) -> float | None:
        """Median audio duration per page (Opus granules are 48 kHz samples)."""
        g = [b - a for a, b in zip(self._granules, self._granules[1:], strict=False) if b > a]
        if not g:
            return None
        g.sort()
        return g[len(g) // 2] / 48.0

    def feed(self, data: bytes) -> list[OggPage]:
        self._buf += data
        return self._scan()

    def flush(self) -> list[OggPage]:
        out = self._scan()
        # a page whose (corrupt) header claims more bytes than the stream had: look past it
        while self._buf and (nxt := self._buf.find(b"OggS", 1)) > 0:
            self.bad_pages += 1
            self.skipped_bytes += nxt
            del self._buf[:nxt]
            out += self._scan()
        if self._buf:
            self.skipped_bytes += len(self._buf)
            self._buf.clear()
        return out

    def _scan(self) -> list[OggPage]:
        out: list[OggPage] = []
        buf = self._buf
        while True:
            if len(buf) < 27:
                return out
            if buf[:4] != b"OggS" or buf[4] != 0:
                nxt = buf.find(b"OggS", 1)
                if nxt < 0:
                    nxt = max(len(buf) - 3, 1)
                if self._in_sync:  # a page should start here: it is damaged
                    self.bad_pages += 1
                    self._in_sync = False
                self.resyncs += 1
                self.skipped_bytes += nxt
                del buf[:nxt]
                continue
            nsegs = buf[26]
            header_length = 27 + nsegs
            if len(buf) < header_length:
                return out
            segments = tuple(buf[27:header_length])
            length = header_length + sum(segments)
            if len(buf) < length:
                return out
            page = bytes(buf[:length])
            stored = int.from_bytes(page[22:26], "little")
            if ogg_crc(page[:22] + b"\0\0\0\0" + page[26:]) != stored:
                # a corrupt page (or a false capture pattern): drop one byte and look for the next page
                if self._in_sync:
                    self.bad_pages += 1
                    self._in_sync = False
                self.resyncs += 1
                self.skipped_bytes += 1
                del buf[:1]
                continue
            del buf[:length]
            self._in_sync = True
            granule = int.from_bytes(page[6:14], "little", signed=True)
            parsed = OggPage(data=page, header_type=page[5], granule=granule,
                             serial=int.from_bytes(page[14:18], "little"),
                             sequence=int.from_bytes(page[18:22], "little"), segments=segments,
                             header_length=header_length)
            self.frames += 1
            self._note(parsed)
            out.append(parsed)

    def _note(self, page: OggPage) -> None:
        body = page.body
        if self.codec is None:
            if body.startswith(b"OpusHead") and len(body) >= 19:
                self.codec = "opus"
                self.channels = body[9]
                self.pre_skip = int.from_bytes(body[10:12], "little")
            elif body[1:7] == b"vorbis":
                self.codec = "vorbis"
                self._headers_left = 3
            elif body[1:5] == b"FLAC":
                self.codec = "flac"
            else:
                self.codec = "unknown"
        if self._headers_left > 0 and page.granule in (0, -1):
            self._headers_left -= 1
            return
        self._headers_left = 0
        self.audio_frames += 1
        if page.granule >= 0 and len(self._granules) < 10_000:
            self._granules.append(page.granule)


# -- FLAC ------------------------------------------------------------------------------------------------

def _crc8_table() -> list[int]:
    table = []
    for i in range(256):
        r = i
        for _ in range(8):
            r = ((r << 1) ^ 0x07) & 0xFF if r & 0x80 else (r << 1) & 0xFF
        table.append(r)
    return table


_CRC8 = _crc8_table()


def flac_crc8(data: bytes | bytearray | memoryview) -> int:
    crc = 0
    for byte in data:
        crc = _CRC8[crc ^ byte]
    return crc


@dataclass(frozen=True)
class FlacHeader:
    length: int  # header bytes, CRC-8 included
    number: int  # frame number (fixed block size) or first sample number (variable)
    stream: tuple[int, int, int, int]  # blocking strategy, sample rate, channels, sample size codes

    def same_stream(self, other: FlacHeader) -> bool:
        return self.stream == other.stream


def parse_flac_header(b: bytes | bytearray, i: int = 0) -> FlacHeader | None:
    """The FLAC frame header at `b[i]` if it is a valid one (its CRC-8 checked), else None; None too
    when fewer bytes than the header needs are there."""
    n = len(b)
    if n - i < 6 or b[i] != 0xFF or b[i + 1] not in (0xF8, 0xF9):
        return None
    block_code, rate_code = b[i + 2] >> 4, b[i + 2] & 0x0F
    channels, size_code = b[i + 3] >> 4, (b[i + 3] >> 1) & 7
    if block_code == 0 or rate_code == 15 or channels > 10 or size_code == 3 or b[i + 3] & 1:
        return None
    first = b[i + 4]
    if first < 0x80:
        extra, value = 0, first
    elif first & 0xE0 == 0xC0:
        extra, value = 1, first & 0x1F
    elif first & 0xF0 == 0xE0:
        extra, value = 2, first & 0x0F
    elif first & 0xF8 == 0xF0:
        extra, value = 3, first & 0x07
    elif first & 0xFC == 0xF8:
        extra, value = 4, first & 0x03
    elif first & 0xFE == 0xFC:
        extra, value = 5, first & 0x01
    elif first == 0xFE:
        extra, value = 6, 0
    else:
        return None
    pos = i + 5
    if n < pos + extra:
        return None
    for k in range(extra):
        c = b[pos + k]
        if c & 0xC0 != 0x80:
            return None
        value = (value << 6) | (c & 0x3F)
    pos += extra
    pos += 1 if block_code == 6 else 2 if block_code == 7 else 0
    pos += 1 if rate_code == 12 else 2 if rate_code in (13, 14) else 0
    if n < pos + 1 or flac_crc8(b[i:pos]) != b[pos]:
        return None
    return FlacHeader(length=pos + 1 - i, number=value, stream=(b[i + 1], rate_code, channels, size_code))


class FlacScanner:
    """Reads the `fLaC` metadata (keeping STREAMINFO for the decoder), then cuts the frames.

    A frame ends where the next valid header starts: its CRC-8 checks out, it describes the same
    stream, and its number follows this frame's (within a few, so a damaged frame in between is
    stepped over). The decoder checks each frame's CRC-16. Metadata blocks other than STREAMINFO
    (padding can be 8 KB) are skipped as they stream past.
    """

    kind = "frames"

    def __init__(self) -> None:
        self._buf = bytearray()
        self._stage = "magic"  # magic -> meta (-> skip -> meta ...) -> frames
        self._skip = 0
        self._last_block = False
        self.streaminfo: bytes | None = None
        self.frames = 0
        self.audio_frames = 0
        self.skipped_bytes = 0
        self.losses = 0
        self.loss_marks: list[int] = []  # audio_frames when each loss happened: a gap before that frame
        self.resyncs = 0
        self.metadata_bytes = 0
        self._current: FlacHeader | None = None
        self._search = 0
        self._ref: FlacHeader | None = None
        self._in_sync = True

    @property
    def pending(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        self._buf += data
        return self._scan()

    def flush(self) -> list[bytes]:
        out = self._scan()
        if self._stage == "frames" and self._current is None and len(self._buf) >= 6:
            self._current = parse_flac_header(self._buf)
        if self._current is not None and len(self._buf) > self._current.length + 2:
            out.append(bytes(self._buf))  # the last frame runs to the end of the stream
            self.frames += 1
            self.audio_frames += 1
        elif self._buf:
            self.skipped_bytes += len(self._buf)
        self._buf.clear()
        self._current = None
        return out

    def _scan(self) -> list[bytes]:
        out: list[bytes] = []
        buf = self._buf
        while True:
            if self._stage == "magic":
                if len(buf) < 4:
                    return out
                if buf[:4] == b"fLaC":
                    del buf[:4]
                    self.metadata_bytes += 4
                    self._stage = "meta"
                else:
                    self._stage = "frames"  # raw frames without the stream header
            elif self._stage == "meta":
                if len(buf) < 4:
                    return out
                self._last_block = bool(buf[0] & 0x80)
                kind, length = buf[0] & 0x7F, int.from_bytes(buf[1:4], "big")
                if kind == 0:
                    if len(buf) < 4 + length:
                        return out
                    self.streaminfo = bytes(buf[4 : 4 + length])
                self._skip = 4 + length
                self._stage = "skip"
            elif self._stage == "skip":
                take = min(self._skip, len(buf))
                del buf[:take]
                self.metadata_bytes += take
                self._skip -= take
                if self._skip:
                    return out
                self._stage = "frames" if self._last_block else "meta"
            else:
                if self._current is None:
                    if len(buf) < 16:
                        return out
                    header = parse_flac_header(buf)
                    if header is None or (self._ref is not None and not header.same_stream(self._ref)):
                        nxt = buf.find(b"\xff", 1)
                        nxt = nxt if nxt > 0 else len(buf)
                        if self._in_sync:
                            self.losses += 1
                            self.loss_marks.append(self.audio_frames)
                            self._in_sync = False
                        self.resyncs += 1
                        del buf[:nxt]
                        self.skipped_bytes += nxt
                        continue
                    self._current = header
                    self._ref = self._ref or header
                    self._search = header.length
                end = self._next_header()
                if end is None:
                    return out
                out.append(bytes(buf[:end]))
                del buf[:end]
                self.frames += 1
                self.audio_frames += 1
                self._current = None
                self._in_sync = True

    def _next_header(self) -> int | None:
        buf, current = self._buf, self._current
        assert current is not None
        step = 1 if current.stream[0] == 0xF8 else 65536  # frame numbers, or sample numbers
        i = self._search
        while True:
            i = buf.find(b"\xff", i)
            if i < 0 or len(buf) - i < 16:
                self._search = len(buf) - 16 if i < 0 else i
                self._search = max(self._search, current.length)
                return None
            if buf[i + 1] in (0xF8, 0xF9):
                header = parse_flac_header(buf, i)
                if (header is not None and header.same_stream(current)
                        and 0 < header.number - current.number <= 8 * step):
                    return i
            i += 1


# -- sniffing ------------------------------------------------------------------------------------------

CONTENT_TYPE_FORMATS = {
    "audio/pcm": "pcm", "audio/l16": "pcm", "audio/raw": "pcm",
    "audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/vnd.wave": "wav",
    "audio/mpeg": "mp3", "audio/mp3": "mp3", "audio/mpeg3": "mp3",
    "audio/opus": "opus", "audio/ogg": "opus", "application/ogg": "opus",
    "audio/aac": "aac", "audio/aacp": "aac", "audio/x-aac": "aac",
    "audio/flac": "flac", "audio/x-flac": "flac",
}
SNIFF_BYTES = 4096  # look no further than this for a frame sync


def format_from_content_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return CONTENT_TYPE_FORMATS.get(content_type.split(";")[0].strip().lower())


TEXT_SNIFF_BYTES = 32
_PRINTABLE = frozenset(range(0x20, 0x7F)) | {0x09, 0x0A, 0x0D}


def looks_like_text(head: bytes, final: bool = False) -> bool | None:
    """True when `head` starts like a web page, XML or JSON (an error page sent as if it were audio);
    None when too few bytes have come to tell.

    Audio cannot look like this by chance: 32 bytes of printable ASCII after a '<', '{' or '[' would be
    16 loud samples of one sign in a row, and real replies start near silence (bytes 0x00 and 0xFF).
    """
    body = head.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    if not body:
        return None if not final and len(head) < TEXT_SNIFF_BYTES else False
    if body[:1] not in (b"<", b"{", b"["):
        return False
    sample = body[:TEXT_SNIFF_BYTES]
    if len(sample) < TEXT_SNIFF_BYTES and not final:
        return None
    return all(b in _PRINTABLE for b in sample)


def sniff(head: bytes, content_type: str | None = None, *, requested: str | None = None,
          final: bool = False) -> str | None:
    """The format of a stream that starts with `head`, or None if more bytes are needed to tell.

    Magic numbers decide first (RIFF/WAVE, OggS, fLaC, ID3, then an MP3 or ADTS frame confirmed by
    the next header), then the Content-Type, then what was requested. Headerless PCM has no magic:
    when PCM is what the Content-Type (or the request) says, only unmistakable magic numbers overrule
    it, because PCM samples can look like a frame sync by chance.
    """
    declared = format_from_content_type(content_type) or requested
    text = looks_like_text(head, final)
    if text is None:
        return None
    if text:
        return "text"
    if len(head) < 4 and not final:
        return None
    if head[:4] in (b"RIFF", b"RF64"):
        if len(head) < 12 and not final:
            return None
        if head[8:12] == b"WAVE":
            return "wav"
    if head[:4] == b"OggS":
        return "opus"
    if head[:4] == b"fLaC":
        return "flac"
    if len(head) >= 8 and head[4:8] == b"ftyp":
        return "mp4"  # AAC in MP4/M4A: not decodable progressively (the index may come last)
    if declared == "pcm" and head[:3] != b"ID3":
        return "pcm"
    start = 0
    if head[:3] == b"ID3":
        tag = id3v2_length(head)
        if tag is None:
            return None if len(head) < 10 and not final else (declared or "mp3")
        if len(head) < tag + 11:
            # the tag alone does not say what follows; trust the label if it names a framed format
            if declared in ("mp3", "aac"):
                return declared
            return None if not final else "mp3"
        start = tag
    limit = min(len(head), start + SNIFF_BYTES)
    framed: tuple[tuple[str, Any, int], ...] = (("mp3", parse_mp3_header, 4), ("aac", parse_adts_header, 7))
    for i in range(start, limit - 3):
        if head[i] != 0xFF:
            continue
        for name, parse, size in framed:
            header = parse(head, i)
            if header is None:
                continue
            nxt = i + header.length
            if nxt + size > len(head):
                if not final:
                    return None  # wait for the next header to confirm this one
                continue
            follow = parse(head, nxt)
            if follow is not None and follow.same_stream(header):
                return name
    if len(head) < start + SNIFF_BYTES and not final:
        return None
    return declared
