"""Running the embedded server: in-process on a background thread, or in the foreground (`workbench serve`)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from .app import Knobs, create_app


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
                 api_key: str | None = None, test_knobs: bool = True) -> None:
        self.host = host
        self.knobs = knobs or Knobs()
        self._sock = _bind(host, port)
        self.port = self._sock.getsockname()[1]
        # lifespan on: the app's startup gives synthesis waits their own thread pool
        config = uvicorn.Config(create_app(self.knobs, api_key=api_key, test_knobs=test_knobs), log_level="warning",
                                access_log=False, lifespan="on", timeout_graceful_shutdown=1)
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
                            lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
