"""A scriptable hostile endpoint for tests: raw HTTP/1.1 on loopback, written apart from the embedded
server, so that it can do what no well-behaved server would (send an empty 200, cut base64 short, end
lines with bare CRs, say something different when asked again, drop the connection mid-body)."""

from __future__ import annotations

import base64
import json
import math
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

RATE = 24_000


@dataclass
class Reply:
    """One response: its status and headers, then its body in pieces, `gap_s` apart."""

    body: list[bytes] = field(default_factory=list)
    content_type: str = "audio/pcm"
    status: str = "200 OK"
    gap_s: float = 0.0
    drop: bool = False  # end by breaking the connection (no terminating chunk)
    length: bool = False  # send a Content-Length instead of chunks


Script = Callable[[int, dict], Reply]  # (request number from 0, the JSON body) -> the reply


def tone(seconds: float, hz: float = 440.0, amplitude: float = 0.3, phase: float = 0.0) -> np.ndarray:
    n = int(RATE * seconds)
    return (amplitude * np.sin(2 * math.pi * hz * np.arange(n) / RATE + phase)).astype(np.float32)


def pcm(samples: np.ndarray) -> bytes:
    return (np.round(samples * 32767).astype("<i2")).tobytes()


def pieces(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def sse_delta(audio: bytes | str) -> bytes:
    text = audio if isinstance(audio, str) else base64.b64encode(audio).decode()
    return f"data: {json.dumps({'type': 'speech.audio.delta', 'audio': text})}\n\n".encode()


SSE_DONE = b'data: {"type": "speech.audio.done", "usage": {"total_tokens": 1}}\n\n'


def read_request(sock: socket.socket) -> tuple[list[bytes], bytes] | None:
    """One HTTP request off a blocking socket: (its head's lines, its body, with a length or in chunks);
    None when the client closed first."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            return None
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next((int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:")), 0)
    if any(line.lower().startswith(b"transfer-encoding:") and b"chunked" in line.lower() for line in lines):
        while not rest.endswith(b"0\r\n\r\n"):
            rest += sock.recv(65536)
        body, raw = b"", rest
        while True:
            size_line, _, raw = raw.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return lines, body
            body += raw[:size]
            raw = raw[size + 2 :]
    while len(rest) < length:
        rest += sock.recv(65536)
    return lines, rest[:length]


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        server: HostileServer = self.server.owner  # type: ignore[attr-defined]
        self.request.settimeout(10)
        try:
            got = read_request(self.request)
            if got is None:
                return
            body = got[1]
            with server.lock:
                index = len(server.requests)
                request = json.loads(body or b"{}")
                server.requests.append(request)
            reply = server.script(index, request)
            out = [f"HTTP/1.1 {reply.status}", f"Content-Type: {reply.content_type}", "Connection: close"]
            whole = b"".join(reply.body)
            out.append(f"Content-Length: {len(whole)}" if reply.length else "Transfer-Encoding: chunked")
            self.request.sendall(("\r\n".join(out) + "\r\n\r\n").encode())
            if reply.length:
                self.request.sendall(whole)
                return
            for piece in reply.body:
                if piece:
                    self.request.sendall(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                if reply.gap_s:
                    time.sleep(reply.gap_s)
            if reply.drop:
                self.request.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                return  # closed without the last chunk: a broken connection
            self.request.sendall(b"0\r\n\r\n")
        except OSError:
            pass


class HostileServer:
    def __init__(self, script: Script) -> None:
        self.script = script
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> HostileServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serving(script: Script) -> Iterator[HostileServer]:
    with HostileServer(script) as server:
        yield server
