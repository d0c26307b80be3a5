"""What both players share (`StreamPlayer`, and `VoicemodePlayer`, the model of voicemode 9.0's playback):
the endpoint, the sink factory, one pooled HTTP client kept across plays, and the snapshot observers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from .fetching.httpclient import make_client
from .figures.metrics import PlayMetrics, Snapshot
from .output.sinkfactory import SinkFactory, sink_factory
from .output.sinks import Sink
from .settings import LOCAL, Settings

log = logging.getLogger(__name__)
Observer = Callable[[Snapshot], None]


class PlayError(Exception):
    """A play could not start (bad input); `str()` is meant for the user."""


class PlayerBase:
    def __init__(self, settings: Settings, *, base_url: str | None, sink_factory: SinkFactory | None,
                 http_client: Any, snapshot_hz: float, extra_headers: dict[str, str] | None,
                 extra_query: dict[str, Any] | None) -> None:
        self.settings = settings
        self.base_url = base_url or settings.base_url
        if self.base_url == LOCAL:
            raise PlayError("no endpoint given: start the embedded server and pass its URL as base_url")
        self.sink_factory = sink_factory or _default_factory
        self.http_client = http_client
        self.snapshot_interval = 1.0 / snapshot_hz
        self.extra_headers = extra_headers
        self.extra_query = extra_query
        self.observers: list[Observer] = []
        self.notices: list[str] = []  # the current (or last) play's; the same list object for every play
        self.last_metrics: PlayMetrics | None = None
        self._playing = False
        self._http: Any = None  # our own pooled HTTP client, kept across plays (keep-alive, one TLS setup)
        self._http_loop: asyncio.AbstractEventLoop | None = None

    def _pooled_client(self) -> Any:
        """The client every request of this player goes through, on the simulated network if any."""
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop or self._http.is_closed:
            self._http = make_client(self.settings)
            self._http_loop = loop
        return self._http

    async def aclose(self) -> None:
        """Close the pooled HTTP connections. The player can still play afterwards (it reconnects)."""
        http, self._http = self._http, None
        if http is not None and not http.is_closed:
            await http.aclose()

    @property
    def sink(self) -> Sink | None:
        """The current (or last) play's sink."""
        raise NotImplementedError

    @property
    def is_playing(self) -> bool:
        return self._playing

    # -- observing --------------------------------------------------------------------------------
    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def snapshot(self) -> Snapshot:
        raise NotImplementedError

    def _emit(self) -> None:
        if not self.observers:
            return
        snap = self.snapshot()
        for observer in list(self.observers):
            try:
                observer(snap)
            except Exception:  # an observer's bug must never stop the audio
                log.exception("snapshot observer failed; removing it")
                self.observers.remove(observer)

    async def _snapshots(self) -> None:
        while True:
            self._emit()
            await asyncio.sleep(self.snapshot_interval)


_default_factory = sink_factory()
