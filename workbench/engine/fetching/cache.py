"""A cache of whole replies as they were played: a reply asked for again with the same text, voice, model,
speed, format and endpoint (and the output rate, leading-silence trim and split it was played with) plays
from disk, with no request.

Voice assistants say the same short phrases again and again ("Done.", "Tests pass."); each costs a round
trip to the TTS server and its time to first audio. From the cache a phrase starts as soon as the device
does.

An entry is one file, named by a hash of its key: a magic line, one JSON line (the key, the rate, the
channels, the frames), then the audio as 16-bit samples. It is written to a temporary file in the same
folder and renamed, so a reader never sees half of one; it is read back only when its header names the
same key and its length is what the header says. The folder is bounded: past `max_bytes` the entries
played least recently go first (a hit touches its file). Only whole, clean replies are stored (the player
decides: no error, no retry or resume, nothing skipped, not stopped).

Every failure (a folder that cannot be read or written, a full disk, a corrupt entry) comes back as one
line for the user, and the play goes on from the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..decoding.base import Resampler
from ..decoding.layout import to_channels
from ..playrun import PlayRun

Push = Callable[[np.ndarray], Awaitable[None]]

MAGIC = b"workbench-reply 1\n"
SUFFIX = ".reply"
DEFAULT_MAX_MB = 100
MAX_REPLY_S = 120.0  # longer replies are not stored (a cache is for phrases said again)


@dataclass(frozen=True)
class ReplyKey:
    """What makes two replies the same audio."""

    endpoint: str
    text: str
    voice: str
    model: str
    speed: float | None
    format: str
    rate: int  # the output rate it was decoded to
    trim_leading_ms: int = 0
    split: str = "off"  # how the text was asked for (a split reply has its joins in it)
    extra: str = ""  # extra query parameters sent with the request (a test server's knobs), as JSON
    layout: str = "mono"  # the channels it was played in (a placed voice is stored placed)

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:40]


@dataclass
class CachedReply:
    samples: np.ndarray  # float32, frames x channels when channels > 1
    rate: int
    channels: int


def default_folder() -> Path:
    """`$XDG_CACHE_HOME/stream-workbench/replies`, else `~/.cache/stream-workbench/replies`."""
    base = os.environ.get("XDG_CACHE_HOME")
    root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
    return root / "stream-workbench" / "replies"


class ReplyCache:
    def __init__(self, folder: Path | str | None = None, *, max_mb: float = DEFAULT_MAX_MB) -> None:
        self.folder = Path(folder) if folder is not None else default_folder()
        self.max_bytes = int(max_mb * 1_000_000)

    def path(self, key: ReplyKey) -> Path:
        return self.folder / (key.digest() + SUFFIX)

    # -- reading ------------------------------------------------------------------------------------
    def get(self, key: ReplyKey) -> tuple[CachedReply | None, str | None]:
        """The entry for `key`, or None; and a line for the user when something was wrong with it."""
        path = self.path(key)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None, None
        except OSError as exc:
            return None, f"the reply cache could not be read ({_reason(exc)}); playing from the network"
        reply = _parse(data, key)
        if reply is None:
            with contextlib.suppress(OSError):
                path.unlink()
            return None, f"a cached reply was damaged and has been removed ({path.name}); playing from the network"
        with contextlib.suppress(OSError):
            os.utime(path)  # played now: the last to go
        return reply, None

    # -- writing ------------------------------------------------------------------------------------
    def put(self, key: ReplyKey, pieces: list[np.ndarray], rate: int, channels: int = 1) -> str | None:
        """Store a whole reply (the pieces as played, in order); None, or one line saying why it was not."""
        frames = sum(len(p) for p in pieces)
        if not frames:
            return None
        if frames / rate > MAX_REPLY_S:
            return None
        if frames * channels * 2 > self.max_bytes:
            return None
        audio = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
        pcm = np.clip(np.round(audio * 32768.0), -32768, 32767).astype("<i2")  # 16-bit PCM comes back exact
        header = json.dumps({"key": asdict(key), "rate": rate, "channels": channels, "frames": frames}).encode()
        tmp: str | None = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=SUFFIX)
            with os.fdopen(fd, "wb") as fh:
                fh.write(MAGIC + header + b"\n")
                fh.write(pcm.tobytes())
            os.replace(tmp, self.path(key))
            tmp = None
        except OSError as exc:
            return f"the reply was not saved to the cache ({_reason(exc)}: {self.folder})"
        finally:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self.trim()
        return None

    def trim(self) -> None:
        """Remove the entries played least recently until the folder is within its bound."""
        try:
            entries = [(p.stat(), p) for p in self.folder.iterdir() if p.suffix == SUFFIX]
        except OSError:
            return
        total = sum(st.st_size for st, _ in entries)
        for st, p in sorted(entries, key=lambda e: e[0].st_mtime):
            if total <= self.max_bytes:
                break
            with contextlib.suppress(OSError):
                p.unlink()
                total -= st.st_size

    def clear(self) -> int:
        """Remove every entry; how many were removed."""
        n = 0
        with contextlib.suppress(OSError):
            for p in self.folder.iterdir():
                if p.suffix == SUFFIX:
                    with contextlib.suppress(OSError):
                        p.unlink()
                        n += 1
        return n

    def stats(self) -> tuple[int, int]:
        """(entries, bytes) in the folder now."""
        try:
            sizes = [p.stat().st_size for p in self.folder.iterdir() if p.suffix == SUFFIX]
        except OSError:
            return 0, 0
        return len(sizes), sum(sizes)


def _parse(data: bytes, key: ReplyKey) -> CachedReply | None:
    if not data.startswith(MAGIC):
        return None
    head_end = data.find(b"\n", len(MAGIC))
    if head_end < 0:
        return None
    try:
        header = json.loads(data[len(MAGIC):head_end])
        rate, channels, frames = int(header["rate"]), int(header["channels"]), int(header["frames"])
        same = header["key"] == asdict(key)
    except (ValueError, KeyError, TypeError):
        return None
    body = data[head_end + 1:]
    if not same or rate <= 0 or channels < 1 or frames < 1 or len(body) != frames * channels * 2:
        return None
    samples = np.frombuffer(body, dtype="<i2").astype(np.float32) * (1.0 / 32768.0)
    if channels > 1:
        samples = samples.reshape(frames, channels)
    return CachedReply(samples, rate, channels)


def _reason(exc: OSError) -> str:
    return exc.strerror or type(exc).__name__


class CacheReplay:
    """A play's runner for a reply from the cache: hands its audio on as a fetch would, a tenth of a second
    at a time (so the buffer's backpressure holds), resampled if the sink opened at another rate."""

    PIECE_S = 0.1
    YIELD_S = 0.002

    def __init__(self, reply: CachedReply, run: PlayRun, *, out_rate: Callable[[], Awaitable[int]],
                 push: Push, channels: Callable[[], int] = lambda: 1) -> None:
        self.reply, self.run = reply, run
        self._out_rate, self._push, self._channels = out_rate, push, channels

    async def run_all(self) -> None:
        rate = await self._out_rate()
        channels = self._channels()  # the sink's (a device with one channel plays a stereo entry as mono)
        samples = to_channels(self.reply.samples, channels)
        if rate != self.reply.rate:
            samples = Resampler(self.reply.rate, rate, channels).process(samples, last=True)
        step = max(int(rate * self.PIECE_S), 1)
        for off in range(0, len(samples), step):
            if self.run.stopping:
                return
            if self.run.first_audio_at is None:
                self.run.first_audio_at = time.perf_counter()
            await self._push(samples[off:off + step])
            # a network reply leaves the interpreter between pieces; a whole reply handed on in one go kept
            # the sink's and the pump's threads waiting for it (a virtual sink's first sound a block late)
            await asyncio.sleep(self.YIELD_S)
