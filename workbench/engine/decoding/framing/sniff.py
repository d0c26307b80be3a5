"""What a stream is, from its first bytes and its Content-Type."""

from __future__ import annotations

from typing import Any

from ..formats import format_from_content_type
from .mpeg import id3v2_length, parse_adts_header, parse_mp3_header

SNIFF_BYTES = 4096  # look no further than this for a frame sync


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
