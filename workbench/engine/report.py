"""A finished play's figures: collected from the run, the source, the buffer and the sink, plus what to
do about them (the buffer that would have played it clean, and a lighter format when the link is slow)."""

from __future__ import annotations

import time
from typing import Any

from .decoding.formats import FORMATS
from .fetching.source import SpeechSource
from .figures.metrics import PlayMetrics, PlayState, percentile
from .output.sinks import Sink
from .playout.adaptive import AdaptiveTarget, needed_buffer_ms
from .playout.buffer import JitterBuffer
from .playout.elastic import ElasticPlayout
from .playrun import PlayRun
from .text.safetext import clean_text

# what each format costs on the wire from the embedded server, kbit/s (mono 24 kHz)
FORMAT_KBPS = {name: f.kbps for name, f in FORMATS.items()}


def collect(m: PlayMetrics, run: PlayRun, correction_ms: float, sources: list[SpeechSource],
            buf: JitterBuffer | None, sink: Sink | None, adaptive: AdaptiveTarget | None,
            elastic: ElasticPlayout | None = None) -> float | None:
    """Fill `m` from everything the play measured; returns its `needed_buffer_ms` when the play finished
    cleanly (for the player's history), else None. `sources` are the play's requests, one per fragment
    when the text was split: the first one's times are the play's."""
    t0 = run.t0
    source = sources[0] if sources else None

    def ms(t: float | None) -> float | None:
        return (t - t0) * 1000.0 if t is not None else None

    m.total_ms = ms(time.perf_counter())
    m.state = (run.final_state or PlayState.DONE).value
    if source is not None:
        m.ttfb_ms = ms(source.headers_at)
        m.first_byte_ms = ms(source.first_byte_at)
        m.request_sent_ms = ms(source.wire.request_sent)
        m.bytes = sum(s.bytes_received for s in sources)
        m.chunks = sum(s.chunks_received for s in sources)
        m.throughput_kbps = source.link_kbps if len(sources) == 1 else _link_kbps(sources)
    if sink is not None:
        m.sink = sink.description
        m.latency_correction_ms = correction_s(correction_ms, sink) * 1000.0
        first, sound = heard_times(correction_ms, sink)
        m.ttfa_ms, m.first_sound_ms = ms(first), ms(sound)
        if m.ttfa_ms is not None and m.first_sound_ms is not None:
            m.leading_silence_ms = m.first_sound_ms - m.ttfa_ms
        m.device_underflows = sink.device_underflows
        m.output_channels = sink.channels
        m.clock_late = sink.clock_late
        m.device_latency_ms = sink.latency_s * 1000.0
    if buf is not None:
        _buffer_figures(m, buf, run, source if len(sources) == 1 else None)  # a split reply's pace is its joins
    parsers = [s.sse for s in sources if s.sse is not None]
    m.decode_ms_p95 = percentile(run.decode_ms + [ms for p in parsers for ms in p.decode_ms], 95)  # base64 too
    if parsers:
        m.stream_format, m.sse_usage = "sse", _usage([p.usage for p in parsers])
    for s in sources:
        for note in s.notices:
            run.notice(note)
    _decoder_figures(m, [d for d in run.decoders if d is not None])
    if len(sources) > 1:
        _fragment_figures(m, run, sources, buf)
    m.first_audio_ms = ms(run.first_audio_at)
    pcm = run.pcm
    if pcm is not None and (m.detected_format or m.format) == "pcm":
        m.pcm_rate, m.pcm_channels, m.pcm_from = pcm.rate, pcm.channels, pcm.rate_from
        m.pcm_channels_from = pcm.channels_from
    if buf is not None:
        m.silence_skipped_ms = buf.samples_to_ms(run.leading_trimmed)
    m.playout = "elastic" if elastic is not None else "fixed"
    if elastic is not None:
        m.stretch_added_ms = elastic.added_ms
        m.stretch_removed_ms = elastic.removed_ms
        m.stretched_pct = elastic.stretched_pct
        m.stretch_in_pauses_pct = elastic.in_pauses_pct
        m.speech_off_tempo_pct = elastic.speech_off_tempo_pct
        m.min_rate, m.max_rate = elastic.min_rate, elastic.max_rate
        m.target_ms = elastic.target_ms
    m.reconnects = run.reconnects
    m.retries = run.retries
    m.resume = run.resume_result
    needed = None
    if adaptive is not None and adaptive.arrivals:
        m.needed_buffer_ms = needed_buffer_ms(adaptive.arrivals) + adaptive.block_ms
        if m.state == PlayState.DONE.value:
            needed = m.needed_buffer_ms
    # a buffer that filled up means audio arrived faster than it played: nothing to advise
    advice = quality_advice(m) if run.backpressure_s == 0 else None
    if advice:
        m.advice = advice
        run.notice(advice)
    if m.error is not None:
        m.error = clean_text(m.error, 500)
    m.warnings.extend(run.notices)
    return needed


def correction_s(correction_ms: float, sink: Sink) -> float:
    """The stored latency correction (WORKBENCH_LATENCY_CORRECTION_MS), for a real device only (the
    virtual sink's clock is exact)."""
    return correction_ms / 1000.0 if sink.kind == "device" else 0.0


def heard_times(correction_ms: float, sink: Sink) -> tuple[float | None, float | None]:
    """perf_counter() of the first sample and the first sound heard, with the stored correction."""
    extra = correction_s(correction_ms, sink)
    first, sound = sink.first_heard, sink.first_sound
    return (first + extra if first is not None else None), (sound + extra if sound is not None else None)


def _buffer_figures(m: PlayMetrics, buf: JitterBuffer, run: PlayRun, source: SpeechSource | None) -> None:
    m.buffer_ready_ms = (buf.ready_time - run.t0) * 1000.0 if buf.ready_time is not None else None
    m.underruns = buf.underruns
    m.underrun_ms = buf.underrun_ms
    m.paused_ms = buf.paused_ms
    m.avg_buffer_ms = buf.avg_level_ms
    m.min_buffer_ms = buf.min_level_ms
    m.max_buffer_ms = buf.max_level_ms
    m.audio_ms = run.received_samples * 1000.0 / buf.rate
    m.played_ms = buf.samples_to_ms(buf.played_samples)
    m.target_ms = buf.target_ms
    if source is not None:  # the endpoint's pace, from the same reads as the throughput
        m.arrival_rtf = source.arrival_rtf(m.audio_ms / 1000.0)


def _decoder_figures(m: PlayMetrics, decoders: list[Any]) -> None:
    """The first reply's decoder says what the stream was; counts add up over a split reply's fragments."""
    if not decoders:
        return
    dec = decoders[0]
    m.detected_format = dec.detected
    m.channels = dec.channels or None
    m.frames = sum(d.frames for d in decoders)
    m.frame_kind = dec.frame_kind
    m.decoder_errors = sum(d.errors for d in decoders)
    m.fallback = next((d.fallback for d in decoders if d.fallback), None)
    m.first_audio_bytes = dec.first_audio_bytes
    m.priming_ms = sum(d.trimmed_ms for d in decoders)
    m.priming = dec.priming
    m.page_interval_ms = dec.page_interval_ms


def _fragment_figures(m: PlayMetrics, run: PlayRun, sources: list[SpeechSource], buf: JitterBuffer | None) -> None:
    """A split reply: each fragment's TTFB, and the joins (their pauses, and any underrun while a
    fragment after the first was due: from the end of the one before to its own end)."""
    m.fragment_ttfb_ms = [round((s.headers_at - run.t0) * 1000.0, 3) if s.headers_at is not None else None
                          for s in sources]
    marks = run.joins_underrun_ms
    waits = [b - a for a, b in zip(marks, marks[1:], strict=False)]
    m.join_wait_ms = max(waits) if waits else None
    pauses = run.join_pauses_ms
    if pauses:
        m.join_gap_ms = max(p + (waits[i] if i < len(waits) else 0.0) for i, p in enumerate(pauses))


def _link_kbps(sources: list[SpeechSource]) -> float | None:
    """The link's rate over several requests: their live-edge bytes over their live-edge time."""
    figures = [s.link_figures() for s in sources]
    data, seconds = sum(f[0] for f in figures), sum(f[1] for f in figures)
    return data * 8 / 1000.0 / seconds if seconds > 0.001 and data else None


def _usage(usages: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """speech.audio.done's usage, summed over a split reply's requests (numbers add; the rest is the first's)."""
    known = [u for u in usages if u]
    if len(known) <= 1:
        return known[0] if known else None
    total: dict[str, Any] = dict(known[0])
    for u in known[1:]:
        for key, value in u.items():
            if isinstance(value, int | float) and isinstance(total.get(key), int | float):
                total[key] += value
    return total


def recommend_buffer_ms(needed: list[float], step_ms: float = 10.0) -> float | None:
    """The smallest initial buffer that would have avoided every underrun in these plays, rounded up."""
    if not needed:
        return None
    worst = max(needed)
    return float(-(-worst // step_ms) * step_ms)


def quality_advice(m: PlayMetrics) -> str | None:
    """When audio arrived slower than real time, say what would play smoothly."""
    if m.arrival_rtf is None or m.arrival_rtf >= 1.0 or m.throughput_kbps is None or m.audio_ms < 1000:
        return None
    lighter = [f for f, kbps in sorted(FORMAT_KBPS.items(), key=lambda kv: kv[1])
               if f != m.format and kbps * 1.5 <= m.throughput_kbps]
    buffer = f"; with {m.format}, an initial buffer of {m.needed_buffer_ms:.0f} ms would have played it clean" \
        if m.needed_buffer_ms else ""
    if m.format in ("pcm", "wav", "flac") and lighter:
        return (f"audio arrived at {m.arrival_rtf:.2f}x real time ({m.throughput_kbps:.0f} kbit/s): if the link "
                f"is the limit, {lighter[0]} needs about {FORMAT_KBPS[lighter[0]]:.0f} kbit/s and would play "
                f"smoothly{buffer}")
    return f"audio arrived at {m.arrival_rtf:.2f}x real time: the server or the link is slower than speech{buffer}"
