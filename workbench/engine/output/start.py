"""Starting a sink's stream with its first audio, as a blocking write does."""

from __future__ import annotations

from ..playout.buffer import JitterBuffer
from ..playout.elastic import ElasticPlayout
from .sinks import Sink


def start_with_first_audio(sink: Sink, buffer: JitterBuffer, elastic: ElasticPlayout | None,
                           fixed_target_ms: float | None, block_ms: float) -> None:
    """Open the sink's stream on `buffer` now and start it when the ring can start, as a blocking stream
    starts playing with its first write: a callback stream started before the request has the device's
    latency of silence queued ahead of the first sample by the time that comes (40-90 ms on PulseAudio).
    A device reads its whole buffer when it starts, so the ring holds that and a block first (elastic
    playout primed; fixed playout's target at least that, given `fixed_target_ms`), and a lead of silence
    goes ahead of the first sample (the device drops the first few ms it is given). The player and the
    voicemode bridge start their devices this way."""
    sink.start(buffer, run=False)
    buffer.on_ready = sink.run
    buffer.set_lead_ms(sink.start_lead_s * 1000.0)
    if sink.kind != "device":
        return
    latency_ms = sink.latency_s * 1000.0
    if elastic is not None:
        elastic.prime(latency_ms)
    elif fixed_target_ms is not None:
        buffer.set_target_ms(max(fixed_target_ms, latency_ms + block_ms))
