"""voicemode, watched: the reply it is speaking now on the same graph as a local play, the replies it
spoke recently with their figures, and the bridge turned on or off (`workbench voicemode ...`).

What it shows comes from the files the bridge writes in voicemode's process (`bridge.publish`): read
five times a second, only while this screen is open.
"""

from __future__ import annotations

import time
from pathlib import Path

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.screen import Screen
from textual.widgets import Button, DataTable, Header, Static

from ...bridge.publish import ReplyFigures, folder, read_live, read_replies
from ...engine.figures.metrics import PlayState, Snapshot
from ...usecases import bridge
from ...usecases.presets import voicemode_env_path
from ..state import Trace
from ..widgets.buffer_graph import BufferGraph
from ..widgets.footer import FittingFooter

POLL_S = 0.2
SHOWN = 30  # replies in the table
ADVICE_OF = 10  # the advice looks at this many recent replies


def snapshot(f: ReplyFigures) -> Snapshot:
    """A bridge reply's live figures as the graph's trace takes them."""
    state = PlayState.PAUSED if f.paused else PlayState.UNDERRUN if f.level_ms <= 0 and f.played_ms > 0 \
        else PlayState.PLAYING
    return Snapshot(t_ms=f.elapsed_ms, state=state, level_ms=f.level_ms, target_ms=f.target_ms,
                    initial_buffer_ms=f.buffer_target_ms, max_buffer_ms=f.max_buffer_ms, received_ms=f.received_ms,
                    played_ms=f.played_ms, bytes=0, underruns=f.underruns, underrun_ms=f.underrun_ms,
                    device_underflows=f.device_underflows, ttfa_ms=None, format=f.format, rate=f.rate,
                    playout=f.playout, sink="device")


def advice(replies: list[ReplyFigures]) -> tuple[str, float | None]:
    """What the recent replies say about VOICEMODE_STREAM_BUFFER_MS, in one sentence, and the value they
    call for (None: keep it)."""
    recent = [r for r in replies[-ADVICE_OF:] if r.state == "done"]
    if not recent:
        return "no finished replies yet: speak through voicemode with the bridge on", None
    target = recent[-1].buffer_target_ms
    short = [r for r in recent if r.underruns]
    if short:
        worst = max(r.underrun_ms for r in short)
        better = float(-(-(target + worst) // 10) * 10)  # rounded up to 10 ms
        return (f"{len(short)} of the last {len(recent)} replies ran dry ({worst:.0f} ms at worst): a "
                f"VOICEMODE_STREAM_BUFFER_MS of {better:.0f} (now {target:.0f}) would have covered it; a applies it "
                "to voicemode.env", better)
    lows = [r.min_buffer_ms for r in recent if r.min_buffer_ms is not None]
    spare = min(lows) if lows else 0.0
    if spare > 100 and target > 50:
        return (f"the last {len(recent)} replies never ran dry and always kept {spare:.0f} ms in hand: a smaller "
                f"VOICEMODE_STREAM_BUFFER_MS (now {target:.0f}) would start no later and may be enough", None)
    return f"the last {len(recent)} replies never ran dry with VOICEMODE_STREAM_BUFFER_MS={target:.0f}", None


class VoicemodeScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("o", "toggle_bridge", "Bridge on/off"),
        Binding("a", "apply_advice", "Apply the advice"),
    ]
    DEFAULT_CSS = """
    VoicemodeScreen #vm-status { padding: 0 1; height: auto; max-height: 3; }
    VoicemodeScreen #vm-controls { height: auto; }
    VoicemodeScreen #vm-controls Button { margin-left: 1; min-width: 12; }
    VoicemodeScreen BufferGraph { border: round $primary 50%; min-height: 6; height: 1fr; }
    VoicemodeScreen #vm-replies { height: 1fr; min-height: 5; border: round $primary 50%; }
    VoicemodeScreen #vm-advice { padding: 0 1; height: auto; color: $text-muted; }
    """

    def __init__(self, where: Path | None = None, *, poll: bool = True, voicemode_env: Path | None = None) -> None:
        super().__init__()
        self.where = where or folder()
        self.voicemode_env = voicemode_env or voicemode_env_path()
        self.advised: float | None = None
        self.poll = poll
        self.trace = Trace()
        self.live_pid: tuple[int, float] | None = None  # which reply the trace is of
        self.shown_replies = -1
        self.status: bridge.Status | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("looking for voicemode…", id="vm-status")
        with Horizontal(id="vm-controls"):
            yield Button("Turn the bridge on", id="vm-toggle", variant="primary", disabled=True)
        graph = BufferGraph("voicemode, speaking now", id="vm-graph")
        graph.border_title = "voicemode, speaking now (through the bridge)"
        yield graph
        table: DataTable[str] = DataTable(id="vm-replies", cursor_type="row", zebra_stripes=True)
        table.border_title = "voicemode's recent replies"
        yield table
        yield Static("", id="vm-advice")
        yield FittingFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        table = self.query_one("#vm-replies", DataTable)
        table.add_columns("at", "format", "played", "first sound", "underruns", "paused", "stretch", "state")
        self.refresh_files()
        self.load_status()
        if self.poll:
            self.set_interval(POLL_S, self.refresh_files)

    # -- the files ------------------------------------------------------------------------------------------
    def refresh_files(self) -> None:
        live = read_live(self.where)
        if live is not None:
            key = (live.pid, live.at)
            if key != self.live_pid:
                self.trace, self.live_pid = Trace(), key
            last = self.trace.last
            if last is None or live.elapsed_ms > last.t_ms:  # a new point (the file is rewritten 5 times a second)
                self.trace.add(snapshot(live))
                self.query_one(BufferGraph).show(self.trace)
        replies = read_replies(self.where)
        if len(replies) != self.shown_replies:
            self.shown_replies = len(replies)
            self._fill(replies)

    def _fill(self, replies: list[ReplyFigures]) -> None:
        table = self.query_one("#vm-replies", DataTable)
        table.clear()
        for r in reversed(replies[-SHOWN:]):
            sound = "-" if r.first_write_to_sound_ms is None else f"{r.first_write_to_sound_ms:.0f} ms"
            stretch = f"+{r.stretch_added_ms:.0f}/-{r.stretch_removed_ms:.0f} ms" if r.playout == "elastic" else "-"
            table.add_row(time.strftime("%H:%M:%S", time.localtime(r.at)), r.format, f"{r.played_ms / 1000:.1f} s",
                          sound, f"{r.underruns} ({r.underrun_ms:.0f} ms)",
                          f"{r.paused_ms / 1000:.1f} s" if r.paused_ms else "-", stretch, r.state)
        text, self.advised = advice(replies)
        self.query_one("#vm-advice", Static).update(text)

    def action_apply_advice(self) -> None:
        """The buffer the replies call for, merged into voicemode.env (the diff first, a backup kept)."""
        if self.advised is None:
            self.app.notify("the recent replies call for no change", timeout=5)
            return
        from ...usecases.presets import parse_preset
        from .presets import ApplyScreen

        preset = parse_preset(f"VOICEMODE_STREAM_BUFFER_MS={self.advised:.0f}\n", name="from voicemode's replies")
        self.app.push_screen(ApplyScreen(preset, self.voicemode_env))

    # -- the bridge -----------------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="bridge")
    def load_status(self) -> None:
        try:
            st = bridge.status()
        except bridge.BridgeError as exc:
            self.app.call_from_thread(self._show_status, None, str(exc))
            return
        self.app.call_from_thread(self._show_status, st, None)

    def _show_status(self, st: bridge.Status | None, problem: str | None) -> None:
        self.status = st
        button = self.query_one("#vm-toggle", Button)
        if st is None or st.voicemode is None:
            why = problem or (st.problem if st else None) or "no voicemode found"
            self.query_one("#vm-status", Static).update(f"bridge off: {why}")
            button.disabled = True
            return
        vm = st.voicemode
        where = f"voicemode {vm.version} ({vm.found_by})"
        text = f"bridge {'on' if st.on else 'off'}: {where}"
        if st.on:
            text += f"; hook {st.pth}. Restart voicemode after turning it on or off."
        if st.problem:
            text += f"\n{st.problem}"
        self.query_one("#vm-status", Static).update(text)
        button.label = "Turn the bridge off" if st.on else "Turn the bridge on"
        button.disabled = False

    @on(Button.Pressed, "#vm-toggle")
    def action_toggle_bridge(self) -> None:
        st = self.status
        if st is None or st.voicemode is None:
            return
        self.query_one("#vm-toggle", Button).disabled = True
        self.query_one("#vm-status", Static).update("turning the bridge off…" if st.on else "turning the bridge on…")
        self._toggle(not st.on, st.voicemode.python)

    @work(thread=True, exclusive=True, group="bridge")
    def _toggle(self, on: bool, python: str) -> None:
        def say(text: str) -> None:
            self.app.call_from_thread(self.query_one("#vm-status", Static).update, text)

        try:
            if on:
                bridge.enable(python, progress=say)
            else:
                bridge.disable(python, progress=say)
        except bridge.BridgeError as exc:
            self.app.call_from_thread(self.app.notify, str(exc), severity="error", timeout=10)
        self.load_status()
