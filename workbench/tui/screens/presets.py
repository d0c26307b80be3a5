"""Preset dialogs: export (save as .env), apply to voicemode (diff first, backup, atomic), load."""

from __future__ import annotations

from pathlib import Path

from rich.syntax import Syntax
from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from ...engine.settings import SettingsError
from ...usecases.presets import (
    ApplyPlan,
    Preset,
    PresetError,
    load_preset,
    plan_apply,
    save_preset,
    shipped_presets,
    voicemode_env_path,
    write_apply,
)
from ...usecases.voicemode import summary
from ..session import Session
from ..widgets.footer import FittingFooter

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > #dialog {{ width: 90; max-width: 96%; height: auto; max-height: 100%; border: thick $primary;
    background: $surface; padding: 0 1; }}
{name} .title {{ text-style: bold; margin-bottom: 1; }}
{name} .buttons {{ height: 3; margin-top: 1; }}
{name} .buttons Button {{ margin-right: 1; }}
{name} .status {{ margin-top: 1; height: auto; }}
{name} .status.-error {{ color: $error; text-style: bold; }}
{name} .status.-ok {{ color: $success; }}
{name} .note {{ color: $text-muted; width: 100%; }}
{name} Input {{ width: 100%; }}
"""


def _status(widget: Static, text: str, kind: str = "") -> None:
    widget.update(text)
    widget.set_class(kind == "error", "-error")
    widget.set_class(kind == "ok", "-ok")
    if text:  # on a small terminal the dialog scrolls: bring what was just said into view
        widget.call_after_refresh(widget.scroll_visible, animate=False)


class Dialog(ModalScreen[None]):
    """A dialog that fits the terminal from 80x24: it scrolls when it must, its longest part (`TALL_PART`)
    gives up rows first, and its own footer lists its keys."""

    BINDINGS = [Binding("f1", "app.help", "Help")]
    TALL_PART = ""  # the selector of the part that shrinks on a short terminal
    TALL_MAX = 14  # its height when there is room
    OTHER_ROWS = 20  # rows the rest of the dialog takes (with the footer)

    def fit(self) -> None:
        if self.TALL_PART:
            self.query_one(self.TALL_PART).styles.max_height = max(3, min(self.TALL_MAX, self.size.height -
                                                                              self.OTHER_ROWS))

    def on_resize(self) -> None:
        self.fit()


def env_text(text: str) -> Text:
    """A .env file with comments dimmed and keys in bold."""
    out = Text()
    for line in text.splitlines():
        if line.startswith("#"):
            out.append(line + "\n", style="dim italic")
        else:
            key, _, value = line.partition("=")
            out.append(key, style="bold")
            out.append("=")
            out.append(value + "\n", style="green")
    out.rstrip()
    return out


class ExportScreen(Dialog):
    """The current settings as a voicemode-readable .env: save it, or apply it to voicemode."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ExportScreen") + """
    ExportScreen #preset-text { height: auto; max-height: 14; border: round $primary 50%; padding: 0 1; }
    """
    TALL_PART = "#preset-text"
    OTHER_ROWS = 22

    def __init__(self, preset: Preset, save_dir: Path, voicemode_env: Path | None = None) -> None:
        super().__init__()
        self.preset = preset
        self.save_dir = save_dir
        self.voicemode_env = voicemode_env  # None: voicemode's own ~/.voicemode/voicemode.env
        self._overwrite: Path | None = None  # the existing file the next Save replaces (asked once)

    def compose(self) -> ComposeResult:
        default = self.save_dir / f"{self.preset.name}.env"
        with VerticalScroll(id="dialog"):
            yield Label("Export preset", classes="title")
            with VerticalScroll(id="preset-text"):
                yield Static(env_text(self.preset.text()))
            yield Label("Plain KEY=value lines, comments on their own lines: voicemode reads it as it is. "
                        + summary(list(self.preset.values)), classes="note", id="voicemode-notes")
            yield Label("Save as", classes="title")
            yield Input(str(default), id="path", select_on_focus=False)
            with Horizontal(classes="buttons"):
                yield Button("Save", id="save", variant="success")
                yield Button("Apply to voicemode…", id="apply", variant="warning")
                yield Button("Close", id="close")
            yield Static("", classes="status", id="status")
        yield FittingFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.fit()
        self.query_one("#save", Button).focus()

    @on(Button.Pressed, "#save")
    @on(Input.Submitted, "#path")
    def save(self) -> None:
        raw = self.query_one("#path", Input).value.strip()
        status = self.query_one("#status", Static)
        button = self.query_one("#save", Button)
        if not raw:
            _status(status, "give a file name to save to", "error")
            return
        path = Path(raw).expanduser()
        overwrite = self._overwrite == path  # asked once already, for this very file
        try:
            save_preset(self.preset, path, overwrite=overwrite)
        except (PresetError, OSError) as exc:
            if path.is_file() and not overwrite:  # it exists: the next Save (or Enter) replaces it
                self._overwrite = path
                button.label = "Overwrite"
                _status(status, f"{path} already exists: Overwrite replaces it, or give another name", "error")
                return
            _status(status, str(exc), "error")
            return
        self._overwrite = None
        button.label = "Save"
        _status(status, f"{'replaced' if overwrite else 'saved'} {path}", "ok")

    @on(Input.Changed, "#path")
    def _path_changed(self) -> None:
        """Another name: Save saves again, and never overwrites without asking."""
        self._overwrite = None
        self.query_one("#save", Button).label = "Save"

    @on(Button.Pressed, "#apply")
    def apply(self) -> None:
        target = self.voicemode_env or voicemode_env_path()
        self.app.push_screen(ApplyScreen(self.preset, target))

    @on(Button.Pressed, "#close")
    def close(self) -> None:
        self.dismiss()


class ApplyScreen(Dialog):
    """Merge a preset into voicemode's file: the diff first, then a backup and an atomic write."""

    BINDINGS = [Binding("escape", "dismiss", "Cancel")]
    DEFAULT_CSS = DIALOG_CSS.format(name="ApplyScreen") + """
    ApplyScreen #diff { height: auto; max-height: 18; border: round $primary 50%; padding: 0 1; }
    """
    TALL_PART = "#diff"
    TALL_MAX = 18
    OTHER_ROWS = 18

    def __init__(self, preset: Preset, target: Path) -> None:
        super().__init__()
        self.preset = preset
        self.target = target
        self.plan: ApplyPlan | None = None

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Label(f"Apply preset {self.preset.name} to voicemode", classes="title")
            yield Input(str(self.target), id="target", select_on_focus=False)
            with VerticalScroll(id="diff"):
                yield Static("", id="diff-text")
            yield Static("", classes="note", id="notes")
            with Horizontal(classes="buttons"):
                yield Button("Apply", id="do-apply", variant="warning")
                yield Button("Cancel", id="cancel")
            yield Static("", classes="status", id="status")
        yield FittingFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.fit()
        self.replan()
        self.query_one("#cancel", Button).focus()

    @on(Input.Submitted, "#target")
    def _target_changed(self) -> None:
        self.target = Path(self.query_one("#target", Input).value.strip()).expanduser()
        self.replan()

    def replan(self) -> None:
        status = self.query_one("#status", Static)
        apply_button = self.query_one("#do-apply", Button)
        diff = self.query_one("#diff-text", Static)
        notes = self.query_one("#notes", Static)
        _status(status, "")
        try:
            self.plan = plan_apply(self.preset, self.target)
        except PresetError as exc:
            self.plan = None
            diff.update("")
            notes.update("")
            _status(status, str(exc), "error")
            apply_button.disabled = True
            return
        plan = self.plan
        if plan.has_changes:
            diff.update(Syntax(plan.diff, "diff", theme="ansi_dark", background_color="default"))
        else:
            diff.update(Text("no changes: the file already has these values", style="italic"))
        lines = []
        if plan.skipped:
            lines.append(f"Left out (workbench only): {', '.join(plan.skipped)}.")
        lines.append("A backup is kept next to it; the file is written with mode 600."
                     if plan.exists else "The file does not exist yet; it will be created with mode 600.")
        lines.append("voicemode reads these settings at start: restart it to pick them up.")
        notes.update("\n".join(lines))
        apply_button.disabled = not plan.has_changes

    @on(Button.Pressed, "#do-apply")
    def do_apply(self) -> None:
        status = self.query_one("#status", Static)
        if self.plan is None:
            return
        try:
            backup = write_apply(self.plan)
        except (PresetError, OSError) as exc:
            _status(status, f"nothing was written: {exc}", "error")
            return
        where = f"; backup at {backup}" if backup else ""
        link = f" (a link: wrote {self.plan.real_target})" if self.plan.real_target else ""
        target = self.plan.target
        self.replan()  # the diff and the notes as the file is now
        _status(status, f"applied to {target}{link}{where}. Restart voicemode to pick it up.", "ok")
        self.query_one("#do-apply", Button).disabled = True
        self.query_one("#cancel", Button).label = "Close"

    @on(Button.Pressed, "#cancel")
    def cancel(self) -> None:
        self.dismiss()


class LoadPresetScreen(Dialog):
    """Pick a shipped preset, or give the path of any .env file."""

    BINDINGS = [Binding("escape", "dismiss", "Close")]
    DEFAULT_CSS = DIALOG_CSS.format(name="LoadPresetScreen") + """
    LoadPresetScreen OptionList { height: auto; max-height: 12; }
    """
    TALL_PART = "#shipped"
    TALL_MAX = 12
    OTHER_ROWS = 17

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.presets_dir = session.config.presets_dir

    def compose(self) -> ComposeResult:
        options = []
        for path in shipped_presets(self.presets_dir):
            try:
                about = load_preset(path).summary
            except PresetError as exc:
                about = f"(invalid: {exc})"
            options.append(Option(Text.assemble((path.stem, "bold"), "  ", (about, "dim")), id=str(path)))
        with VerticalScroll(id="dialog"):
            yield Label("Load preset", classes="title")
            yield OptionList(*options, id="shipped")
            yield Label("or a file", classes="title")
            yield Input(placeholder="path/to/preset.env", id="path")
            with Horizontal(classes="buttons"):
                yield Button("Load file", id="load", variant="success")
                yield Button("Close", id="close")
            yield Static("", classes="status", id="status")
        yield FittingFooter(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        self.fit()
        self.query_one("#shipped", OptionList).focus()

    @on(OptionList.OptionSelected)
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.load(Path(event.option.id or ""))

    @on(Button.Pressed, "#load")
    @on(Input.Submitted, "#path")
    def _load_file(self) -> None:
        raw = self.query_one("#path", Input).value.strip()
        if not raw:
            _status(self.query_one("#status", Static), "give the path of a .env file", "error")
            return
        self.load(Path(raw).expanduser())

    def load(self, path: Path) -> None:
        status = self.query_one("#status", Static)
        try:
            preset = load_preset(path)
            self.session.apply_preset(preset)
        except (PresetError, SettingsError) as exc:
            _status(status, str(exc), "error")
            return
        self.dismiss()

    @on(Button.Pressed, "#close")
    def close(self) -> None:
        self.dismiss()
