"""One play's playout, built whole on its sink (the ring, elastic playout's stage, the feed), and started
with its first audio, as a blocking write starts. The player and the voicemode bridge build theirs here."""

from __future__ import annotations

from dataclasses import dataclass

from ..playout.buffer import JitterBuffer
from ..playout.controller import RateLimits
from ..playout.elastic import ElasticPlayout, Feed
from ..settings import ElasticStart, Playout, Settings
from .sinks import Sink

ELASTIC_START_BLOCKS = 1  # elastic playout starts once this many device blocks are in the ring


@dataclass
class PlayChain:
    """What one play's decoded audio goes through to the sink: `feed` (the elastic stage, or the ring
    itself in fixed playout), the ring (`buffer`) and the sink."""

    sink: Sink
    buffer: JitterBuffer
    elastic: ElasticPlayout | None
    feed: Feed
    target_ms: float  # the ring's start level (fixed), or what elastic playout grows to
    block_ms: float
    fixed_target_ms: float | None  # fixed playout's start level, when the device's own start may raise it

    def start(self) -> None:
        """Start the sink with the first audio (`start_with_first_audio`) and elastic playout's pump."""
        start_with_first_audio(self.sink, self.buffer, self.elastic, self.fixed_target_ms, self.block_ms)
        if self.elastic is not None:
            self.elastic.start()


def build_chain(settings: Settings, sink: Sink, target_ms: float, *, trailing_silence_s: float,
                pump_slack_ms: float = 0.0) -> PlayChain:
    """The playout of one play on an open `sink`, whole. Streaming: in fixed playout the ring waits for
    `target_ms` first, in elastic playout it starts after a block and the elastic stage grows the buffer to
    `target_ms` as it plays. Not streaming: the whole reply (up to the maximum buffer) first, as it is.
    After an underrun, fixed playout plays again once a block is back (never a long wait)."""
    s = settings
    block_ms = s.block_size * 1000.0 / sink.rate
    streaming = s.streaming_enabled
    target = target_ms if streaming else s.max_buffer_s * 1000.0
    buffer = JitterBuffer(sink.rate, s.max_buffer_s, target, trailing_silence_s=trailing_silence_s,
                          channels=sink.channels)
    elastic: ElasticPlayout | None = None
    if streaming and s.playout is Playout.ELASTIC:
        elastic = ElasticPlayout(buffer, target_ms=target_ms, start_ms=ELASTIC_START_BLOCKS * block_ms,
                                 block_ms=block_ms, limits=RateLimits(s.slowest, s.fastest), slack_ms=pump_slack_ms,
                                 wake=sink.wake_after_blocks(), block_period_s=sink.block_period_s,
                                 steady_start=s.elastic_start is ElasticStart.STEADY)
    elif target_ms > 0:
        buffer.set_resume_ms(min(block_ms, target_ms))
    return PlayChain(sink, buffer, elastic, elastic or buffer, target, block_ms, target if streaming else None)


def start_with_first_audio(sink: Sink, buffer: JitterBuffer, elastic: ElasticPlayout | None,
                           fixed_target_ms: float | None, block_ms: float) -> None:
    """Open the sink's stream on `buffer` now and start it when the ring can start, as a blocking stream
    starts playing with its first write: a callback stream started before the request has the device's
    latency of silence queued ahead of the first sample by the time that comes (40-90 ms on PulseAudio).
    A device reads its whole buffer when it starts, so the ring holds that and a block first (elastic
    playout primed; in fixed playout, given `fixed_target_ms`, a floor no later target goes under), and a
    lead of silence goes ahead of the first sample (the device drops the first few ms it is given)."""
    sink.start(buffer, run=False)
    buffer.on_ready = sink.run
    buffer.set_lead_ms(sink.start_lead_s * 1000.0)
    if sink.kind != "device":
        return
    latency_ms = sink.latency_s * 1000.0
    if elastic is not None:
        elastic.prime(latency_ms)
    elif fixed_target_ms is not None:
        buffer.set_start_floor_ms(latency_ms + block_ms)
