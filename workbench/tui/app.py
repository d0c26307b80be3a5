"""The workbench: a Textual app around the streaming engine.

`create_app()` is the one factory: the CLI and the tests build the app through it. The app lays out
and draws; the `Session` (session.py) holds the settings, the runs, the server, the player and tuning,
and tells the app what happens through plain events (`events.py`), posted here as one Textual message
(`messages.py`) about 10 times a second while a play runs; plays and tunes run as this app's workers.
The audio itself is pulled by PortAudio's thread from a ring buffer, so drawing never starves it.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from textual import on
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, DataTable, Header, Static, TextArea

from ..engine.figures.metrics import PlayState
from ..engine.settings import SettingsError, format_value
from . import events
from .messages import SessionMessage
from .session import AppConfig, Job, Session, SessionError
from .state import STREAM_FIELDS, STREAM_LABELS, RunRecord, format_values_message
from .widgets.buffer_graph import BufferGraph
from .widgets.counters import Counters, KeyFigures, final_values, format_choice, idle_values, live_values, rows_for
from .widgets.footer import FittingFooter
from .widgets.settings_panel import SettingsPanel

__all__ = ["AppConfig", "WorkbenchApp", "create_app"]
WIDE = 120  # columns from which the settings panel sits beside the graph (below: it replaces it, on `t`)
TALL = 40  # rows from which the buttons and the text box have their full height
GRAPH_MIN = 8  # rows the graph needs to be read
HISTORY_ROWS = 9
# actions of the main screen: on another screen (a dialog, compare) they do nothing, so they are not listed
MAIN_ONLY = {"play", "stop", "pause", "watch_voicemode", "replay", "compare", "voicemode_vs_engine", "export",
             "load_preset", "toggle_settings", "tune", "use_recommended", "view", "focus_play", "carry_values"}


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


class WorkbenchApp(App[None]):
    CSS_PATH = Path(__file__).parent / "app.tcss"
    TITLE = "Stream Workbench"
    SUB_TITLE = "streamed TTS: fast start, no glitches"
    # the footer lists the shown ones in this order, by how often they are used, as many as fit the width
    # (FittingFooter); the rest are in the help (F1) and the command palette
    BINDINGS = [
        Binding("p", "play", "Play"),
        Binding("s", "stop", "Stop"),
        Binding("t", "toggle_settings", "Settings"),
        Binding("c", "compare", "Compare"),
        Binding("u", "tune", "Tune"),
        Binding("e", "export", "Export"),
        Binding("l", "load_preset", "Load"),
        Binding("h", "view('history')", "History"),
        Binding("f1,question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        Binding("k", "pause", "Pause", show=False),
        Binding("w", "watch_voicemode", "voicemode", show=False),
        Binding("r", "replay", "Replay", show=False),
        Binding("v", "voicemode_vs_engine", "voicemode vs engine", show=False),
        Binding("g", "view('graph')", "Graph", show=False),
        Binding("m", "view('counters')", "Counters", show=False),
        Binding("b", "use_recommended", "Use clean buffer", show=False),
        Binding("escape", "focus_play", "Leave text", show=False),
        Binding("o", "carry_values", "Carry values over", show=False),
    ]

    def __init__(self, config: AppConfig) -> None:
        super().__init__()
        self.config = config
        self.session = Session(config, self._session_event, start_job=self._start_job)
        self.viewed: int | None = None  # run number shown in the graph and counters
        self._listed: set[int] = set()  # runs with a row in the history
        self._shown_cells: dict[int, tuple[str, ...]] = {}  # what each history row shows now
        self._notified = ""  # the last warning or error raised as a notification
        self.view = "graph"  # the view the lower area keeps when not all of them fit (g, m, h)
        self.settings_open: bool | None = None  # None: as the width decides; else as `t` left it
        self._format_before = config.settings.audio_format  # the format in use before the last format change ...
        self._format_previous: str | None = None  # ... and the one before that (what `o` carries over)

    # -- layout -----------------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        yield TextArea(self.config.text, id="text", soft_wrap=True, show_line_numbers=False)
        with Horizontal(id="controls"):
            yield Button("Play", id="play", variant="success")
            yield Button("Stop", id="stop", variant="error")
            yield Button("Replay", id="replay")
            yield Button("Compare", id="compare")
            yield Button("Export", id="export")
            yield Static(self.session.endpoint_label(), id="endpoint-label")
        yield KeyFigures(id="key-figures")
        with Horizontal(id="main"):
            with Vertical(id="left"):
                yield BufferGraph(id="graph")
                with VerticalScroll(id="counters"):  # cut short (80x24), it scrolls and shows that it can
                    yield Counters()
                yield DataTable(id="history", cursor_type="row", zebra_stripes=True)
            yield SettingsPanel(id="settings")
        yield Static("", id="message")
        yield FittingFooter(compact=True, show_command_palette=False)  # ctrl+p still opens it; F1 lists every key

    def on_mount(self) -> None:
        session = self.session
        self.call_after_refresh(settle_garbage)
        self.query_one(TextArea).cursor_blink = False
        table = self.query_one("#history", DataTable)
        table.add_columns("#", "format", "network", "buffer", "TTFA", "underruns", "state")
        table.border_title = "Run history"
        self.query_one("#graph", BufferGraph).border_title = "Buffer"
        self.query_one("#settings", SettingsPanel).border_title = "Settings (next play)"
        self.query_one("#settings", SettingsPanel).load(session.base, session.profiles[session.base.audio_format])
        self._show_next_start()
        self.query_one("#play", Button).focus()
        if self.config.notices:
            self.show_message(" · ".join(self.config.notices), "warning")
        if session.local_url is None and self.config.start_server:
            session.start_server()
        self.fit_layout()

    # -- fitting the terminal -------------------------------------------------------------------------
    def on_resize(self) -> None:
        self.fit_layout()

    def fit_layout(self) -> None:
        """Fit the layout to the terminal, from 80x24 up.

        - Below TALL rows the buttons lose their borders and the text box shows two lines.
        - The key figures (one line) and the message line are always on screen.
        - The lower area shows the graph, the counters and the history when they fit; otherwise the
          graph and one of the others, or the one view chosen with g, m and h.
        - From WIDE columns the settings sit beside it; below, `t` shows them in its place.
        """
        width, height = self.size
        if not width or not height:
            return
        tall = height >= TALL
        for button in self.query("#controls Button").results(Button):
            button.compact = not tall
        self.query_one("#controls").styles.height = 3 if tall else 1
        self.query_one("#endpoint-label").styles.height = 3 if tall else 1
        text_rows = 6 if tall else 4
        self.query_one("#text").styles.height = text_rows
        wide = width >= WIDE
        panel = self.query_one(SettingsPanel)
        panel_open = self.settings_open if self.settings_open is not None else wide
        panel.display = panel_open
        panel.set_class(not wide, "-full")
        left = self.query_one("#left")
        left.display = wide or not panel_open
        left_width = width - (44 if wide and panel_open else 0)
        # rows left for the lower area: header, text box, buttons, key figures, message line, footer
        rows = height - 1 - text_rows - (3 if tall else 1) - 1 - 1 - 1
        counter_rows = rows_for(left_width - 4) + 2
        graph, counters, history = (self.query_one(f"#{v}") for v in ("graph", "counters", "history"))
        counters.styles.height = counter_rows
        if rows >= GRAPH_MIN + counter_rows + HISTORY_ROWS:
            shown = {"graph", "counters", "history"}
        elif rows >= GRAPH_MIN + counter_rows:
            shown = {"graph", "history" if self.view == "history" else "counters"}
        else:
            shown = {self.view}
        graph.display, counters.display, history.display = ("graph" in shown, "counters" in shown,
                                                             "history" in shown)
        # beside the graph, the history is as tall as its runs (up to HISTORY_ROWS); the graph takes the rest
        runs = self.query_one("#history", DataTable).row_count
        history.styles.height = min(HISTORY_ROWS, runs + 3) if len(shown) > 1 else "1fr"
        if len(shown) == 1 and self.view == "counters":
            counters.styles.height = "1fr"

    def action_view(self, view: str) -> None:
        """Show the graph, counters or history (g, m, h) where not all of them fit; the history gets the
        focus, so its rows can be walked at once."""
        self.view = view
        if self.settings_open and self.size.width < WIDE:  # the settings had the view's place: give it back
            self.settings_open = False
        self.fit_layout()
        if view == "history":
            self.query_one("#history").focus()

    def action_toggle_settings(self) -> None:
        panel = self.query_one(SettingsPanel)
        self.settings_open = not panel.display
        self.fit_layout()
        if panel.display:
            panel.query_one("#audio_format").focus()
        else:
            self.query_one("#play", Button).focus()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The main screen's keys do nothing on other screens; the footer there does not list them."""
        if action in MAIN_ONLY and self.screen is not self.screen_stack[0]:
            return False
        return True

    def _update_endpoint_label(self) -> None:
        self.query_one("#endpoint-label", Static).update(self.session.endpoint_label())

    # -- the session's events ---------------------------------------------------------------------
    def _session_event(self, event: events.Event) -> None:
        self.post_message(SessionMessage(event))

    def _start_job(self, work: Any, name: str) -> Job:
        return self.run_worker(work, name=name, group="session", exit_on_error=False)

    def on_session_message(self, message: SessionMessage) -> None:
        event = message.event
        if isinstance(event, events.PlayProgress):
            self._show_progress(event)
        elif isinstance(event, events.PlayFinished):
            self._show_finished(event.record)
        elif isinstance(event, events.RunStarted):
            self._show_run_started(event)
        elif isinstance(event, events.TuneProgress):
            if self.session.tuning:  # where the eye is: the key line and the graph's title, and the message line
                self.show_message(f"tuning: {event.text}")
                self.query_one(KeyFigures).show({"state": "tuning", "tune": event.text})
                self.query_one("#graph", BufferGraph).border_title = f"Buffer · tuning ({event.text}, silent)"
        elif isinstance(event, events.TuneFinished):
            self._show_tune_finished(event)
        elif isinstance(event, events.SettingsReplaced):
            self._show_settings_replaced(event)
        elif isinstance(event, events.ServerReady):
            self._update_endpoint_label()
        elif isinstance(event, events.ServerFailed):
            self._update_endpoint_label()
            self.show_message(event.reason, "error")

    async def on_unmount(self) -> None:
        await self.session.close()

    # -- settings ---------------------------------------------------------------------------------
    @on(SettingsPanel.Edited)
    def edited(self, event: SettingsPanel.Edited) -> None:
        try:
            self.session.edit(event.field, event.value)
        except SettingsError as exc:  # valid alone, but not with the rest: the field shows what is in use
            session, panel = self.session, self.query_one(SettingsPanel)
            panel.load(session.base, session.profiles[session.base.audio_format])
            panel.refused(event.field, str(exc))
            self.show_message(str(exc), "error")
            return
        session = self.session
        fmt = session.base.audio_format
        if event.field == "audio_format":  # (auto keeps the values of the format it was on)
            self.query_one(SettingsPanel).load_stream(session.profiles[fmt])
            if fmt != self._format_before:
                self._format_previous = self._format_before
                self.show_message(format_values_message(fmt, session.profiles[fmt], self._format_before,
                                                        session.profiles[self._format_before]))
            self._format_before = fmt
        elif event.field in STREAM_FIELDS and event.typed:
            live = session.current is not None and event.field == "buffer_ms"
            self.show_message(f"{STREAM_LABELS[event.field]} {format_value(event.value)} applied to {fmt}: the next "
                              "play uses it" + (", and the one playing now" if live else ""))
        elif self.query_one("#message", Static).has_class("-error"):
            self.show_message("")  # the edit mended what the error was about
        if event.field == "endpoint":
            self._update_endpoint_label()
        self._show_next_start()

    def _show_next_start(self) -> None:
        """Before the first play, the key line says the initial buffer the next play starts from."""
        session = self.session
        if session.current is None and self.viewed is None:
            self._show_values(idle_values(session.base.audio_format, session.base.network,
                                          session.current_settings().buffer_ms))

    def action_carry_values(self) -> None:
        """o, after a format change: the format now in use takes the stream values of the one before it."""
        session, fmt, before = self.session, self.session.base.audio_format, self._carried_from()
        if before is None:
            self.show_message("o carries a format's values over after the format is changed", "warning")
            return
        session.profiles[fmt] = session.profiles[before]
        self.query_one(SettingsPanel).load_stream(session.profiles[fmt])
        self._show_next_start()
        values = session.profiles[fmt]
        self.show_message(f"{fmt} now uses {before}'s values: initial buffer {values.buffer_ms} ms, chunk "
                          f"{values.chunk_size} B, max buffer {format_value(values.max_buffer_s)} s")

    def _carried_from(self) -> str | None:
        previous = self._format_previous
        return previous if previous is not None and previous != self.session.base.audio_format else None

    def _show_settings_replaced(self, message: events.SettingsReplaced) -> None:
        session = self.session
        self.query_one(SettingsPanel).load(session.base, session.profiles[session.base.audio_format])
        self._update_endpoint_label()
        self.show_message(message.text, "info")

    # -- tuning -------------------------------------------------------------------------------------
    def action_tune(self) -> None:
        """Tune the initial buffer (and max buffer, if fixed) for the current format and network, then
        put the result in the settings. Plays go to a virtual sink, so tuning is silent."""
        try:
            self.show_message(self.session.start_tune(self.query_one(TextArea).text))
        except SessionError as exc:
            self.show_message(str(exc), "warning" if "running" in str(exc) else "error")
        except SettingsError as exc:
            self.show_message(str(exc), "error")

    def _show_tune_finished(self, message: events.TuneFinished) -> None:
        self._after_tune()
        if message.buffer_ms is None:
            self.show_message(message.text, "error")
            return
        if message.format == self.session.base.audio_format:  # the panel still shows the tuned format
            panel = self.query_one(SettingsPanel)
            panel.set_value("buffer_ms", str(message.buffer_ms))
            if message.max_buffer_s is not None:
                panel.set_value("max_buffer_s", format_value(message.max_buffer_s))
        self.show_message(message.text)

    def _after_tune(self) -> None:
        """The key line and the graph show the run in view again (or the next play's start)."""
        if self.viewed is not None:
            self.view_run(self.viewed)
        else:
            self.query_one("#graph", BufferGraph).border_title = "Buffer"
            self._show_next_start()

    # -- messages to the user -------------------------------------------------------------------------
    def action_use_recommended(self) -> None:
        """Put the recommended initial buffer into the settings (for the next play and for export)."""
        try:
            best, why = self.session.last_recommendation()
        except SessionError as exc:
            self.show_message(str(exc), "warning")
            return
        self.query_one(SettingsPanel).set_value("buffer_ms", str(int(best)))
        self.show_message(f"initial buffer set to {best:.0f} ms: {why}")

    def show_message(self, text: str, kind: str = "info") -> None:
        """The message line (always on screen); a warning or an error is also raised as a notification,
        which stays in view for a while wherever the user is, dialogs included."""
        widget = self.query_one("#message", Static)
        widget.update(text)
        for k in ("info", "warning", "error"):
            widget.set_class(k == kind and bool(text), f"-{k}")
        if text and kind in ("warning", "error") and text != self._notified:
            self.notify(text, severity="error" if kind == "error" else "warning", timeout=8)
        self._notified = text if kind in ("warning", "error") else ""

    # -- playing ----------------------------------------------------------------------------------
    def action_play(self) -> None:
        self.start_play(self.query_one(TextArea).text)

    def action_replay(self) -> None:
        if self.session.last_text is None:
            self.show_message("nothing to replay yet: press p to play the text first", "warning")
            return
        self.start_play(self.session.last_text)

    def action_stop(self) -> None:
        said = self.session.stop()
        if said:
            self.show_message(said, "warning")

    def action_watch_voicemode(self) -> None:
        from .screens.voicemode import VoicemodeScreen

        self.push_screen(VoicemodeScreen(voicemode_env=self.config.voicemode_env))

    def action_pause(self) -> None:
        text, severity = self.session.toggle_pause()
        self.show_message(text, severity)

    def action_focus_play(self) -> None:
        self.query_one("#play", Button).focus()

    @on(Button.Pressed)
    def _button(self, event: Button.Pressed) -> None:
        actions = {"play": self.action_play, "stop": self.action_stop, "replay": self.action_replay,
                   "compare": self.action_compare, "export": self.action_export}
        if event.button.id in actions:
            actions[event.button.id]()

    def start_play(self, text: str) -> RunRecord | None:
        """Start a play with the current settings; returns its record, or None (with a message)."""
        try:
            record = self.session.start_play(text)
        except SessionError as exc:
            self.show_message(str(exc), "warning" if "running" in str(exc) else "error")
            return None
        except SettingsError as exc:
            self.show_message(str(exc), "error")
            return None
        self.show_message("")
        return record

    def _show_run_started(self, message: events.RunStarted) -> None:
        record = message.record
        if record.number in self._listed:  # already shown (scenes push runs in directly)
            return
        self._listed.add(record.number)
        table = self.query_one("#history", DataTable)
        cells = self._history_cells(record)
        self._shown_cells[record.number] = cells
        table.add_row(*cells, key=str(record.number))
        table.move_cursor(row=table.row_count - 1)
        if table.row_count <= HISTORY_ROWS - 3:
            self.fit_layout()  # the history grows by a row; the graph gives it
        self.view_run(record.number)

    def _show_progress(self, message: events.PlayProgress) -> None:
        record = message.record
        if record.metrics is not None:  # it has finished since: PlayFinished draws it
            return
        if message.changed or self._history_cells(record) != self._shown_cells.get(record.number):
            self._update_history_row(record)  # a figure appears in the row as soon as it is known
        if self.viewed == record.number:
            self._show_values(live_values(message.snapshot, record.settings.network))
            self.query_one("#graph", BufferGraph).show(record.trace)

    def _show_finished(self, record: RunRecord | None) -> None:
        if record is None or record.metrics is None:
            return
        metrics = record.metrics
        self._update_history_row(record)
        if self.viewed == record.number:
            self.view_run(record.number)
        if metrics.error:
            self.show_message(f"run {record.number}: {metrics.error}", "error")
        elif metrics.warnings:
            self.show_message(" · ".join(metrics.warnings), "warning")
        elif metrics.auto_format:
            self.show_message(f"run {record.number}: {format_choice(metrics)}")
        elif metrics.needed_buffer_ms is not None:
            self.show_message(self.session.recommendation(record))
        if self.session.current is None:
            self.call_after_refresh(settle_garbage)

    # -- history ----------------------------------------------------------------------------------
    @staticmethod
    def _history_cells(record: RunRecord) -> tuple[str, ...]:
        s, m, live = record.settings, record.metrics, record.trace.last
        fmt = (m.format if m is not None else s.audio_format) if s.auto_format else s.audio_format
        fmt += (" auto" if s.auto_format else "") + ("" if s.streaming_enabled else " buf")
        fmt += " cache" if m is not None and m.cache == "hit" else ""
        ttfa_ms = m.ttfa_ms if m is not None else (live.ttfa_ms if live is not None else None)
        ttfa = "-" if ttfa_ms is None else f"{ttfa_ms:.0f} ms"
        if m is not None:
            under = f"{m.underruns} ({m.underrun_ms:.0f} ms)"
        else:
            under = "-" if live is None else f"{live.underruns} ({live.underrun_ms:.0f} ms)"
        label = f"{record.number}" + (f" {record.label}" if record.label else "")
        return (label, fmt, s.network, f"{s.buffer_ms} ms", ttfa, under, record.state)

    def _update_history_row(self, record: RunRecord) -> None:
        table = self.query_one("#history", DataTable)
        cells = self._history_cells(record)
        self._shown_cells[record.number] = cells
        for column, value in zip(table.ordered_columns, cells, strict=True):
            table.update_cell(str(record.number), column.key, value, update_width=True)

    @on(DataTable.RowHighlighted, "#history")
    def _row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if event.row_key.value is not None:
            self.view_run(int(event.row_key.value))

    def view_run(self, number: int) -> None:
        record = self.session.run_by_number(number)
        if record is None:
            return
        self.viewed = number
        graph = self.query_one("#graph", BufferGraph)
        graph.border_title = f"Buffer · run {number} · {record.settings.audio_format} · {record.settings.network}"
        graph.show(record.trace)
        if record.metrics is not None:
            self._show_values(final_values(record.metrics))
        elif record.trace.last is not None:
            self._show_values(live_values(record.trace.last, record.settings.network))
        else:
            self._show_values(idle_values(record.settings.audio_format, record.settings.network)
                              | {"state": PlayState.CONNECTING.value})

    def _show_values(self, values: dict[str, str]) -> None:
        self.query_one(Counters).show(values)
        self.query_one(KeyFigures).show(values)

    # -- other screens ----------------------------------------------------------------------------
    def action_compare(self) -> None:
        from .screens.compare import CompareScreen

        if not isinstance(self.screen, CompareScreen):
            self.push_screen(CompareScreen(self.session, self.query_one(TextArea).text))

    def action_voicemode_vs_engine(self) -> None:
        """voicemode today against this engine: the same text, settings and network, played both ways."""
        from .screens.compare import CompareScreen

        if not isinstance(self.screen, CompareScreen):
            screen = CompareScreen(self.session, self.query_one(TextArea).text, a="player:voicemode",
                                   b="player:workbench")
            self.push_screen(screen, wait_for_dismiss=False)
            self.call_after_refresh(screen.action_run)

    def action_export(self) -> None:
        from .screens.presets import ExportScreen

        base = self.session.base
        self.push_screen(ExportScreen(self.session.current_preset(f"{base.audio_format}-{base.network}"),
                                      self.config.save_dir, self.config.voicemode_env))

    def action_load_preset(self) -> None:
        from .screens.presets import LoadPresetScreen

        self.push_screen(LoadPresetScreen(self.session))

    def action_help(self) -> None:
        from .screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_quit(self) -> None:
        if self.session.player is not None:
            self.session.player.stop()
        self.exit()

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Play", "Speak the text with the current settings (p)", self.action_play)
        yield SystemCommand("Stop", "Stop the current play (s)", self.action_stop)
        yield SystemCommand("Replay", "Speak the last text again with the current settings (r)",
                            self.action_replay)
        yield SystemCommand("Compare A vs B", "Play the text two ways and compare the metrics (c)",
                            self.action_compare)
        yield SystemCommand("voicemode today vs this engine", "Play the text as voicemode 9.0 does and as this "
                            "engine does, and compare (v)", self.action_voicemode_vs_engine)
        yield SystemCommand("Export preset", "Save the settings as a voicemode .env, or apply them (e)",
                            self.action_export)
        yield SystemCommand("Load preset", "Load a shipped preset or any .env file (l)", self.action_load_preset)
        yield SystemCommand("Settings panel", "Show or hide the settings (t)", self.action_toggle_settings)
        yield SystemCommand("Help", "Keys and what the graph and counters mean (F1)", self.action_help)
        yield SystemCommand("Tune the buffer",
                            "Find the smallest initial buffer that plays this format and network clean, and use it (u)",
                            self.action_tune)
        yield SystemCommand("Carry values over", "After a format change: the new format takes the old one's "
                            "initial buffer, chunk size and max buffer (o)", self.action_carry_values)
        yield SystemCommand("Use the recommended buffer",
                            "Set the initial buffer that would have played every run like the last one clean (b)",
                            self.action_use_recommended)
