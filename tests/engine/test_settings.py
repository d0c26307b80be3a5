from pathlib import Path

import pytest

from workbench.engine.settings import (
    ElasticStart,
    PlayerKind,
    Playout,
    Settings,
    SettingsError,
    StreamFormat,
    load_settings,
)
from workbench.engine.text.split import Split


def test_defaults_match_voicemode() -> None:
    s = load_settings(environ={}, read_voicemode_files=False)
    assert s.streaming_enabled is True
    assert s.buffer_ms == 150
    assert s.chunk_size == 4096
    assert s.max_buffer_s == 2.0
    assert s.audio_format == "pcm"
    assert s.trailing_silence_s == 0.5
    assert s.voice == "af_sky" and s.model == "tts-1"
    assert s.speed is None
    assert s.uses_local_server  # nothing configured: the embedded server


def test_environment_values_are_typed() -> None:
    s = load_settings(environ={
        "VOICEMODE_STREAMING_ENABLED": "false", "VOICEMODE_STREAM_BUFFER_MS": "300",
        "VOICEMODE_STREAM_MAX_BUFFER": "3.5", "VOICEMODE_TTS_AUDIO_FORMAT": "WAV",
        "VOICEMODE_TTS_BASE_URLS": "http://a:1/v1, https://b/v1", "VOICEMODE_VOICES": "nova",
        "VOICEMODE_TTS_SPEED": "1.25", "WORKBENCH_SINK": "wav:/tmp/x.wav", "WORKBENCH_OUTPUT_DEVICE": "3",
    }, read_voicemode_files=False)
    assert s.streaming_enabled is False
    assert s.buffer_ms == 300 and s.max_buffer_s == 3.5
    assert s.audio_format == "wav"
    assert s.base_urls == ("http://a:1/v1", "https://b/v1") and s.base_url == "http://a:1/v1"
    assert s.voice == "nova" and s.speed == 1.25
    assert s.sink == "wav:/tmp/x.wav" and s.output_device == 3
    assert s.origins["buffer_ms"] == "environment"


@pytest.mark.parametrize(("name", "value", "allowed"), [
    ("VOICEMODE_STREAM_BUFFER_MS", "abc", "whole number"),
    ("VOICEMODE_STREAM_BUFFER_MS", "-5", "0 to 10000"),
    ("VOICEMODE_STREAM_CHUNK_SIZE", "4096 # comment", "bytes"),
    ("VOICEMODE_STREAMING_ENABLED", "maybe", "true or false"),
    ("VOICEMODE_TTS_AUDIO_FORMAT", "ogg", "pcm, wav, mp3, opus, aac, flac"),
    ("VOICEMODE_TTS_SPEED", "9", "0.25 to 4.0"),
    ("VOICEMODE_STREAM_MAX_BUFFER", "nan", "seconds"),
    ("VOICEMODE_TTS_BASE_URLS", "ftp://x", "URL"),
    ("WORKBENCH_SINK", "speaker", "device, virtual or wav:PATH"),
    ("WORKBENCH_BLOCK_SIZE", "1", "32 to 16384"),
])
def test_invalid_value_is_one_clear_line(name: str, value: str, allowed: str) -> None:
    with pytest.raises(SettingsError) as err:
        load_settings(environ={name: value}, read_voicemode_files=False)
    message = str(err.value)
    assert "\n" not in message
    assert name in message and repr(value) in message and allowed in message


def test_initial_buffer_must_fit_in_max_buffer() -> None:
    with pytest.raises(SettingsError, match="must fit"):
        load_settings(environ={"VOICEMODE_STREAM_BUFFER_MS": "3000"}, read_voicemode_files=False)


def test_precedence_project_global_env_preset_overrides(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".voicemode").mkdir(parents=True)
    (home / ".voicemode" / "voicemode.env").write_text("VOICEMODE_STREAM_BUFFER_MS=200\nVOICEMODE_VOICES=echo\n")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / ".voicemode.env").write_text(
        "VOICEMODE_STREAM_BUFFER_MS=100\nVOICEMODE_STREAM_CHUNK_SIZE=1024\nVOICEMODE_VOICES=onyx\n")
    preset = tmp_path / "p.env"
    preset.write_text("VOICEMODE_VOICES=nova\n")

    s = load_settings(environ={}, cwd=proj, home=home)
    assert s.buffer_ms == 200  # voicemode: the global file wins over the project file
    assert s.chunk_size == 1024  # only the project file sets it
    assert s.voice == "echo"

    s = load_settings(environ={"VOICEMODE_STREAM_BUFFER_MS": "50"}, cwd=proj, home=home)
    assert s.buffer_ms == 50  # a real environment variable beats any file

    s = load_settings(environ={"VOICEMODE_VOICES": "alloy"}, cwd=proj, home=home, preset=preset)
    assert s.voice == "nova"  # an explicit preset beats the environment
    assert s.origins["voices"] == str(preset)

    s = load_settings(environ={}, cwd=proj, home=home, preset=preset, overrides={"voices": ("fable",)})
    assert s.voice == "fable"


def test_malformed_voicemode_file_is_reported_with_its_path(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".voicemode").mkdir(parents=True)
    path = home / ".voicemode" / "voicemode.env"
    path.write_text("export VOICEMODE_STREAM_BUFFER_MS=200\n")
    with pytest.raises(SettingsError, match="export") as err:
        load_settings(environ={}, cwd=tmp_path, home=home)
    assert str(path) in str(err.value)


def test_missing_preset_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="no such file"):
        load_settings(environ={}, read_voicemode_files=False, preset=tmp_path / "nope.env")


def test_api_key_never_in_repr_or_env_export() -> None:
    s = load_settings(environ={"OPENAI_API_KEY": "sk-secret-123"}, read_voicemode_files=False)
    assert s.api_key == "sk-secret-123"
    assert "sk-secret" not in repr(s)
    assert "OPENAI_API_KEY" not in s.to_env(include_defaults=True)


def test_to_env_round_trips() -> None:
    s = Settings(buffer_ms=250, voices=("nova", "alloy"), streaming_enabled=False, max_buffer_s=3.0)
    env = s.to_env()
    assert env == {"VOICEMODE_STREAMING_ENABLED": "false", "VOICEMODE_STREAM_BUFFER_MS": "250",
                   "VOICEMODE_STREAM_MAX_BUFFER": "3", "VOICEMODE_VOICES": "nova,alloy"}
    again = load_settings(environ=env, read_voicemode_files=False)
    assert (again.buffer_ms, again.voices, again.streaming_enabled, again.max_buffer_s) == (
        250, ("nova", "alloy"), False, 3.0)


def test_the_elastic_start_is_steady_unless_asked_early() -> None:
    assert load_settings(environ={}, read_voicemode_files=False).elastic_start is ElasticStart.STEADY
    s = load_settings(environ={"WORKBENCH_ELASTIC_START": "early"}, read_voicemode_files=False)
    assert s.elastic_start is ElasticStart.EARLY and s.to_env()["WORKBENCH_ELASTIC_START"] == "early"
    with pytest.raises(SettingsError, match="WORKBENCH_ELASTIC_START='soon'.*steady, early"):
        load_settings(environ={"WORKBENCH_ELASTIC_START": "soon"}, read_voicemode_files=False)


def test_modes_are_enums_however_they_are_given() -> None:
    s = load_settings(environ={"WORKBENCH_PLAYOUT": "FIXED", "WORKBENCH_SPLIT": "off"}, read_voicemode_files=False,
                      overrides={"stream_format": "sse", "player": "voicemode"})
    assert (s.playout, s.split, s.stream_format, s.player) == (Playout.FIXED, Split.OFF, StreamFormat.SSE,
                                                               PlayerKind.VOICEMODE)
    assert all(type(v) is not str for v in (s.playout, s.split, s.stream_format, s.player))
    assert s.to_env()["WORKBENCH_PLAYOUT"] == "fixed" and f"{s.playout}" == "fixed"  # written as voicemode reads
    assert s.replace(playout="elastic").playout is Playout.ELASTIC
    with pytest.raises(SettingsError, match="playout='slow' is not one of elastic, fixed"):
        s.replace(playout="slow")
