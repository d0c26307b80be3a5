"""One play of `StreamPlayer`, as one object: made whole when the play starts, dropped (kept only for its
last snapshot) when the next one does.

It holds the play's requests (one per fragment when the text is split), its sink, the playout built on
that sink once it is open (`PlayChain`: the ring, elastic playout's stage, the feed), the download task,
and the play's state and counters (`PlayRun`). What outlives a play stays on the player: the pooled HTTP
client, the endpoint memory, the learned target and the user's live values.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .fetching.cache import MAX_REPLY_S, ReplyCache, ReplyKey
from .fetching.fetch import Fetch
from .fetching.formatchoice import Choice, FormatChooser
from .fetching.source import SpeechSource
from .figures.metrics import PlayMetrics, PlayState
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
    cache_key: ReplyKey | None = None  # the reply cache's key for it (None: the cache is not used)
    from_cache: bool = False  # it plays from the cache: no request
    kept: list[np.ndarray] | None = None  # what it hands to the ring, kept to be stored in the cache
    kept_frames: int = 0
    choice: Choice | None = None  # WORKBENCH_AUTO_FORMAT: the format chosen for it, and why
    formats: list[str] = field(default_factory=list)  # each fragment's, as asked for
    taught: int = 0  # WORKBENCH_AUTO_FORMAT with the text split: fragments the chooser learned from

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

    def keep(self, samples: np.ndarray, rate: int) -> None:
        """Audio handed to the ring: kept, to be stored in the cache if the reply turns out whole and clean."""
        if self.kept is not None:
            self.kept.append(samples.copy())
            self.kept_frames += len(samples)
            if self.kept_frames > MAX_REPLY_S * rate:
                self.kept = None

    async def keep_in(self, cache: ReplyCache, metrics: PlayMetrics) -> None:
        """Store the reply in `cache` if it is whole and clean: not one that failed, was stopped, asked again,
        resumed, or skipped a fragment or a corrupt frame."""
        run, kept = self.run, self.kept
        self.kept = None
        if kept is None or self.cache_key is None or self.sink is None:
            return
        clean = (metrics.error is None and run.final_state is PlayState.DONE and run.retries == 0
                 and not run.skipped_fragments and metrics.decoder_errors == 0 and metrics.resume is None)
        if clean and kept:
            problem = await asyncio.to_thread(cache.put, self.cache_key, kept, self.sink.rate, self.sink.channels)
            metrics.cache_stored = problem is None
            if problem:
                metrics.warnings.append(problem)

    def format_for(self, k: int, chooser: FormatChooser | None, default: str) -> tuple[str, Choice | None]:
        """Fragment k's format: the play's for the first; with WORKBENCH_AUTO_FORMAT (a `chooser`), what the
        chooser says when k is asked for, having learned from each fragment downloaded before it."""
        choice = self.choice if k == 0 or chooser is None else chooser.choose()
        fmt = choice.format if choice is not None else default
        self.formats.append(fmt)
        if fmt != default:
            self.kept = None  # a reply in two formats is not cached under one
        return fmt, choice

    def learner(self, chooser: FormatChooser | None, choice: Choice | None) -> Callable[[Fetch], None] | None:
        """With WORKBENCH_AUTO_FORMAT: what a fragment's fetch calls once it has come whole, so the chooser
        learns its arrival in time for the fragments after it."""
        if chooser is None or choice is None:
            return None

        def learn(fetch: Fetch) -> None:
            rtf = fetch.arrival_rtf
            if rtf is not None:
                chooser.learn(choice, rtf, kbps=fetch.source.link_kbps)
                self.taught += 1

        return learn

    def teach(self, chooser: FormatChooser, metrics: PlayMetrics) -> bool:
        """WORKBENCH_AUTO_FORMAT: tell the chooser what this play measured of the link (a whole reply from the
        endpoint only: one that failed, was stopped or came from the cache says nothing about it); whether it
        was told."""
        if len(self.formats) > 1:
            metrics.fragment_formats = list(self.formats)
        if self.taught:  # learned fragment by fragment already
            return True
        if self.choice is None or self.from_cache or metrics.error is not None \
                or self.run.final_state is not PlayState.DONE:
            return False
        # a buffered play fills the buffer whatever the link: its backpressure says nothing about it
        chooser.learn(self.choice, metrics.arrival_rtf, backpressured=metrics.streaming and self.run.backpressure_s > 0,
                      kbps=metrics.throughput_kbps)
        return True
