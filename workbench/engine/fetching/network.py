"""Network shaping on the client side: an `httpx2` transport under the engine's HTTP client.

It wraps the real transport, so it shapes any endpoint, local or remote HTTPS, and it shapes the byte
stream as it arrives:

- **round trip**: the response headers arrive `rtt_ms` later than they would, and every byte is delayed
  by half of it (one way);
- **jitter**: each packet gets an extra delay drawn uniformly from 0 to 2 x `jitter_ms` (mean
  `jitter_ms`), delivered in order, as TCP does, so late packets hold back the ones behind them;
- **bandwidth**: bytes leave a bottleneck link at `bandwidth_kbps`;
- **stalls**: at random (mean interval `stall_every_s`) the link stops for `stall_ms`;
- **drops**: at random (mean interval `drop_every_s`) the connection is reset mid-body.

Randomness comes from a seeded generator per request (seed, then request number), so runs repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx2

from .wire import WIRE

PACKET_BYTES = 1400  # an Ethernet-ish segment
QUANTUM_S = 0.005  # at high bandwidth, packets are released in groups this long
MIN_RECEIVE_WINDOW = 256 * 1024  # bytes in flight to us before the sender must wait (grown to 2x the
# bandwidth-delay product, as TCP window auto-tuning would, so the window never caps the profile's rate)


@dataclass(frozen=True)
class NetworkProfile:
    name: str
    rtt_ms: float
    jitter_ms: float
    bandwidth_kbps: float  # kilobits per second; 0 = unlimited
    stall_every_s: float = 0.0  # mean seconds between stalls; 0 = none
    stall_ms: float = 0.0
    drop_every_s: float = 0.0  # mean seconds between dropped connections; 0 = none
    description: str = ""

    @property
    def shaped(self) -> bool:
        return self.name != "none"


PROFILES: dict[str, NetworkProfile] = {p.name: p for p in (
    NetworkProfile("none", 0, 0, 0, description="no shaping: the network as it is"),
    NetworkProfile("lan", 2, 0.5, 100_000, description="wired LAN to a TTS box: 2 ms RTT, 100 Mbit/s"),
    NetworkProfile("wifi", 20, 8, 30_000, stall_every_s=20, stall_ms=120,
                   description="home Wi-Fi: 20 ms RTT, 8 ms jitter, 30 Mbit/s, a 120 ms stall every ~20 s"),
    NetworkProfile("4g", 70, 30, 8_000, stall_every_s=8, stall_ms=250,
                   description="mobile 4G: 70 ms RTT, 30 ms jitter, 8 Mbit/s, a 250 ms stall every ~8 s"),
    NetworkProfile("flaky", 150, 80, 1_500, stall_every_s=4, stall_ms=600, drop_every_s=60,
                   description="a bad link: 150 ms RTT, 80 ms jitter, 1.5 Mbit/s, a 600 ms stall every ~4 s, "
                               "a dropped connection every ~60 s"),
    NetworkProfile("satellite", 600, 25, 10_000, stall_every_s=30, stall_ms=300,
                   description="geostationary satellite: 600 ms RTT, 25 ms jitter, 10 Mbit/s"),
    NetworkProfile("edge", 300, 40, 200, description="2.75G EDGE, one bar: 300 ms RTT, 40 ms jitter, 200 kbit/s, "
                   "too slow for 24 kHz PCM (384 kbit/s); MP3 and Opus fit"),
)}


def get_profile(name: str) -> NetworkProfile:
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"unknown network profile {name!r}; known: {', '.join(PROFILES)}") from None


class SimulatedDrop(httpx2.ReadError):
    """The shaped network reset the connection."""


class _Link:
    """One response's bottleneck link and its random events."""

    def __init__(self, profile: NetworkProfile, rng: random.Random, start: float) -> None:
        self.p = profile
        self.rng = rng
        self.free_at = start  # when the bottleneck link is free to send the next packet
        self.last_delivery = start
        self.next_stall = start + rng.expovariate(1 / profile.stall_every_s) if profile.stall_every_s else None
        self.drop_at = start + rng.expovariate(1 / profile.drop_every_s) if profile.drop_every_s else None

    def jitter(self) -> float:
        return self.rng.uniform(0.0, 2.0 * self.p.jitter_ms / 1000.0) if self.p.jitter_ms else 0.0

    def schedule(self, nbytes: int, ready: float) -> float:
        """Delivery time of a packet of `nbytes` that reached the link at `ready`."""
        p = self.p
        stall = p.stall_ms / 1000.0
        start = max(ready, self.free_at)
        # a stall is a window in which the link sends nothing; ones that ended while idle cost nothing
        while self.next_stall is not None and self.next_stall <= start:
            start = max(start, self.next_stall + stall)
            self.next_stall += stall + self.rng.expovariate(1 / p.stall_every_s)
        sent = start + (nbytes * 8 / (p.bandwidth_kbps * 1000.0) if p.bandwidth_kbps else 0.0)
        while self.next_stall is not None and self.next_stall < sent:  # a stall mid-packet pauses it
            sent += stall
            self.next_stall += stall + self.rng.expovariate(1 / p.stall_every_s)
        self.free_at = sent
        delivery = max(sent + p.rtt_ms / 2000.0 + self.jitter(), self.last_delivery)
        self.last_delivery = delivery
        return delivery


class ShapedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: httpx2.AsyncByteStream, link: _Link) -> None:
        self._inner = inner
        self._link = link

    async def __aiter__(self) -> AsyncIterator[bytes]:
        link = self._link
        group = max(PACKET_BYTES, int(link.p.bandwidth_kbps * 125 * QUANTUM_S)) if link.p.bandwidth_kbps else 0
        # A reader task takes bytes off the real connection as they arrive and schedules each packet,
        # so latency is pipelined (many packets in flight) rather than paid once per chunk. Its queue is
        # the receive window: when the engine stops reading, the window fills and the sender waits.
        p = link.p
        bdp = p.bandwidth_kbps * 125 * (p.rtt_ms + 2 * p.jitter_ms) / 1000.0
        window_bytes = max(MIN_RECEIVE_WINDOW, int(2 * bdp))
        window: asyncio.Queue[tuple[float, bytes] | BaseException | None] = asyncio.Queue(
            maxsize=max(8, window_bytes // max(group, PACKET_BYTES)))

        async def reader() -> None:
            try:
                async for chunk in self._inner:
                    ready = time.perf_counter()
                    step = group or len(chunk) or 1
                    for off in range(0, len(chunk), step):
                        piece = chunk[off : off + step]
                        await window.put((link.schedule(len(piece), ready), piece))
                await window.put(None)
            except Exception as exc:  # handed to the consumer, in order
                await window.put(exc)

        task = asyncio.create_task(reader())
        try:
            while True:
                item = await window.get()
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                due, piece = item
                if link.drop_at is not None and due >= link.drop_at:
                    await sleep_until(link.drop_at)
                    raise SimulatedDrop("connection reset (simulated network drop)")
                await sleep_until(due)
                yield piece
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    async def aclose(self) -> None:
        await self._inner.aclose()


async def sleep_until(deadline: float) -> None:
    """Sleep until perf_counter() reaches `deadline` (at once if it has)."""
    delay = deadline - time.perf_counter()
    if delay > 0:
        await asyncio.sleep(delay)


class ShapedTransport(httpx2.AsyncBaseTransport):
    """Wraps a real transport and shapes every response by `profile`."""

    def __init__(self, profile: NetworkProfile, *, seed: int = 0,
                 inner: httpx2.AsyncBaseTransport | None = None) -> None:
        self.profile = profile
        self.seed = seed
        self.requests = 0
        self._inner = inner or httpx2.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        p = self.profile
        rng = random.Random(f"{self.seed}:{self.requests}")
        self.requests += 1
        if not p.shaped:
            return await self._inner.handle_async_request(request)
        t = time.perf_counter()
        await sleep_until(t + p.rtt_ms / 2000.0)  # the request's way there
        times = WIRE.get()
        if times is not None:
            times.simulated_s = time.perf_counter() - t
        response = await self._inner.handle_async_request(request)
        link = _Link(p, rng, time.perf_counter())
        await sleep_until(link.schedule(0, time.perf_counter()))  # the headers' way back
        assert isinstance(response.stream, httpx2.AsyncByteStream)
        return httpx2.Response(status_code=response.status_code, headers=response.headers,
                               stream=ShapedStream(response.stream, link), extensions=response.extensions,
                               request=request)

    async def aclose(self) -> None:
        await self._inner.aclose()
