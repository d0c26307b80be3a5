"""`StreamPlayer`: source -> decoder -> jitter buffer -> sink, with metrics and live snapshots.

The one player that the CLI, the benchmarks and the TUI all drive. It runs on an asyncio event loop;
the audio itself is pulled by the sink's own thread, so nothing the loop does (decoding, drawing,
network waits) can stall the device, and the loop never waits on the audio thread.

The device is opened while the request is in flight, so it is already running (playing silence)
when the first audio arrives. Fetching, retrying and resuming are `fetch.Fetch`'s; the figures are
collected by `report.collect`. Each play is one `Play`, made whole when it starts (its requests, sink,
playout and state); the player keeps only what outlives a play.

    async with StreamPlayer(settings, base_url=url) as player:
        metrics = await player.play("Hello.")
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from typing import Any

import numpy as np

from .decoding.decoders import PROGRESSIVE_FORMATS, DecodeError
from .decoding.layout import Layout
from .fetching.cache import CacheReplay, ReplyCache, ReplyKey
from .fetching.endpoints import EndpointMemory, learn_streaming
from .fetching.fetch import Fetch, FetchOptions
from .fetching.source import SourceError, SpeechRequest, SpeechSource
from .figures.metrics import PlayMetrics, PlayState, Snapshot
from .output.sinkfactory import SinkFactory, SinkSpec
from .output.sinks import Sink, SinkError, VirtualSink
from .output.start import build_chain
from .pipeline import Joiner, Pipeline, Push, Runner
from .play import Play
from .playerbase import PlayerBase, PlayError
from .playout.adaptive import AdaptiveTarget, Steering, estimate_speech_s
from .playout.buffer import BufferState, JitterBuffer
from .playout.elastic import ElasticPlayout, Feed
from .playrun import PlayRun
from .report import collect, heard_times
from .settings import Settings
from .text.safetext import speakable_text
from .text.split import Fragment, Split, split_text

log = logging.getLogger(__name__)
# The device is opened once the request has left (opening it takes the interpreter for a few ms, which
# delayed the request by as much), or after this long when it has not (a slow connect, a TLS handshake)
SINK_AFTER_REQUEST_S = 0.030


def _load_portaudio() -> None:
    from .output.sinks import import_sounddevice

    with contextlib.suppress(SinkError):  # opening the sink says so, where it can be handled
        import_sounddevice()


class StreamPlayer(PlayerBase):
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
        endpoints: EndpointMemory | None = None,
        cache: ReplyCache | None = None,
    ) -> None:
        super().__init__(settings, base_url=base_url, sink_factory=sink_factory, http_client=http_client,
                         snapshot_hz=snapshot_hz, extra_headers=extra_headers, extra_query=extra_query)
        self.cache = cache  # replies heard before play from here, when the settings allow (WORKBENCH_CACHE)
        self.endpoints = endpoints or EndpointMemory()  # which endpoints do not stream (`WORKBENCH_SPLIT=auto`)
        self.adaptive: AdaptiveTarget | None = None  # learned across this player's plays
        self.pump_slack_ms = 0.0  # elastic playout: how far ahead a busy interpreter made the pump keep the ring
        self.needed_history: list[float] = []  # each finished play's smallest clean initial buffer
        self._live_target_ms: float | None = None
        self._paused = False  # pause(): held until resume(), also across the start of a play
        self._play = Play(PlayRun(settings.audio_format, notices=self.notices))  # the current (or last) play

    # -- the current (or last) play's parts -------------------------------------------------------
    @property
    def sink(self) -> Sink | None:
        return self._play.sink

    @property
    def buffer(self) -> JitterBuffer | None:  # the ring the device reads
        return self._play.buffer

    @property
    def elastic(self) -> ElasticPlayout | None:  # elastic playout's stage in front of the ring
        return self._play.elastic

    @property
    def feed(self) -> Feed | None:  # where decoded audio goes: the elastic stage, or the ring itself
        return self._play.feed

    @property
    def source(self) -> SpeechSource | None:  # the (first) request's
        return self._play.source

    @property
    def sources(self) -> list[SpeechSource]:  # every request's: one per fragment when the text is split
        return self._play.sources

    @property
    def _run(self) -> PlayRun:
        return self._play.run

    async def __aenter__(self) -> StreamPlayer:
        await self.warm_up()
        return self

    async def warm_up(self) -> None:
        """Do now what the first play would otherwise do on the clock, between its time zero and its
        request leaving: build the pooled HTTP client (its TLS context) and import what httpx loads on its
        first request. PortAudio is loaded on a thread of its own when the sink may be the device, and not
        waited for: it takes 50-60 ms, mostly in C with the GIL released, and the device is opened only
        once the request has left (the sink's own open waits for this import if it is still running).

        Measured on a one-shot CLI play (device sink, loopback): from time zero to the request written,
        44 to 120 ms without it, 7 to 9 ms with it. Sends nothing to the endpoint."""
        import importlib

        if self.http_client is None:
            self._pooled_client()
        for name in ("httpcore2", "anyio._backends._asyncio"):
            with contextlib.suppress(ImportError):
                importlib.import_module(name)
        if self.settings.sink in ("auto", "device"):
            threading.Thread(target=_load_portaudio, name="load-portaudio", daemon=True).start()

    async def __aexit__(self, *exc: object) -> None:
        if self._playing:
            self.stop()
        await self.aclose()

    # -- control ----------------------------------------------------------------------------------
    def stop(self) -> None:
        """Stop the current play at once (with a short fade); `play()` then returns promptly."""
        self._run.stopping = True
        if self.buffer is not None:
            self.buffer.stop()
            if self.sink is not None and not self.sink.running:  # stopped before it could start: end it
                self.sink.run()
        if self.elastic is not None:
            self.elastic.stop(wait=False)  # joined in the play's own clean-up, off the event loop
        download = self._play.download
        if download is not None and not download.done():
            download.cancel()  # may be waiting on the network: do not wait for it

    def pause(self) -> None:
        """Hold the current play where it is (a 5 ms fade, then silence); the download goes on into the
        buffer. `resume()` continues from the sample where it stopped. Paused time is not underrun time
        (`paused_ms`)."""
        self._paused = True
        if self.feed is not None:
            self.feed.pause()

    def resume(self) -> None:
        self._paused = False
        if self.feed is not None:
            self.feed.resume()

    @property
    def paused(self) -> bool:
        return self._paused

    def set_initial_buffer_ms(self, ms: float) -> None:
        """Change the buffer target live: applies to the current play (if any) and the next ones."""
        self._live_target_ms = ms
        if self._playing and self._play.steering is not None:  # the user's value wins; adaptation goes on
            self._play.steering.set_user_ms(ms)
        elif self.adaptive is not None and self.settings.adaptive:  # between plays: the next one starts there
            self.adaptive.initial_ms = ms
            self.adaptive.target_ms = min(ms, self.adaptive.max_ms)

    @property
    def request_started(self) -> float:
        """perf_counter() when the current (or last) request started: time zero of every metric."""
        return self._run.t0

    # -- the play ---------------------------------------------------------------------------------
    async def play(self, text: str, *, fmt: str | None = None) -> PlayMetrics:
        if self._playing:
            raise PlayError("a play is already running")
        text, removed = speakable_text(text or "")
        if not text.strip():
            raise PlayError("nothing to say: the text is empty" + (" (it held only control characters)"
                                                                    if removed else ""))
        t0 = time.perf_counter()  # time zero: everything from here on is latency the listener waits through
        s = self.settings
        chooser = self.endpoints.chooser(self.base_url, s.network) if fmt is None and s.auto_format else None
        choice = chooser.choose() if chooser is not None else None
        fmt = fmt or (choice.format if choice is not None else s.audio_format)
        if fmt not in PROGRESSIVE_FORMATS:
            raise PlayError(f"the engine cannot decode {fmt!r}; it plays {', '.join(PROGRESSIVE_FORMATS)}")
        self._playing = True
        self.notices.clear()
        initial_ms = self._live_target_ms if self._live_target_ms is not None else float(s.buffer_ms)
        metrics = PlayMetrics(format=fmt, streaming=s.streaming_enabled, initial_buffer_ms=initial_ms,
                              network=s.network, pan=s.pan)
        fragments, split = self._fragments(text)
        metrics.split, metrics.fragments = split, len(fragments)
        run = PlayRun(fmt, t0=t0, notices=self.notices)
        key = ReplyKey(self.base_url, text, s.voice, s.model, s.speed, fmt, s.output_rate, s.trim_leading_ms, split,
                       json.dumps(self.extra_query or {}, sort_keys=True, default=str), s.layout.describe()) \
            if self.cache is not None and s.cache else None
        cached, cache_note = self.cache.get(key) if self.cache is not None and key is not None else (None, None)
        if cache_note:
            run.notice(cache_note)
        metrics.cache = "off" if key is None else "hit" if cached is not None else "miss"
        sources = [] if cached is not None else [
            SpeechSource(self.base_url, api_key=s.api_key, chunk_size=s.chunk_size, stall_timeout=s.stall_timeout_s,
                         http_client=self.http_client or self._pooled_client()) for _ in fragments]
        sink, notice = self.sink_factory(SinkSpec.of(s))
        play = self._play = Play(run, sources, sink, cache_key=key, from_cache=cached is not None,
                                 kept=[] if key is not None and cached is None else None, choice=choice)
        if choice is not None:
            metrics.auto_format = choice.reason
        if removed:
            run.notice(f"{removed} control or escape-sequence character{'s' if removed > 1 else ''} taken out "
                       "of the text before sending it")
        if notice:
            run.notice(notice)
        tasks: list[asyncio.Task[None]] = [asyncio.create_task(self._snapshots())] if self.observers else []
        start_ms = initial_ms
        if s.streaming_enabled:  # arrivals are recorded either way: they give `needed_buffer_ms`
            if self.adaptive is None:
                self.adaptive = AdaptiveTarget(initial_ms, s.max_buffer_s * 1000.0,
                                               s.block_size * 1000.0 / s.output_rate)
            learned = self.adaptive.begin(initial_ms, s.max_buffer_s * 1000.0)
            steering = play.steering = Steering(lambda: play.feed, lambda: play.buffer, initial_ms,
                                                adaptive=self.adaptive if s.adaptive else None, run=run,
                                                expected_s=estimate_speech_s(text, s.speed))
            if s.adaptive and cached is None:  # a reply from the cache teaches nothing about the link
                start_ms = learned
                tasks.append(asyncio.create_task(steering.run()))
        sink_task = asyncio.create_task(self._prepare_sink(start_ms))

        async def out_rate() -> int:
            await sink_task
            assert self.sink is not None
            return self.sink.rate

        def layout() -> Layout:  # once the sink is open: its channels (a mono device plays mono)
            return Layout.on(self.sink.channels if self.sink is not None else 1, s.pan)

        options = FetchOptions.of(s)

        def fetch(k: int, push: Push) -> Fetch:
            fmt_k, choice_k = play.format_for(k, chooser, fmt)
            request = SpeechRequest(text=fragments[k].text, model=s.model, voice=s.voice, response_format=fmt_k,
                                    speed=s.speed, extra_headers=self.extra_headers, extra_query=self.extra_query,
                                    stream_format=s.stream_format)
            label = f"fragment {k + 1} of {len(fragments)}: " if len(fragments) > 1 else ""
            return Fetch(run, sources[k], request, options, out_rate=out_rate, push=push, gap=self._gap,
                         trim_leading=k == 0, label=label, layout=layout,
                         on_done=play.learner(chooser, choice_k) if len(fragments) > 1 else None)

        async def joined() -> Joiner:
            return Joiner(await out_rate(), s.speed or 1.0, layout().channels)

        runner: Runner
        if cached is not None:
            runner = CacheReplay(cached, run, out_rate=out_rate, push=self._push, channels=lambda: layout().channels)
        elif len(fragments) == 1:
            runner = fetch(0, self._push)
        else:
            runner = Pipeline(fragments, fetch, self._push, joined, run, answered=lambda k: sources[k].answered,
                              underrun_ms=lambda: play.buffer.underrun_ms if play.buffer is not None else 0.0)
        try:
            await self._download_and_play(runner, sink_task, metrics, fmt)
        finally:
            await self._finish(sink_task, tasks, metrics)
        self.last_metrics = metrics
        if s.metrics_log:
            try:
                metrics.append_jsonl(s.metrics_log, base_url=self.base_url, voice=s.voice, model=s.model)
            except OSError as exc:
                metrics.warnings.append(f"could not append to metrics log {s.metrics_log}: {exc}")
        return metrics

    def _fragments(self, text: str) -> tuple[list[Fragment], str]:
        """The text as requests: whole, or fragments (`WORKBENCH_SPLIT`), and how it was split."""
        mode = self.settings.split
        if mode is Split.SENTENCE or (mode is Split.AUTO and self.endpoints.buffered(self.base_url)):
            fragments = split_text(text)
            if len(fragments) > 1:
                return fragments, mode
        return [Fragment(text, "end")], "off"

    async def _download_and_play(self, fetch: Runner, sink_task: asyncio.Task[None], metrics: PlayMetrics,
                                 fmt: str) -> None:
        run = self._run
        download = self._play.download = asyncio.create_task(self._fetch_all(fetch, sink_task))
        try:
            try:
                await download
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if not run.stopping or (current is not None and current.cancelling()):
                    raise  # the play itself was cancelled, not just its download
            await self._wait_played()
            if run.skipped_fragments and not run.stopping:  # the rest played; the reply is still not whole
                n = len(run.skipped_fragments)
                metrics.error = (f"{n} fragment{'s' if n > 1 else ''} of the reply came back with no audio and "
                                 f"{'were' if n > 1 else 'was'} skipped: " +
                                 "; ".join(f"“{t}”" for t in run.skipped_fragments[:3]) + (" …" if n > 3 else ""))
                run.final_state = PlayState.FAILED
        except asyncio.CancelledError:
            self.stop()
            raise
        except (SourceError, DecodeError, SinkError) as exc:
            metrics.error = f"cannot decode the {fmt} stream: {exc}" if isinstance(exc, DecodeError) else str(exc)
            run.final_state = PlayState.FAILED
            # play whatever did arrive, then finish
            if self.feed is not None and not self.feed.ended:
                self.feed.end()
            await self._wait_played()
        finally:
            if not download.done():
                download.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await download

    async def _fetch_all(self, fetch: Runner, sink_task: asyncio.Task[None]) -> None:
        try:
            await fetch.run_all()
        finally:
            if not sink_task.done():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await sink_task
            if self.feed is not None and not self.feed.ended:
                self.feed.end()

    async def _wait_played(self) -> None:
        if self.buffer is not None and self._run.received_samples > 0 and self.sink is not None:
            if not self.sink.running:  # what came never reached the start: play it now, as ended
                self.sink.run()
            await self.sink.wait_done()

    async def _finish(self, sink_task: asyncio.Task[None], tasks: list[asyncio.Task[None]],
                      metrics: PlayMetrics) -> None:
        run = self._run
        if not sink_task.done():
            sink_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await sink_task
        if self.elastic is not None:
            await asyncio.to_thread(self.elastic.stop)
            self.pump_slack_ms = self.elastic.peak_slack_ms
        if self.sink is not None:
            await asyncio.to_thread(self.sink.close)
        for source in self.sources:
            await source.aclose()
        if run.final_state is None:
            run.final_state = PlayState.STOPPED if run.stopping else PlayState.DONE
        for task in tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        needed = collect(metrics, run, self.settings.latency_correction_ms, self.sources, self.buffer, self.sink,
                         self.adaptive if self.settings.streaming_enabled else None, self.elastic)
        self._learn_endpoint(metrics)
        network = self.settings.network
        if self._play.choice is not None and self._play.teach(self.endpoints.chooser(self.base_url, network), metrics):
            metrics.warnings.extend(filter(None, [self.endpoints.keep_chooser(self.base_url, network)]))
        if self.cache is not None:
            await self._play.keep_in(self.cache, metrics)
        if needed is not None:
            self.needed_history.append(needed)
        self._emit()  # the final snapshot
        self._playing = False

    def _learn_endpoint(self, metrics: PlayMetrics) -> None:
        """`WORKBENCH_SPLIT=auto`: note whether this endpoint streams, from how the (first) reply came."""
        if self.settings.split is Split.AUTO and self.source is not None and metrics.error is None:
            note = learn_streaming(self.endpoints, self.base_url, self.source, metrics)
            if note:
                self.notices.append(note)

    async def _prepare_sink(self, target_ms: float) -> None:
        """Open the device (in a thread, while the request is in flight) and start it on a new buffer:
        in fixed playout, one that waits for `target_ms` first; in elastic playout, one that starts after
        a block, with the elastic stage growing the buffer to `target_ms` as it plays."""
        s = self.settings
        sink = self.sink
        assert sink is not None
        if self.source is not None and self.http_client is None:  # our pooled client says when it has left
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(SINK_AFTER_REQUEST_S):
                    await self.source.wire.sent.wait()
        try:
            await asyncio.to_thread(sink.open)
        except SinkError as exc:
            if s.sink != "auto":
                raise
            self._run.notice(f"{exc}; playing on the virtual sink instead")
            sink = self._play.sink = VirtualSink(s.output_rate, s.block_size, sink.recorder, channels=sink.channels)
        chain = self._play.chain = build_chain(s, sink, target_ms, trailing_silence_s=s.trailing_silence_s,
                                               pump_slack_ms=self.pump_slack_ms)
        if self._run.stopping:
            chain.buffer.stop()
        if self._paused:  # paused before the device opened
            chain.buffer.pause()
        chain.start()

    async def _push(self, samples: np.ndarray) -> None:
        """Write into the buffer, waiting while it is full (backpressure bounds memory).

        While full, it sleeps until about a quarter of the buffer has played out rather than polling:
        on small virtual machines every wake-up costs real CPU.
        """
        buffer, feed, sink, run = self.buffer, self.feed, self.sink, self._run
        assert buffer is not None and feed is not None and sink is not None
        if not len(samples):
            return
        play = self._play
        play.keep(samples, buffer.rate)
        if self.adaptive is not None and self.settings.streaming_enabled and not play.from_cache:
            self.adaptive.arrival(time.perf_counter(), run.received_samples / buffer.rate, len(samples) / buffer.rate)
        run.received_samples += len(samples)
        off = 0
        blocked_since: float | None = None
        min_wait = sink.block_period_s
        while off < len(samples):
            off += feed.write(samples[off:])
            if off < len(samples):
                if run.stopping or buffer.done:
                    break
                if blocked_since is None:
                    blocked_since = time.perf_counter()
                want = min(len(samples) - off, max(buffer.capacity // 4, 1))
                deficit = max(want - feed.free(), 0)
                await asyncio.sleep(max(min_wait, deficit / buffer.rate / sink.speed))
        if blocked_since is not None:
            run.backpressure_s += time.perf_counter() - blocked_since

    def _gap(self) -> None:
        if self.feed is not None:
            self.feed.fade_tail()

    # -- observing --------------------------------------------------------------------------------
    def state(self) -> PlayState:
        if self._run.final_state is not None:
            return self._run.final_state
        if self._paused and self._playing:
            return PlayState.PAUSED
        buffer = self.buffer
        if buffer is None or (not self._play.from_cache and (self.source is None or self.source.first_byte_at is None)):
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
        buffer, feed, sink = self.buffer, self.feed, self.sink
        rate = buffer.rate if buffer else self.settings.output_rate
        first, sound = heard_times(self.settings.latency_correction_ms, sink) if sink else (None, None)
        return Snapshot(
            t_ms=(time.perf_counter() - self._run.t0) * 1000.0,
            state=self.state(),
            level_ms=feed.level_ms if feed else 0.0,  # elastic: ring, stretcher and reserve
            target_ms=feed.target_ms if feed else float(self.settings.buffer_ms),
            initial_buffer_ms=self._live_target_ms if self._live_target_ms is not None
            else float(self.settings.buffer_ms),
            max_buffer_ms=self.settings.max_buffer_s * 1000.0,
            received_ms=self._run.received_samples * 1000.0 / rate,
            played_ms=buffer.samples_to_ms(buffer.played_samples) if buffer else 0.0,
            bytes=sum(s.bytes_received for s in self.sources),
            underruns=buffer.underruns if buffer else 0,
            underrun_ms=buffer.underrun_ms if buffer else 0.0,
            device_underflows=sink.device_underflows if sink else 0,
            ttfa_ms=(first - self._run.t0) * 1000.0 if first is not None else None,
            format=self._run.format,
            rate=self.elastic.rate if self.elastic is not None else 1.0,
            playout="elastic" if self.elastic is not None else "fixed",
            first_sound_ms=(sound - self._run.t0) * 1000.0 if sound is not None else None,
            ttfb_ms=self._ttfb_ms(), sink=sink.kind if sink else "", paused=self._paused,
        )

    def _ttfb_ms(self) -> float | None:
        first = self.sources[0].headers_at if self.sources else None
        return (first - self._run.t0) * 1000.0 if first is not None else None

