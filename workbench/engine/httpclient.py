"""The HTTP client every player talks through: the `openai` package's own (httpx2), with the wire traced
(`request_sent_ms`) and, when a network is simulated, shaped. One per player, kept across its plays."""

from __future__ import annotations

from typing import Any

from .settings import Settings


def make_client(settings: Settings) -> Any:
    import openai

    from .network import ShapedTransport, get_profile
    from .wire import TracingTransport

    profile = get_profile(settings.network)
    transport: Any = TracingTransport()  # when the request really left: `request_sent_ms`
    if profile.shaped:
        transport = ShapedTransport(profile, seed=settings.network_seed, inner=transport)
    return openai.DefaultAsyncHttpxClient(transport=transport)
