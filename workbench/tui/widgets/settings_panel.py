"""The settings panel: voicemode's stream settings, format, voice, endpoint and network.

Every field is checked as it is typed by the engine's own parser for that variable (so the TUI and
the `.env` files accept exactly the same values), with the allowed range shown under it. A typed value
applies when it is confirmed (Enter, or leaving the field), never in passing: typing "-5" over "150"
does not play a 1 ms buffer on the way. A refused value leaves the last good one in use, and says so.
The app owns the settings; the panel keeps only what each field last applied.
"""

from __future__ import annotations

from typing import Any

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select, Switch

from ...engine.fetching.network import PROFILES
from ...engine.settings import FORMATS, LOCAL, SPEC_BY_ATTR, Settings, SettingsError, format_value
from ...server.speech import VOICE_MAP
from ..state import STREAM_FIELDS, StreamValues

# (attribute, label, placeholder) of the free-text fields, in the order shown; only a field that may be
# left blank has a placeholder (a grey "150" in an empty field would read as a value in use)
INPUTS = (
    ("buffer_ms", "Initial buffer (ms)", ""),
    ("chunk_size", "Chunk size (bytes)", ""),
    ("max_buffer_s", "Max buffer (s)", ""),
    ("trailing_silence_s", "Trailing silence (s)", ""),
    ("voice", "Voice", ""),
    ("model", "Model", ""),
    ("speed", "Speed", "blank: the server's default"),
    ("endpoint", "Endpoint", "blank: local"),
)
HINTS = {
    "buffer_ms": "VOICEMODE_STREAM_BUFFER_MS: 0 to 10000; elastic playout grows to it, fixed waits for it",
    "chunk_size": "VOICEMODE_STREAM_CHUNK_SIZE: even, 256 to 1048576",
    "max_buffer_s": "VOICEMODE_STREAM_MAX_BUFFER: 0.05 to 600",
    "trailing_silence_s": "0 to 10", "voice": "embedded: alloy, nova, … test-signal", "model": "any model name",
    "speed": "0.25 to 4.0, blank: server's", "endpoint": "'local' (embedded) or http(s)://…/v1",
}
CONFIRM = "Enter or leaving the field applies it"
AUTO_LABEL = "auto (pcm or mp3, per reply)"  # WORKBENCH_AUTO_FORMAT
# the Channels list: (label, value); a value is "mono", "stereo", or where a mono voice is placed (WORKBENCH_PAN)
CHANNELS = (("mono", "mono"), ("stereo: a stream's own channels", "stereo"), ("voice placed left", "-1"),
            ("voice half left", "-0.5"), ("voice centre (stereo)", "0"), ("voice half right", "0.5"),
            ("voice placed right", "1"))


def channels_choice(settings: Settings) -> str:
    """The Channels list's value for these settings (a pan not on the list is added to it by `load`)."""
    if settings.pan is not None:
        return format_value(settings.pan)
    return settings.channels


def channels_setting(value: str) -> tuple[str, float | None]:
    """(WORKBENCH_CHANNELS, WORKBENCH_PAN) for a value of the Channels list."""
    if value in ("mono", "stereo"):
        return value, None
    return "stereo", float(value)


def _spec_attr(attr: str) -> str:
    return {"voice": "voices", "model": "models", "endpoint": "base_urls"}.get(attr, attr)


class SpecValidator(Validator):
    """Validates with the engine's parser for the variable behind a field."""

    def __init__(self, attr: str) -> None:
        self.spec = SPEC_BY_ATTR[_spec_attr(attr)]
        super().__init__(failure_description=f"allowed: {self.spec.allowed}")

    def validate(self, value: str) -> ValidationResult:
        try:
            self.spec.convert(value)
        except SettingsError:
            return self.failure()
        return self.success()


class SettingsPanel(VerticalScroll):
    """Emits `Edited` for every valid change; invalid text is marked and never applied."""

    DEFAULT_CSS = """
    SettingsPanel { width: 44; padding: 0 1; }
    SettingsPanel .field-label { text-style: bold; }
    SettingsPanel .hint { color: $text-muted; width: 100%; height: auto; }
    SettingsPanel .hint.-pending { color: $warning; }
    SettingsPanel .hint.-invalid { color: $error; }
    SettingsPanel Input, SettingsPanel Select { width: 100%; }
    """

    class Edited(Message):
        def __init__(self, field: str, value: Any, typed: bool = True) -> None:
            super().__init__()
            self.field = field  # attribute name ("buffer_ms", "audio_format", "voice", "endpoint", ...)
            self.value = value
            self.typed = typed  # the user's edit (False: the app put the value there, and says so itself)

    _loaded = False  # edits are reported once `load` has shown the settings

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.applied: dict[str, str] = {}  # each text field's last applied (valid) text

    def compose(self) -> ComposeResult:
        yield Label("Format", classes="field-label")
        yield Select([*((f, f) for f in FORMATS), (AUTO_LABEL, "auto")], value="pcm", allow_blank=False,
                     id="audio_format")
        yield Label("each format keeps its own initial buffer, chunk size and max buffer", classes="hint")
        yield Label("Streaming", classes="field-label")
        yield Switch(value=True, id="streaming_enabled")
        yield Label("Playout", classes="field-label")
        yield Select([("elastic (start after 20-30 ms)", "elastic"), ("fixed (wait for the buffer)", "fixed")],
                     value="elastic", allow_blank=False, id="playout")
        yield Label("Player", classes="field-label")
        yield Select([("workbench (this engine)", "workbench"), ("voicemode 9.0 (as it plays today)", "voicemode")],
                     value="workbench", allow_blank=False, id="player")
        yield Label("Split into sentences", classes="field-label")
        yield Select([("auto (if the endpoint does not stream)", "auto"), ("sentence (always)", "sentence"),
                      ("off (one request)", "off")], value="auto", allow_blank=False, id="split")
        for attr, label, placeholder in INPUTS:
            yield Label(label, classes="field-label")
            suggester = SuggestFromList(sorted(VOICE_MAP)) if attr == "voice" else None
            # plain text, so that a mistyped "abc" shows, with the reason it is refused, instead of vanishing
            yield Input(placeholder=placeholder, id=attr, validators=[SpecValidator(attr)],
                        valid_empty=attr == "speed", suggester=suggester, select_on_focus=False)
            yield Label(HINTS[attr], classes="hint", id=f"{attr}-hint")
        yield Label("Network", classes="field-label")
        yield Select([(f"{name}", name) for name in PROFILES], value="none", allow_blank=False, id="network")
        yield Label("simulated between engine and endpoint", classes="hint", id="network-hint")
        yield Label("Reply cache", classes="field-label")
        yield Switch(value=False, id="use_cache")
        yield Label("on: a text played before comes from disk (this session)", classes="hint")
        yield Label("Channels", classes="field-label")
        yield Select(CHANNELS, value="mono", allow_blank=False, id="layout")
        yield Label("a placed voice keeps its loudness (constant power)", classes="hint")

    def load(self, settings: Settings, stream: StreamValues) -> None:
        """Show `settings` (with the current format's stream values) without emitting edits."""
        self._loaded = True
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            self.query_one("#audio_format", Select).value = "auto" if settings.auto_format else settings.audio_format
            self.query_one("#streaming_enabled", Switch).value = settings.streaming_enabled
            self.query_one("#playout", Select).value = settings.playout
            self.query_one("#split", Select).value = settings.split
            self.query_one("#player", Select).value = settings.player
            self.query_one("#network", Select).value = settings.network
            layout = self.query_one("#layout", Select)
            choice = channels_choice(settings)
            if choice not in {value for _, value in CHANNELS}:  # a pan set in a file, between the list's places
                layout.set_options([*CHANNELS, (f"voice placed at {settings.pan:+.2f}", choice)])
            layout.value = choice
            values = {
                "buffer_ms": str(stream.buffer_ms), "chunk_size": str(stream.chunk_size),
                "max_buffer_s": format_value(stream.max_buffer_s),
                "trailing_silence_s": format_value(settings.trailing_silence_s),
                "voice": settings.voice, "model": settings.model,
                "speed": "" if settings.speed is None else format_value(settings.speed),
                "endpoint": settings.base_url,
            }
            for attr, text in values.items():
                self.query_one(f"#{attr}", Input).value = text
                self.applied[attr] = text
                self._mark(attr, True)
        self._describe_network(settings.network)

    def load_stream(self, stream: StreamValues) -> None:
        values = {"buffer_ms": str(stream.buffer_ms), "chunk_size": str(stream.chunk_size),
                  "max_buffer_s": format_value(stream.max_buffer_s)}
        with self.prevent(Input.Changed):
            for attr, text in values.items():
                self.query_one(f"#{attr}", Input).value = text
                self.applied[attr] = text
        for attr in STREAM_FIELDS:
            self._mark(attr, True)

    def set_value(self, attr: str, text: str) -> None:
        """Put a value in a field and apply it (tune's result, the recommended buffer)."""
        with self.prevent(Input.Changed):
            self.query_one(f"#{attr}", Input).value = text
        self._apply(attr, text, typed=False)

    def refused(self, attr: str, why: str) -> None:
        """The app refused an edit this panel passed (it did not fit with the other settings); the field
        has been put back to the value in use, and its hint says why."""
        if attr in self.applied:
            self._mark(attr, False, f"{why}; {self._in_use(attr)}")

    def _mark(self, attr: str, valid: bool, why: str = "", pending: bool = False) -> None:
        hint = self.query_one(f"#{attr}-hint", Label)
        hint.set_class(not valid, "-invalid")
        hint.set_class(valid and pending, "-pending")
        if not valid:
            text = why or HINTS[attr]
        elif pending:
            text = f"{HINTS[attr]} · {CONFIRM}"
        else:
            text = HINTS[attr]
        hint.update(text)

    def _describe_network(self, name: str) -> None:
        profile = PROFILES.get(name)
        text = profile.description if profile and profile.shaped else "simulated between engine and endpoint"
        self.query_one("#network-hint", Label).update(text)

    def _refusal(self, attr: str, raw: str) -> str | None:
        """Why `raw` cannot be applied to `attr`, or None when it can."""
        try:
            self._convert(attr, raw)
        except SettingsError as exc:
            return str(exc).split(" is not valid; ", 1)[-1]
        return None

    @staticmethod
    def _convert(attr: str, raw: str) -> Any:
        raw = raw.strip()
        if attr == "endpoint":
            return raw or LOCAL
        if attr in ("voice", "model"):
            if not raw:
                raise SettingsError("must not be empty")
            return raw
        return SPEC_BY_ATTR[_spec_attr(attr)].convert(raw)

    def _in_use(self, attr: str) -> str:
        kept = self.applied.get(attr, "")
        return f"{kept!r} stays in use" if kept else "the server's default stays in use"

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        """Check as it is typed; nothing is applied yet."""
        event.stop()
        attr = event.input.id or ""
        if attr not in self.applied and not self._loaded:
            return
        why = self._refusal(attr, event.value)
        if why is not None:
            self._mark(attr, False, f"{why}; {self._in_use(attr)}")
        else:
            self._mark(attr, True, pending=event.value != self.applied.get(attr))

    @on(Input.Submitted)
    def _input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._apply(event.input.id or "", event.value)

    @on(Input.Blurred)
    def _input_left(self, event: Input.Blurred) -> None:
        """Leaving a field applies what it shows; a refused value is put back to the one in use."""
        event.stop()
        attr = event.input.id or ""
        if attr not in self.applied:
            return
        if self._refusal(attr, event.value) is not None:
            kept = self.applied[attr]
            refused = event.value
            with self.prevent(Input.Changed):
                event.input.value = kept
            self._mark(attr, False, f"{refused!r} refused ({self._refusal(attr, refused)}); "
                                    f"{self._in_use(attr)}")
            return
        self._apply(attr, event.value)

    def _apply(self, attr: str, text: str, typed: bool = True) -> None:
        why = self._refusal(attr, text)
        if why is not None:
            self._mark(attr, False, f"{why}; {self._in_use(attr)}")
            return
        if text == self.applied.get(attr):  # nothing new: a refusal said under it stays until the next edit
            if self.query_one(f"#{attr}-hint", Label).has_class("-pending"):
                self._mark(attr, True)
            return
        self._mark(attr, True)
        self.applied[attr] = text
        self.post_message(self.Edited(attr, self._convert(attr, text), typed))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        # a select's first Changed (for the value it was composed with) comes before `load`: reported, it
        # would put that default back in place of the configured value (`--network 4g` opened on none)
        if not self._loaded:
            return
        value: Any = event.select.value
        if event.select.id == "network":
            self._describe_network(str(value))
        if event.select.id == "layout":
            value = channels_setting(str(value))
        self.post_message(self.Edited(event.select.id or "", value))

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.Edited(event.switch.id or "", event.value))
