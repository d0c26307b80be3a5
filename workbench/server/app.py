"""The embedded OpenAI-compatible TTS server: Starlette on uvicorn.

`POST /v1/audio/speech` streams speech (espeak-ng, or the `test-signal` voice) in any of OpenAI's six
formats, paced like a local neural TTS: the first byte after `ttfb_ms`, then audio at `pace` seconds of
wall time per second of audio, flushed every `flush_ms`. Each knob, and a set of faults, can be set for
the whole server or per request, with query parameters or an `X-Workbench-Knobs: k=v;k=v` header.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hmac
import itertools
import json
import logging
import math
import random
import time
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from ..engine.fetching.network import sleep_until
from ..engine.fetching.source import RESUME_HEADER
from ..engine.text.errors import exception_chain
from ..engine.text.safetext import speakable_text
from . import speech
from .encoders import CONTENT_TYPES, make_encoder

MAX_INPUT_CHARS = 4096
MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "kokoro", "workbench-espeak")
# what send_format can send: every response format, and a WAV that only a full decoder reads
SEND_FORMATS = (*CONTENT_TYPES, "wav-alaw")
RECEIVED_AT_HEADER = "X-Workbench-Received-At"  # with test knobs: when the request reached the handler
PIECE_SAMPLES = 480
RATE_STYLES = ("header", "content-type", "l16", "none")


def _pcm_statement(knobs: Knobs, content_type: str) -> tuple[str, dict[str, str]]:
    """How a server of each kind says its PCM rate: (Content-Type, extra headers)."""
    rate = knobs.pcm_rate
    if knobs.rate_style == "header":  # a Piper-based server
        return "audio/pcm_s16le", {"X-Sample-Rate": str(rate), "X-Channels": "1", "X-Sample-Width": "2"}
    if knobs.rate_style == "content-type":  # openedai-speech
        return f"audio/pcm;rate={rate}", {}
    if knobs.rate_style == "l16":
        return f"audio/L16;rate={rate};channels=1", {}
    return content_type, {}  # says nothing  # audio is encoded and paced in 20 ms pieces


@dataclass
class Knobs:
    """Realism knobs and fault knobs. Defaults mimic a local neural TTS on a good machine."""

    headers_ms: float = 0.0  # delay before the response headers
    ttfb_ms: float = 150.0  # request to first body byte
    pace: float = 0.2  # wall seconds per second of audio (0.2 = 5x real time)
    flush_ms: float = 40.0  # bytes leave in bursts this far apart (0: as soon as ready)
    lateness_ms: float = 0.0  # each burst leaves up to this much late (random, seeded by the text; order kept)
    pause_at_s: float = -1.0  # generation stops for pause_ms once this much audio is made (a slow moment) ...
    pause_ms: float = 0.0  # ... for this long; what follows is that much later
    pause_every_s: float = 0.0  # ... and again each time this much more audio is made (0: once)
    repeat: int = 1  # say the input this many times in one reply (1 to 1000: long streams for soak tests)
    resume: int = 1  # honour X-Workbench-Resume-Byte (0: send the whole reply again, as most servers would)
    mp3_tag: int = 1  # MP3: put a LAME Info frame first, stating the priming (0: none, as FFmpeg in a pipe)
    pcm_rate: int = 0  # PCM at this rate instead of 24000 (0: 24000, said nowhere, as OpenAI does) ...
    rate_style: str = "header"  # ... stated as: header (X-Sample-Rate), content-type, l16, or none
    sse_field: str = "audio"  # stream_format sse: the delta's field for the base64 audio ("data" in some servers)
    sse_error: str = ""  # stream_format sse: after the first delta, a speech.audio.error with this message
    buffered: int = 0  # 1: a server that does not stream: synthesize all at `pace`, then send it with a Content-Length
    voice: str = ""  # say every reply in this voice, whatever was asked (test-signal: for clients that pick their own)
    # faults (off by default)
    status: int = 0  # answer this status (401, 429, 500, 503 ...) instead of audio
    retry_after: float = 0.0  # with status 429/503: the Retry-After header, in seconds
    drop_after_bytes: int = -1  # drop the connection after this many body bytes
    drop_after_ms: float = -1.0  # drop the connection this long after the request
    corrupt_at: int = -1  # corrupt body bytes from this offset ...
    corrupt_len: int = 16  # ... for this many bytes
    stall_ms: float = 0.0  # stop sending for this long ...
    stall_at: int = 0  # ... once this many body bytes have been sent
    truncate_bytes: int = -1  # end the body cleanly after this many bytes
    content_type: str = ""  # send this Content-Type instead of the right one
    send_format: str = ""  # send this format instead of the one asked for (labelled as the one asked for)
    fault_times: int = 0  # with fault_id: the faults apply to the first N requests only (0: to all)
    fault_id: str = ""  # names a fault for fault_times, e.g. one per test

    FAULTS = ("status", "retry_after", "drop_after_bytes", "drop_after_ms", "corrupt_at", "stall_ms",
              "truncate_bytes", "content_type", "send_format")

    def without_faults(self) -> Knobs:
        defaults = Knobs()
        return dataclasses.replace(self, **{name: getattr(defaults, name) for name in self.FAULTS})

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    def merged(self, raw: dict[str, str]) -> Knobs:
        """A copy with values from the request; raises ValueError naming a bad knob."""
        changes: dict[str, Any] = {}
        types = {f.name: f.type for f in fields(self)}
        for key, value in raw.items():
            if key not in types:
                raise ValueError(f"unknown knob {key!r}; known: {', '.join(self.names())}")
            kind = types[key]
            try:
                if kind in ("float", float):
                    number = float(value)
                    if not math.isfinite(number):
                        raise ValueError
                    changes[key] = number
                elif kind in ("int", int):
                    changes[key] = int(value)
                else:
                    changes[key] = value
            except ValueError:
                raise ValueError(f"knob {key}={value!r} is not a number") from None
        knobs = dataclasses.replace(self, **changes)
        for name in ("content_type", "fault_id", "sse_error"):  # content_type becomes a header: no line breaks in it
            text = getattr(knobs, name)
            if len(text) > 200 or any(not " " <= c <= "~" for c in text):
                raise ValueError(f"knob {name} must be printable ASCII, at most 200 characters")
        if min(knobs.pace, knobs.ttfb_ms, knobs.flush_ms, knobs.headers_ms, knobs.lateness_ms, knobs.pause_ms,
               knobs.pause_every_s) < 0:
            raise ValueError("pace, ttfb_ms, flush_ms, headers_ms, lateness_ms, pause_ms and pause_every_s must not be "
                             "negative")
        if not 1 <= knobs.repeat <= 1000:
            raise ValueError("repeat must be from 1 to 1000")
        if knobs.pcm_rate and not 8_000 <= knobs.pcm_rate <= 192_000:
            raise ValueError("pcm_rate must be from 8000 to 192000 (or 0)")
        if knobs.sse_field not in ("audio", "data"):
            raise ValueError("sse_field must be audio or data")
        if knobs.rate_style not in RATE_STYLES:
            raise ValueError(f"rate_style must be one of {', '.join(RATE_STYLES)}")
        return knobs


class InjectedDrop(Exception):
    """Raised inside a response body to drop the connection on purpose (a fault knob)."""


class _QuietInjectedDrops(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not any(isinstance(e, InjectedDrop) for e in exception_chain(exc))


logging.getLogger("uvicorn.error").addFilter(_QuietInjectedDrops())


def openai_error(status: int, message: str, *, kind: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status, headers=headers)


def _request_knobs(request: Request) -> dict[str, str]:
    raw: dict[str, str] = {}
    header = request.headers.get("x-workbench-knobs", "")
    for part in header.replace(",", ";").split(";"):
        if "=" in part:
            key, _, value = part.partition("=")
            raw[key.strip()] = value.strip()
    for key, value in request.query_params.items():
        raw[key] = value
    return raw


def _pieces(audio: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Re-cut synthesis chunks into fixed 20 ms pieces (the last may be shorter)."""
    carry = np.zeros(0, dtype=np.float32)
    for chunk in audio:
        carry = np.concatenate([carry, chunk]) if len(carry) else chunk
        whole = len(carry) - len(carry) % PIECE_SAMPLES
        for start in range(0, whole, PIECE_SAMPLES):
            yield carry[start : start + PIECE_SAMPLES]
        carry = carry[whole:]
    if len(carry):
        yield carry


_DONE = object()


async def paced_audio(text: str, voice: str, fmt: str, speed: float, knobs: Knobs,
                      t_request: float, skip_bytes: int = 0) -> AsyncIterator[bytes]:
    """Encoded bytes, released on the schedule a real server of the given pace would keep.

    `skip_bytes` resumes a broken stream: the same audio is generated and encoded (the output is
    deterministic, so the bytes are the same), the first `skip_bytes` are not sent, and the pace is
    kept from the audio at that offset, as if a server had kept what it had generated.
    """
    encoder = make_encoder(fmt, mp3_tag=bool(knobs.mp3_tag), pcm_rate=knobs.pcm_rate or speech.OUTPUT_RATE)
    pieces = _pieces(itertools.chain.from_iterable(speech.synthesize(text, voice, speed)
                                                   for _ in range(knobs.repeat)))
    first_due = t_request + knobs.ttfb_ms / 1000.0
    flush = knobs.flush_ms / 1000.0
    next_flush = first_due
    pending = bytearray()
    audio_s = 0.0
    skip_left = skip_bytes
    pause_due = knobs.pause_at_s  # audio made when the next slow moment comes (< 0: none)
    late = random.Random(f"{text}|{voice}|{fmt}")  # the same request is late the same way
    released = 0.0
    try:
        while True:
            piece = await asyncio.to_thread(next, pieces, _DONE)
            if piece is _DONE:
                break
            assert isinstance(piece, np.ndarray)
            data = await asyncio.to_thread(encoder.encode, piece)
            if skip_left > 0:
                if len(data) <= skip_left:
                    skip_left -= len(data)
                    audio_s += len(piece) / speech.OUTPUT_RATE
                    continue
                data, skip_left = data[skip_left:], 0
                first_due -= audio_s * knobs.pace  # the audio before the offset is already generated
            ready_at = first_due + audio_s * knobs.pace  # generating this piece finishes here
            audio_s += len(piece) / speech.OUTPUT_RATE
            if 0 <= pause_due <= audio_s:  # the server is slow for a moment
                pause_due = pause_due + knobs.pause_every_s if knobs.pause_every_s > 0 else -1.0
                first_due += knobs.pause_ms / 1000.0
                ready_at += knobs.pause_ms / 1000.0
            if pending and ready_at > next_flush:
                released = max(released, next_flush + late.uniform(0.0, knobs.lateness_ms / 1000.0))
                await sleep_until(released)
                yield bytes(pending)
                pending.clear()
            if ready_at > next_flush:
                next_flush = ready_at if flush <= 0 else first_due + math.ceil((ready_at - first_due) / flush) * flush
            pending += data
        tail = await asyncio.to_thread(encoder.flush)
        pending += tail[skip_left:]
        await sleep_until(max(next_flush, first_due + audio_s * knobs.pace, released))
        if pending:
            yield bytes(pending)
    finally:
        close = getattr(pieces, "close", None)
        if close:
            close()


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


_STALL = b"<stall>"  # marker, compared by identity


async def as_events(audio: AsyncIterator[bytes], knobs: Knobs, input_chars: int) -> AsyncIterator[bytes]:
    """The audio as server-sent events, as OpenAI sends them: a speech.audio.delta per piece (base64 in
    `audio`, or the field `sse_field` names), then speech.audio.done with usage. A resumed request skips
    audio bytes, not event text: events are framing."""
    sent = 0
    async for piece in audio:
        event = {"type": "speech.audio.delta", knobs.sse_field: base64.b64encode(piece).decode("ascii")}
        yield f"data: {json.dumps(event)}\n\n".encode()
        sent += len(piece)
        if knobs.sse_error:
            error = {"type": "speech.audio.error", "error": {"message": knobs.sse_error}}
            yield f"data: {json.dumps(error)}\n\n".encode()
            return
    usage = {"input_tokens": input_chars, "output_tokens": sent // 64, "total_tokens": input_chars + sent // 64}
    yield f"data: {json.dumps({'type': 'speech.audio.done', 'usage': usage})}\n\n".encode()


async def with_faults(body: AsyncIterator[bytes], knobs: Knobs, t_request: float) -> AsyncIterator[bytes]:
    """Apply the byte-level fault knobs to a body."""
    sent = 0
    stalled = knobs.stall_ms <= 0
    async for chunk in body:
        if knobs.drop_after_ms >= 0 and time.perf_counter() - t_request >= knobs.drop_after_ms / 1000.0:
            raise InjectedDrop(f"dropped after {knobs.drop_after_ms} ms")
        if knobs.corrupt_at >= 0:
            lo = max(knobs.corrupt_at - sent, 0)
            hi = min(knobs.corrupt_at + knobs.corrupt_len - sent, len(chunk))
            if lo < hi:
                mutable = bytearray(chunk)
                for i in range(lo, hi):
                    mutable[i] ^= 0xA5
                chunk = bytes(mutable)
        segments = [chunk]
        if not stalled and sent + len(chunk) >= knobs.stall_at:
            cut = knobs.stall_at - sent
            segments = [chunk[:cut], _STALL, chunk[cut:]]
        for segment in segments:
            if segment is _STALL:
                await asyncio.sleep(knobs.stall_ms / 1000.0)
                stalled = True
                continue
            limit = len(segment)
            if knobs.truncate_bytes >= 0:
                limit = min(limit, knobs.truncate_bytes - sent)
            if knobs.drop_after_bytes >= 0:
                limit = min(limit, knobs.drop_after_bytes - sent)
            if limit > 0:
                yield segment[:limit]
                sent += limit
            if knobs.drop_after_bytes >= 0 and sent >= knobs.drop_after_bytes:
                raise InjectedDrop(f"dropped after {sent} bytes")
            if knobs.truncate_bytes >= 0 and sent >= knobs.truncate_bytes:
                return


def create_app(knobs: Knobs | None = None, *, api_key: str | None = None, test_knobs: bool = False) -> Starlette:
    """The server's routes. With `api_key`, every route wants `Authorization: Bearer KEY`. Requests may
    set knobs (faults included) only with `test_knobs`: the embedded server has them, `workbench serve`
    only when asked (`--test-knobs`), so that no client of a shared server can make it misbehave."""
    defaults = knobs or Knobs()
    fault_counts: dict[str, int] = {}  # requests seen per fault_id

    def authorized(request: Request) -> bool:
        if api_key is None:
            return True
        scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode())

    def guarded(endpoint: Any) -> Any:
        async def checked(request: Request) -> Response:
            if not authorized(request):
                return openai_error(401, "Incorrect API key provided.", code="invalid_api_key")
            response: Response = await endpoint(request)
            return response

        return checked

    async def speech_endpoint(request: Request) -> Response:
        t_request = time.perf_counter()
        raw_knobs = _request_knobs(request)
        if raw_knobs and not test_knobs:
            return openai_error(403, "this server takes no test knobs (start it with --test-knobs to allow "
                                     "them)", param="knobs", code="test_knobs_off")
        try:
            req_knobs = defaults.merged(raw_knobs)
        except ValueError as exc:
            return openai_error(400, str(exc), param="knobs")
        if req_knobs.fault_times > 0:
            seen = fault_counts.get(req_knobs.fault_id, 0) + 1
            fault_counts[req_knobs.fault_id] = seen
            if seen > req_knobs.fault_times:
                req_knobs = req_knobs.without_faults()  # the fault has happened enough times
        media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
        if media_type != "application/json":  # also keeps a web page's cross-site form posts out
            return openai_error(415, "Send the request body as JSON, with Content-Type: application/json.")
        try:
            body = await request.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            return openai_error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return openai_error(400, "The request body must be a JSON object.")
        if "input" not in body or body["input"] is None:
            return openai_error(400, "Missing required parameter: 'input'.", param="input")
        text = body["input"]
        if not isinstance(text, str):
            return _wrong_type("input", "a string", text)
        text, _ = speakable_text(text)  # a NUL or an escape sequence is not read out
        if not text.strip():
            return openai_error(400, "'input' is empty: there is nothing to say.", param="input")
        if len(text) > MAX_INPUT_CHARS:
            return openai_error(400, f"'input' is too long: {len(text)} characters, at most {MAX_INPUT_CHARS}.",
                                param="input", code="string_above_max_length")
        if body.get("model") is None:
            return openai_error(400, "Missing required parameter: 'model'.", param="model")
        if not isinstance(body["model"], str) or not body["model"]:
            return _wrong_type("model", "a non-empty string", body["model"])
        voice = body.get("voice")
        if voice is None:
            return openai_error(400, "Missing required parameter: 'voice'.", param="voice")
        if not isinstance(voice, str):
            return _wrong_type("voice", "a string", voice)
        if voice not in speech.voices():
            return openai_error(400, f"Invalid value for 'voice': {voice!r}. Supported: {', '.join(speech.voices())}.",
                                param="voice")
        fmt = body.get("response_format", "mp3")
        if not isinstance(fmt, str):
            return _wrong_type("response_format", "a string", fmt)
        if fmt not in CONTENT_TYPES:
            return openai_error(400, f"Invalid value for 'response_format': {fmt!r}. Supported: "
                                f"{', '.join(CONTENT_TYPES)}.", param="response_format")
        stream_format = body.get("stream_format", "audio")
        if stream_format not in ("audio", "sse"):
            return openai_error(400, f"Invalid value for 'stream_format': {stream_format!r}. Supported: audio, sse.",
                                param="stream_format")
        speed = body.get("speed", 1.0)
        if not isinstance(speed, int | float) or isinstance(speed, bool):
            return _wrong_type("speed", "a number", speed)
        if not 0.25 <= speed <= 4.0:
            return openai_error(400, f"Invalid value for 'speed': {speed!r}; it must be from 0.25 to 4.0.",
                                param="speed")
        if req_knobs.voice and req_knobs.voice not in speech.voices():
            return openai_error(400, f"unknown knob voice {req_knobs.voice!r}", param="knobs")
        if req_knobs.send_format and req_knobs.send_format not in SEND_FORMATS:
            return openai_error(400, f"unknown send_format {req_knobs.send_format!r}; known: "
                                f"{', '.join(SEND_FORMATS)}", param="knobs")
        if req_knobs.headers_ms:
            await asyncio.sleep(req_knobs.headers_ms / 1000.0)
        if req_knobs.status:
            return _fault_status(req_knobs)
        content_type = req_knobs.content_type or CONTENT_TYPES[fmt]
        rate_headers: dict[str, str] = {}
        if fmt == "pcm" and req_knobs.pcm_rate and not req_knobs.send_format:
            content_type, rate_headers = _pcm_statement(req_knobs, content_type)
        try:
            resume = max(int(request.headers.get(RESUME_HEADER, "0")), 0) if req_knobs.resume else 0
        except ValueError:
            return openai_error(400, f"{RESUME_HEADER} must be a byte offset", param=RESUME_HEADER)
        audio = paced_audio(text, req_knobs.voice or str(voice), req_knobs.send_format or fmt, float(speed), req_knobs,
                            t_request,
                            skip_bytes=resume)
        headers = {RESUME_HEADER: str(resume)} if resume else {}
        headers.update(rate_headers)
        if test_knobs:  # for tests of the client's clock: perf_counter() (CLOCK_MONOTONIC, shared by processes)
            headers[RECEIVED_AT_HEADER] = f"{t_request:.6f}"
        if stream_format == "sse":
            audio, content_type = as_events(audio, req_knobs, len(text)), "text/event-stream"
        if req_knobs.buffered:  # the whole reply, then its headers and body at once
            whole = b"".join([piece async for piece in audio])
            headers["Content-Length"] = str(len(whole))
            audio = _once(whole)
        return StreamingResponse(with_faults(audio, req_knobs, t_request), media_type=content_type,
                                 headers=headers or None)

    async def models(_: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": m, "object": "model", "created": 0, "owned_by": "workbench"} for m in MODELS]})

    async def voices(_: Request) -> Response:
        return JSONResponse({"voices": speech.voices()})

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok", "formats": list(CONTENT_TYPES), "test_knobs": test_knobs,
                             "knobs": dataclasses.asdict(defaults)})

    @contextlib.asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        # each streaming reply waits for its synthesis on a worker thread (espeak-ng serialises them): the
        # default pool (cores + 4) would make a few dozen concurrent replies queue behind one another
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=128, thread_name_prefix="tts"))
        yield

    return Starlette(lifespan=lifespan, routes=[
        Route("/v1/audio/speech", guarded(speech_endpoint), methods=["POST"]),
        Route("/v1/models", guarded(models), methods=["GET"]),
        Route("/v1/audio/voices", guarded(voices), methods=["GET"]),
        Route("/health", guarded(health), methods=["GET"]),
    ])


_JSON_TYPES = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "an array",
               dict: "an object", type(None): "null"}


def _wrong_type(param: str, expected: str, value: object) -> JSONResponse:
    """A field of the wrong JSON type, said as OpenAI says it."""
    got = _JSON_TYPES.get(type(value), "a value of another type")
    return openai_error(400, f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
                        param=param, code="invalid_type")


def _fault_status(knobs: Knobs) -> Response:
    status = knobs.status
    headers = {"Retry-After": f"{knobs.retry_after:g}"} if knobs.retry_after > 0 else None
    if status == 401:
        return openai_error(401, "Incorrect API key provided (injected fault).", code="invalid_api_key")
    if status == 429:
        return openai_error(429, "Rate limit reached (injected fault).", kind="rate_limit_error",
                            code="rate_limit_exceeded", headers=headers)
    if status >= 500:
        return openai_error(status, "The server had an error while processing your request (injected fault).",
                            kind="server_error", headers=headers)
    return openai_error(status, f"Injected fault: status {status}.", headers=headers)
