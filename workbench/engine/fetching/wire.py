"""When the request really left: httpcore's trace events, read through a transport that asks for them.

`SpeechSource` puts a `WireTimes` in `WIRE` (a context variable) around each request; `TracingTransport`,
the innermost transport of the player's pooled client, hands its `trace` callback to httpcore, which
calls it as the connection is opened and the request's headers and body are written to the socket.
A simulated network (`network.ShapedTransport`) delays the request on its way out; it adds that delay
to `simulated_s`, so `request_sent` is when the bytes left this process, not when the simulated link
delivered them.
"""

from __future__ import annotations

import asyncio
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import httpx2


@dataclass
class WireTimes:
    """perf_counter() times of one request's way out (the first attempt's; a retry keeps them)."""

    connect_started: float | None = None  # a new connection was opened (None: a pooled one was reused)
    connected: float | None = None
    request_sent: float | None = None  # the last byte of the request was written to the socket
    simulated_s: float = 0.0  # a simulated network held the request this long before it was written
    sent: asyncio.Event = field(default_factory=asyncio.Event)  # set once `request_sent` is known

    async def trace(self, name: str, info: dict[str, Any]) -> None:
        now = time.perf_counter() - self.simulated_s
        if name.endswith(("connect_tcp.started", "connect_unix_socket.started")) and self.connect_started is None:
            self.connect_started = now
        elif name.endswith(("connect_tcp.complete", "connect_unix_socket.complete")) and self.connected is None:
            self.connected = now
        elif name.endswith("send_request_body.complete") and self.request_sent is None:
            self.request_sent = now
            self.sent.set()


LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100, keepalive_expiry=5.0)  # openai's
TIMEOUT = httpx2.Timeout(600.0, connect=5.0)  # openai's; each request gives its own


def new_client(transport: httpx2.AsyncBaseTransport | None = None) -> httpx2.AsyncClient:
    """An HTTP client set up as the `openai` package sets up its own (limits, redirects followed)."""
    return httpx2.AsyncClient(transport=transport, limits=LIMITS, timeout=TIMEOUT, follow_redirects=True)


WIRE: ContextVar[WireTimes | None] = ContextVar("workbench_wire", default=None)


class TracingTransport(httpx2.AsyncBaseTransport):
    """Wraps the real transport; a request made while `WIRE` holds a `WireTimes` is traced into it."""

    def __init__(self, inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self._inner = inner or httpx2.AsyncHTTPTransport(limits=LIMITS)

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        times = WIRE.get()
        if times is not None:
            request.extensions = {**request.extensions, "trace": times.trace}
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()
