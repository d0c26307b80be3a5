"""A client for voicemode's PCM loop whose replies yield 16-bit PCM, whatever format was asked for.

voicemode plays PCM as it arrives, but MP3 only after its first 32 KB and then the rest after the whole
download, and Opus only after the download. With the bridge on, every format goes down voicemode's own
PCM loop (`stream_pcm_audio`: its control channel, its history capture, its event log), given this
client instead of its own: the request is voicemode's own client's, and the reply's bytes are decoded by
this engine's progressive decoders as they arrive, into PCM at voicemode's rate.

voicemode reads with `iter_bytes(chunk_size=STREAM_CHUNK_SIZE)`, which holds bytes back until a whole
chunk is there (85 ms of PCM; a second or more of MP3). Here bytes are read as they come and the chunk
size only caps the pieces handed on (so voicemode still looks at its control state at least that often).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import numpy as np

from ..engine.decoding.decoders import StreamDecoder
from ..engine.decoding.pcmformat import resolve as resolve_pcm

NEEDS_PYAV = ("mp3", "opus", "aac", "flac")


def can_decode(fmt: str) -> str | None:
    """None when this engine can decode `fmt` here, else why not (PyAV missing for compressed formats)."""
    if fmt in ("pcm", "wav"):
        return None
    if fmt not in NEEDS_PYAV:
        return f"the engine does not decode {fmt!r}"
    try:
        import av  # noqa: F401
    except ImportError:
        return f"PyAV (the 'av' package) is not installed in voicemode's environment, which {fmt} needs"
    return None


def to_pcm16(samples: np.ndarray) -> bytes:
    return np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").tobytes()


class DecodingClient:
    """Stands in for voicemode's `openai_client` in `stream_pcm_audio`: `.audio.speech.with_streaming_
    response.create(**params)` makes the request with the real client and decodes its reply."""

    def __init__(self, client: Any, fmt: str, out_rate: int, pcm_rate: int = 24_000, pcm_explicit: bool = False,
                 on_response: Any = None) -> None:
        self._client = client
        self.format = fmt
        self.out_rate = out_rate
        self.pcm_rate = pcm_rate  # WORKBENCH_PCM_RATE: headerless PCM's rate when the reply does not say ...
        self.pcm_explicit = pcm_explicit  # ... and whether it was set (then it wins: pcmformat.resolve)
        self._on_response = on_response  # told the decoder once the reply has begun (for the figures)

    @property
    def audio(self) -> DecodingClient:
        return self

    @property
    def speech(self) -> DecodingClient:
        return self

    @property
    def with_streaming_response(self) -> DecodingClient:
        return self

    def create(self, **params: Any) -> _Decoded:
        return _Decoded(self, self._client.audio.speech.with_streaming_response.create(**params))


class _Decoded:
    """The async context manager `create()` returns: the real one's response, decoded."""

    def __init__(self, owner: DecodingClient, inner: Any) -> None:
        self._owner = owner
        self._inner = inner

    async def __aenter__(self) -> DecodedResponse:
        response = await self._inner.__aenter__()
        return DecodedResponse(response, self._owner)

    async def __aexit__(self, *exc: Any) -> Any:
        return await self._inner.__aexit__(*exc)


class DecodedResponse:
    def __init__(self, response: Any, owner: DecodingClient) -> None:
        self.response = response
        self.http_response = getattr(response, "http_response", None)
        headers = getattr(self.http_response, "headers", {}) or {}
        self.headers = {str(k).lower(): str(v) for k, v in dict(headers).items()}
        notes: list[str] = []
        pcm = resolve_pcm(self.headers, owner.pcm_rate, owner.pcm_explicit, notes)
        self.decoder = StreamDecoder(owner.format, pcm_rate=pcm.rate, pcm_channels=pcm.channels,
                                     out_rate=owner.out_rate, content_type=self.headers.get("content-type"))
        self.notes = notes
        if owner._on_response is not None:
            owner._on_response(self)

    async def iter_bytes(self, chunk_size: int | None = None) -> AsyncIterator[bytes]:
        cap = max(2, (chunk_size or 4096) // 2 * 2)  # whole 16-bit samples
        decoder = self.decoder
        try:
            async for raw in self.response.iter_bytes():
                if not raw:
                    continue
                samples = await self._run(lambda raw=raw: decoder.feed(raw))
                for piece in _pieces(to_pcm16(samples), cap):
                    yield piece
            for piece in _pieces(to_pcm16(await self._run(decoder.flush)), cap):
                yield piece
        finally:
            decoder.release()

    async def _run(self, step: Any) -> np.ndarray:
        # compressed formats decode on a worker thread: voicemode's event loop is not held up by them
        return await asyncio.to_thread(step) if self.decoder.blocking else step()

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.iter_bytes()])


def _pieces(data: bytes, cap: int) -> list[bytes]:
    return [data[i : i + cap] for i in range(0, len(data), cap)] if data else []
