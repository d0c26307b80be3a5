"""The workbench without its screen: the settings for the next play, each format's stream values, the
runs, the embedded server, the player, tuning and the recommended buffer.

The app draws what the session holds and passes user actions to it; the screens (compare, presets) hold
the session, not the app. The session imports no Textual: it finishes its own plays and tunes and tells
its observers through one channel, plain events (`events.py`) on the event loop. The app subscribes and
turns each into a Textual message; the compare screen subscribes while it is open; a test can subscribe a
list's `append`. Plays and tunes run as jobs the app starts (Textual workers), or as asyncio tasks when
no one gives the session a way to start them.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..defaults import DEFAULT_TEXT
from ..engine.fetching.cache import ReplyCache
from ..engine.fetching.endpoints import EndpointMemory
from ..engine.figures.metrics import PlayMetrics, PlayState, Snapshot
from ..engine.output.sinkfactory import SinkFactory
from ..engine.output.sinks import SinkError
from ..engine.player import PlayError, StreamPlayer
from ..engine.report import recommend_buffer_ms
from ..engine.settings import LOCAL, SPEC_BY_ATTR, PlayerKind, Settings, SettingsError, format_value, parse_overrides
from ..engine.vmplayer import VoicemodePlayer
from ..usecases.presets import PRESETS_DIR, Preset, preset_from_settings
from . import events
from .state import STREAM_FIELDS, RunRecord, StreamValues, format_profiles

log = logging.getLogger(__name__)


class Job(Protocol):
    """A play or a tune running: an asyncio task, or a Textual worker."""

    def cancel(self) -> object: ...


StartJob = Callable[[Coroutine[Any, Any, None], str], Job]  # (the work, its name) -> the job running it


def asyncio_job(work: Coroutine[Any, Any, None], name: str) -> Job:
    return asyncio.get_running_loop().create_task(work, name=name)


def _label(attr: str, fmt: str) -> str:
    """A setting as the load message names it (a stream value with the format it belongs to)."""
    names = {"buffer_ms": "initial buffer (ms)", "chunk_size": "chunk (bytes)", "max_buffer_s": "max buffer (s)",
             "audio_format": "format", "network": "network", "playout": "playout"}
    name = names.get(attr, SPEC_BY_ATTR[attr].env if attr in SPEC_BY_ATTR else attr)
    return f"{fmt}'s {name}" if attr in STREAM_FIELDS else name


def data_folder() -> Path:
    """Where the workbench saves what the user exports and compares (unless `workbench --out DIR`):
    `$XDG_DATA_HOME/stream-workbench`, else `~/.local/share/stream-workbench`; never the folder it was started
    from (from `./run.sh`, the source tree)."""
    base = os.environ.get("XDG_DATA_HOME")
    return (Path(base) if base else Path.home() / ".local" / "share") / "stream-workbench"


@dataclass
class AppConfig:
    settings: Settings
    text: str = DEFAULT_TEXT
    local_url: str | None = None  # where 'local' points; None: the app starts the embedded server
    start_server: bool = True
    sink_factory: SinkFactory | None = None
    presets_dir: Path = PRESETS_DIR
    voicemode_env: Path | None = None  # the file "Apply to voicemode" merges into (default ~/.voicemode/...)
    save_dir: Path = field(default_factory=data_folder)  # where exports and compare results go
    snapshot_hz: float = 10.0
    notices: list[str] = field(default_factory=list)


class SessionError(Exception):
    """What the user asked for cannot be done now; `str()` says why, in one line."""


class Session:
    TUNE_REPEATS = 3

    def __init__(self, config: AppConfig, observer: events.Observer | None = None,
                 start_job: StartJob = asyncio_job) -> None:
        self.config = config
        self._observers: list[events.Observer] = [observer] if observer is not None else []
        self._start_job = start_job
        self.base: Settings = config.settings
        self.profiles: dict[str, StreamValues] = format_profiles(config.settings)
        self.runs: list[RunRecord] = []
        self.current: RunRecord | None = None  # the run playing now
        self.last_text: str | None = None
        self.player: StreamPlayer | VoicemodePlayer | None = None
        self.player_url: str | None = None
        self.endpoints = EndpointMemory.default()  # which endpoints do not stream (WORKBENCH_SPLIT=auto)
        # the reply cache, off until switched on in the settings: a workbench measures the endpoint, and a
        # text played again would come from disk (a session's choice, never written into a preset)
        self.cache: ReplyCache | None = None
        self.local_url = config.local_url
        self.server: Any = None
        self.server_error: str | None = None
        self._server_ready = asyncio.Event()
        self.tuning = False
        self._jobs: dict[int, Job] = {}
        self._job_ids = itertools.count()
        self._closed = False

    # -- observers ----------------------------------------------------------------------------------------
    def subscribe(self, observer: events.Observer) -> None:
        self._observers.append(observer)

    def unsubscribe(self, observer: events.Observer) -> None:
        if observer in self._observers:
            self._observers.remove(observer)

    def publish(self, event: events.Event) -> None:
        """Tell every observer, on the event loop (an observer may unsubscribe while it is told)."""
        for observer in list(self._observers):
            observer(event)

    # -- settings ---------------------------------------------------------------------------------------
    def current_settings(self) -> Settings:
        """The settings the next play uses: the base values with the current format's stream values."""
        stream = self.profiles[self.base.audio_format]
        return self.base.replace(buffer_ms=stream.buffer_ms, chunk_size=stream.chunk_size,
                                 max_buffer_s=stream.max_buffer_s)

    def edit(self, attr: str, value: Any) -> None:
        """One setting changed in the panel; raises `SettingsError` when it does not fit with the rest, and
        then leaves every setting as it was (the value in use stays in use)."""
        fmt = self.base.audio_format
        before = self.base, dict(self.profiles)
        try:
            if attr in STREAM_FIELDS:
                self.profiles[fmt] = StreamValues(**{**self.profiles[fmt].__dict__, attr: value})
            elif attr == "voice":
                self.base = self.base.replace(voices=(value,))
            elif attr == "model":
                self.base = self.base.replace(models=(value,))
            elif attr == "endpoint":
                self.base = self.base.replace(base_urls=None if value == LOCAL else (value,))
            elif attr == "audio_format":  # auto: WORKBENCH_AUTO_FORMAT, the stream values stay the format's
                self.base = self.base.replace(auto_format=True) if value == "auto" else \
                    self.base.replace(audio_format=value, auto_format=False)
            elif attr == "use_cache":
                self.cache = ReplyCache(max_mb=self.base.cache_mb) if value else None
                return
            elif attr == "layout":  # the Channels list: (WORKBENCH_CHANNELS, WORKBENCH_PAN)
                self.base = self.base.replace(channels=value[0], pan=value[1])
            else:
                self.base = self.base.replace(**{attr: value})
            self.current_settings()
        except SettingsError:
            self.base, self.profiles = before
            raise
        if attr == "buffer_ms" and self.player is not None and self.current is not None \
                and self.current.settings.audio_format == fmt:
            self.player.set_initial_buffer_ms(float(value))  # the live knob

    def apply_preset(self, preset: Preset) -> None:
        """Load a preset's values (the format it names gets its stream values); raises `SettingsError`."""
        values = parse_overrides(preset.values, str(preset.path or preset.name))
        stream_values = {k: values.pop(k) for k in STREAM_FIELDS if k in values}
        fmt = values.get("audio_format", self.base.audio_format)
        merged = {**self.profiles[fmt].__dict__, **stream_values}
        new_base = self.base.replace(**values)
        new_base.replace(**merged)  # raises SettingsError if they do not fit together
        before = self.base.replace(**self.profiles[fmt].__dict__)  # what the preset's format played with
        self.base = new_base
        self.profiles[fmt] = StreamValues(**merged)
        after = self.base.replace(**merged)
        changed = [f"{_label(attr, fmt)} {format_value(getattr(before, attr))} → {format_value(getattr(after, attr))}"
                   for attr in [*values, *stream_values] if getattr(before, attr) != getattr(after, attr)]
        what = ", ".join(changed) or "nothing changed"
        self.publish(events.SettingsReplaced(f"loaded preset {preset.name}: {what}"))

    def current_preset(self, name: str = "workbench") -> Preset:
        s = self.current_settings()
        header = [f"Stream Workbench preset: {name}",
                  f"Format {s.audio_format}, initial buffer (VOICEMODE_STREAM_BUFFER_MS) {s.buffer_ms} ms, "
                  f"network profile {s.network}.",
                  "Plain KEY=value lines: voicemode reads this file as it is."]
        return preset_from_settings(s, name, header)

    # -- the embedded server ------------------------------------------------------------------------------
    def start_server(self) -> None:
        """Start the embedded server on a thread (called on the event loop); ServerReady or ServerFailed
        follows, on the event loop."""
        loop = asyncio.get_running_loop()

        def tell(callback: Callable[[Any], None], value: Any) -> bool:
            try:
                loop.call_soon_threadsafe(callback, value)
            except RuntimeError:  # the app has closed meanwhile: nobody is left to tell
                return False
            return True

        def run() -> None:
            from ..server.runner import EmbeddedServer

            try:
                server = EmbeddedServer().start()
            except Exception as exc:  # a port or espeak problem: say so, keep the app
                tell(self._server_failed, f"the embedded server did not start: {exc}")
                return
            if not tell(self._server_ready_at, server):
                server.stop()

        threading.Thread(target=run, name="embedded-server-start", daemon=True).start()

    def _server_ready_at(self, server: Any) -> None:
        if self._closed:  # quit while it was starting: stop it, off the event loop
            threading.Thread(target=server.stop, name="embedded-server-stop", daemon=True).start()
            return
        self.server = server
        self.local_url = server.base_url
        self.endpoints.in_this_process_only(server.base_url)  # a new port each start: not worth a file entry
        self._server_ready.set()
        self.publish(events.ServerReady(server.base_url))

    def _server_failed(self, reason: str) -> None:
        self.server_error = reason
        self._server_ready.set()
        self.publish(events.ServerFailed(reason))

    def endpoint_label(self) -> str:
        url = self.base.base_url
        if url != LOCAL:
            return f"endpoint {url}"
        if self.local_url:
            return f"embedded {self.local_url}"
        if self.server_error:
            return "embedded server failed"
        return "embedded server starting…" if self.config.start_server else "no endpoint"

    async def endpoint(self, settings: Settings) -> str:
        if settings.base_url != LOCAL:
            return settings.base_url
        if self.local_url is None and self.config.start_server:
            await self._server_ready.wait()
        if self.local_url is None:
            raise SessionError(self.server_error or "no endpoint: set one in the settings panel")
        return self.local_url

    async def close(self) -> None:
        self._closed = True
        if self.player is not None:
            self.player.stop()
        jobs = list(self._jobs.values())
        for job in jobs:
            job.cancel()
        for job in jobs:  # a Textual worker is awaited by the app that runs it
            if isinstance(job, asyncio.Task):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await job
        if self.player is not None:
            with contextlib.suppress(Exception):
                await self.player.aclose()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)

    def _spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        key = next(self._job_ids)

        async def run() -> None:
            try:
                await work
            finally:
                self._jobs.pop(key, None)

        self._jobs[key] = self._start_job(run(), name)

    # -- plays --------------------------------------------------------------------------------------------
    def start_play(self, text: str, settings: Settings | None = None, label: str = "") -> RunRecord:
        """Start a play; RunStarted, PlayProgress and then PlayFinished follow.
        Raises `SessionError` (why it cannot start) or `SettingsError`."""
        if self.current is not None:
            raise SessionError("a play is running: press s to stop it first")
        if self.tuning:
            raise SessionError("a tune is running: wait for it, or press s to stop it")
        if not text.strip():
            raise SessionError("nothing to say: the text is empty")
        record = RunRecord(number=len(self.runs) + 1, text=text, settings=settings or self.current_settings(),
                           label=label)
        self.add_run(record)
        self.current = record
        self.last_text = text
        self._spawn(self._play(record), f"play {record.number}")
        return record

    def add_run(self, record: RunRecord) -> None:
        record.number = len(self.runs) + 1
        self.runs.append(record)
        self.publish(events.RunStarted(record))

    def stop(self) -> str | None:
        """Stop the play or the tune; returns a message for the user, if there is one to give."""
        if self.player is not None and self.current is not None:
            self.player.stop()
            return None
        if self.tuning:
            for job in list(self._jobs.values()):
                job.cancel()
            self.tuning = False
            return "tune stopped; the settings are as they were"
        return None

    def toggle_pause(self) -> tuple[str, str]:
        """Pause or resume the play: (a message, its severity)."""
        player = self.player
        if player is None or self.current is None:
            return "nothing is playing", "warning"
        if not isinstance(player, StreamPlayer):
            return "the voicemode player (a model of voicemode 9.0's) has no pause", "warning"
        if player.paused:
            player.resume()
            return "resumed from where it paused", "info"
        player.pause()
        return "paused (the download goes on): k to resume, s to stop", "info"

    async def _player_for(self, settings: Settings, base_url: str) -> StreamPlayer | VoicemodePlayer:
        if self.player is not None and self.player.settings == settings and self.player_url == base_url \
                and getattr(self.player, "cache", None) is self.cache:
            # a live edit during the last play moved the player's target: the panel's value rules again
            self.player.set_initial_buffer_ms(float(settings.buffer_ms))
            return self.player
        if self.player is not None:
            await self.player.aclose()
        player: Any
        if settings.player is PlayerKind.VOICEMODE:  # voicemode 9.0's playback, modelled
            player = VoicemodePlayer(settings, base_url=base_url, sink_factory=self.config.sink_factory,
                                     snapshot_hz=self.config.snapshot_hz)
        else:
            player = StreamPlayer(settings, base_url=base_url, sink_factory=self.config.sink_factory,
                                  snapshot_hz=self.config.snapshot_hz, endpoints=self.endpoints,
                                  cache=self.cache)
        player.add_observer(self._observe)
        await player.warm_up()  # off the play's clock: its first request leaves at once
        self.player, self.player_url = player, base_url
        return player

    def _observe(self, snap: Snapshot) -> None:
        if self.current is not None:
            self.progress(self.current.number, snap)

    async def _play(self, record: RunRecord) -> None:
        try:
            base_url = await self.endpoint(record.settings)
            player = await self._player_for(record.settings, base_url)
            metrics = await player.play(record.text)
        except (PlayError, SinkError, SettingsError, SessionError) as exc:
            self.reject(record.number, str(exc))
        except asyncio.CancelledError:
            self.reject(record.number, "cancelled")
            raise
        except Exception as exc:  # a bug: report it, keep the app
            log.exception("play failed")
            self.reject(record.number, f"unexpected error: {exc!r}")
        else:
            self.finish(record.number, metrics)

    def run_by_number(self, number: int) -> RunRecord | None:
        return self.runs[number - 1] if 0 < number <= len(self.runs) else None

    def progress(self, number: int, snap: Snapshot) -> tuple[RunRecord, bool] | None:
        """A snapshot of a running play, added to its trace (also used to push data in, for tests and
        screenshots); PlayProgress follows. Returns its record and whether its state changed (None if it
        is over)."""
        record = self.run_by_number(number)
        if record is None or record.metrics is not None:
            return None
        before = record.state
        record.trace.add(snap)
        changed = record.state != before
        self.publish(events.PlayProgress(record, snap, changed))
        return record, changed

    def finish(self, number: int, metrics: PlayMetrics) -> RunRecord | None:
        """A play's final metrics (also used to push data in, in tests and for screenshots); PlayFinished
        follows."""
        record = self.run_by_number(number)
        if record is None or record.metrics is not None:
            return None
        record.metrics = metrics
        if self.current is record:
            self.current = None
        self.publish(events.PlayFinished(record))
        return record

    def reject(self, number: int, reason: str) -> RunRecord | None:
        record = self.run_by_number(number)
        if record is None or record.metrics is not None:
            return None
        s = record.settings
        return self.finish(number, PlayMetrics(format=s.audio_format, streaming=s.streaming_enabled,
                                               network=s.network, state=PlayState.FAILED.value, error=reason))

    # -- the recommended buffer ---------------------------------------------------------------------------
    def recommended_ms(self, record: RunRecord) -> float | None:
        s = record.settings
        return recommend_buffer_ms([
            r.metrics.needed_buffer_ms for r in self.runs
            if r.metrics is not None and r.metrics.needed_buffer_ms is not None and r.metrics.state == "done"
            and r.settings.audio_format == s.audio_format and r.settings.network == s.network])

    def recommendation(self, record: RunRecord) -> str:
        """The smallest initial buffer that would have played every finished run like this one clean."""
        s = record.settings
        best = self.recommended_ms(record)
        if best is None:
            return ""
        return (f"{s.audio_format} on network '{s.network}': an initial buffer of {best:.0f} ms would have played "
                f"every such run without an underrun (b uses it; e exports it as VOICEMODE_STREAM_BUFFER_MS)")

    def last_recommendation(self) -> tuple[float, str]:
        """The buffer the last finished streamed run recommends, and why; `SessionError` if none has."""
        done = [r for r in self.runs if r.metrics is not None and r.metrics.needed_buffer_ms is not None]
        best = self.recommended_ms(done[-1]) if done else None
        if not done or best is None:
            raise SessionError("no finished streamed run yet: play first, then b sets the buffer it needed")
        return best, self.recommendation(done[-1])

    # -- tuning -------------------------------------------------------------------------------------------
    def start_tune(self, text: str) -> str:
        """Tune the initial buffer (and the max buffer, if fixed) for the current format and network with
        silent plays; TuneProgress and TuneFinished follow. Returns what it is doing."""
        if self.current is not None or self.tuning:
            raise SessionError("a play or a tune is running: wait for it, or press s to stop a play")
        settings = self.current_settings()
        if not text.strip():
            raise SessionError("nothing to say: the text is empty")
        self.tuning = True
        self._spawn(self._tune(settings, text), "tune")
        return f"tuning {settings.audio_format} on '{settings.network}'…"

    async def _tune(self, settings: Settings, text: str) -> None:
        from ..usecases.tune import TuneFailed, tune

        try:
            base_url = await self.endpoint(settings)
            result = await tune(settings, base_url, self.TUNE_REPEATS, text,
                                lambda step: self.publish(events.TuneProgress(step)))
        except (TuneFailed, ValueError, SessionError, PlayError, SinkError) as exc:
            self._tune_ended(events.TuneFinished(f"tune failed: {exc}"))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a bug: report it, keep the app
            log.exception("tune failed")
            self._tune_ended(events.TuneFinished(f"tune failed: unexpected error: {exc!r}"))
        else:
            if result.player == "voicemode":  # what voicemode plays best: its format and chunk size, set
                fmt, chunk = result.settings.audio_format, result.settings.chunk_size
                self.base = self.base.replace(audio_format=fmt)
                self.profiles[fmt] = StreamValues(**{**self.profiles[fmt].__dict__, "chunk_size": chunk})
                self.tuning = False
                self.publish(events.SettingsReplaced(
                    f"tuned for voicemode on '{settings.network}': {fmt}, chunk {chunk} B, first sound "
                    f"{result.first_sound_ms or result.ttfa_ms:.0f} ms ({result.plays} silent plays); set for the "
                    "next play (e exports it)"))
                return
            self._tune_ended(events.TuneFinished(
                f"tuned {settings.audio_format} on '{settings.network}': initial buffer {result.buffer_ms} ms, max "
                f"buffer {result.max_buffer_s:g} s, TTFA {result.ttfa_ms:.0f} ms"
                + (f" (first sound {result.first_sound_ms:.0f})" if result.first_sound_ms is not None else "")
                + f" ({result.plays} silent plays); "
                "set for the next play (e exports it)" + (f"; {result.pace_note}" if result.pace_note else ""),
                result.buffer_ms, result.max_buffer_s, settings.audio_format))

    def _tune_ended(self, event: events.TuneFinished) -> None:
        self.tuning = False
        self.publish(event)
