"""The request the engine sends is the one the `openai` package sends (the engine no longer imports that
package: it costs a one-shot play ~0.4 s before its request can leave). Both are sent to a raw listener
and compared: method, path, query, the JSON body, and the headers a server may read."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import openai
import pytest

from workbench.engine.fetching.source import SourceError, SpeechRequest, SpeechSource

from .hostile import read_request

ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: audio/pcm\r\ncontent-length: 4\r\n\r\n\x00\x00\x00\x00"
HEADERS_COMPARED = ("accept", "authorization", "content-type", "x-workbench-resume-byte", "x-extra")


@pytest.fixture
def listener() -> Iterator[tuple[str, list[tuple[list[bytes], bytes]], list[bytes]]]:
    """(base URL, the requests seen, the answers to give: one per request, the last one repeated)."""
    seen: list[tuple[list[bytes], bytes]] = []
    answers = [ANSWER]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(4)

    def serve() -> None:
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                request = read_request(conn)
                if request is not None:
                    seen.append(request)
                    conn.sendall(answers[min(len(seen), len(answers)) - 1])

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1", seen, answers
    finally:
        sock.close()


def _parts(request: tuple[list[bytes], bytes]) -> tuple[str, dict[str, str], dict[str, object]]:
    lines, body = request
    head = {k.strip().lower(): v.strip() for k, _, v in (line.decode().partition(":") for line in lines[1:])}
    return lines[0].decode(), {k: v for k, v in head.items() if k in HEADERS_COMPARED}, json.loads(body)


async def test_the_request_is_the_one_openais_client_sends(listener) -> None:  # type: ignore[no-untyped-def]
    base_url, seen, _ = listener
    request = SpeechRequest("Hello there.", "tts-1", "nova", "pcm", speed=1.25, extra_headers={"X-Extra": "1"},
                            extra_query={"knob": "x"}, stream_format="sse")
    source = SpeechSource(base_url, api_key="sk-test")
    got = b"".join([piece async for piece in source.stream(request, resume_from=8)])
    await source.aclose()
    assert got == b"\x00" * 4 and source.status == 200

    client = openai.AsyncOpenAI(base_url=base_url, api_key="sk-test", max_retries=0)
    async with client.audio.speech.with_streaming_response.create(
            model="tts-1", voice="nova", input="Hello there.", response_format="pcm", speed=1.25,
            stream_format="sse", extra_headers={"X-Extra": "1", "X-Workbench-Resume-Byte": "8"},
            extra_query={"knob": "x"}) as response:
        await response.read()
    await client.close()

    ours, theirs = _parts(seen[0]), _parts(seen[1])
    assert ours == theirs
    assert ours[0] == "POST /v1/audio/speech?knob=x HTTP/1.1" and ours[1]["authorization"] == "Bearer sk-test"


@pytest.mark.parametrize(("answer", "fragment", "retry_after"), [
    (b'{"error": {"message": "Rate limit reached for tts-1", "type": "rate_limit_error"}}',
     "Rate limit reached for tts-1", 2.0),
    (b'{"detail": "Voice not found"}', "Voice not found", None),
    (b"upstream overloaded\x1b[31m", "upstream overloaded", None),
    (b"", "no message (Too Many Requests)", None),
])
async def test_an_error_status_quotes_the_servers_words(listener, answer: bytes, fragment: str,  # type: ignore[no-untyped-def]
                                                        retry_after: float | None) -> None:
    base_url, _, answers = listener
    extra = b"retry-after: 2\r\n" if retry_after else b""
    answers[0] = (b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n" + extra +
                  b"content-length: %d\r\n\r\n" % len(answer) + answer)
    source = SpeechSource(base_url)
    with pytest.raises(SourceError) as caught:
        async for _ in source.stream(SpeechRequest("Hi.", "tts-1", "alloy", "pcm")):
            pass
    await source.aclose()
    err = caught.value
    assert str(err) == f"{base_url} answered 429: {fragment}" and err.status == 429 and err.retryable
    assert err.retry_after == retry_after and err.connected and source.status is None
    assert "\x1b" not in str(err)


async def test_a_url_that_is_not_http_is_a_permanent_error() -> None:
    source = SpeechSource("ftp://127.0.0.1/v1")
    with pytest.raises(SourceError) as caught:
        async for _ in source.stream(SpeechRequest("Hi.", "tts-1", "alloy", "pcm")):
            pass
    await source.aclose()
    assert str(caught.value).startswith("cannot reach ftp://127.0.0.1/v1 (") and not caught.value.retryable


async def test_an_error_status_whose_body_never_comes_is_still_a_clear_error() -> None:
    """A 503 whose body stops after its headers, the connection held open: the status is reported once the
    wait for its words runs out (min(stall timeout, 5 s)), never a hang or a stray TimeoutError."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1)
    release = threading.Event()

    def serve() -> None:
        conn, _ = sock.accept()
        with conn:
            read_request(conn)
            conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\ncontent-length: 40\r\n\r\n")
            release.wait(10)

    threading.Thread(target=serve, daemon=True).start()
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    source = SpeechSource(base_url, stall_timeout=0.3)
    try:
        with pytest.raises(SourceError) as caught:
            async for _ in source.stream(SpeechRequest("Hi.", "tts-1", "alloy", "pcm")):
                pass
    finally:
        release.set()
        await source.aclose()
        sock.close()
    assert str(caught.value).startswith(f"{base_url} answered 503: ") and caught.value.status == 503
