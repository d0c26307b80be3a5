"""The HTTP source: streams `/v1/audio/speech` from any OpenAI-compatible endpoint.

It sends the request the `openai` package sends (the same JSON body, `Accept:
application/octet-stream`, a bearer key) straight through httpx2, the HTTP client that package is built on:
importing the package costs a one-shot play ~0.4 s before its request can leave, and a stream needs none
of it. It records when the response headers arrived (TTFB) and when the first body byte did. Errors
become `SourceError` with a message meant for the user; the API key is never part of any message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import ssl
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

import httpx2

from ..text.errors import exception_chain
from ..text.safetext import clean_text
from .sse import SseAudio, SseError
from .wire import WIRE, WireTimes, new_client

RETRY_STATUSES = (408, 429, 500, 502, 503, 504)
# Resuming a broken stream: the client asks for the body from a byte offset; a server that can (ours)
# echoes the header and sends the same bytes from there on. Others ignore it and send everything.
RESUME_HEADER = "X-Workbench-Resume-Byte"
WAITED_S = 0.001  # a read that took longer than this found nothing waiting (one that did returns in ~0.1 ms)
AWAY_S = 0.015  # longer than this between reads, the engine was held up (a full buffer waits 20 ms or more)
SEGMENT_MIN_S = 0.1  # a run of steady reads shorter than this does not count toward the link's rate


class SourceError(Exception):
    """The endpoint could not give us audio. `str()` is meant for the user."""

    @property
    def retryable(self) -> bool:
        """Worth asking again: a dropped or failed connection, a rate limit, a server error; not a name
        that does not resolve or a certificate that does not verify (asking again changes neither)."""
        if self.permanent:
            return False
        return self.empty or self.status is None or self.status in RETRY_STATUSES

    def __init__(self, message: str, *, status: int | None = None, retry_after: float | None = None,
                 mid_stream: bool = False, permanent: bool = False, stalled: bool = False,
                 connected: bool = False, empty: bool = False) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.mid_stream = mid_stream
        self.permanent = permanent
        self.stalled = stalled  # the server went quiet (or never answered): asked again once at most
        self.connected = connected  # the server had answered (headers came) before this went wrong
        self.empty = empty  # the server answered, with no audio in its reply (asked again once at most)


@dataclass
class SpeechRequest:
    text: str
    model: str
    voice: str
    response_format: str
    speed: float | None = None
    extra_headers: dict[str, str] | None = None
    extra_query: dict[str, Any] | None = None
    stream_format: str = "audio"  # "sse": server-sent events of base64 audio (see sse.py)


class SpeechSource:
    """One streamed request at a time against `base_url`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        chunk_size: int = 4096,
        connect_timeout: float = 10.0,
        read_timeout: float = 30.0,
        stall_timeout: float = 10.0,
        http_client: httpx2.AsyncClient | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.chunk_size = chunk_size
        self.stall_timeout = stall_timeout
        self._owns_client = http_client is None
        self._client = http_client or new_client()
        self._api_key = api_key or "not-needed"
        self._timeout = httpx2.Timeout(read_timeout, connect=connect_timeout)
        self.request_started: float | None = None
        self.headers_at: float | None = None
        self.first_byte_at: float | None = None
        self.last_byte_at: float | None = None
        self.bytes_received = 0
        self.chunks_received = 0
        self.body_wait_s = 0.0  # after the first byte: time spent in reads that found nothing waiting
        # the link's rate (`link_kbps`): bytes, and the time they took, counted only at the live edge
        self.link_bytes = 0
        self.link_s = 0.0
        self._catching_up = False
        self._segment_start: float | None = None
        self._segment_end = 0.0
        self._segment_bytes = 0
        self._first_read_bytes = 0
        self.content_type: str | None = None
        self.response_headers: dict[str, str] = {}  # the last response's, names in lower case
        self.sse: SseAudio | None = None  # the event stream's parser, when the audio came as events
        self.notices: list[str] = []  # for the user, about how the server answered
        self.status: int | None = None
        self.resumed_from: int | None = None  # the offset the last response starts at, if it said so
        self.wire = WireTimes()  # filled when the client's transport traces (the player's pooled client does)
        self.answered = asyncio.Event()  # set when the headers came, or the request failed

    def _count_link(self, asked: float, got: float, n: int) -> None:
        """Count a read toward the link's rate (`link_kbps`).

        While the engine reads steadily, each read's bytes took the time since the last one: a run of such
        reads is a segment. When the engine was away longer (waiting on a full jitter buffer), read-ahead
        (the kernel's socket buffer, a simulated link's queue) kept filling and its bytes come back at
        once, at no time at all: counting them made a 1.5 Mbit/s link look like 4.4. So a long absence
        ends the segment; the reads that find bytes waiting after it are left out, and a new segment
        starts at the first read that had to wait. Segments shorter than `SEGMENT_MIN_S` are left out too:
        where one starts, a packet may have been on its way for a while, which a short one would
        overstate."""
        assert self.last_byte_at is not None
        away = asked - self.last_byte_at
        waited = got - asked > WAITED_S
        if away > AWAY_S or (self._catching_up and not waited):
            self._close_segment()
            self._catching_up = not waited
            if waited:
                self._segment_start = got
            return
        if self._catching_up:  # this read had to wait: the live edge again
            self._catching_up = False
            self._segment_start = got
            return
        if self._segment_start is None:
            self._segment_start = self.last_byte_at
        self._segment_bytes += n
        self._segment_end = got

    def _close_segment(self) -> None:
        if self._segment_start is not None and self._segment_end - self._segment_start >= SEGMENT_MIN_S:
            self.link_bytes += self._segment_bytes
            self.link_s += self._segment_end - self._segment_start
        self._segment_start, self._segment_bytes, self._segment_end = None, 0, 0.0

    def link_figures(self) -> tuple[int, float]:
        """(bytes, seconds) the link's rate is taken from: the segments at the live edge, or, with none
        long enough, everything from the first byte to the last (a lower bound: the engine's waits in it)."""
        self._close_segment()
        if self.link_s > 0:
            return self.link_bytes, self.link_s
        if self.first_byte_at is None or self.last_byte_at is None or self.chunks_received < 2:
            return 0, 0.0
        return self.bytes_received - self._first_read_bytes, self.last_byte_at - self.first_byte_at

    @property
    def link_kbps(self) -> float | None:
        """The link's rate in kbit/s (`_count_link`); None with too little to tell. Never more than the
        link carried; less when the server, not the link, set the pace."""
        n, seconds = self.link_figures()
        return n * 8 / 1000.0 / seconds if seconds > 0.001 and n else None

    def arrival_rtf(self, audio_s: float) -> float | None:
        """How fast a reply of `audio_s` seconds arrived, in seconds of audio per second, from the same reads as
        `link_kbps` (the link's live edge); None with too little to tell."""
        n, seconds = self.link_figures()
        share = n / self.bytes_received if self.bytes_received else 0.0
        return audio_s * share / seconds if seconds > 0.001 and share > 0 and audio_s > 0 else None

    async def stream(self, request: SpeechRequest, *, resume_from: int = 0) -> AsyncGenerator[bytes, None]:
        """Yield the body as it arrives, in pieces of at most `chunk_size` bytes.

        With `resume_from`, ask for the body from that byte on; `resumed_from` then says whether the
        server did (the offset it echoed) or not (None: the body starts at its beginning).
        """
        if self.request_started is None:  # a retry keeps the first request's times
            self.request_started = time.perf_counter()
        body: dict[str, Any] = dict(
            model=request.model,
            voice=request.voice,
            input=request.text,
            response_format=request.response_format,
        )
        if request.speed is not None:
            body["speed"] = request.speed
        if request.stream_format != "audio":
            body["stream_format"] = request.stream_format
        headers = {"Accept": "application/octet-stream", "Authorization": f"Bearer {self._api_key}",
                   **(request.extra_headers or {})}
        if resume_from > 0:
            headers[RESUME_HEADER] = str(resume_from)
        self.resumed_from = None
        failure: SourceError | None = None
        answered = False
        wire = WIRE.set(self.wire)
        try:
            async with self._client.stream("POST", self.base_url + "/audio/speech", json=body, headers=headers,
                                           params=request.extra_query or None, timeout=self._timeout) as response:
                if response.status_code >= 400:
                    raise await self._status_error(response)
                answered = True
                if self.headers_at is None:
                    self.headers_at = time.perf_counter()
                self.answered.set()
                self.status = response.status_code
                self.content_type = response.headers.get("content-type")
                self.response_headers = {k.lower(): v for k, v in response.headers.items()}
                if resume_from > 0:
                    self.resumed_from = _int_or_none(response.headers.get(RESUME_HEADER))
                events = None
                if _media(self.content_type) == "text/event-stream":
                    events = self.sse = SseAudio()  # the audio comes base64 in events
                    if request.stream_format != "sse":
                        self.notices.append("the server answered with an event stream; reading the audio in it")
                elif is_text_type(self.content_type):
                    raise await self._not_audio(response)
                elif request.stream_format == "sse":
                    self.notices.append(f"asked for SSE, the server sent {clean_text(self.content_type or 'audio', 60)}"
                                        " as it is; playing that")
                # each read is handed on at once, cut into pieces of at most chunk_size: bytes are never
                # held back waiting for a chunk to fill (httpx's iter_bytes(chunk_size) would hold them,
                # which delays compressed audio by a whole chunk and loses them if the connection breaks)
                reads = response.aiter_bytes().__aiter__()
                while True:
                    asked = time.perf_counter()
                    try:
                        async with asyncio.timeout(self.stall_timeout):  # from the last byte (or the headers)
                            piece = await anext(reads)
                    except StopAsyncIteration:
                        if events is not None:  # an event left without its blank line
                            piece = events.finish()
                            for at in range(0, len(piece), self.chunk_size):
                                self.chunks_received += 1
                                yield piece[at : at + self.chunk_size]
                            if events.error is not None:
                                raise self._event_error(events.error) from None
                        break
                    except TimeoutError:
                        after = "after its headers" if self.bytes_received == 0 else "mid-stream"
                        raise SourceError(f"the server sent nothing for {self.stall_timeout:g} s {after} "
                                          "(WORKBENCH_STALL_TIMEOUT_S)", mid_stream=self.bytes_received > 0,
                                          stalled=True, connected=True) from None
                    if not piece:
                        continue
                    now = time.perf_counter()
                    if self.first_byte_at is None:
                        self.first_byte_at = now
                        self._first_read_bytes = len(piece)
                    elif self.last_byte_at is not None:
                        self._count_link(asked, now, len(piece))
                        if now - asked > WAITED_S:
                            self.body_wait_s += now - asked
                    self.last_byte_at = now
                    self.bytes_received += len(piece)  # on the wire (an event stream's text included)
                    if events is not None:
                        piece = events.feed(piece)
                    for at in range(0, len(piece), self.chunk_size):
                        self.chunks_received += 1
                        yield piece[at : at + self.chunk_size]
                    if events is not None and events.error is not None:  # its audio before it is handed on
                        raise self._event_error(events.error)
        except (httpx2.TransportError, httpx2.StreamError, httpx2.InvalidURL) as exc:
            failure = self._broken(exc, answered)
        finally:
            self.answered.set()
            if self.sse is not None:  # what the event stream's parser noticed, whatever the ending
                self.notices.extend(n for n in self.sse.notes if n not in self.notices)
            with contextlib.suppress(ValueError):  # a generator closed late, from another context
                WIRE.reset(wire)
        if failure is not None:
            raise failure

    def _event_error(self, exc: SseError) -> SourceError:
        return SourceError(f"{self.base_url} reported in its event stream: {exc}", connected=True,
                           permanent=True, mid_stream=self.bytes_received > 0)

    def _broken(self, exc: Exception, answered: bool) -> SourceError:
        """A transport error: before the headers, the server was not reached or did not answer in time;
        after them, the connection broke (mid-stream once any of the body came)."""
        if not answered and isinstance(exc, httpx2.TimeoutException):
            return SourceError(f"{self.base_url} did not answer in time", stalled=True)
        if not answered:
            kind = _permanent_kind(exc)
            detail = f"{kind}: {_short(exc)}" if kind else _short(exc)
            unusable = isinstance(exc, httpx2.InvalidURL | httpx2.UnsupportedProtocol)  # asking again is no use
            return SourceError(f"cannot reach {self.base_url} ({detail})", permanent=kind is not None or unusable)
        got_any = self.bytes_received > 0
        where = "the connection broke mid-stream" if got_any else "the connection failed"
        return SourceError(f"{where}: {_short(exc)}", mid_stream=got_any, connected=True)

    async def _status_error(self, response: httpx2.Response) -> SourceError:
        """An error status: the server's own words (read whole, they are short), as a `SourceError`."""
        with contextlib.suppress(httpx2.HTTPError, TimeoutError):  # the status says enough without them
            async with asyncio.timeout(min(self.stall_timeout, 5.0)):
                await response.aread()
        return SourceError(f"{self.base_url} answered {response.status_code}: {_server_message(response)}",
                           status=response.status_code, retry_after=_retry_after(response), connected=True)

    async def _not_audio(self, response: Any) -> SourceError:
        """A 200 whose body is a web page, JSON or plain text: an error naming it, never audio."""
        head = bytearray()
        with contextlib.suppress(Exception):  # the start of the body is for the message only
            async with asyncio.timeout(min(self.stall_timeout, 5.0)):
                async for piece in response.aiter_bytes():
                    head += piece
                    if len(head) >= 2048:
                        break
        self.bytes_received += len(head)
        text = clean_text(head[:2048].decode("utf-8", "replace"), 160) or "(an empty body)"
        return SourceError(f"{self.base_url} answered {self.status} with {clean_text(self.content_type, 80)}, "
                           f"not audio: {text}", status=self.status, permanent=True, connected=True)

    async def aclose(self) -> None:
        if self._owns_client:  # a shared http client (and its open connections) is its owner's to close
            await self._client.aclose()


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


TEXT_TYPES = ("application/json", "application/xml", "application/xhtml+xml", "application/problem+json",
              "application/javascript")


def _media(content_type: str | None) -> str:
    return (content_type or "").partition(";")[0].strip().lower()


def is_text_type(content_type: str | None) -> bool:
    """A Content-Type that is never audio: a web page, JSON, plain text."""
    if not content_type:
        return False
    media = content_type.partition(";")[0].strip().lower()
    return media.startswith("text/") or media in TEXT_TYPES


def _permanent_kind(exc: BaseException) -> str | None:
    """'DNS' or 'TLS' when a connection failed for a reason asking again will not mend."""
    for e in exception_chain(exc):
        if isinstance(e, socket.gaierror):
            return "DNS"
        if isinstance(e, ssl.SSLError | ssl.CertificateError):
            return "TLS"
    text = " ".join(str(e) for e in exception_chain(exc)).lower()
    if "name or service not known" in text or "nodename nor servname" in text or "temporary failure in name" in text:
        return "DNS"
    if "certificate verify failed" in text or "ssl:" in text or "wrong version number" in text:
        return "TLS"
    return None


def _short(exc: BaseException) -> str:
    return clean_text(str(exc) or type(exc).__name__, 200)


def _server_message(response: httpx2.Response) -> str:
    """The server's own words, cleaned of control characters and cut short (a server can send anything)."""
    try:
        text = response.text.strip()
    except Exception:  # not read (it broke off), or not text
        text = ""
    try:
        body = json.loads(text) if text else None
    except ValueError:
        body = None
    text = text[:4000]
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return clean_text(err["message"])
        if isinstance(err, str):
            return clean_text(err)
        if body.get("detail"):
            detail = body["detail"]
            return clean_text(detail if isinstance(detail, str) else json.dumps(detail)[:2000])
    return clean_text(text) if text else f"no message ({response.reason_phrase or 'no reason given'})"


def _retry_after(response: httpx2.Response | None) -> float | None:
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
