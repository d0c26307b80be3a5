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

One module per format family: `mpeg` (MP3, ADTS), `ogg`, `flac`, and `sniff`.
"""

from .flac import FlacHeader, FlacScanner, flac_crc8, parse_flac_header
from .mpeg import (
    MP3_DECODER_DELAY,
    AdtsHeader,
    AdtsScanner,
    Mp3Header,
    Mp3Scanner,
    XingInfo,
    id3v2_length,
    parse_adts_header,
    parse_mp3_header,
    parse_xing,
)
from .ogg import OggPage, OggScanner, ogg_crc
from .sniff import SNIFF_BYTES, looks_like_text, sniff

__all__ = [
    "MP3_DECODER_DELAY", "SNIFF_BYTES", "AdtsHeader", "AdtsScanner", "FlacHeader", "FlacScanner", "Mp3Header",
    "Mp3Scanner", "OggPage", "OggScanner", "XingInfo", "flac_crc8", "id3v2_length", "looks_like_text",
    "ogg_crc", "parse_adts_header", "parse_flac_header", "parse_mp3_header", "parse_xing", "sniff",
]
