"""A vs B: the same text and network played two ways, one after the other, on the same scales."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, Header, Label, Select, Static

from ...engine.decoding.decoders import PROGRESSIVE_FORMATS
from ...engine.figures.metrics import PlayMetrics
from ...engine.settings import FORMATS, Settings, SettingsError, parse_overrides
from ...usecases.compare import compare_rows, report, save_report, setup_rows
from ...usecases.presets import PresetError, load_preset, shipped_presets
from .. import events
from ..session import Session, SessionError
from ..state import RunRecord
from ..widgets.buffer_graph import BufferGraph
from ..widgets.footer import FittingFooter


def default_pair() -> tuple[str, str]:
    """PCM vs MP3, or PCM vs the next format the engine plays progressively while MP3 cannot."""
    b = "mp3" if "mp3" in PROGRESSIVE_FORMATS else next(f for f in PROGRESSIVE_FORMATS if f != "pcm")
    return "format:pcm", f"format:{b}"


class CompareScreen(Screen[None]):
    """Pick A and B, run them, read the graphs and the table."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "run", "Run A then B"),
        Binding("w", "save", "Save"),
        Binding("s", "app.stop", "Stop"),
        Binding("g", "view('graphs')", "Graphs"),
        Binding("m", "view('table')", "Metrics"),
    ]
    DEFAULT_CSS = """
    CompareScreen #compare-controls { height: 3; }
    CompareScreen #compare-controls Label { padding: 1 0 0 1; }
    CompareScreen #compare-controls Select { width: 1fr; max-width: 28; margin-left: 1; }
    CompareScreen #compare-controls Button { margin-left: 1; min-width: 8; }
    CompareScreen #compare-controls.-compact { height: 1; }
    CompareScreen #compare-controls.-compact Label { padding: 0 0 0 1; }
    CompareScreen #compare-status { padding: 0 1; height: auto; max-height: 2; color: $text-muted; }
    CompareScreen #graphs { height: 1fr; }
    CompareScreen BufferGraph { border: round $primary 50%; min-height: 6; }
    CompareScreen #compare-table { height: auto; border: round $primary 50%; }
    """
    GRAPHS_MIN = 10  # rows the two graphs need beside the table
    TABLE_MIN = 8

    def __init__(self, session: Session, text: str, a: str | None = None, b: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.text = text
        da, db = default_pair()
        self.choice_a = a or da
        self.choice_b = b or db
        self.records: dict[str, RunRecord] = {}
        self.names: dict[str, str] = {}
        self._done: dict[int, asyncio.Event] = {}
        self.view = "graphs"  # what shows when the graphs and the table do not both fit (g, m)
        self.zoom: str | None = None  # where both fit: the one g or m gave the whole screen (again: both)

    def _options(self) -> list[tuple[str, str]]:
        options = [("voicemode 9.0 (as it plays today)", "player:voicemode"), ("this engine", "player:workbench")]
        options += [(f"format {f}", f"format:{f}") for f in FORMATS]
        options.append(("format auto (pcm or mp3, per reply)", "format:auto"))
        options += [(f"preset {p.stem}", f"preset:{p}") for p in shipped_presets(self.session.config.presets_dir)]
        return options

    def compose(self) -> ComposeResult:
        options = self._options()
        values = {v for _, v in options}
        yield Header()
        with Horizontal(id="compare-controls"):
            yield Label("A")
            yield Select(options, value=self.choice_a if self.choice_a in values else options[0][1],
                         allow_blank=False, id="a")
            yield Label("B")
            yield Select(options, value=self.choice_b if self.choice_b in values else options[1][1],
                         allow_blank=False, id="b")
            yield Select([("own values per format", "own"), ("same buffer and chunk", "same")], value="own",
                         allow_blank=False, id="keep")
            yield Button("Run", id="run", variant="success")
            yield Button("Save", id="save")
        yield Static("the same text and network; what each side uses is in its graph's title and the table · "
                     "r runs A then B", id="compare-status")
        with Horizontal(id="graphs"):
            yield BufferGraph("A", id="graph-a")
            yield BufferGraph("B", id="graph-b")
        yield DataTable(id="compare-table", cursor_type="none", zebra_stripes=True)
        yield FittingFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.add_columns("metric", "A", "B", "B - A", "better")
        table.border_title = "Metrics"
        self.session.subscribe(self._on_event)
        self._label_graphs()
        self.fit_layout()
        self.query_one("#run", Button).focus()

    def on_resize(self) -> None:
        self.fit_layout()

    def fit_layout(self) -> None:
        """Graphs and table both when they fit; else the one chosen with g or m. Compact controls below
        40 rows, so that nothing is cut at 80x24."""
        width, height = self.size
        if not height:
            return
        compact = height < 40
        self.query_one("#compare-controls").set_class(compact, "-compact")
        for widget in self.query("#compare-controls Select, #compare-controls Button"):
            widget.compact = compact  # type: ignore[attr-defined]
        rows = height - 1 - (1 if compact else 3) - 2 - 1  # header, controls, status, footer
        table = self.query_one("#compare-table", DataTable)
        graphs = self.query_one("#graphs")
        both = rows >= self.GRAPHS_MIN + self.TABLE_MIN and self.zoom is None
        view = self.zoom or self.view
        graphs.display = both or view == "graphs"
        table.display = both or view == "table"
        # the table at most half the rows (its results come first, the rest scrolls): the graphs keep theirs
        table.styles.max_height = max(self.TABLE_MIN, min(rows - self.GRAPHS_MIN, rows // 2)) if both else None
        table.styles.height = "auto" if both else "1fr"

    def action_view(self, view: str) -> None:
        """g, m: where only one fits, that one; where both fit, that one on the whole screen, and the same key
        again brings both back."""
        _, height = self.size
        rows = height - 1 - (1 if height < 40 else 3) - 2 - 1
        if rows >= self.GRAPHS_MIN + self.TABLE_MIN:
            self.zoom = None if self.zoom == view else view
        self.view = view
        self.fit_layout()

    def on_unmount(self) -> None:
        self.session.unsubscribe(self._on_event)

    def _label_graphs(self, played_only: bool = False) -> None:
        """Each graph's title says what its side plays with: format, initial buffer, chunk and player
        (`played_only`: only the sides that have played, as a redraw ten times a second needs)."""
        for side in ("a", "b"):
            value = str(self.query_one(f"#{side}", Select).value)
            record = self.records.get(side.upper())
            if played_only and record is None:
                continue
            try:
                used = record.settings if record is not None else self.settings_for(value)
            except (SettingsError, PresetError):
                used = None
            name = _name(value)
            title = f"{side.upper()}: {name}"
            if used is not None:
                title += f" · {used_text(used, with_format=name != used.audio_format)}"
            self.query_one(f"#graph-{side}", BufferGraph).border_title = title

    @on(Select.Changed)
    def _changed(self, event: Select.Changed) -> None:
        self._label_graphs()

    def settings_for(self, choice: str) -> Settings:
        """A side's settings: the app's current ones with a format's own values, or a preset on top.

        Both sides keep the app's network profile (a preset's WORKBENCH_NETWORK is not used here)."""
        session = self.session
        kind, _, ref = choice.partition(":")
        base = session.current_settings()
        if kind == "player":  # the same settings, played by this engine or as voicemode 9.0 plays them
            return base.replace(player=ref)
        if kind == "format" and ref == "auto":  # WORKBENCH_AUTO_FORMAT, with the current format's values
            return base.replace(auto_format=True)
        if kind == "format":
            if str(self.query_one("#keep", Select).value) == "same":  # only the format differs
                return base.replace(audio_format=ref)
            stream = session.profiles[ref]
            return base.replace(audio_format=ref, buffer_ms=stream.buffer_ms, chunk_size=stream.chunk_size,
                                max_buffer_s=stream.max_buffer_s)
        preset = load_preset(Path(ref))
        values = parse_overrides(preset.values, str(ref))
        values.pop("network", None)
        if "audio_format" in values and not {"buffer_ms", "chunk_size", "max_buffer_s"} & values.keys():
            stream = session.profiles[values["audio_format"]]
            values = {"buffer_ms": stream.buffer_ms, "chunk_size": stream.chunk_size,
                      "max_buffer_s": stream.max_buffer_s, **values}
        return base.replace(**values)

    @on(Button.Pressed, "#run")
    def action_run(self) -> None:
        if self.session.current is not None:
            self._status("a play is running: stop it first (s)", error=True)
            return
        a = str(self.query_one("#a", Select).value)
        b = str(self.query_one("#b", Select).value)
        try:
            sides = {"A": self.settings_for(a), "B": self.settings_for(b)}
        except (SettingsError, PresetError) as exc:
            self._status(str(exc), error=True)
            return
        self.names = {"A": _name(a), "B": _name(b)}
        self.records.clear()
        self.query_one("#compare-table", DataTable).clear()
        for side in ("a", "b"):
            self.query_one(f"#graph-{side}", BufferGraph).show(None)
        self._run(sides)

    @work(exclusive=True, group="compare", exit_on_error=False)
    async def _run(self, sides: dict[str, Settings]) -> None:
        for side, settings in sides.items():
            self._status(f"playing {side}: {self.names[side]}…")
            try:
                record = self.session.start_play(self.text, settings, label=side)
            except (SessionError, SettingsError) as exc:
                self._status(f"{side} could not start: {exc}", error=True)
                return
            self.records[side] = record
            done = self._done.setdefault(record.number, asyncio.Event())
            await done.wait()
        chosen = [f"{side}: {r.metrics.auto_format}" for side, r in self.records.items()
                  if r.metrics is not None and r.metrics.auto_format]  # what --format auto chose, and why
        self._status(" · ".join(["done: w saves the results as JSON and Markdown", *chosen]))

    def _on_event(self, event: events.Event) -> None:
        if not isinstance(event, events.PlayProgress | events.PlayFinished):
            return
        record = event.record
        if record not in self.records.values():
            return
        if isinstance(event, events.PlayFinished):
            self._done.setdefault(record.number, asyncio.Event()).set()
        self.redraw()

    def redraw(self) -> None:
        """Both graphs on the same scales, and the table once both sides have metrics."""
        self._label_graphs(played_only=True)
        traces = {side: r.trace for side, r in self.records.items()}
        x_max = max((t.duration_ms for t in traces.values()), default=0.0) / 1000.0 or None
        y_max = max((t.peak_ms for t in traces.values()), default=0.0) * 1.15 or None
        for side in ("A", "B"):
            graph = self.query_one(f"#graph-{side.lower()}", BufferGraph)
            graph.show(traces.get(side), x_max_s=x_max, y_max_ms=y_max)
        a, b = self.records.get("A"), self.records.get("B")
        if a is not None and b is not None and a.metrics is not None and b.metrics is not None:
            self.show_table(a.metrics, b.metrics)

    def show_table(self, a: PlayMetrics, b: PlayMetrics) -> None:
        table = self.query_one("#compare-table", DataTable)
        table.clear()
        ra, rb = self.records.get("A"), self.records.get("B")
        for row in compare_rows(a, b):  # the results first: what a listener meets
            label, va, vb, diff, better = row.cells()
            style = "bold green" if better in ("A", "B") else "dim"
            table.add_row(label, _mark(va, better == "A"), _mark(vb, better == "B"), diff, Text(better, style=style))
        if ra is not None and rb is not None:  # then what each side used, so that "better" reads right
            for label, va, vb in setup_rows(ra.settings, rb.settings):
                same = va == vb
                table.add_row(Text(label, style="italic"), va, vb, "" if same else "differs",
                              Text("=" if same else "", style="dim"))
            if a.auto_format or b.auto_format:  # what auto chose (why: in the status line, once both have played)
                table.add_row(Text("auto chose", style="italic"), a.format if a.auto_format else "",
                              b.format if b.auto_format else "", "", "")
        for side, m in (("A", a), ("B", b)):
            if m.error:
                self._status(f"{side} failed: {m.error}", error=True)

    def show_results(self, names: dict[str, str], a: RunRecord, b: RunRecord) -> None:
        """Show finished runs (pushed in by tests and the screenshot scenes)."""
        self.names = dict(names)
        self.records = {"A": a, "B": b}
        self.redraw()

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        a, b = self.records.get("A"), self.records.get("B")
        if a is None or b is None or a.metrics is None or b.metrics is None:
            self._status("nothing to save yet: run A and B first (r)", error=True)
            return
        settings: dict[str, Any] = {side: r.summary() for side, r in self.records.items()}
        data, markdown = report(self.names["A"], self.names["B"], a.metrics, b.metrics, a.text, settings,
                                setup_rows(a.settings, b.settings))
        try:
            folder = self.session.config.save_dir / "compare-results"
            json_path, md_path = save_report(folder, "compare", data, markdown)
        except OSError as exc:
            self._status(f"could not save: {exc}", error=True)
            return
        self._status(f"saved {json_path} and {md_path.name}")

    def _status(self, text: str, error: bool = False) -> None:
        status = self.query_one("#compare-status", Static)
        status.update(Text(text, style="bold red" if error else ""))


def used_text(s: Settings, *, with_format: bool = True) -> str:
    player = "voicemode 9.0" if s.player == "voicemode" else f"engine, {s.playout}"
    return (f"{s.audio_format}, " if with_format else "") + f"{s.buffer_ms} ms, chunk {s.chunk_size} B, {player}"


def _name(choice: str) -> str:
    kind, _, ref = choice.partition(":")
    if kind == "player":
        return "voicemode 9.0" if ref == "voicemode" else "this engine"
    return ref if kind == "format" else f"preset {Path(ref).stem}"


def _mark(value: str, better: bool) -> Text:
    return Text(value, style="bold green" if better else "")
