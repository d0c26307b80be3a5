"""Ogg pages: capture pattern, CRC-32, packets from lacing values, OpusHead, the page interval."""

from __future__ import annotations

from dataclasses import dataclass

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
