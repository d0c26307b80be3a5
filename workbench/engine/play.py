"""One play of `StreamPlayer`, as one object: made whole when the play starts, dropped (kept only for its
last snapshot) when the next one does.

It holds the play's requests (one per fragment when the text is split), its sink, the playout built on
that sink once it is open (`PlayChain`: the ring, elastic playout's stage, the feed), the download task,
and the play's state and counters (`PlayRun`). What outlives a play stays on the player: the pooled HTTP
client, the endpoint memory, the learned target and the user's live values.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from .fetching.source import SpeechSource
from .output.sinks import Sink
from .output.start import PlayChain
from .playout.adaptive import Steering
from .playout.buffer import JitterBuffer
from .playout.elastic import ElasticPlayout, Feed
from .playrun import PlayRun


@dataclass
class Play:
    run: PlayRun
    sources: list[SpeechSource] = field(default_factory=list)
    sink: Sink | None = None  # made when the play starts, opened while its request is in flight
    chain: PlayChain | None = None  # built on the open sink
    download: asyncio.Task[None] | None = None
    steering: Steering | None = None  # the one writer of its buffer target (when streaming)

    @property
    def source(self) -> SpeechSource | None:
        """The first request's: its times are the play's."""
        return self.sources[0] if self.sources else None

    @property
    def buffer(self) -> JitterBuffer | None:
        return self.chain.buffer if self.chain is not None else None

    @property
    def elastic(self) -> ElasticPlayout | None:
        return self.chain.elastic if self.chain is not None else None

    @property
    def feed(self) -> Feed | None:
        return self.chain.feed if self.chain is not None else None
