"""One reply from request to decoded samples: download, decode, and after a failure ask again and resume.

A broken stream is asked for again from the byte where it broke, less an overlap compared with what
arrived before: `OVERLAP_S` of audio, from `MIN_OVERLAP` to `OVERLAP` bytes (a fixed kilobyte was a
quarter of a second of MP3, which a server sends again at its pace while the buffer drains). A server
that can do that (ours echoes `X-Workbench-Resume-Byte`) sends the rest, and the same decoder carries
on: nothing repeats, nothing is skipped, and the wait is one round trip.
A server that cannot sends the whole reply again: it is decoded from its start and its
first samples, the ones already buffered, are dropped (`ResumeCheck`). For a deterministic server
(same text, same audio) that too resumes sample for sample; `resume` says "exact" when the last
samples before the drop match the new response's. When they do not (a neural TTS rarely says a reply
the same way twice), the reply stops there with an error: splicing the rest of another rendition onto
what was heard would repeat or skip words, without a word said about it.

What to ask again after: a dropped connection (at once), a 429 (after its Retry-After, at most a
minute) or a 5xx (backing off 0.25, 0.5, 1 s ...), up to `WORKBENCH_MAX_RETRIES`; a server that went
quiet once at most; a reply with no audio in it once at most; never a DNS or TLS failure, a 4xx or a
page that is not audio.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np

from ..decoding.base import fade_in
from ..decoding.decoders import StreamDecoder
from ..decoding.layout import MONO, Layout
from ..decoding.pcmformat import resolve as resolve_pcm
from ..figures.onset import LeadingSilenceTrim
from ..playrun import PlayRun, ResumeCheck
from ..settings import Settings
from .source import SourceError, SpeechRequest, SpeechSource

Push = Callable[[np.ndarray], Awaitable[None]]


@dataclass(frozen=True)
class FetchOptions:
    """What a fetch uses of the settings, and no more."""

    streaming: bool = True  # VOICEMODE_STREAMING_ENABLED: decode as it comes, or the whole reply first
    max_retries: int = 3  # WORKBENCH_MAX_RETRIES
    pcm_rate: int = 24_000  # WORKBENCH_PCM_RATE: raw PCM's rate when the response does not say it ...
    pcm_rate_given: bool = False  # ... and whether the user set it (then it wins over the headers)
    trim_leading_ms: int = 0  # WORKBENCH_TRIM_LEADING_SILENCE

    @classmethod
    def of(cls, settings: Settings) -> FetchOptions:
        return cls(settings.streaming_enabled, settings.max_retries, settings.pcm_rate,
                   "pcm_rate" in settings.origins, settings.trim_leading_ms)


class Fetch:
    OVERLAP = 1024  # bytes asked for again, and compared, when resuming from a byte: at most ...
    MIN_OVERLAP = 128  # ... at least ...
    OVERLAP_S = 0.03  # ... and otherwise this much audio

    def __init__(self, run: PlayRun, source: SpeechSource, request: SpeechRequest, options: FetchOptions, *,
                 out_rate: Callable[[], Awaitable[int]], push: Push, gap: Callable[[], None],
                 trim_leading: bool = True, label: str = "", layout: Callable[[], Layout] = lambda: MONO,
                 on_done: Callable[[Fetch], None] | None = None) -> None:
        self.run = run
        self.source = source
        self.request = request
        self.options = options
        self._out_rate = out_rate  # waits for the sink to be open: its rate is the decoders' output rate ...
        self._layout = layout  # ... and its channels their layout (asked once it is open)
        self._push = push  # into the jitter buffer (waits while it is full)
        self._gap = gap  # a corrupt frame was skipped: fade out what is buffered
        self.decoder: StreamDecoder | None = None
        self.fed = 0  # bytes of this reply handed to the decoder
        self._tail = bytearray()  # the last OVERLAP of them
        self._overlap = b""  # while resuming from a byte: the bytes the new response must start with
        self._resume_at = 0  # the byte to ask for on the next attempt (0: from the start)
        self._lead: LeadingSilenceTrim | None = None  # WORKBENCH_TRIM_LEADING_SILENCE, for the current decoder
        self._trim_leading = trim_leading  # the reply's first fragment only: later ones start at a join
        self.label = label  # "fragment 2 of 5: " when the text is split, for the notices
        self.on_done = on_done  # called once the whole reply has come
        self.resume = ResumeCheck()
        self._byte_mismatch = False  # a response resumed from a byte did not continue the one before
        self._fade_in = False  # the next samples follow a skipped event: fade them in
        run.resumes.append(self.resume)
        self._slot = len(run.decoders)  # this reply's decoder goes here (the latest, after a restart)
        run.decoders.append(None)

    # -- the whole reply ------------------------------------------------------------------------------
    async def run_all(self) -> None:
        """Download and decode the reply, asking again after failures; raises the final `SourceError`
        (`empty` set when the server sent no audio at all, even when asked again)."""
        run, o = self.run, self.options
        failure: SourceError | None = None
        attempt = stalls = empties = 0
        try:
            while True:
                try:
                    if o.streaming:
                        await self._receive()
                    else:
                        await self._receive_whole()
                    if self.decoder is None and not run.stopping:  # a reply with no audio bytes in it
                        raise self._empty()
                    break
                except SourceError as exc:
                    stalls += exc.stalled
                    empties += exc.empty
                    if run.stopping or not exc.retryable or attempt >= o.max_retries or stalls > 1 or empties > 1:
                        failure = exc if not attempt else SourceError(
                            f"{exc} (gave up after {attempt} retr{'y' if attempt == 1 else 'ies'})", status=exc.status,
                            empty=exc.empty)
                        break
                    attempt += 1
                    await self._before_asking_again(exc, attempt)
                    if run.stopping:
                        return
            if self.decoder is not None and not run.stopping:
                try:
                    await self._hand(self._trim(await self._decode(self.decoder.flush), final=True))
                    self.resume.ended()
                    if self.resume.result == "different":
                        raise self._different()
                    if not self.decoder.emitted:
                        raise SourceError(f"{self.label}the reply held no audio: {self.fed} bytes that decoded to "
                                          "nothing", permanent=True, connected=True)
                finally:
                    for warning in self.decoder.warnings:
                        run.notice(self.label + warning)
            if failure is not None:
                raise failure
            if self.on_done is not None and self.decoder is not None and not run.stopping:
                self.on_done(self)
        finally:
            if self.decoder is not None:
                self.decoder.release()
            self.resume.release()
            self._tail = bytearray()

    @property
    def arrival_rtf(self) -> float | None:
        """How fast this reply's audio arrived, in seconds of audio per second, at the link's live edge (the
        same reads as `SpeechSource.link_kbps`); None with too little to tell."""
        if self.decoder is None:
            return None
        return self.source.arrival_rtf(self.resume.received / self.decoder.out_rate)

    def _empty(self) -> SourceError:
        """The response ended with no audio bytes: a 200 with an empty body, or events with no audio."""
        source = self.source
        sse = source.sse
        if sse is not None and not sse.raw:
            what = (f"an event stream with no audio in it ({sse.events} event{'s' if sse.events != 1 else ''}, "
                    f"{sse.deltas} audio delta{'s' if sse.deltas != 1 else ''}"
                    + (f", {sse.skipped} skipped" if sse.skipped else "") + ")")
        elif source.bytes_received:
            what = f"a reply of {source.bytes_received} bytes with no audio in it"
        else:
            what = "an empty reply (no audio bytes)"
        return SourceError(f"{self.label}{source.base_url} sent {what}", status=source.status, connected=True,
                           empty=True)

    def _different(self) -> SourceError:
        """A resumed reply that is not the one that broke: stopping beats splicing in other audio."""
        heard = self.resume.received / self.decoder.out_rate if self.decoder is not None else 0.0
        return SourceError(f"{self.label}the server sent a different reply when asked again (it cannot resume a "
                           f"reply and does not say the same thing twice): stopped at {heard:.2f} s rather than "
                           "splice other audio in", permanent=True, connected=True)

    def _overlap_bytes(self) -> int:
        """Bytes to ask for again before the break: `OVERLAP_S` of audio at the stream's bit rate so far."""
        decoder = self.decoder
        if decoder is None or not decoder.emitted or not self.fed:
            return self.OVERLAP
        per_s = self.fed / (decoder.emitted / decoder.out_rate)
        return int(min(self.OVERLAP, max(self.MIN_OVERLAP, per_s * self.OVERLAP_S)))

    async def _before_asking_again(self, exc: SourceError, attempt: int) -> None:
        run = self.run
        run.retries = attempt
        if exc.connected or exc.mid_stream or self.source.headers_at is not None:
            run.reconnects += 1
        if exc.retry_after is not None:
            delay = min(exc.retry_after, 60.0)  # the server said when
        elif exc.mid_stream and attempt == 1:
            delay = 0.0  # a broken connection: ask again at once, the buffer is draining
        else:
            delay = min(0.25 * 2 ** (attempt - 1), 4.0)
        got = self.resume.received
        heard = got / await self._out_rate() if got else 0.0
        where = f", resuming at {heard:.2f} s of audio" if self.fed or got else ""
        run.notice(f"{self.label}{exc}; asking again in {delay:g} s (attempt {attempt + 1}){where}")
        # ask for the rest from where it broke, unless a resumed response went wrong
        ok = self.options.streaming and not self._byte_mismatch
        self._resume_at = max(self.fed - self._overlap_bytes(), 0) if ok else 0
        self._overlap = b""
        if not self._resume_at:
            self._restart()
        await asyncio.sleep(delay)

    # -- one response ---------------------------------------------------------------------------------
    async def _receive(self) -> None:
        """One response into the decoder; a resumed one is checked against what came before."""
        run, first = self.run, True
        stream = self.source.stream(self.request, resume_from=self._resume_at)
        async with contextlib.aclosing(stream) as body:
            async for chunk in body:
                if run.stopping:
                    return
                if first:
                    first = False
                    if self._resume_at and self.source.resumed_from == self._resume_at:
                        self._overlap = bytes(self._tail[len(self._tail) - (self.fed - self._resume_at):])
                        run.notice(f"{self.label}the server resumed at byte {self._resume_at}")
                    elif self._resume_at:
                        self._restart()  # the server sent the whole reply again
                if self._overlap:  # the resumed body's first bytes must be the ones we had
                    n = min(len(self._overlap), len(chunk))
                    if chunk[:n] != self._overlap[:n]:
                        self._byte_mismatch = True  # from now on, ask for the whole reply and compare samples
                        raise SourceError("the resumed stream did not continue the first one")
                    self._overlap, chunk = self._overlap[n:], chunk[n:]
                    if not self._overlap and self.resume.result is None:
                        self.resume.result = "exact"
                    if not chunk:
                        continue
                await self._feed(chunk)

    async def _receive_whole(self) -> None:
        """voicemode's buffered behaviour: the whole reply first, then play."""
        body = bytearray()
        async for chunk in self.source.stream(self.request):
            if self.run.stopping:
                return
            body += chunk
        if body:
            await self._feed(bytes(body))

    def _restart(self) -> None:
        """The new response starts at the beginning: decode it afresh, skip what was buffered."""
        if self.decoder is not None:
            self.decoder.close()
            self.decoder = None
        self._lead = None
        self.fed = 0
        self._tail.clear()
        self.resume.begin()

    # -- decoding -------------------------------------------------------------------------------------
    async def _feed(self, chunk: bytes) -> None:
        if self.decoder is None:
            notes: list[str] = []
            pcm = resolve_pcm(self.source.response_headers, self.options.pcm_rate,
                              self.options.pcm_rate_given, notes)
            if self.run.pcm is None:
                self.run.pcm = pcm
            if self.request.response_format == "pcm":
                for note in notes:
                    self.run.notice(note)
            out_rate = await self._out_rate()
            self.decoder = StreamDecoder(self.request.response_format, pcm_rate=pcm.rate, pcm_channels=pcm.channels,
                                         out_rate=out_rate, content_type=self.source.content_type,
                                         layout=self._layout())
            self.run.decoders[self._slot] = self.decoder
            if self.options.trim_leading_ms and self._trim_leading:
                rate = self.decoder.out_rate
                self._lead = LeadingSilenceTrim(rate * self.options.trim_leading_ms // 1000, rate // 100)
        self.fed += len(chunk)
        self._tail.extend(chunk)
        del self._tail[: -self.OVERLAP]
        decoder = self.decoder
        sse = self.source.sse
        if sse is not None and sse.take_gap():  # an event's audio was skipped before this chunk
            self._gap()
            self._fade_in = True
        samples = await self._decode(lambda: decoder.feed(chunk))
        if decoder.take_gap():
            self._gap()  # a corrupt frame was skipped: no click where the audio jumps
        if self._fade_in and len(samples):
            samples, self._fade_in = fade_in(samples, decoder.out_rate), False
        await self._hand(self._trim(samples))

    async def _hand(self, samples: np.ndarray) -> None:
        samples = self.resume.filter(samples)
        if self.resume.result == "different":
            raise self._different()
        if len(samples):
            self.resume.note(samples)
            await self._push(samples)

    def _trim(self, samples: np.ndarray, *, final: bool = False) -> np.ndarray:
        lead = self._lead
        if lead is None or not lead.active:
            return samples
        out = lead.apply(samples, final=final)
        self.run.leading_trimmed = lead.trimmed
        return out

    async def _decode(self, step: Callable[[], np.ndarray]) -> np.ndarray:
        assert self.decoder is not None
        t = time.perf_counter()
        # compressed formats decode on a worker thread: never on the event loop
        samples = await asyncio.to_thread(step) if self.decoder.blocking else step()
        self.run.decode_ms.add((time.perf_counter() - t) * 1000.0)
        if len(samples) and self.run.first_audio_at is None:
            self.run.first_audio_at = time.perf_counter()
        return samples
