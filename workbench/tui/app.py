"""The workbench: a Textual app around the streaming engine.

`create_app()` is the one factory: the CLI and the tests build the app through it. The engine runs
on the app's event loop (the audio itself is pulled by PortAudio's thread from a ring buffer, so
drawing never starves it); the engine reports through an observer that posts typed messages
(`messages.py`) about 10 times a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Button, DataTable, Footer, Header, Input, Static, TextArea

from ..defaults import DEFAULT_TEXT
from ..engine.metrics import PlayMetrics, PlayState
from ..engine.player import PlayError, StreamPlayer
from ..engine.report import recommend_buffer_ms
from ..engine.sinks import SinkFactory
from ..engine.settings import LOCAL, Settings, SettingsError, format_value
from ..engine.sinks import SinkError
from ..usecases.presets import PRESETS_DIR, Preset, preset_from_settings
from .messages import (PlayFinished, PlayProgress, PlayRejected, ServerFailed, ServerReady, TuneFinished,
                       TuneProgress)
from .state import RunRecord, StreamValues, format_profiles
from .widgets.buffer_graph import BufferGraph
from .widgets.counters import Counters, final_values, idle_values, live_values
from .widgets.settings_panel import STREAM_FIELDS, SettingsPanel

log = logging.getLogger(__name__)
NARROW = 110  # columns below which the settings panel starts hidden
RecordListener = Callable[[RunRecord, bool], None]  # (record, finished)


@dataclass
class AppConfig:
    settings: Settings
    text: str = DEFAULT_TEXT
    local_url: str | None = None  # where 'local' points; None: the app starts the embedded server
    start_server: bool = True
    sink_factory: SinkFactory | None = None
    presets_dir: Path = PRESETS_DIR
    voicemode_env: Path | None = None  # the file "Apply to voicemode" merges into (default ~/.voicemode/...)
    save_dir: Path = field(default_factory=Path.cwd)  # where exports and compare results go
    snapshot_hz: float = 10.0
    notices: list[str] = field(default_factory=list)


def settle_garbage() -> None:
    """Collect now, between plays, and freeze what survives.

    A full (generation 2) collection stops every thread that needs the GIL, the audio callback
    included, for as long as it takes to scan every object: with the app's widgets alive that was up
    to 117 ms, longer than the device's buffer, and each one was a device underflow. Frozen objects
    are left out of later collections, so those stay short while a play runs.
    """
    gc.collect()
    gc.freeze()


def create_app(config: AppConfig) -> WorkbenchApp:
    """Build the workbench app; the CLI and the tests both come through here."""
    return WorkbenchApp(config)


class EndpointError(Exception):
    """No endpoint to play on (the embedded server failed or is not available)."""


class WorkbenchApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "Stream Workbench"
    SUB_TITLE = "streamed TTS: fast start, no glitches"
    BINDINGS = [
        Binding("p", "play", "Play"),
        Binding("s", "stop", "Stop"),
        Binding("r", "replay", "Replay"),
        Binding("c", "compare", "Compare"),
        Binding("e", "export", "Export"),
        Binding("l", "load_preset", "Load preset"),
        Binding("t", "toggle_settings", "Settings"),
        Binding("u", "tune", "Tune"),
        Binding("b", "use_recommended", "Use clean buffer", show=False),
        Binding("f1,question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("escape", "focus_play", "Leave text", show=False),
    ]

    def __init__(self, config: AppConfig) -> None:
        super().__init__()
        self.config = config
        self.base: Settings = config.settings
        self.profiles: dict[str, StreamValues] = format_profiles(config.settings)
        self.runs: list[RunRecord] = []
        self.viewed: int | None = None  # run number shown in the graph and counters
        self.player: StreamPlayer | None = None
        self.player_url: str | None = None
        self.current: RunRecord | None = None
        self.last_text: str | None = None
        self.local_url = config.local_url
        self.server: Any = None
        self._server_ready = asyncio.Event()
        self._server_error: str | None = None
        self.listeners: list[RecordListener] = []
        self.tuning = False

    # -- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield TextArea(self.config.text, id="text", soft_wrap=True, show_line_numbers=False)
                with Horizontal(id="controls"):
                    yield Button("Play", id="play", variant="success")
                    yield Button("Stop", id="stop", variant="error")
                    yield Button("Replay", id="replay")
                    yield Button("Compare", id="compare")
                    yield Button("Export", id="export")
                    yield Static(self._endpoint_label(), id="endpoint-label")
                yield BufferGraph(id="graph")
                yield Counters(id="counters")
                yield Static("", id="message")
                yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield SettingsPanel(id="settings")
        yield Footer()

    def on_mount(self) -> None:
        self.call_after_refresh(settle_garbage)
        self.query_one(TextArea).cursor_blink = False
        table = self.query_one("#history", DataTable)
        table.add_columns("#", "format", "network", "buffer", "TTFA", "underruns", "state")
        table.border_title = "Run history"
        self.query_one("#graph", BufferGraph).border_title = "Buffer"
        self.query_one("#settings", SettingsPanel).border_title = "Settings (next play)"
        self.query_one("#settings", SettingsPanel).load(self.base, self.profiles[self.base.audio_format])
        self.query_one(Counters).show(idle_values(self.base.audio_format, self.base.network))
        self.query_one("#play", Button).focus()
        if self.config.notices:
            self.show_message(" · ".join(self.config.notices), "warning")
        if self.local_url is None and self.config.start_server:
            self._start_server()
        if self.size.width < NARROW:  # a small terminal: room for the graph first, `t` shows the settings
            self.query_one(SettingsPanel).display = False

    def action_toggle_settings(self) -> None:
        panel = self.query_one(SettingsPanel)
        panel.display = not panel.display
        if panel.display:
            panel.query_one("#audio_format").focus()

    def _endpoint_label(self) -> str:
        url = self.base.base_url
        if url != LOCAL:
            return f"endpoint {url}"
        if self.local_url:
            return f"embedded {self.local_url}"
        if self._server_error:
            return "embedded server failed"
        return "embedded server starting…" if self.config.start_server else "no endpoint"

    def _update_endpoint_label(self) -> None:
        self.query_one("#endpoint-label", Static).update(self._endpoint_label())

    # -- the embedded server ----------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="server", exit_on_error=False)
    def _start_server(self) -> None:
        from ..server.runner import EmbeddedServer

        try:
            server = EmbeddedServer().start()
        except Exception as exc:  # a port or espeak problem: say so, keep the app
            self.post_message(ServerFailed(f"the embedded server did not start: {exc}"))
            return
        self.server = server
        self.post_message(ServerReady(server.base_url))

    def on_server_ready(self, message: ServerReady) -> None:
        self.local_url = message.base_url
        self._server_ready.set()
        self._update_endpoint_label()

    def on_server_failed(self, message: ServerFailed) -> None:
        self._server_error = message.reason
        self._server_ready.set()
        self._update_endpoint_label()
        self.show_message(message.reason, "error")

    async def _endpoint(self, settings: Settings) -> str:
        if settings.base_url != LOCAL:
            return settings.base_url
        if self.local_url is None and self.config.start_server:
            await self._server_ready.wait()
        if self.local_url is None:
            raise EndpointError(self._server_error or "no endpoint: set one in the settings panel")
        return self.local_url

    async def on_unmount(self) -> None:
        if self.player is not None:
            self.player.stop()
            with contextlib.suppress(Exception):
                await self.player.aclose()
        if self.server is not None:
            await asyncio.to_thread(self.server.stop)

    # -- settings ---------------------------------------------------------------------------------
    def current_settings(self) -> Settings:
        """The settings the next play uses: the panel's values with the current format's stream values."""
        stream = self.profiles[self.base.audio_format]
        return self.base.replace(buffer_ms=stream.buffer_ms, chunk_size=stream.chunk_size,
                                 max_buffer_s=stream.max_buffer_s)

    @on(SettingsPanel.Edited)
    def _edited(self, event: SettingsPanel.Edited) -> None:
        attr, value = event.field, event.value
        fmt = self.base.audio_format
        try:
            if attr in STREAM_FIELDS:
                self.profiles[fmt] = StreamValues(**{**self.profiles[fmt].__dict__, attr: value})
                if attr == "buffer_ms" and self.player is not None and self.current is not None \
                        and self.current.settings.audio_format == fmt:
                    self.player.set_initial_buffer_ms(float(value))  # the live knob
            elif attr == "audio_format":
                self.base = self.base.replace(audio_format=value)
                self.query_one(SettingsPanel).load_stream(self.profiles[value])
            elif attr == "voice":
                self.base = self.base.replace(voices=(value,))
            elif attr == "model":
                self.base = self.base.replace(models=(value,))
            elif attr == "endpoint":
                self.base = self.base.replace(base_urls=None if value == LOCAL else (value,))
                self._update_endpoint_label()
            else:
                self.base = self.base.replace(**{attr: value})
            self.current_settings()
        except SettingsError as exc:
            self.show_message(str(exc), "error")
            return
        if self.query_one("#message", Static).has_class("-error"):
            self.show_message("")  # the edit mended what the error was about

    def apply_preset(self, preset: Preset) -> None:
        """Load a preset's values: the format it names gets its stream values."""
        from ..engine.settings import parse_overrides

        values = parse_overrides(preset.values, str(preset.path or preset.name))
        stream_values = {k: values.pop(k) for k in STREAM_FIELDS if k in values}
        fmt = values.get("audio_format", self.base.audio_format)
        merged = {**self.profiles[fmt].__dict__, **stream_values}
        new_base = self.base.replace(**values)
        new_base.replace(**merged)  # raises SettingsError if they do not fit together
        self.base = new_base
        self.profiles[fmt] = StreamValues(**merged)
        self.query_one(SettingsPanel).load(self.base, self.profiles[fmt])
        self._update_endpoint_label()
        self.show_message(f"loaded preset {preset.name}", "info")

    def current_preset(self, name: str = "workbench") -> Preset:
        s = self.current_settings()
        header = [f"Stream Workbench preset: {name}",
                  f"Format {s.audio_format}, initial buffer {s.buffer_ms} ms, network profile {s.network}.",
                  "Plain KEY=value lines: voicemode reads this file as it is."]
        return preset_from_settings(s, name, header)

    # -- tuning -------------------------------------------------------------------------------------
    TUNE_REPEATS = 3

    def action_tune(self) -> None:
        """Tune the initial buffer (and max buffer, if fixed) for the current format and network, then
        put the result in the settings. Plays go to a virtual sink, so tuning is silent."""
        if self.current is not None or self.tuning:
            self.show_message("a play or a tune is running: wait for it, or press s to stop a play", "warning")
            return
        try:
            settings = self.current_settings()
        except SettingsError as exc:
            self.show_message(str(exc), "error")
            return
        text = self.query_one(TextArea).text
        if not text.strip():
            self.show_message("nothing to say: the text is empty", "error")
            return
        self.tuning = True
        self.show_message(f"tuning {settings.audio_format} on '{settings.network}'…")
        self.run_worker(self._tune(settings, text), group="tune", exclusive=True, exit_on_error=False)

    async def _tune(self, settings: Settings, text: str) -> None:
        from ..usecases.tune import TuneFailed, tune

        try:
            base_url = await self._endpoint(settings)
            result = await tune(settings, base_url, self.TUNE_REPEATS, text,
                                lambda step: self.post_message(TuneProgress(step)))
        except (TuneFailed, ValueError, EndpointError, PlayError, SinkError) as exc:
            self.post_message(TuneFinished(f"tune failed: {exc}"))
        except Exception as exc:  # a bug: report it, keep the app
            log.exception("tune failed")
            self.post_message(TuneFinished(f"tune failed: unexpected error: {exc!r}"))
        else:
            self.post_message(TuneFinished(
                f"tuned {settings.audio_format} on '{settings.network}': initial buffer {result.buffer_ms} ms, max "
                f"buffer {result.max_buffer_s:g} s, TTFA {result.ttfa_ms:.0f} ms ({result.plays} silent plays); "
                "set for the next play (e exports it)", result.buffer_ms, result.max_buffer_s, settings.audio_format))

    def on_tune_progress(self, message: TuneProgress) -> None:
        if self.tuning:
            self.show_message(f"tuning: {message.text}")

    def on_tune_finished(self, message: TuneFinished) -> None:
        self.tuning = False
        if message.buffer_ms is None:
            self.show_message(message.text, "error")
            return
        if message.format == self.base.audio_format:  # the panel still shows the tuned format
            self.query_one("#buffer_ms", Input).value = str(message.buffer_ms)
            if message.max_buffer_s is not None:
                self.query_one("#max_buffer_s", Input).value = format_value(message.max_buffer_s)
        self.show_message(message.text)

    # -- messages to the user -------------------------------------------------------------------------
    def action_use_recommended(self) -> None:
        """Put the recommended initial buffer into the settings (for the next play and for export)."""
        done = [r for r in self.runs if r.metrics is not None and r.metrics.needed_buffer_ms is not None]
        if not done:
            self.show_message("no finished streamed run yet: play first, then b sets the buffer it needed",
                              "warning")
            return
        record = done[-1]
        best = self._recommended_ms(record)
        if best is None:
            return
        self.query_one("#buffer_ms", Input).value = str(int(best))
        self.show_message(f"initial buffer set to {best:.0f} ms: {self.recommendation(record)}")

    def _recommended_ms(self, record: RunRecord) -> float | None:
        s = record.settings
        return recommend_buffer_ms([
            r.metrics.needed_buffer_ms for r in self.runs
            if r.metrics is not None and r.metrics.needed_buffer_ms is not None and r.metrics.state == "done"
            and r.settings.audio_format == s.audio_format and r.settings.network == s.network])

    def recommendation(self, record: RunRecord) -> str:
        """The smallest initial buffer that would have played every finished run like this one clean."""
        s = record.settings
        best = self._recommended_ms(record)
        if best is None:
            return ""
        return (f"{s.audio_format} on network '{s.network}': an initial buffer of {best:.0f} ms would have played "
                f"every such run without an underrun (b uses it; e exports it as VOICEMODE_STREAM_BUFFER_MS)")

    def show_message(self, text: str, kind: str = "info") -> None:
        widget = self.query_one("#message", Static)
        widget.update(text)
        for k in ("info", "warning", "error"):
            widget.set_class(k == kind and bool(text), f"-{k}")

    # -- playing ----------------------------------------------------------------------------------
    def action_play(self) -> None:
        self.start_play(self.query_one(TextArea).text)

    def action_replay(self) -> None:
        if self.last_text is None:
            self.show_message("nothing to replay yet: press p to play the text first", "warning")
            return
        self.start_play(self.last_text)

    def action_stop(self) -> None:
        if self.player is not None and self.current is not None:
            self.player.stop()
        elif self.tuning:
            self.workers.cancel_group(self, "tune")
            self.tuning = False
            self.show_message("tune stopped; the settings are as they were", "warning")

    def action_focus_play(self) -> None:
        self.query_one("#play", Button).focus()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"play": self.action_play, "stop": self.action_stop, "replay": self.action_replay,
                   "compare": self.action_compare, "export": self.action_export}
        if event.button.id in actions:
            actions[event.button.id]()

    def start_play(self, text: str, settings: Settings | None = None, label: str = "") -> RunRecord | None:
        """Start a play in a worker; returns its record, or None (with a message) if it cannot start."""
        if self.current is not None:
            self.show_message("a play is running: press s to stop it first", "warning")
            return None
        if self.tuning:
            self.show_message("a tune is running: wait for it, or press s to stop it", "warning")
            return None
        if not text.strip():
            self.show_message("nothing to say: the text is empty", "error")
            return None
        try:
            settings = settings or self.current_settings()
        except SettingsError as exc:
            self.show_message(str(exc), "error")
            return None
        record = RunRecord(number=len(self.runs) + 1, text=text, settings=settings, label=label)
        self.add_run(record)
        self.current = record
        self.last_text = text
        self.show_message("")
        self.run_worker(self._play(record), group="play", exclusive=True, exit_on_error=False)
        return record

    async def _player_for(self, settings: Settings, base_url: str) -> StreamPlayer:
        if self.player is not None and self.player.settings == settings and self.player_url == base_url:
            # a live edit during the last play moved the player's target: the panel's value rules again
            self.player.set_initial_buffer_ms(float(settings.buffer_ms))
            return self.player
        if self.player is not None:
            await self.player.aclose()
        player = StreamPlayer(settings, base_url=base_url, sink_factory=self.config.sink_factory,
                              snapshot_hz=self.config.snapshot_hz)
        player.add_observer(self._observe)
        self.player, self.player_url = player, base_url
        return player

    def _observe(self, snap: Any) -> None:
        if self.current is not None:
            self.post_message(PlayProgress(self.current.number, snap))

    async def _play(self, record: RunRecord) -> None:
        try:
            base_url = await self._endpoint(record.settings)
            player = await self._player_for(record.settings, base_url)
            metrics = await player.play(record.text)
        except (PlayError, SinkError, SettingsError, EndpointError) as exc:
            self.post_message(PlayRejected(record.number, str(exc)))
        except asyncio.CancelledError:
            self.post_message(PlayRejected(record.number, "cancelled"))
            raise
        except Exception as exc:  # a bug: report it, keep the app
            log.exception("play failed")
            self.post_message(PlayRejected(record.number, f"unexpected error: {exc!r}"))
        else:
            self.post_message(PlayFinished(record.number, metrics))

    def run_by_number(self, number: int) -> RunRecord | None:
        return self.runs[number - 1] if 0 < number <= len(self.runs) else None

    def on_play_progress(self, message: PlayProgress) -> None:
        record = self.run_by_number(message.run)
        if record is None or record.metrics is not None:
            return
        before = record.state
        record.trace.add(message.snapshot)
        if record.state != before:
            self._update_history_row(record)
        if self.viewed == record.number:
            self.query_one(Counters).show(live_values(message.snapshot, record.settings.network))
            self.query_one("#graph", BufferGraph).show(record.trace)
        self._notify_listeners(record, False)

    def on_play_finished(self, message: PlayFinished) -> None:
        self.finish_run(message.run, message.metrics)

    def on_play_rejected(self, message: PlayRejected) -> None:
        record = self.run_by_number(message.run)
        if record is None or record.metrics is not None:
            return
        m = PlayMetrics(format=record.settings.audio_format, streaming=record.settings.streaming_enabled,
                        network=record.settings.network, state=PlayState.FAILED.value, error=message.reason)
        self.finish_run(message.run, m)

    def finish_run(self, number: int, metrics: PlayMetrics) -> None:
        """Record a play's final metrics and show them (also used to push data in, in tests)."""
        record = self.run_by_number(number)
        if record is None:
            return
        record.metrics = metrics
        if self.current is record:
            self.current = None
        self._update_history_row(record)
        if self.viewed == number:
            self.view_run(number)
        if metrics.error:
            self.show_message(f"run {number}: {metrics.error}", "error")
        elif metrics.warnings:
            self.show_message(" · ".join(metrics.warnings), "warning")
        elif metrics.needed_buffer_ms is not None:
            self.show_message(self.recommendation(record))
        self._notify_listeners(record, True)
        if self.current is None:
            self.call_after_refresh(settle_garbage)

    def _notify_listeners(self, record: RunRecord, finished: bool) -> None:
        for listener in list(self.listeners):
            listener(record, finished)

    # -- history ----------------------------------------------------------------------------------
    def add_run(self, record: RunRecord) -> None:
        if record.number != len(self.runs) + 1:
            record.number = len(self.runs) + 1
        self.runs.append(record)
        table = self.query_one("#history", DataTable)
        table.add_row(*self._history_cells(record), key=str(record.number))
        table.move_cursor(row=table.row_count - 1)
        self.view_run(record.number)

    def _history_cells(self, record: RunRecord) -> tuple[str, ...]:
        s, m = record.settings, record.metrics
        fmt = s.audio_format + ("" if s.streaming_enabled else " buf")
        ttfa = "-" if m is None or m.ttfa_ms is None else f"{m.ttfa_ms:.0f} ms"
        under = "-" if m is None else f"{m.underruns} ({m.underrun_ms:.0f} ms)"
        label = f"{record.number}" + (f" {record.label}" if record.label else "")
        return (label, fmt, s.network, f"{s.buffer_ms} ms", ttfa, under, record.state)

    def _update_history_row(self, record: RunRecord) -> None:
        table = self.query_one("#history", DataTable)
        cells = self._history_cells(record)
        for column, value in zip(table.ordered_columns, cells, strict=True):
            table.update_cell(str(record.number), column.key, value, update_width=True)

    @on(DataTable.RowHighlighted, "#history")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.view_run(int(event.row_key.value))

    def view_run(self, number: int) -> None:
        record = self.run_by_number(number)
        if record is None:
            return
        self.viewed = number
        graph = self.query_one("#graph", BufferGraph)
        graph.border_title = f"Buffer · run {number} · {record.settings.audio_format} · {record.settings.network}"
        graph.show(record.trace)
        counters = self.query_one(Counters)
        if record.metrics is not None:
            counters.show(final_values(record.metrics))
        elif record.trace.last is not None:
            counters.show(live_values(record.trace.last, record.settings.network))
        else:
            counters.show(idle_values(record.settings.audio_format, record.settings.network)
                          | {"state": PlayState.CONNECTING.value})

    # -- other screens ----------------------------------------------------------------------------
    def action_compare(self) -> None:
        from .screens.compare import CompareScreen

        if not isinstance(self.screen, CompareScreen):
            self.push_screen(CompareScreen())

    def action_export(self) -> None:
        from .screens.presets import ExportScreen

        self.push_screen(ExportScreen(self.current_preset(f"{self.base.audio_format}-{self.base.network}")))

    def action_load_preset(self) -> None:
        from .screens.presets import LoadPresetScreen

        self.push_screen(LoadPresetScreen(self.config.presets_dir))

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self.player is not None:
            self.player.stop()
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Play", "Speak the text with the current settings (p)", self.action_play)
        yield SystemCommand("Stop", "Stop the current play (s)", self.action_stop)
        yield SystemCommand("Replay", "Speak the last text again with the current settings (r)",
                            self.action_replay)
        yield SystemCommand("Compare A vs B", "Play the text two ways and compare the metrics (c)",
                            self.action_compare)
        yield SystemCommand("Export preset", "Save the settings as a voicemode .env, or apply them (e)",
                            self.action_export)
        yield SystemCommand("Load preset", "Load a shipped preset or any .env file (l)", self.action_load_preset)
        yield SystemCommand("Settings panel", "Show or hide the settings (t)", self.action_toggle_settings)
        yield SystemCommand("Help", "Keys and what the graph and counters mean (F1)", self.action_help)
        yield SystemCommand("Tune the buffer",
                            "Find the smallest initial buffer that plays this format and network clean, and use it (u)",
                            self.action_tune)
        yield SystemCommand("Use the recommended buffer",
                            "Set the initial buffer that would have played every run like the last one clean (b)",
                            self.action_use_recommended)
