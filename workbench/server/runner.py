"""Running the embedded server: in-process on a background thread, or in the foreground (`workbench serve`)."""

from __future__ import annotations

import socket
import threading
import time

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from .app import Knobs, create_app

REQUEST_DEADLINE_S = 10.0  # a request's headers and body must have come this long after its first byte


class DeadlineH11Protocol(H11Protocol):
    """uvicorn's HTTP/1.1 protocol with a deadline for receiving each request.

    uvicorn closes a kept-alive connection that stays idle, but a client that opens a connection and
    sends its request a byte every few seconds (slowloris), or its headers and then never its body,
    holds the connection, and a handler, for as long as it likes. Here the whole request, headers and
    body, must arrive within `deadline_s` of its first byte (of the connection opening, for the first
    request): past that the client gets a 408 when no response has begun, and the connection is
    closed. A response being streamed to a slow reader is not affected (that is flow control)."""

    deadline_s = REQUEST_DEADLINE_S

    def connection_made(self, transport) -> None:  # type: ignore[no-untyped-def]
        super().connection_made(transport)
        self._began: float | None = self.loop.time()  # the request being received began here
        self._watch = self.loop.call_later(min(1.0, self.deadline_s / 2), self._check)

    def data_received(self, data: bytes) -> None:
        if self._began is None and self.conn.their_state is not h11.DONE:
            self._began = self.loop.time()
        super().data_received(data)
        self._note_received()

    def handle_events(self) -> None:
        super().handle_events()
        self._note_received()

    def _note_received(self) -> None:
        if self.conn.their_state in (h11.DONE, h11.MUST_CLOSE, h11.CLOSED):
            self._began = None  # the whole request is in: from here on, the response is what takes time

    def connection_lost(self, exc: Exception | None) -> None:
        self._watch.cancel()
        super().connection_lost(exc)

    def _check(self) -> None:
        if self.transport.is_closing():
            return
        if self._began is not None and self.loop.time() - self._began > self.deadline_s:
            if self.cycle is None or not self.cycle.response_started:
                self.transport.write(_TIMEOUT_RESPONSE)
            self.transport.close()
            return
        self._watch = self.loop.call_later(min(1.0, self.deadline_s / 2), self._check)


_TIMEOUT_BODY = (b'{"error":{"message":"The request did not arrive in time.","type":"invalid_request_error",'
                 b'"code":null}}')
_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(_TIMEOUT_BODY)).encode() + b"\r\nConnection: close\r\n\r\n" + _TIMEOUT_BODY)


def _protocol(deadline_s: float) -> type[H11Protocol]:
    return type("DeadlineH11", (DeadlineH11Protocol,), {"deadline_s": deadline_s})


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class EmbeddedServer:
    """The embedded TTS server on its own thread and event loop (so it never competes with the player's).

    with EmbeddedServer() as server:
        player = StreamPlayer(settings, base_url=server.base_url)
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, knobs: Knobs | None = None,
                 api_key: str | None = None, test_knobs: bool = True,
                 request_deadline_s: float = REQUEST_DEADLINE_S) -> None:
        self.host = host
        self.knobs = knobs or Knobs()
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]
        # lifespan on: the app's startup gives synthesis waits their own thread pool
        config = uvicorn.Config(create_app(self.knobs, api_key=api_key, test_knobs=test_knobs), log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=1,
                                http=_protocol(request_deadline_s))
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/v1"

    def start(self, timeout: float = 10.0) -> EmbeddedServer:
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]},
                                        name="embedded-tts", daemon=True)
        self._thread.start()
        # load espeak-ng now (about 40 ms), as a running server would have, not on the first request
        threading.Thread(target=_warm_speech, name="espeak-warmup", daemon=True).start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the embedded TTS server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        self._sock.close()

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _warm_speech() -> None:
    try:
        from .speech import Espeak

        Espeak.get()
    except Exception:  # reported on the first request instead
        pass


def serve_forever(host: str, port: int, knobs: Knobs, api_key: str | None = None, test_knobs: bool = False) -> None:
    """Run in the foreground until Ctrl-C."""
    sock = _bind(host, port)
    config = uvicorn.Config(create_app(knobs, api_key=api_key, test_knobs=test_knobs), log_level="info",
                            lifespan="on", http=_protocol(REQUEST_DEADLINE_S))
    uvicorn.Server(config).run(sockets=[sock])
