"""The HTTP client every player talks through (httpx2, the client the `openai` package is built on, with
that package's limits and redirects), with the wire traced (`request_sent_ms`) and, when a network is
simulated, shaped. One per player, kept across its plays."""

from __future__ import annotations

from typing import Any

from ..settings import Settings


def make_client(settings: Settings) -> Any:
    from .network import ShapedTransport, get_profile
    from .wire import TracingTransport, new_client

    profile = get_profile(settings.network)
    transport: Any = TracingTransport()  # when the request really left: `request_sent_ms`
    if profile.shaped:
        transport = ShapedTransport(profile, seed=settings.network_seed, inner=transport)
    return new_client(transport)
