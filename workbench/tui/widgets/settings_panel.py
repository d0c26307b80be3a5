"""The settings panel: voicemode's stream settings, format, voice, endpoint and network.

Every field is validated as it is typed by the engine's own parser for that variable (so the TUI and
the `.env` files accept exactly the same values), with the allowed range shown under it. The panel
keeps no state of its own beyond its widgets; the app owns the settings.
"""

from __future__ import annotations

from typing import Any, Literal

from textual import on
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.validation import ValidationResult, Validator
from textual.widgets import Input, Label, Select, Switch

from ...engine.network import PROFILES
from ...engine.settings import FORMATS, LOCAL, SPEC_BY_ATTR, Settings, SettingsError, format_value
from ...server.speech import VOICE_MAP
from ..state import STREAM_FIELDS, StreamValues

# (attribute, label, placeholder) of the free-text fields, in the order shown
INPUTS = (
    ("buffer_ms", "Buffer (ms)", "150"),
    ("chunk_size", "Chunk size (bytes)", "4096"),
    ("max_buffer_s", "Max buffer (s)", "2.0"),
    ("trailing_silence_s", "Trailing silence (s)", "0.5"),
    ("voice", "Voice", "alloy"),
    ("model", "Model", "tts-1"),
    ("speed", "Speed", "server default"),
    ("endpoint", "Endpoint", "local"),
)
HINTS = {
    "buffer_ms": "elastic: grown to; fixed: waited for", "chunk_size": "even, 256 to 1048576",
    "max_buffer_s": "0.05 to 600",
    "trailing_silence_s": "0 to 10", "voice": "embedded: alloy, nova, … test-signal", "model": "any model name",
    "speed": "0.25 to 4.0, blank: server's", "endpoint": "'local' (embedded) or http(s)://…/v1",
}


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
    SettingsPanel .hint { color: $text-muted; }
    SettingsPanel .hint.-invalid { color: $error; }
    SettingsPanel Input, SettingsPanel Select { width: 100%; }
    """

    class Edited(Message):
        def __init__(self, field: str, value: Any) -> None:
            super().__init__()
            self.field = field  # attribute name ("buffer_ms", "audio_format", "voice", "endpoint", ...)
            self.value = value

    _loaded = False  # edits are reported once `load` has shown the settings

    def compose(self) -> ComposeResult:
        yield Label("Format", classes="field-label")
        yield Select([(f, f) for f in FORMATS], value="pcm", allow_blank=False, id="audio_format")
        yield Label("buffer, chunk, max kept per format", classes="hint")
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
            kind: Literal["integer", "text"] = "integer" if attr in ("buffer_ms", "chunk_size") else "text"
            suggester = SuggestFromList(sorted(VOICE_MAP)) if attr == "voice" else None
            yield Input(placeholder=placeholder, id=attr, type=kind, validators=[SpecValidator(attr)],
                        valid_empty=attr == "speed", suggester=suggester, select_on_focus=False)
            yield Label(HINTS[attr], classes="hint", id=f"{attr}-hint")
        yield Label("Network", classes="field-label")
        yield Select([(f"{name}", name) for name in PROFILES], value="none", allow_blank=False, id="network")
        yield Label("simulated between engine and endpoint", classes="hint", id="network-hint")

    def load(self, settings: Settings, stream: StreamValues) -> None:
        """Show `settings` (with the current format's stream values) without emitting edits."""
        self._loaded = True
        with self.prevent(Input.Changed, Select.Changed, Switch.Changed):
            self.query_one("#audio_format", Select).value = settings.audio_format
            self.query_one("#streaming_enabled", Switch).value = settings.streaming_enabled
            self.query_one("#playout", Select).value = settings.playout
            self.query_one("#split", Select).value = settings.split
            self.query_one("#player", Select).value = settings.player
            self.query_one("#network", Select).value = settings.network
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
                self._mark(attr, True)
        self._describe_network(settings.network)

    def load_stream(self, stream: StreamValues) -> None:
        with self.prevent(Input.Changed):
            self.query_one("#buffer_ms", Input).value = str(stream.buffer_ms)
            self.query_one("#chunk_size", Input).value = str(stream.chunk_size)
            self.query_one("#max_buffer_s", Input).value = format_value(stream.max_buffer_s)
        for attr in STREAM_FIELDS:
            self._mark(attr, True)

    def _mark(self, attr: str, valid: bool, why: str = "") -> None:
        hint = self.query_one(f"#{attr}-hint", Label)
        hint.set_class(not valid, "-invalid")
        hint.update(HINTS[attr] if valid else why or HINTS[attr])

    def _describe_network(self, name: str) -> None:
        profile = PROFILES.get(name)
        text = profile.description if profile and profile.shaped else "simulated between engine and endpoint"
        self.query_one("#network-hint", Label).update(text)

    @on(Input.Changed)
    def _input_changed(self, event: Input.Changed) -> None:
        event.stop()
        attr = event.input.id or ""
        result = event.validation_result
        if result is not None and not result.is_valid:
            self._mark(attr, False, "; ".join(result.failure_descriptions))
            return
        self._mark(attr, True)
        spec = SPEC_BY_ATTR[_spec_attr(attr)]
        raw = event.value.strip()
        if attr == "endpoint":
            value: Any = raw or LOCAL
        elif attr in ("voice", "model"):
            if not raw:
                self._mark(attr, False, "must not be empty")
                return
            value = raw
        else:
            value = spec.convert(raw)
        self.post_message(self.Edited(attr, value))

    @on(Select.Changed)
    def _select_changed(self, event: Select.Changed) -> None:
        event.stop()
        # a select's first Changed (for the value it was composed with) comes before `load`: reported, it
        # would put that default back in place of the configured value (`--network 4g` opened on none)
        if not self._loaded:
            return
        value = event.select.value
        if event.select.id == "network":
            self._describe_network(str(value))
        self.post_message(self.Edited(event.select.id or "", value))

    @on(Switch.Changed)
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        self.post_message(self.Edited("streaming_enabled", event.value))
