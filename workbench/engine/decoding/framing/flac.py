"""FLAC: the metadata blocks (STREAMINFO kept), then frames cut at the next header that checks out."""

from __future__ import annotations

from dataclasses import dataclass

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
