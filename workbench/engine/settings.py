"""Typed settings, read from the environment and from voicemode-style `.env` files.

voicemode's variables keep voicemode's exact names and defaults; settings that only the workbench
knows use a `WORKBENCH_` prefix. Every value is validated on the way in, and an invalid one raises a
`SettingsError` whose message is one line naming the variable, the value and what is allowed.

Where a value comes from, lowest to highest precedence: defaults, voicemode's project file,
voicemode's global file (voicemode lets the global file win over the project file), the process
environment, a preset file given explicitly, and finally explicit overrides (command-line flags).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .decoding.formats import NAMES
from .decoding.layout import Layout
from .envfile import EnvFile, EnvFileError, read_env_file, voicemode_env_files
from .text.split import SPLITS, Split

FORMATS = NAMES  # the response formats, from the registry
CHANNEL_MODES = ("mono", "stereo")
NETWORKS = ("none", "lan", "wifi", "4g", "flaky", "satellite", "edge")  # see engine/fetching/network.py


class Playout(StrEnum):
    ELASTIC = "elastic"  # starts after a block and grows the buffer by playing slower (time-stretch)
    FIXED = "fixed"  # waits for the initial buffer, then plays at 1.0


class ElasticStart(StrEnum):
    STEADY = "steady"  # on a server not known to be fast: wait for ~130 ms in hand, the first words at tempo
    EARLY = "early"  # start after a block, and slow the first words down to grow the buffer


class StreamFormat(StrEnum):
    AUDIO = "audio"  # the response body is the audio
    SSE = "sse"  # server-sent events carrying base64 audio deltas (OpenAI's stream_format=sse)


class PlayerKind(StrEnum):
    WORKBENCH = "workbench"  # this engine
    VOICEMODE = "voicemode"  # voicemode 9.0's own playback, modelled


PLAYOUTS = tuple(Playout)
STREAM_FORMATS = tuple(StreamFormat)
PLAYERS = tuple(PlayerKind)
ELASTIC_STARTS = tuple(ElasticStart)
MODES: dict[str, type[StrEnum]] = {"playout": Playout, "stream_format": StreamFormat, "player": PlayerKind,
                                   "split": Split, "elastic_start": ElasticStart}
LOCAL = "local"  # the embedded server


class SettingsError(ValueError):
    """A setting has a value that is not allowed. `str()` is one line meant for the user."""


@dataclass(frozen=True)
class Spec:
    attr: str
    env: str
    parse: Callable[[str], Any]
    allowed: str
    doc: str

    def convert(self, raw: str, origin: str = "") -> Any:
        try:
            return self.parse(raw.strip())
        except (ValueError, TypeError) as exc:
            where = f" (from {origin})" if origin and origin != "environment" else ""
            detail = f": {exc}" if str(exc) and str(exc) != "invalid" else ""
            raise SettingsError(f"{self.env}={raw!r}{where} is not valid; allowed: {self.allowed}{detail}") from None


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("true", "1", "yes", "on"):
        return True
    if low in ("false", "0", "no", "off"):
        return False
    raise ValueError("invalid")


def _number(kind: Callable[[str], Any], raw: str) -> Any:
    try:
        return kind(raw)
    except ValueError:
        raise ValueError("invalid") from None


def _int_range(lo: int, hi: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = _number(int, raw)
        if not lo <= value <= hi:
            raise ValueError("invalid")
        return value

    return parse


def _even(parse: Callable[[str], int]) -> Callable[[str], int]:
    def even(raw: str) -> int:
        value = parse(raw)
        if value % 2:
            raise ValueError("invalid")
        return value

    return even


def _float_range(lo: float, hi: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = _number(float, raw)
        if not (lo <= value <= hi):  # also rejects nan
            raise ValueError("invalid")
        return value

    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    def wrapped(raw: str) -> Any:
        return None if raw == "" else parse(raw)

    return wrapped


def _choice(options: Iterable[str]) -> Callable[[str], str]:
    """One of `options` (a tuple of names, or an enum's members: its member is returned)."""
    opts = tuple(options)

    def parse(raw: str) -> str:
        low = raw.lower()
        for opt in opts:
            if low == opt:
                return opt
        raise ValueError("invalid")

    return parse


def _csv(raw: str) -> tuple[str, ...]:
    items = tuple(p.strip() for p in raw.split(",") if p.strip())
    if not items:
        raise ValueError("invalid")
    return items


def _urls(raw: str) -> tuple[str, ...]:
    items = _csv(raw)
    for item in items:
        if item != LOCAL and not item.startswith(("http://", "https://")):
            raise ValueError(f"{item!r} is not an http(s) URL")
    return items


def _sink(raw: str) -> str:
    low = raw.lower()
    if low in ("auto", "device", "virtual"):
        return low
    if raw.startswith("wav:") and len(raw) > 4:
        return raw
    raise ValueError("invalid")


def _device(raw: str) -> str | int:
    return int(raw) if raw.isdigit() else raw


SPECS: tuple[Spec, ...] = (
    Spec("streaming_enabled", "VOICEMODE_STREAMING_ENABLED", _bool, "true or false",
         "Play while downloading; false downloads the whole reply first."),
    Spec("buffer_ms", "VOICEMODE_STREAM_BUFFER_MS", _int_range(0, 10_000), "a whole number of ms, 0 to 10000",
         "Fixed playout: audio buffered before playback starts. Elastic playout: the buffer to grow to while "
         "playing (it starts once a block is in hand that it could slow down: 20 to 30 ms)."),
    # below 64 bytes a piece, handling each one costs more than PCM's pace allows (16 B: 8.8 s of wall
    # time for 5.7 s of audio; 3 B: 33 s); 256 leaves a margin for slower machines
    Spec("chunk_size", "VOICEMODE_STREAM_CHUNK_SIZE", _even(_int_range(256, 1_048_576)),
         "an even number of bytes, 256 to 1048576 (smaller pieces cost more CPU than real-time audio allows; "
         "voicemode plays each piece as 16-bit samples, so an odd size stops its PCM playback)",
         "Download chunk size in bytes."),
    Spec("max_buffer_s", "VOICEMODE_STREAM_MAX_BUFFER", _float_range(0.05, 600.0), "seconds, 0.05 to 600",
         "Most audio held in memory; the download waits when it is full."),
    Spec("audio_format", "VOICEMODE_TTS_AUDIO_FORMAT", _choice(FORMATS), ", ".join(FORMATS),
         "Response format asked of the endpoint."),
    Spec("base_urls", "VOICEMODE_TTS_BASE_URLS", _urls, "comma-separated http(s) URLs, or 'local'",
         "OpenAI-compatible endpoints; the first is used. Unset: the embedded server."),
    Spec("voices", "VOICEMODE_VOICES", _csv, "comma-separated voice names", "Voices; the first is used."),
    Spec("models", "VOICEMODE_TTS_MODELS", _csv, "comma-separated model names", "Models; the first is used."),
    Spec("speed", "VOICEMODE_TTS_SPEED", _optional(_float_range(0.25, 4.0)), "a number from 0.25 to 4.0",
         "Speaking speed; unset leaves it to the server."),
    Spec("trailing_silence_s", "VOICEMODE_TTS_TRAILING_SILENCE", _float_range(0.0, 10.0), "seconds, 0 to 10",
         "Silence played after the reply so its end is never cut."),
    Spec("api_key", "OPENAI_API_KEY", lambda raw: raw or None, "any text", "API key (never printed)."),
    Spec("pcm_rate", "WORKBENCH_PCM_RATE", _int_range(8_000, 192_000), "a sample rate in Hz, 8000 to 192000",
         "Sample rate of headerless PCM from the endpoint."),
    Spec("output_rate", "WORKBENCH_OUTPUT_RATE", _int_range(8_000, 192_000), "a sample rate in Hz, 8000 to 192000",
         "Sample rate the sink plays at; audio is resampled to it."),
    Spec("output_device", "WORKBENCH_OUTPUT_DEVICE", _optional(_device), "a device name or index",
         "PortAudio output device; unset is the system default."),
    Spec("block_size", "WORKBENCH_BLOCK_SIZE", _int_range(32, 16_384), "a whole number of frames, 32 to 16384",
         "Frames per audio callback."),
    Spec("sink", "WORKBENCH_SINK", _sink, "auto, device, virtual or wav:PATH",
         "Where audio goes; auto is the device when there is one, else the virtual sink."),
    Spec("network", "WORKBENCH_NETWORK", _choice(NETWORKS), ", ".join(NETWORKS),
         "Simulated network between the engine and the endpoint."),
    Spec("network_seed", "WORKBENCH_NETWORK_SEED", _int_range(0, 2**31 - 1), "a whole number",
         "Seed of the simulated network's randomness, so runs repeat."),
    Spec("metrics_log", "WORKBENCH_METRICS_LOG", _optional(str), "a file path",
         "Append each play's metrics as a JSON line to this file."),
    Spec("adaptive", "WORKBENCH_ADAPTIVE", _bool, "true or false",
         "Learn the buffer target from how late audio arrives; raise it after an underrun, carry it over."),
    Spec("max_retries", "WORKBENCH_MAX_RETRIES", _int_range(0, 10), "a whole number, 0 to 10",
         "Requests again after a dropped connection, a rate limit or a server error, resuming where the "
         "audio got to."),
    Spec("playout", "WORKBENCH_PLAYOUT", _choice(PLAYOUTS), ", ".join(PLAYOUTS),
         "elastic: start after 20 to 30 ms and grow the buffer by playing 8 % slower, slower still when "
         "near empty or stalled (pitch kept); "
         "fixed: wait for the whole initial buffer first."),
    Spec("slowest", "WORKBENCH_SLOWEST_RATE", _float_range(0.25, 0.92), "a rate from 0.25 to 0.92",
         "Elastic playout: the slowest it plays, about to run dry (0.5: half speed, pitch kept); pauses "
         "lengthened to grow the buffer play at 0.5 (at this, if it is faster)."),
    Spec("elastic_start", "WORKBENCH_ELASTIC_START", _choice(ELASTIC_STARTS), ", ".join(ELASTIC_STARTS),
         "Elastic playout, on a server not known to be twice as fast as real time: steady waits for about "
         "130 ms in hand so the first words play at their own tempo; early starts after a block and plays "
         "the first words slower instead (sooner by up to about 180 ms on a slow server)."),
    Spec("fastest", "WORKBENCH_FASTEST_RATE", _float_range(1.0, 1.5), "a rate from 1.0 to 1.5",
         "Elastic playout: giving back time added by slowing, pauses play at 1.25 or this, if faster; 1.0 "
         "gives nothing back (1.08)."),
    Spec("stream_format", "WORKBENCH_STREAM_FORMAT", _choice(STREAM_FORMATS), ", ".join(STREAM_FORMATS),
         "How the endpoint streams: audio (the bytes of the format) or sse (server-sent events of base64 audio, "
         "as OpenAI's newer models and Speaches do)."),
    Spec("player", "WORKBENCH_PLAYER", _choice(PLAYERS), ", ".join(PLAYERS),
         "Who plays: workbench (this engine) or voicemode (voicemode 9.0's own playback, modelled: what its "
         "users hear today)."),
    Spec("split", "WORKBENCH_SPLIT", _choice(SPLITS), ", ".join(SPLITS),
         "Ask for the reply a fragment at a time, the next while one plays: sentence always; auto when the "
         "endpoint turned out not to stream (the whole reply at once, late: remembered per endpoint); off never."),
    Spec("trim_leading_ms", "WORKBENCH_TRIM_LEADING_SILENCE", _int_range(0, 5_000),
         "a whole number of ms, 0 to 5000 (0: off)",
         "Skip up to this much of a reply's leading silence (below -50 dBFS), keeping the last 10 ms before "
         "the first sound; 0 plays the reply as it came."),
    Spec("latency_correction_ms", "WORKBENCH_LATENCY_CORRECTION_MS", _float_range(-500.0, 2000.0),
         "ms, -500 to 2000",
         "Added to the device's times (TTFA, first sound): what `workbench verify` measured beyond what "
         "PortAudio reports (stored by `workbench verify --save`)."),
    Spec("auto_format", "WORKBENCH_AUTO_FORMAT", _bool, "true or false",
         "Choose each reply's format from what the last ones measured of this endpoint and link: pcm where "
         "the link carries it with room, mp3 where it does not (--format auto; voicemode's own "
         "VOICEMODE_TTS_AUDIO_FORMAT is left as it is)."),
    Spec("cache", "WORKBENCH_CACHE", _bool, "true or false",
         "Play a reply heard before (same text, voice, model, speed, format, endpoint) from a local cache, "
         "with no request; store whole, clean replies there. The benchmarks and tune never use it."),
    Spec("cache_mb", "WORKBENCH_CACHE_MB", _float_range(1.0, 100_000.0), "megabytes, 1 to 100000",
         "The reply cache's bound on disk; past it, the replies played least recently go first."),
    Spec("channels", "WORKBENCH_CHANNELS", _choice(CHANNEL_MODES), ", ".join(CHANNEL_MODES),
         "Channels the sink plays: mono (the fast path; a stream's channels are averaged) or stereo (a stereo "
         "stream keeps its channels, a mono voice goes to both)."),
    Spec("pan", "WORKBENCH_PAN", _optional(_float_range(-1.0, 1.0)), "a number from -1 (left) to 1 (right)",
         "Place a mono voice between left (-1) and right (1) with constant-power gains; plays in stereo. "
         "Unset: not placed."),
    Spec("stall_timeout_s", "WORKBENCH_STALL_TIMEOUT_S", _float_range(0.5, 600.0), "seconds, 0.5 to 600",
         "Give up on a response when the server sends nothing for this long (it is asked again once)."),
)
SPEC_BY_ATTR = {s.attr: s for s in SPECS}
SPEC_BY_ENV = {s.env: s for s in SPECS}


@dataclass(frozen=True)
class Settings:
    streaming_enabled: bool = True
    buffer_ms: int = 150
    chunk_size: int = 4096
    max_buffer_s: float = 2.0
    audio_format: str = "pcm"
    base_urls: tuple[str, ...] | None = None  # None: the embedded server (voicemode's own default is Kokoro)
    voices: tuple[str, ...] = ("af_sky", "alloy")
    models: tuple[str, ...] = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
    speed: float | None = None
    trailing_silence_s: float = 0.5
    api_key: str | None = field(default=None, repr=False)
    pcm_rate: int = 24_000
    output_rate: int = 24_000
    output_device: str | int | None = None
    block_size: int = 480
    sink: str = "auto"
    network: str = "none"
    network_seed: int = 0
    metrics_log: str | None = None
    max_retries: int = 3
    stall_timeout_s: float = 10.0
    trim_leading_ms: int = 0
    stream_format: StreamFormat = StreamFormat.AUDIO
    split: Split = Split.AUTO
    player: PlayerKind = PlayerKind.WORKBENCH
    latency_correction_ms: float = 0.0
    adaptive: bool = True
    playout: Playout = Playout.ELASTIC
    elastic_start: ElasticStart = ElasticStart.STEADY
    slowest: float = 0.5
    fastest: float = 1.08
    cache: bool = True
    cache_mb: float = 100.0
    auto_format: bool = False
    channels: str = "mono"
    pan: float | None = None
    # where each non-default value came from, for display ("environment", a file path, "--format", ...)
    origins: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        for attr, mode in MODES.items():  # a mode given as its name (an override, a test) is kept as its member
            value = getattr(self, attr)
            if not isinstance(value, mode):
                try:
                    object.__setattr__(self, attr, mode(value))
                except ValueError:
                    raise SettingsError(f"{attr}={value!r} is not one of {', '.join(mode)}") from None
        if self.buffer_ms / 1000.0 > self.max_buffer_s:
            raise SettingsError(
                f"VOICEMODE_STREAM_BUFFER_MS={self.buffer_ms} is more than VOICEMODE_STREAM_MAX_BUFFER="
                f"{self.max_buffer_s:g} s; the initial buffer must fit in the maximum buffer"
            )

    @property
    def layout(self) -> Layout:
        """The channels asked of the sink: stereo when asked for, or when a voice is placed."""
        return Layout(2 if self.channels == "stereo" or self.pan is not None else 1, self.pan)

    @property
    def base_url(self) -> str:
        return self.base_urls[0] if self.base_urls else LOCAL

    @property
    def uses_local_server(self) -> bool:
        return self.base_url == LOCAL

    @property
    def voice(self) -> str:
        return self.voices[0]

    @property
    def model(self) -> str:
        return self.models[0]

    def replace(self, **changes: Any) -> Settings:
        origins = dict(self.origins)
        for key in changes:
            origins.setdefault(key, "override")
        return dataclasses.replace(self, origins=origins, **changes)

    def to_env(self, include_defaults: bool = False) -> dict[str, str]:
        """Settings as voicemode-style variables (never includes the API key)."""
        out: dict[str, str] = {}
        defaults = Settings()
        for spec in SPECS:
            if spec.attr == "api_key":
                continue
            value = getattr(self, spec.attr)
            if not include_defaults and value == getattr(defaults, spec.attr):
                continue
            if value is None:
                continue
            out[spec.env] = format_value(value)
        return out


def format_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def parse_overrides(values: Mapping[str, str], origin: str) -> dict[str, Any]:
    """Convert `{ENV_NAME: raw}` into `{attr: value}`; unknown names are ignored."""
    out: dict[str, Any] = {}
    for env, raw in values.items():
        spec = SPEC_BY_ENV.get(env)
        if spec is not None:
            out[spec.attr] = spec.convert(raw, origin)
    return out


def _from_env_file(env: EnvFile) -> dict[str, str]:
    if not env.ok:
        issue = next(i for i in env.issues if i.fatal)
        raise SettingsError(f"{env.path}: {issue}")
    return env.as_dict()


def preset_key_problems(values: Mapping[str, str], where: str) -> list[str]:
    """What makes these keys wrong for a preset: unknown names (typos) and a secret, which a preset must
    never carry (presets are shared). The same rules for `--preset` and `workbench preset validate`."""
    problems = [f"{where}: unknown setting {key} (a typo? see 'workbench settings')"
                for key in values if key not in SPEC_BY_ENV and " " not in key]  # 'export X': reported already
    if "OPENAI_API_KEY" in values:
        problems.append(f"{where}: a preset must not carry OPENAI_API_KEY")
    return problems


def load_settings(
    *,
    environ: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    home: Path | None = None,
    read_voicemode_files: bool = True,
    preset: Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build `Settings` from every source, in precedence order (see the module docstring).

    `overrides` maps attribute names to already-typed values (from command-line flags).
    """
    environ = os.environ if environ is None else environ
    layers: list[tuple[str, Mapping[str, str]]] = []
    if read_voicemode_files:
        own = workbench_env_path(home)  # the workbench's own file (a stored latency correction): lowest
        if own.is_file():
            layers.append((str(own), _from_env_file(_read(own))))
        files = voicemode_env_files(cwd or Path.cwd(), home or Path.home())
        # voicemode reads the global file first and never overwrites a key, so it wins: apply it last.
        for path in reversed(files):
            layers.append((str(path), _from_env_file(_read(path))))
    layers.append(("environment", {k: v for k, v in environ.items() if k in SPEC_BY_ENV}))
    if preset is not None:
        preset_values = _from_env_file(_read(preset))
        problems = preset_key_problems(preset_values, str(preset))
        if problems:
            raise SettingsError(problems[0])
        layers.append((str(preset), preset_values))

    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for origin, raw_values in layers:
        for attr, value in parse_overrides(raw_values, origin).items():
            values[attr] = value
            origins[attr] = origin
    for attr, value in (overrides or {}).items():
        if attr not in SPEC_BY_ATTR:
            raise KeyError(attr)
        values[attr] = value
        origins[attr] = "command line"
    return Settings(origins=origins, **values)


def workbench_env_path(home: Path | None = None) -> Path:
    """The workbench's own settings file: what only the workbench reads (voicemode's files are left to
    voicemode's keys)."""
    return (home or Path.home()) / ".config" / "stream-workbench" / "workbench.env"


def defaults(**overrides: Any) -> Settings:
    """The defaults with these values (attribute names, already typed): no environment, no files.
    For benchmarks and tests, whose figures must not depend on the machine's voicemode set-up."""
    return load_settings(environ={}, read_voicemode_files=False, overrides=overrides)


def _read(path: Path) -> EnvFile:
    try:
        return read_env_file(path)
    except EnvFileError as exc:
        raise SettingsError(str(exc)) from None
