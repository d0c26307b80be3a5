"""The response formats, one row each. Everything that depends on the format reads this table.

That covers the settings' choices, the Content-Types the source and the server use, the decoder
the engine picks, the format advice and the benchmarks. Adding a format is one row here, its scanner
in `framing` if it is framed, and its encoder in the server.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AudioFormat:
    name: str  # as OpenAI's `response_format` names it
    content_type: str  # the label OpenAI-compatible servers send (ours too)
    also_labelled: tuple[str, ...]  # other Content-Types that mean this format
    kbps: float  # on the wire from the embedded server (mono, 24 kHz): what the format advice weighs
    unit: str  # the smallest piece that decodes on its own: "sample", "frame" or "page"
    unit_ms: float  # its length as the embedded server sends it (0 for samples)
    decoder: str  # "pcm", "wav", "framed" (our scanner + an FFmpeg codec) or "demux" (FFmpeg's demuxer)
    scanner: str | None = None  # the class in `engine.framing` that cuts the stream into units
    codec: str | None = None  # the FFmpeg decoder one unit goes to (framed formats)


FORMATS: dict[str, AudioFormat] = {f.name: f for f in (
    AudioFormat("pcm", "audio/pcm", ("audio/l16", "audio/raw"), 384.0, "sample", 0.0, "pcm"),
    AudioFormat("wav", "audio/wav", ("audio/x-wav", "audio/wave", "audio/vnd.wave"), 384.0, "sample", 0.0, "wav"),
    AudioFormat("mp3", "audio/mpeg", ("audio/mp3", "audio/mpeg3"), 32.0, "frame", 576 / 24.0, "framed",
                "Mp3Scanner", "mp3float"),
    AudioFormat("opus", "audio/opus", ("audio/ogg", "application/ogg"), 120.0, "page", 20.0, "demux", "OggScanner"),
    AudioFormat("aac", "audio/aac", ("audio/aacp", "audio/x-aac"), 80.0, "frame", 1024 / 24.0, "framed",
                "AdtsScanner", "aac"),
    AudioFormat("flac", "audio/flac", ("audio/x-flac",), 215.0, "frame", 2304 / 24.0, "framed",
                "FlacScanner", "flac"),
)}
NAMES: tuple[str, ...] = tuple(FORMATS)
CONTENT_TYPES: dict[str, str] = {name: f.content_type for name, f in FORMATS.items()}
_BY_LABEL = {label: f.name for f in FORMATS.values() for label in (f.content_type, *f.also_labelled)}


def format_from_content_type(content_type: str | None) -> str | None:
    """The format a Content-Type names (parameters and case ignored), or None."""
    if not content_type:
        return None
    return _BY_LABEL.get(content_type.split(";")[0].strip().lower())
