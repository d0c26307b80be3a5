"""Sentence pipelining: a reply asked for as fragments (`split.py`), played back to back as one.

Fragment k+1 is asked for once fragment k's response has started (for a server that does not stream,
once k is synthesized) and fragment k-1 is downloaded: at most two requests in flight, and at most two
fragments' audio held ahead of the one playing. Each fragment is its own `Fetch`, so retries and resuming
work per fragment. Audio that comes before its turn waits in memory and is handed on in order.

The joins (`Joiner`): fragments are synthesized apart, so a join may lack the pause the whole reply
would have had there (espeak-ng ends an utterance on its last sound, with no pause after it), or carry
two (one fragment's trailing silence and the next one's leading silence). A join keeps the fragments'
own silence and tops it up to a natural pause for the break it is (a sentence's or a clause's); the
top-up is taken back from the next fragment's leading silence, so a TTS that pads both ends does not
get a double pause. The last 2 ms before a join fade out and the first 2 ms after it fade in: no click,
whatever the samples there are.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import numpy as np

from .decoding.layout import per_frame, zeros
from .fetching.source import SourceError
from .figures.onset import SOUND_THRESHOLD, LeadingSilenceTrim, first_sound
from .playrun import PlayRun
from .text.split import Fragment

Push = Callable[[np.ndarray], Awaitable[None]]
# the pause read speech (and espeak-ng, measured: 305 ms and 150 ms) makes after a sentence and a clause
SENTENCE_PAUSE_S = 0.30
CLAUSE_PAUSE_S = 0.15
PAUSE_S = {"sentence": SENTENCE_PAUSE_S, "clause": CLAUSE_PAUSE_S, "phrase": 0.0}  # before a conjunction: none
FADE_S = 0.002
PRE_ROLL_S = 0.010  # of a fragment's leading silence, the last this much before its sound always stays


class Runner(Protocol):
    async def run_all(self) -> None: ...


class Joiner:
    """Makes the joins between fragments, one fragment at a time, in order (see the module docstring)."""

    def __init__(self, rate: int, speed: float = 1.0, channels: int = 1) -> None:
        self.rate = rate
        self.speed = speed
        self._none = np.zeros((0, channels) if channels > 1 else 0, dtype=np.float32)  # no frames, in the layout
        self.fade = max(int(rate * FADE_S), 1)
        self.pauses_ms: list[float] = []  # each join's silence as played (without any wait for the next fragment)
        self._index = -1
        self._last = False
        self._taken = 0  # samples of the current fragment taken so far (0 at its end: it came back empty)
        self._any = False  # some fragment has brought audio
        self._held = self._none  # the fragment's last `fade` samples, until it ends
        self._quiet_tail = 0  # quiet samples at the end of the fragment so far
        self._lead: LeadingSilenceTrim | None = None
        self._lead_quiet: int | None = None  # this fragment's quiet samples before its sound, as kept
        self._join = 0  # samples of silence at the join being made (the tail and the top-up)
        self._fade_in_left = 0

    def begin(self, last: bool) -> None:
        """The next fragment starts (`last`: no join follows it)."""
        self._index += 1
        self._last = last
        self._taken = 0
        self._quiet_tail = 0
        self._lead_quiet = 0 if self._any else None
        self._fade_in_left = self.fade if self._any else 0

    def take(self, samples: np.ndarray) -> np.ndarray:
        """The current fragment's next samples: what can be played now."""
        if not len(samples):
            return samples
        self._taken += len(samples)
        self._any = True
        if self._lead is not None and self._lead.active:
            samples = self._lead.apply(samples)
            if not len(samples):
                return samples
        if self._lead_quiet is not None:
            at = first_sound(samples)
            self._lead_quiet += at if at >= 0 else len(samples)
            if at >= 0:
                self._close_pause()
        samples = self._fade_in(samples)
        level = np.abs(samples) if samples.ndim == 1 else np.abs(samples).max(axis=1)  # a frame's loudest channel
        loud = np.flatnonzero(level >= SOUND_THRESHOLD)
        self._quiet_tail = len(samples) - 1 - int(loud[-1]) if len(loud) else self._quiet_tail + len(samples)
        if self._last:
            return samples
        pending = np.concatenate([self._held, samples])
        self._held = pending[-self.fade :].copy()
        return pending[: -self.fade]

    def end(self, after: str) -> np.ndarray:
        """The current fragment ended; `after` is the break that follows it. Returns its faded tail and
        the top-up of the pause. A fragment that brought no audio at all (skipped) makes no join: the
        one before it keeps its pause, and the trim of the next one's leading silence stays set."""
        if not self._taken:
            return self._none
        if self._lead is not None and self._lead.active:  # a fragment with no sound at all
            self._lead = None
        if self._lead_quiet is not None:
            self._close_pause()
        held, self._held = self._held, self._none
        if self._last or after == "end":
            return held
        faded = held * per_frame(np.linspace(1.0, 0.0, len(held), dtype=np.float32), held)
        pause = int(self.rate * PAUSE_S.get(after, 0.0) / self.speed)
        top_up = max(pause - self._quiet_tail, 0)
        self._join = self._quiet_tail + top_up
        keep = int(self.rate * PRE_ROLL_S)
        # the next fragment's leading silence gives back the top-up, beyond its last 10 ms
        self._lead = LeadingSilenceTrim(top_up, keep) if top_up else None
        return np.concatenate([faded, zeros(top_up, self._none)])

    def _close_pause(self) -> None:
        if self._lead_quiet is None:
            return
        self.pauses_ms.append((self._join + self._lead_quiet) * 1000.0 / self.rate)
        self._lead_quiet = None

    def _fade_in(self, samples: np.ndarray) -> np.ndarray:
        if self._fade_in_left <= 0:
            return samples
        n = min(self._fade_in_left, len(samples))
        done = self.fade - self._fade_in_left
        ramp = (np.arange(done, done + n, dtype=np.float32) + 1.0) / self.fade
        samples = samples.copy()
        samples[:n] *= per_frame(ramp, samples)
        self._fade_in_left -= n
        return samples


class Pipeline:
    """Fetches the fragments (at most two in flight) and hands their audio on in order, joined.

    Audio that comes before its fragment's turn waits in memory, at most `HELD_MAX_S` of it: beyond
    that, the fragment's download waits (as the playing one waits on a full buffer), so a reply of any
    length holds a bounded amount. A fragment that comes back with no audio (asked for twice: `Fetch`)
    is named and skipped; two in a row end the play, as a server that sends nothing would otherwise be
    asked for every sentence of a long text."""

    HELD_MAX_S = 10.0

    def __init__(self, fragments: Sequence[Fragment], start: Callable[[int, Push], Runner], push: Push,
                 joiner: Callable[[], Awaitable[Joiner]], run: PlayRun, *,
                 answered: Callable[[int], asyncio.Event], underrun_ms: Callable[[], float]) -> None:
        self.fragments = list(fragments)
        self._start = start  # makes fragment k's fetch, whose audio goes to the given push
        self._push = push
        self._make_joiner = joiner  # waits for the output rate (the sink being open)
        self.joiner: Joiner | None = None
        self.run = run
        self._answered = answered  # set once fragment k's response has started (or its fetch gave up)
        self._underrun_ms = underrun_ms
        self._pending: list[list[np.ndarray]] = [[] for _ in self.fragments]
        self._held = 0  # samples waiting in `_pending`
        self._held_max: int | None = None  # HELD_MAX_S at the output rate, once it is known
        self._room = asyncio.Event()  # set when held audio went on, or a fragment's turn came
        self._current = -1  # the fragment whose audio goes straight through (-1: none, it is held)
        self._tasks: list[asyncio.Task[None]] = []  # fragment k's fetch is the k-th
        self._launched = [asyncio.Event() for _ in self.fragments]
        self.skipped: list[int] = []  # fragments that came back empty

    async def run_all(self) -> None:
        n = len(self.fragments)
        launcher: asyncio.Task[None] | None = None
        try:
            self._launch(0)  # first: nothing may delay the first request
            launcher = asyncio.create_task(self._launch_rest())
            self.joiner = await self._make_joiner()
            self._held_max = int(self.joiner.rate * self.HELD_MAX_S)
            self.joiner.begin(last=n == 1)
            await self._go_live(0)
            for k in range(n):
                await self._launched[k].wait()
                try:
                    await self._tasks[k]  # a fragment that failed for good fails the play (what came before plays)
                except SourceError as exc:
                    if not exc.empty:
                        raise
                    self._skip(k, exc)
                if self.run.stopping:
                    return
                await self._join(k)
        finally:
            for task in [*self._tasks, *([launcher] if launcher else [])]:
                task.cancel()
            for task in [*self._tasks, *([launcher] if launcher else [])]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    def _skip(self, k: int, exc: SourceError) -> None:
        """Fragment k came back empty even when asked again: name it and go on, unless the one before did too."""
        self.skipped.append(k)
        text = self.fragments[k].text
        quoted = text if len(text) <= 80 else text[:79] + "…"
        self.run.skipped_fragments.append(quoted)
        if k > 0 and k - 1 in self.skipped:
            raise SourceError(f"fragments {k} and {k + 1} of {len(self.fragments)} came back with no audio, each "
                              f"asked for twice: the server is sending no audio; stopped ({exc})", permanent=True,
                              empty=True)
        self.run.notice(f"fragment {k + 1} of {len(self.fragments)} came back with no audio, even when asked for "
                        f"again, and was skipped: “{quoted}”")

    async def _launch_rest(self) -> None:
        """Ask for fragment k once k-1 has answered and k-2 is downloaded: at most two in flight, and
        never held up by the audio being handed on (that waits for room in the buffer)."""
        for k in range(1, len(self.fragments)):
            before = self._tasks[k - 1]
            answered = asyncio.create_task(self._answered(k - 1).wait())
            try:
                await asyncio.wait([before, answered], return_when=asyncio.FIRST_COMPLETED)
            finally:
                answered.cancel()
            if before.done() and _failed_for_good(before):
                return  # it failed for good: the play ends there
            if k >= 2:
                await asyncio.wait([self._tasks[k - 2]])
                if _failed_empty(self._tasks[k - 2]) and before.done() and _failed_empty(before):
                    return  # two in a row came back empty: the play ends there
            if self.run.stopping:
                return
            self._launch(k)

    def _launch(self, k: int) -> None:
        async def push(samples: np.ndarray, k: int = k) -> None:
            if self._current == k:  # its turn, and the joiner is ready
                await self._hand(samples)
                return
            if len(samples):
                self._pending[k].append(samples)
                self._held += len(samples)
            while self._held_max is not None and self._held > self._held_max and self._current != k \
                    and not self.run.stopping:
                self._room.clear()
                await self._room.wait()

        self._tasks.append(asyncio.create_task(self._start(k, push).run_all()))
        self._launched[k].set()

    async def _hand(self, samples: np.ndarray) -> None:
        assert self.joiner is not None
        out = self.joiner.take(samples)
        if len(out):
            await self._push(out)

    async def _join(self, k: int) -> None:
        """Fragment k is wholly handed on: make the join, then hand on what k+1 has brought so far."""
        assert self.joiner is not None
        self._current = -1  # nobody's audio goes straight through while the join is made
        tail = self.joiner.end(self.fragments[k].after)
        self.run.joins_underrun_ms.append(self._underrun_ms())
        if len(tail):
            await self._push(tail)
        if k + 1 >= len(self.fragments):
            self.run.join_pauses_ms = list(self.joiner.pauses_ms)
            return
        self.joiner.begin(last=k + 2 == len(self.fragments))
        await self._go_live(k + 1)

    async def _go_live(self, k: int) -> None:
        """Hand on what fragment k brought before its turn, then let the rest go straight through."""
        pending = self._pending[k]
        while pending:
            piece = pending.pop(0)
            self._held -= len(piece)
            self._room.set()
            await self._hand(piece)
        self._current = k  # no await since `pending` was found empty: nothing can slip in between
        self._room.set()


def _failed_for_good(task: asyncio.Task[None]) -> bool:
    """The fetch failed in a way that ends the play (not a fragment that only came back empty)."""
    if task.cancelled():
        return True
    exc = task.exception()
    return exc is not None and not (isinstance(exc, SourceError) and exc.empty)


def _failed_empty(task: asyncio.Task[None]) -> bool:
    return task.done() and not task.cancelled() and isinstance(task.exception(), SourceError) and \
        bool(task.exception().empty)  # type: ignore[union-attr]
