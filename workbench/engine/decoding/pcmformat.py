"""What headerless PCM really is: its rate and channels, as the response states them.

OpenAI's `pcm` is 24 kHz mono s16le and says nothing. Other servers say, each in their own way:

- a Piper-based server: `Content-Type: audio/pcm_s16le` and `X-Sample-Rate: 22050` (with `X-Channels`,
  `X-Sample-Width`);
- openedai-speech: `audio/pcm;rate=22050`;
- others: `audio/L16;rate=16000;channels=1` (RFC 2586's L16).

Played as 24 kHz, 22050 Hz speech is 9 % fast and pitched up. So the rate and channels come from the
response when it states them; `WORKBENCH_PCM_RATE` is the fallback, and when it was set explicitly it
wins, with a note where the response disagrees.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..text.safetext import clean_text


@dataclass(frozen=True)
class PcmFormat:
    rate: int
    channels: int = 1
    rate_from: str = "default"  # "X-Sample-Rate", "Content-Type", "WORKBENCH_PCM_RATE" or "default"
    channels_from: str = "default"


def _number(raw: str, what: str, lo: int, hi: int, notes: list[str]) -> int | None:
    try:
        value = int(raw.strip())
    except ValueError:
        notes.append(f"the response's {what} {clean_text(raw, 40)!r} is not a number; ignored")
        return None
    if not lo <= value <= hi:
        notes.append(f"the response's {what} {value} is out of range ({lo} to {hi}); ignored")
        return None
    return value


def stated(headers: Mapping[str, str], notes: list[str]) -> tuple[int | None, str, int | None, str]:
    """(rate, where from, channels, where from) as the response states them; None where it does not.
    `headers` has lower-case names. Problems are added to `notes`."""
    rate: int | None = None
    channels: int | None = None
    rate_from = channels_from = ""
    content_type = headers.get("content-type", "")
    media, _, params = content_type.partition(";")
    fields: dict[str, str] = {}
    for part in params.split(";"):
        key, eq, text = part.partition("=")
        if eq:
            fields[key.strip().lower()] = text.strip().strip('"')
    if "rate" in fields:
        rate = _number(fields["rate"], "Content-Type rate", 8_000, 192_000, notes)
        rate_from = "Content-Type"
    if "channels" in fields:
        channels = _number(fields["channels"], "Content-Type channels", 1, 8, notes)
        channels_from = "Content-Type"
    if "x-sample-rate" in headers:
        value = _number(headers["x-sample-rate"], "X-Sample-Rate", 8_000, 192_000, notes)
        if value is not None:
            rate, rate_from = value, "X-Sample-Rate"
    if "x-channels" in headers:
        value = _number(headers["x-channels"], "X-Channels", 1, 8, notes)
        if value is not None:
            channels, channels_from = value, "X-Channels"
    width = headers.get("x-sample-width")
    if width is not None and width.strip() not in ("2", "16"):
        notes.append(f"the response says X-Sample-Width {clean_text(width, 20)!r}; PCM is played as 16-bit")
    if media.strip().lower() in ("audio/l16",) and rate is None:
        notes.append("the response is L16 with no rate; RFC 2586 does not say one")
    return rate, rate_from if rate is not None else "", channels, channels_from if channels is not None else ""


def resolve(headers: Mapping[str, str], configured_rate: int, explicit: bool, notes: list[str]) -> PcmFormat:
    """The format to decode with: the response's, unless `WORKBENCH_PCM_RATE` was set explicitly."""
    rate, rate_from, channels, channels_from = stated(headers, notes)
    if explicit:
        if rate is not None and rate != configured_rate:
            notes.append(f"the response says {rate} Hz ({rate_from}) but WORKBENCH_PCM_RATE={configured_rate} "
                         "was set: playing at that (unset it to follow the response)")
        chosen = PcmFormat(configured_rate, channels or 1, "WORKBENCH_PCM_RATE", channels_from or "default")
    elif rate is not None:
        chosen = PcmFormat(rate, channels or 1, rate_from, channels_from or "default")
    else:
        chosen = PcmFormat(configured_rate, channels or 1, "default", channels_from or "default")
    return chosen
