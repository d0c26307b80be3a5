"""Endpoints that misbehave in ways our own server's knobs cannot: an error page with status 200, a
megabyte of error message full of escape sequences, headers followed by nothing, a name that does not
resolve, TLS spoken to a plain-HTTP port. A small raw HTTP server plays the part."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from workbench.engine.player import StreamPlayer

from ..conftest import make_settings, virtual_factory
from .hostile import read_request

HTML_PAGE = ("<!DOCTYPE html>\n<html><head><title>503 Service Unavailable</title></head>\n<body><h1>Service "
             "Unavailable</h1><p>The server is temporarily unable to service your request.</p>"
             + "<!-- padding -->" * 1100 + "</body></html>\n").encode()


@dataclass
class Canned:
    status: str = "200 OK"
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hold_s: float = 0.0  # after the headers (and body), keep the connection open this long
    requests: int = 0


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        canned: Canned = self.server.canned  # type: ignore[attr-defined]
        canned.requests += 1
        self.request.settimeout(5)
        try:
            if read_request(self.request) is None:
                return
            lines = [f"HTTP/1.1 {canned.status}", *(f"{k}: {v}" for k, v in canned.headers)]
            if not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in canned.headers):
                framing = "Transfer-Encoding: chunked" if canned.hold_s else f"Content-Length: {len(canned.body)}"
                lines.append(framing)
            body = b"" if canned.hold_s else canned.body
            self.request.sendall(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
            if canned.hold_s:
                time.sleep(canned.hold_s)
        except OSError:
            pass


@pytest.fixture
def canned() -> Iterator[tuple[Canned, str]]:
    socketserver.ThreadingTCPServer.allow_reuse_address = True
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.canned = Canned()  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.canned, f"http://127.0.0.1:{server.server_address[1]}/v1"  # type: ignore[attr-defined]
    finally:
        server.shutdown()
        server.server_close()


async def play(base_url: str, fmt: str = "pcm", **settings: object):  # type: ignore[no-untyped-def]
    factory = virtual_factory(speed=8.0)
    player = StreamPlayer(make_settings(audio_format=fmt, **settings), base_url=base_url, sink_factory=factory)
    try:
        metrics = await player.play("Hello there.")
    finally:
        await player.aclose()
    recorded = factory.made[-1].recorder.samples() if factory.made else np.zeros(0, dtype=np.float32)
    return metrics, recorded


@pytest.mark.parametrize("fmt", ["pcm", "mp3", "opus"])
async def test_an_error_page_with_status_200_is_an_error_never_noise(canned: tuple[Canned, str], fmt: str) -> None:
    page, url = canned
    page.headers, page.body = (("Content-Type", "text/html; charset=utf-8"),), HTML_PAGE
    m, recorded = await play(url, fmt)
    assert m.state == "failed"
    assert "text/html" in (m.error or "") and "Service Unavailable" in (m.error or "")
    assert len(m.error or "") < 400
    assert m.played_ms == 0 and not recorded.any(), "the page was played"
    assert m.retries == 0 and page.requests == 1  # asking again would bring the same page


@pytest.mark.parametrize("label", ["audio/pcm", "audio/mpeg", "application/octet-stream"])
async def test_a_page_labelled_as_audio_is_recognised_as_text(canned: tuple[Canned, str], label: str) -> None:
    page, url = canned
    page.headers, page.body = (("Content-Type", label),), HTML_PAGE
    m, recorded = await play(url, "pcm" if label != "audio/mpeg" else "mp3")
    assert m.state == "failed" and "text, not audio" in (m.error or ""), m.error
    assert "Service Unavailable" in (m.error or "")
    assert m.played_ms == 0 and not recorded.any()


async def test_a_huge_error_message_with_escapes_is_cut_and_cleaned(canned: tuple[Canned, str], tmp_path: Path) -> None:
    page, url = canned
    message = "\x1b[2J\x1b]0;pwned\x07Model overloaded\r\n" + "x" * 1_000_000
    page.status, page.headers = "500 Internal Server Error", (("Content-Type", "application/json"),)
    page.body = json.dumps({"error": {"message": message, "type": "server_error"}}).encode()
    log = tmp_path / "metrics.jsonl"
    m, _ = await play(url, max_retries=0, metrics_log=str(log))
    assert m.state == "failed" and "Model overloaded" in (m.error or "")
    assert len(m.error or "") < 600
    assert not any(c in (m.error or "") for c in "\x1b\x07\r\n")
    line = log.read_text()
    assert len(line) < 5000 and "\\u001b" not in line and "\x1b" not in line


async def test_headers_then_nothing_times_out_from_the_last_byte_and_is_retried_once(
        canned: tuple[Canned, str]) -> None:
    page, url = canned
    page.headers, page.hold_s = (("Content-Type", "audio/pcm"),), 30.0
    t = time.perf_counter()
    m, _ = await play(url, stall_timeout_s=1.0)
    elapsed = time.perf_counter() - t
    assert m.state == "failed"
    assert "sent nothing for 1 s after its headers" in (m.error or "")
    assert m.retries == 1 and page.requests == 2  # asked again once, not three times
    assert elapsed < 10.0  # not four 30 s read timeouts


async def test_a_name_that_does_not_resolve_is_not_retried() -> None:
    m, _ = await play("http://no-such-host.invalid/v1", max_retries=3)
    assert m.state == "failed" and "cannot reach" in (m.error or "")
    assert m.retries == 0
    assert "DNS" in (m.error or "")


async def test_tls_to_a_plain_port_is_not_retried(canned: tuple[Canned, str]) -> None:
    page, url = canned
    m, _ = await play(url.replace("http://", "https://"), max_retries=3)
    assert m.state == "failed" and "TLS" in (m.error or ""), m.error
    assert m.retries == 0


async def test_nothing_connected_says_so_and_reports_no_resuming_or_reconnects() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    m, _ = await play(f"http://127.0.0.1:{port}/v1", max_retries=2)
    assert m.state == "failed" and "cannot reach" in (m.error or "")
    assert m.retries == 2 and m.reconnects == 0
    assert not any("resuming" in w for w in m.warnings), m.warnings
    assert any("asking again" in w for w in m.warnings)
