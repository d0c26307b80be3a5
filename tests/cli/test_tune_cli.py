"""`workbench tune` from the command line: a tiny real run writes a preset voicemode can read."""

from __future__ import annotations

from pathlib import Path

from workbench.usecases.presets import load_preset

from .test_cli import assert_clean_error, run


def test_quick_tune_writes_a_valid_preset(tmp_path: Path) -> None:
    out = tmp_path / "tuned.env"
    result = run("tune", "--quick", "--repeats", "1", "--text", "one two", "--format", "mp3", "--network", "lan",
                 "--no-voicemode-env", "-o", str(out), timeout=240)
    assert result.returncode == 0, result.stderr
    preset = load_preset(out)
    assert preset.values["VOICEMODE_TTS_AUDIO_FORMAT"] == "mp3"
    assert f"initial buffer {preset.values['VOICEMODE_STREAM_BUFFER_MS']} ms" in result.stdout
    assert "tune: probe at 150 ms: play 1/1" in result.stderr  # progress
    assert "x real time; a slower TTS needs a larger buffer" in result.stderr  # what the result depends on


def test_tune_refuses_to_replace_a_file_before_playing(tmp_path: Path) -> None:
    out = tmp_path / "mine.env"
    out.write_text("VOICEMODE_STREAM_BUFFER_MS=999\n")
    assert_clean_error(run("tune", "--quick", "-o", str(out), timeout=60), 2, "already exists")
    assert out.read_text() == "VOICEMODE_STREAM_BUFFER_MS=999\n"  # nothing lost
    assert_clean_error(run("tune", "--repeats", "0", "-o", str(tmp_path / "x.env"), timeout=60), 2, "--repeats")
