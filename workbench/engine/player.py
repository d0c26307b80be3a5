"""`StreamPlayer`: source -> decoder -> jitter buffer -> sink, with metrics and live snapshots.

The one player that the CLI, the benchmarks and the TUI all drive. It runs on an asyncio event loop;
the audio itself is pulled by the sink's own thread, so nothing the loop does (decoding, drawing,
network waits) can stall the device, and the loop never waits on the audio thread.

The device is opened while the request is in flight, so it is already running (playing silence)
when the first audio arrives.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from .adaptive import AdaptiveTarget, estimate_speech_s, needed_buffer_ms, slow_server_ms
from .buffer import BufferState, JitterBuffer
from .decoders import PROGRESSIVE_FORMATS, DecodeError, StreamDecoder
from .metrics import PlayMetrics, PlayState, Snapshot, percentile
from .safetext import clean_text
from .settings import LOCAL, Settings
from .sinks import Sink, SinkError, VirtualSink, make_sink
from .source import SourceError, SpeechRequest, SpeechSource

log = logging.getLogger(__name__)

Observer = Callable[[Snapshot], None]
SinkFactory = Callable[[Settings], tuple[Sink, str | None]]


class PlayError(Exception):
    """A play could not start (bad input); `str()` is meant for the user."""


def default_sink_factory(settings: Settings, record: str | None = None) -> tuple[Sink, str | None]:
    return make_sink(settings.sink, rate=settings.output_rate, block_size=settings.block_size,
                     device=settings.output_device, record=record)


class StreamPlayer:
    def __init__(
        self,
        settings: Settings,
        *,
        base_url: str | None = None,
        sink_factory: SinkFactory | None = None,
        http_client: Any = None,
        snapshot_hz: float = 20.0,
        extra_headers: dict[str, str] | None = None,
        extra_query: dict[str, Any] | None = None,
    ) -> None:
        self.settings = settings
        self.base_url = base_url or settings.base_url
        if self.base_url == LOCAL:
            raise PlayError("no endpoint given: start the embedded server and pass its URL as base_url")
        self.sink_factory = sink_factory or default_sink_factory
        self.http_client = http_client
        self.snapshot_interval = 1.0 / snapshot_hz
        self.extra_headers = extra_headers
        self.extra_query = extra_query
        self.observers: list[Observer] = []
        self.notices: list[str] = []
        self.sink: Sink | None = None
        self.buffer: JitterBuffer | None = None
        self.source: SpeechSource | None = None
        self.last_metrics: PlayMetrics | None = None
        self._live_target_ms: float | None = None
        self.adaptive: AdaptiveTarget | None = None  # learned across this player's plays
        self.needed_history: list[float] = []  # each finished play's smallest clean initial buffer
        self._stopping = False
        self._final_state: PlayState | None = None
        self._t0 = 0.0
        self._received_samples = 0
        self._backpressure_s = 0.0  # time the download waited on a full buffer
        self._decoder: StreamDecoder | None = None
        self._first_audio_at: float | None = None  # when the first samples came out of the decoder
        self._reconnects = 0  # requests made again after the server had answered
        self._retries = 0  # requests made again for any reason (a server never reached included)
        self._resume: str | None = None  # after a reconnection: "exact" or "approximate"
        self._skip_left = 0  # samples a resumed response repeats, still to drop
        self._recent = np.zeros(self.RESUME_CHECK, dtype=np.float32)
        self._resume_check = np.zeros(0, dtype=np.float32)
        self._resume_seen = np.zeros(0, dtype=np.float32)
        self._format = settings.audio_format
        self._playing = False
        self._download: asyncio.Task[None] | None = None
        self._http: Any = None  # our own pooled HTTP client, kept across plays (keep-alive, one TLS setup)
        self._http_loop: asyncio.AbstractEventLoop | None = None

    # -- control ----------------------------------------------------------------------------------
    def _pooled_client(self) -> Any:
        loop = asyncio.get_running_loop()
        if self._http is None or self._http_loop is not loop or self._http.is_closed:
            import openai

            from .network import ShapedTransport, get_profile

            profile = get_profile(self.settings.network)
            transport = ShapedTransport(profile, seed=self.settings.network_seed) if profile.shaped else None
            self._http = openai.DefaultAsyncHttpxClient(transport=transport)
            self._http_loop = loop
        return self._http

    async def aclose(self) -> None:
        """Close the pooled HTTP connections. The player can still play afterwards (it reconnects)."""
        http, self._http = self._http, None
        if http is not None and not http.is_closed:
            await http.aclose()

    def add_observer(self, observer: Observer) -> None:
        self.observers.append(observer)

    def stop(self) -> None:
        """Stop the current play at once (with a short fade); `play()` then returns promptly."""
        self._stopping = True
        if self.buffer is not None:
            self.buffer.stop()
        if self._download is not None and not self._download.done():
            self._download.cancel()  # may be waiting on the network: do not wait for it

    def set_initial_buffer_ms(self, ms: float) -> None:
        """Change the buffer target live: applies to the current play (if any) and the next ones."""
        self._live_target_ms = ms
        if self.adaptive is not None and self.settings.adaptive:  # the user's value wins; adaptation goes on
            self.adaptive.initial_ms = ms
            self.adaptive.target_ms = min(ms, self.adaptive.max_ms)
        if self.buffer is not None and self.settings.streaming_enabled:
            self.buffer.set_target_ms(ms)

    @property
    def is_playing(self) -> bool:
        return self._playing

    @property
    def request_started(self) -> float:
        """perf_counter() when the current (or last) request started: time zero of every metric."""
        return self._t0

    # -- the play ---------------------------------------------------------------------------------
    async def play(self, text: str, *, fmt: str | None = None) -> PlayMetrics:
        if self._playing:
            raise PlayError("a play is already running")
        if not text or not text.strip():
            raise PlayError("nothing to say: the text is empty")
        s = self.settings
        fmt = fmt or s.audio_format
        if fmt not in PROGRESSIVE_FORMATS:
            raise PlayError(f"the engine cannot decode {fmt!r}; it plays {', '.join(PROGRESSIVE_FORMATS)}")
        self._format = fmt
        self._playing = True
        self._stopping = False
        self._final_state = None
        self._received_samples = 0
        self._backpressure_s = 0.0
        self._decoder = None
        self._first_audio_at = None
        self._reconnects = 0
        self._retries = 0
        self._resume = None
        self._skip_left = 0
        self._recent = np.zeros(self.RESUME_CHECK, dtype=np.float32)
        self.buffer = None
        self.notices.clear()
        initial_ms = self._live_target_ms if self._live_target_ms is not None else float(s.buffer_ms)
        metrics = PlayMetrics(format=fmt, streaming=s.streaming_enabled, initial_buffer_ms=initial_ms,
                              network=s.network)
        self.source = SpeechSource(self.base_url, api_key=s.api_key, chunk_size=s.chunk_size,
                                   stall_timeout=s.stall_timeout_s,
                                   http_client=self.http_client or self._pooled_client())
        self._t0 = time.perf_counter()
        sink, notice = self.sink_factory(s)
        if notice:
            self.notices.append(notice)
        self.sink = sink
        request = SpeechRequest(text=text, model=s.model, voice=s.voice, response_format=fmt, speed=s.speed,
                                extra_headers=self.extra_headers, extra_query=self.extra_query)
        decode_ms: list[float] = []
        snap_task = asyncio.create_task(self._snapshots()) if self.observers else None
        start_ms = initial_ms
        adapt_task: asyncio.Task[None] | None = None
        if s.streaming_enabled:  # arrivals are recorded either way: they give `needed_buffer_ms`
            if self.adaptive is None:
                self.adaptive = AdaptiveTarget(initial_ms, s.max_buffer_s * 1000.0, s.block_size * 1000.0 / s.output_rate)
            learned = self.adaptive.begin(initial_ms, s.max_buffer_s * 1000.0)
            if s.adaptive:
                start_ms = learned
                adapt_task = asyncio.create_task(self._adapt(estimate_speech_s(text, s.speed)))
        sink_task = asyncio.create_task(self._prepare_sink(start_ms))
        download: asyncio.Task[None] | None = None
        try:
            download = asyncio.create_task(self._fetch(request, fmt, sink_task, decode_ms))
            self._download = download
            try:
                await download
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not self._stopping or (current is not None and current.cancelling()):
                    raise  # the play itself was cancelled, not just its download
            if self.buffer is not None and self._received_samples > 0 and self.sink is not None:
                await self.sink.wait_done()
        except asyncio.CancelledError:
            self.stop()
            raise
        except (SourceError, DecodeError, SinkError) as exc:
            metrics.error = _describe(exc, fmt)
            self._final_state = PlayState.FAILED
            # play whatever did arrive, then finish
            if self.buffer is not None and not self.buffer.ended:
                self.buffer.end()
            if self.buffer is not None and self._received_samples > 0 and self.sink is not None:
                await self.sink.wait_done()
        finally:
            if download is not None and not download.done():
                download.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await download
            self._download = None
            if not sink_task.done():
                sink_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sink_task
            if self.sink is not None:
                await asyncio.to_thread(self.sink.close)
            await self.source.aclose()
            if self._final_state is None:
                self._final_state = PlayState.STOPPED if self._stopping else PlayState.DONE
            if adapt_task is not None:
                adapt_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await adapt_task
            if snap_task is not None:
                snap_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await snap_task
            self._collect(metrics, decode_ms)
            self._emit()  # the final snapshot
            self._playing = False
        self.last_metrics = metrics
        if s.metrics_log:
            try:
                metrics.append_jsonl(s.metrics_log, base_url=self.base_url, voice=s.voice, model=s.model)
            except OSError as exc:
                metrics.warnings.append(f"could not append to metrics log {s.metrics_log}: {exc}")
        return metrics

    async def _prepare_sink(self, initial_ms: float) -> None:
        """Open the device (in a thread, while the request is in flight) and start it on a new buffer."""
        s = self.settings
        sink = self.sink
        assert sink is not None
        try:
            await asyncio.to_thread(sink.open)
        except SinkError as exc:
            if s.sink != "auto":
                raise
            self.notices.append(f"{exc}; playing on the virtual sink instead")
            sink = VirtualSink(s.output_rate, s.block_size, sink.recorder)
            self.sink = sink
        target = initial_ms if s.streaming_enabled else s.max_buffer_s * 1000.0
        self.buffer = JitterBuffer(sink.rate, s.max_buffer_s, target, trailing_silence_s=s.trailing_silence_s)
        if self._stopping:
            self.buffer.stop()
        sink.start(self.buffer)

    async def _fetch(self, request: SpeechRequest, fmt: str, sink_task: asyncio.Task[None],
                     decode_ms: list[float]) -> None:
        """Download, decode and buffer; after a dropped connection (or a 429/5xx), ask again and resume.

        A broken stream is asked for again from the byte where it broke (less an overlap of
        `RESUME_OVERLAP` bytes, compared with what arrived before). A server that can do that (ours
        echoes `X-Workbench-Resume-Byte`) sends the rest, and the same decoder carries on: nothing
        repeats, nothing is skipped, and the wait is one round trip. A server that cannot sends the
        whole reply again: it is decoded from its start and its first samples, the ones already
        buffered, are dropped. For a deterministic server (same text, same audio) that too resumes
        sample for sample; the last samples before the drop are compared with the new response's, and
        `resume` says "exact" when they match and "approximate" when the server said something else.
        """
        s = self.settings
        assert self.source is not None
        decoder: StreamDecoder | None = None
        fed = 0  # bytes of this reply handed to the decoder
        tail = bytearray()  # the last RESUME_OVERLAP of them
        overlap = b""  # while resuming from a byte: the bytes the new response must start with
        resume_at = 0  # the byte to ask for on the next attempt (0: from the start)

        async def decode(step: Callable[[], np.ndarray]) -> np.ndarray:
            assert decoder is not None
            t = time.perf_counter()
            # compressed formats decode on a worker thread: never on the event loop
            samples = await asyncio.to_thread(step) if decoder.blocking else step()
            decode_ms.append((time.perf_counter() - t) * 1000.0)
            if len(samples) and self._first_audio_at is None:
                self._first_audio_at = time.perf_counter()
            return samples

        async def feed(chunk: bytes) -> None:
            nonlocal decoder, fed
            if decoder is None:
                await sink_task
                assert self.sink is not None and self.source is not None
                decoder = StreamDecoder(fmt, pcm_rate=s.pcm_rate, out_rate=self.sink.rate,
                                        content_type=self.source.content_type)
                self._decoder = decoder
            fed += len(chunk)
            tail.extend(chunk)
            del tail[:-self.RESUME_OVERLAP]
            samples = await decode(lambda: decoder.feed(chunk))  # type: ignore[union-attr]
            if decoder.take_gap() and self.buffer is not None:
                self.buffer.fade_tail()  # a corrupt frame was skipped: no click where the audio jumps
            await self._push(self._resume_filter(samples))

        def restart() -> None:
            """The new response starts at the beginning: decode it afresh, skip what was buffered."""
            nonlocal decoder, fed
            if decoder is not None:
                decoder.close()
                decoder = None
            fed = 0
            tail.clear()
            self._begin_resume()

        async def receive() -> None:
            """One response into the decoder; a resumed one is checked against what came before."""
            nonlocal overlap
            first = True
            async with contextlib.aclosing(self.source.stream(request, resume_from=resume_at)) as body:  # type: ignore[union-attr]
                async for chunk in body:
                    if self._stopping:
                        return
                    if first:
                        first = False
                        if resume_at and self.source.resumed_from == resume_at:  # type: ignore[union-attr]
                            overlap = bytes(tail[len(tail) - (fed - resume_at):])
                            self._notice(f"the server resumed at byte {resume_at}")
                        elif resume_at:
                            restart()  # the server sent the whole reply again
                    if overlap:  # the resumed body's first bytes must be the ones we had
                        n = min(len(overlap), len(chunk))
                        if chunk[:n] != overlap[:n]:
                            self._resume = "approximate"
                            raise SourceError("the resumed stream did not continue the first one")
                        overlap, chunk = overlap[n:], chunk[n:]
                        if not overlap and self._resume is None:
                            self._resume = "exact"
                        if not chunk:
                            continue
                    await feed(chunk)

        failure: SourceError | None = None
        attempt = 0
        stalls = 0
        try:
            while True:
                try:
                    if s.streaming_enabled:
                        await receive()
                    else:  # voicemode's buffered behaviour: the whole reply first, then play
                        body = bytearray()
                        async for chunk in self.source.stream(request):
                            if self._stopping:
                                return
                            body += chunk
                        if body:
                            await feed(bytes(body))
                    break
                except SourceError as exc:
                    stalls += exc.stalled
                    if self._stopping or not exc.retryable or attempt >= s.max_retries or stalls > 1:
                        failure = exc
                        if attempt:
                            failure = SourceError(f"{exc} (gave up after {attempt} "
                                                  f"retr{'y' if attempt == 1 else 'ies'})", status=exc.status)
                        break
                    attempt += 1
                    self._retries = attempt
                    if exc.connected or exc.mid_stream or self.source.headers_at is not None:
                        self._reconnects += 1
                    if exc.retry_after is not None:
                        delay = min(exc.retry_after, 60.0)  # the server said when
                    elif exc.mid_stream and attempt == 1:
                        delay = 0.0  # a broken connection: ask again at once, the buffer is draining
                    else:
                        delay = min(0.25 * 2 ** (attempt - 1), 4.0)
                    heard = self._received_samples / (self.sink.rate if self.sink else s.output_rate)
                    where = f", resuming at {heard:.2f} s of audio" if fed or self._received_samples else ""
                    self._notice(f"{exc}; asking again in {delay:g} s (attempt {attempt + 1}){where}")
                    # ask for the rest from where it broke, unless a resumed response went wrong
                    resume_at = max(fed - self.RESUME_OVERLAP, 0) if s.streaming_enabled \
                        and self._resume != "approximate" else 0
                    overlap = b""
                    if not resume_at:
                        restart()
                    await asyncio.sleep(delay)
                    if self._stopping:
                        return
            if decoder is not None and not self._stopping:
                try:
                    await self._push(self._resume_filter(await decode(decoder.flush)))
                finally:
                    self._warn_all(decoder.warnings)
            if failure is not None:
                raise failure
        finally:
            if decoder is not None:
                decoder.close()
            if not sink_task.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sink_task
            if self.buffer is not None and not self.buffer.ended:
                self.buffer.end()

    # -- resuming after a reconnection --------------------------------------------------------------
    RESUME_CHECK = 2048  # samples compared across a reconnection that starts the reply again
    RESUME_OVERLAP = 1024  # bytes asked for again, and compared, when resuming from a byte

    def _begin_resume(self) -> None:
        self._skip_left = self._received_samples
        self._resume_check = self._recent.copy()[-min(self.RESUME_CHECK, self._received_samples):] \
            if self._received_samples else np.zeros(0, dtype=np.float32)
        self._resume_seen = np.zeros(0, dtype=np.float32)

    def _resume_filter(self, samples: np.ndarray) -> np.ndarray:
        """Drop the samples a resumed response repeats, and check they are what was played."""
        if self._skip_left <= 0 or not len(samples):
            return samples
        take = min(self._skip_left, len(samples))
        check_from = self._skip_left - len(self._resume_check)  # offset of the check window in this piece
        lo, hi = max(check_from, 0), take
        if hi > lo:
            self._resume_seen = np.concatenate([self._resume_seen, samples[lo:hi]])
        self._skip_left -= take
        if self._skip_left == 0 and len(self._resume_check):
            same = len(self._resume_seen) == len(self._resume_check) and bool(
                np.allclose(self._resume_seen, self._resume_check, atol=1e-3))
            if self._resume != "approximate":
                self._resume = "exact" if same else "approximate"
        return samples[take:]

    async def _push(self, samples: np.ndarray) -> None:
        """Write into the buffer, waiting while it is full (backpressure bounds memory).

        While full, it sleeps until about a quarter of the buffer has played out rather than polling:
        on small virtual machines every wake-up costs real CPU.
        """
        buffer = self.buffer
        sink = self.sink
        assert buffer is not None and sink is not None
        if not len(samples):
            return
        if self.adaptive is not None and self.settings.streaming_enabled:
            self.adaptive.arrival(time.perf_counter(), self._received_samples / buffer.rate, len(samples) / buffer.rate)
        self._received_samples += len(samples)
        keep = min(len(samples), self.RESUME_CHECK)  # the latest samples, to check a resumed response by
        self._recent = np.concatenate([self._recent[keep:], samples[-keep:]]) if keep < self.RESUME_CHECK \
            else samples[-self.RESUME_CHECK:].copy()
        off = 0
        blocked_since: float | None = None
        min_wait = sink.block_size / sink.rate / sink.speed
        while off < len(samples):
            off += buffer.write(samples[off:])
            if off < len(samples):
                if self._stopping or buffer.done:
                    break
                if blocked_since is None:
                    blocked_since = time.perf_counter()
                want = min(len(samples) - off, max(buffer.capacity // 4, 1))
                deficit = max(want - buffer.free(), 0)
                await asyncio.sleep(max(min_wait, deficit / buffer.rate / sink.speed))
        if blocked_since is not None:
            self._backpressure_s += time.perf_counter() - blocked_since

    async def _adapt(self, expected_s: float) -> None:
        """Ten times a second: feed the clock and underruns to the adaptive target, apply it, and when
        the server is slower than real time, buffer what the rest of the reply needs."""
        adaptive = self.adaptive
        assert adaptive is not None
        seen_underruns = 0
        warned = False
        while True:
            await asyncio.sleep(0.1)
            buffer = self.buffer
            if buffer is None:
                continue
            now = time.perf_counter()
            if buffer.ended:
                adaptive.end()
            if buffer.underruns > seen_underruns:
                seen_underruns = buffer.underruns
                adaptive.underrun(now)
            adaptive.tick(now)
            target = adaptive.target_ms
            arrivals = adaptive.arrivals
            if arrivals and arrivals[-1].t >= 1.0 and not buffer.ended:
                received_s = arrivals[-1].start_s + arrivals[-1].length_s
                # time spent waiting on a full buffer is ours, not the server's
                pace = received_s / max(now - (self._first_audio_at or now) - self._backpressure_s, 1e-3)
                extra = slow_server_ms(max(expected_s - received_s, 0.0), pace)
                if extra > 0:
                    target = max(target, min(extra, adaptive.max_ms))
                    if not warned and pace < 0.95:
                        warned = True
                        self.notices.append(f"the server sends audio at {pace:.2f}x real time: buffering up to "
                                            f"{min(extra, adaptive.max_ms):.0f} ms to play the rest through")
            if abs(target - buffer.target_ms) >= 1.0:
                buffer.set_target_ms(target)

    def _notice(self, text: str) -> None:
        """A notice for the user; outside text (a server's message, FFmpeg's) arrives cleaned and cut."""
        text = clean_text(text, 500)
        if text not in self.notices:
            self.notices.append(text)

    def _warn_all(self, warnings: list[str]) -> None:
        for w in warnings:
            self._notice(w)

    # -- observing --------------------------------------------------------------------------------
    def state(self) -> PlayState:
        if self._final_state is not None:
            return self._final_state
        buffer = self.buffer
        if buffer is None or self.source is None or self.source.first_byte_at is None:
            return PlayState.CONNECTING
        bs = buffer.state
        if bs is BufferState.BUFFERING:
            return PlayState.BUFFERING
        if bs is BufferState.UNDERRUN:
            return PlayState.UNDERRUN
        if bs is BufferState.PLAYING:
            return PlayState.DRAINING if buffer.ended else PlayState.PLAYING
        if bs is BufferState.TRAILING:
            return PlayState.DRAINING
        return PlayState.DRAINING if self.sink is not None and self.sink.done_at is None else PlayState.DONE

    def snapshot(self) -> Snapshot:
        buffer, sink, source = self.buffer, self.sink, self.source
        rate = buffer.rate if buffer else self.settings.output_rate
        first = sink.first_heard if sink else None
        return Snapshot(
            t_ms=(time.perf_counter() - self._t0) * 1000.0,
            state=self.state(),
            buffer_ms=buffer.level_ms if buffer else 0.0,
            target_ms=buffer.target_ms if buffer else float(self.settings.buffer_ms),
            initial_buffer_ms=self._live_target_ms if self._live_target_ms is not None
            else float(self.settings.buffer_ms),
            max_buffer_ms=self.settings.max_buffer_s * 1000.0,
            received_ms=self._received_samples * 1000.0 / rate,
            played_ms=buffer.samples_to_ms(buffer.played_samples) if buffer else 0.0,
            bytes=source.bytes_received if source else 0,
            underruns=buffer.underruns if buffer else 0,
            underrun_ms=buffer.underrun_ms if buffer else 0.0,
            device_underflows=sink.device_underflows if sink else 0,
            ttfa_ms=(first - self._t0) * 1000.0 if first is not None else None,
            format=self._format,
        )

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

    # -- metrics ----------------------------------------------------------------------------------
    def _collect(self, m: PlayMetrics, decode_ms: list[float]) -> None:
        t0 = self._t0
        src, buf, sink = self.source, self.buffer, self.sink

        def ms(t: float | None) -> float | None:
            return (t - t0) * 1000.0 if t is not None else None

        m.total_ms = ms(time.perf_counter())
        m.state = (self._final_state or PlayState.DONE).value
        if src is not None:
            m.ttfb_ms = ms(src.headers_at)
            m.first_byte_ms = ms(src.first_byte_at)
            m.bytes = src.bytes_received
            m.chunks = src.chunks_received
            if src.first_byte_at is not None and src.last_byte_at is not None:
                span = src.last_byte_at - src.first_byte_at - self._backpressure_s
                if span > 0.001 and src.chunks_received > 1:
                    m.throughput_kbps = src.bytes_received * 8 / 1000.0 / span
        if sink is not None:
            m.sink = sink.description
            m.ttfa_ms = ms(sink.first_heard)
            m.device_underflows = sink.device_underflows
            m.device_latency_ms = sink.latency_s * 1000.0
        if buf is not None:
            m.buffer_ready_ms = ms(buf.ready_time)
            m.underruns = buf.underruns
            m.underrun_ms = buf.underrun_ms
            m.avg_buffer_ms = buf.avg_level_ms
            m.min_buffer_ms = buf.min_level_ms
            m.max_buffer_ms = buf.max_level_ms
            m.audio_ms = self._received_samples * 1000.0 / buf.rate
            m.played_ms = buf.samples_to_ms(buf.played_samples)
            if src is not None and src.first_byte_at is not None and src.last_byte_at is not None:
                # the endpoint's pace: time spent waiting on a full buffer is ours, not the network's
                span = src.last_byte_at - src.first_byte_at - self._backpressure_s
                if span > 0.001 and m.audio_ms > 0:
                    m.arrival_rtf = (m.audio_ms / 1000.0) / span
        m.decode_ms_p95 = percentile(decode_ms, 95)
        dec = self._decoder
        if dec is not None:
            m.detected_format = dec.detected
            m.frames = dec.frames
            m.frame_kind = dec.frame_kind
            m.decoder_errors = dec.errors
            m.fallback = dec.fallback
            m.first_audio_bytes = dec.first_audio_bytes
            m.priming_ms = dec.trimmed_ms
            m.page_interval_ms = dec.page_interval_ms
        m.first_audio_ms = ms(self._first_audio_at)
        m.reconnects = self._reconnects
        m.retries = self._retries
        m.resume = self._resume
        if buf is not None:
            m.target_ms = buf.target_ms
        if self.adaptive is not None and self.settings.streaming_enabled and self.adaptive.arrivals:
            block_ms = self.settings.block_size * 1000.0 / self.settings.output_rate
            m.needed_buffer_ms = needed_buffer_ms(self.adaptive.arrivals) + block_ms
            if m.state == PlayState.DONE.value:
                self.needed_history.append(m.needed_buffer_ms)
        advice = quality_advice(m)
        if advice:
            m.advice = advice
            self._notice(advice)
        if m.error is not None:
            m.error = clean_text(m.error, 500)
        m.warnings.extend(self.notices)


def recommend_buffer_ms(needed: list[float], step_ms: float = 10.0) -> float | None:
    """The smallest initial buffer that would have avoided every underrun in these plays, rounded up."""
    if not needed:
        return None
    worst = max(needed)
    return float(-(-worst // step_ms) * step_ms)


# what each format costs on the wire from the embedded server, kbit/s (mono 24 kHz)
FORMAT_KBPS = {"pcm": 384.0, "wav": 384.0, "flac": 215.0, "aac": 80.0, "opus": 120.0, "mp3": 32.0}


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


def _describe(exc: Exception, fmt: str) -> str:
    if isinstance(exc, DecodeError):
        return f"cannot decode the {fmt} stream: {exc}"
    return str(exc)
