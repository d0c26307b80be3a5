"""The command line: real subprocesses for the user-facing paths (no traceback, right exit codes)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.server.runner import EmbeddedServer


def run(*args: str, env: dict[str, str] | None = None, stdin: str | None = None,
        timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "WORKBENCH_SINK": "virtual", **(env or {})}
    # no input: /dev/null, never the test runner's own standard input (play reads piped text)
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True,
                          env=full_env, input=stdin, timeout=timeout,
                          **({"stdin": subprocess.DEVNULL} if stdin is None else {}))


def assert_clean_error(result: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    for fragment in fragments:
        assert fragment in result.stderr, result.stderr


def test_help_lists_the_commands() -> None:
    result = run("--help")
    assert result.returncode == 0
    for command in ("play", "serve", "settings", "devices"):
        assert command in result.stdout


def test_play_json_on_the_embedded_server() -> None:
    result = run("play", "--json", "--voice", "test-signal", "--buffer-ms", "100", "one two three")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    assert metrics["format"] == "pcm" and metrics["state"] == "done"
    assert metrics["initial_buffer_ms"] == 100
    assert metrics["ttfa_ms"] > metrics["first_byte_ms"] > 0
    assert metrics["audio_ms"] > 900 and metrics["underruns"] == 0
    for key in ("ttfb_ms", "first_byte_ms", "buffer_ready_ms", "ttfa_ms", "underruns", "underrun_ms",
                "device_underflows", "avg_buffer_ms", "min_buffer_ms", "max_buffer_ms", "throughput_kbps",
                "arrival_rtf", "decode_ms_p95", "audio_ms", "bytes", "reconnects", "decoder_errors", "fallback"):
        assert key in metrics


def test_play_wav_from_stdin_records_to_a_file(tmp_path: Path) -> None:
    out = tmp_path / "played.wav"
    result = run("play", "--format", "wav", "--voice", "test-signal", "--record", str(out), "-q", "-",
                 stdin="one two")
    assert result.returncode == 0, result.stderr
    assert "TTFA" in result.stdout and "wav (streamed)" in result.stdout
    assert out.stat().st_size > 44 + 2 * 24_000 * 0.5


def test_play_with_a_preset_file(tmp_path: Path) -> None:
    preset = tmp_path / "lan.env"
    preset.write_text("# a preset\nVOICEMODE_STREAM_BUFFER_MS=80\nVOICEMODE_VOICES=test-signal\n")
    result = run("play", "--json", "--preset", str(preset), "one")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["initial_buffer_ms"] == 80


def test_play_wav_sink_writes_the_file(tmp_path: Path) -> None:
    out = tmp_path / "sink.wav"
    result = run("play", "--json", "--sink", f"wav:{out}", "--voice", "test-signal", "one")
    assert result.returncode == 0, result.stderr
    assert out.exists() and out.stat().st_size > 1000


def test_settings_shows_values_and_origins(tmp_path: Path) -> None:
    result = run("settings", "--json", "--buffer-ms", "250", env={"VOICEMODE_STREAM_CHUNK_SIZE": "1024",
                                                                  "OPENAI_API_KEY": "sk-hidden"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["VOICEMODE_STREAM_BUFFER_MS"] == {"value": "250", "from": "command line"}
    assert data["VOICEMODE_STREAM_CHUNK_SIZE"] == {"value": "1024", "from": "environment"}
    assert data["OPENAI_API_KEY"]["value"] == "(set)" and "sk-hidden" not in result.stdout


@pytest.mark.parametrize(("args", "env", "fragments"), [
    (["play", "--base-url", "http://127.0.0.1:9/v1", "hi"], {}, ["cannot reach http://127.0.0.1:9/v1"]),
    (["play", "--base-url", "ftp://x", "hi"], {}, ["is not an http(s) URL"]),
    (["play", "hi"], {"VOICEMODE_STREAM_BUFFER_MS": "lots"}, ["VOICEMODE_STREAM_BUFFER_MS='lots'", "allowed"]),
    (["play", "--voice", "nobody", "hi"], {}, ["answered 400", "Invalid value for 'voice'"]),
    (["play", "   "], {}, ["nothing to say"]),
    (["play", "--preset", "/no/such/file.env", "hi"], {}, ["no such file"]),
    (["play", "--buffer-ms", "5000", "hi"], {}, ["must fit in the maximum buffer"]),
    (["play", "--sink", "speakers", "hi"], {}, ["WORKBENCH_SINK", "device, virtual or wav:PATH"]),
])
def test_bad_input_is_one_clear_line_and_a_nonzero_exit(args: list[str], env: dict[str, str],
                                                        fragments: list[str]) -> None:
    result = run(*args, env=env)
    assert result.returncode in (1, 2)
    assert_clean_error(result, result.returncode, *fragments)
    assert result.stderr.count("workbench: error:") == 1


def test_unknown_format_is_an_argparse_error() -> None:
    result = run("play", "--format", "ogg", "hi")
    assert_clean_error(result, 2, "invalid choice: 'ogg'")


def test_server_error_message_is_shown(monkeypatch: pytest.MonkeyPatch) -> None:
    from workbench.server.app import Knobs

    with EmbeddedServer(knobs=Knobs(status=500)) as server:
        result = run("play", "--base-url", server.base_url, "hi")
    assert_clean_error(result, 1, "answered 500", "injected fault")


def test_missing_device_says_to_use_the_virtual_sink() -> None:
    result = run("play", "--sink", "device", "hi", env={"WORKBENCH_OUTPUT_DEVICE": "no-such-device-anywhere"})
    assert_clean_error(result, 1, "no output device", "--sink virtual")
    assert result.stdout == ""


def test_serve_rejects_a_port_in_use() -> None:
    with EmbeddedServer() as server:
        result = run("serve", "--port", str(server.port), timeout=20)
    assert_clean_error(result, 2, "cannot listen")


def test_bench_engine_tiny_run_writes_markdown_and_json(tmp_path: Path) -> None:
    result = run("bench", "engine", "--plays", "1", "--text", "one two", "--out", str(tmp_path), timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "engine.json").read_text())
    assert data["suite"] == "engine" and len(data["streamed"]) == 1 and len(data["buffered"]) == 1
    assert data["streamed"][0]["streaming"] is True and data["buffered"][0]["streaming"] is False
    assert all(isinstance(v, float) for v in data["overhead_ms"] + data["cpu_pct"])
    markdown = (tmp_path / "engine.md").read_text()
    assert "| TTFA ratio buffered / streamed |" in markdown
    assert markdown in result.stdout


def test_bench_formats_tiny_run_covers_every_format(tmp_path: Path) -> None:
    result = run("bench", "formats", "--plays", "1", "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "formats.json").read_text())
    assert set(data["formats"]) == {"pcm", "wav", "mp3", "opus", "aac", "flac"}
    for fmt, row in data["formats"].items():
        assert row["decode_x_realtime"] > 1 and row["first_audio_bytes"] > 0, fmt
        assert len(data["runs"][fmt]) == 1 and data["runs"][fmt][0]["detected_format"] == fmt
    assert data["formats"]["pcm"]["ttfa_minus_pcm_ms"] == 0
    assert "| mp3: first byte -> first audio |" in (tmp_path / "formats.md").read_text()


def test_bench_tui_tiny_run_plays_headless_and_in_the_workbench(tmp_path: Path) -> None:
    result = run("bench", "tui", "--plays", "1", "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "tui.json").read_text())
    assert len(data["headless"]) == 1 and len(data["tui"]) == 1 and len(data["busy"]) == 1
    assert len(data["render_ms"]["graph"]) == 50 and all(t > 0 for t in data["render_ms"]["counters"])
    assert data["tui"][0]["state"] == "done" and data["headless"][0]["state"] == "done"
    markdown = (tmp_path / "tui.md").read_text()
    assert "| workbench open: virtual clock late |" in markdown and "| headless: underruns |" in markdown
    assert "| workbench busy: virtual clock late |" in markdown and "| one graph redraw, median (p95) |" in markdown


def test_bench_adaptive_and_chunks_tiny_runs(tmp_path: Path) -> None:
    result = run("bench", "adaptive", "--plays", "1", "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "adaptive.json").read_text())
    assert set(data["networks"]) == {"lan", "wifi", "4g", "flaky"}
    for network, modes in data["networks"].items():
        assert set(modes) == {"fixed", "adaptive"}, network
        assert len(data["runs"][network]["adaptive"]) == 1
    assert data["runs"]["wifi"]["fixed"][0]["network"] == "wifi"
    result = run("bench", "chunks", "--plays", "1", "--text", "one two", "--out", str(tmp_path), timeout=240)
    assert result.returncode == 0, result.stderr
    chunks = json.loads((tmp_path / "chunks.json").read_text())
    assert set(chunks["results"]) == {"pcm", "mp3"} and set(chunks["results"]["mp3"]) == {
        "512", "1024", "4096", "16384", "65536"}


def test_ctrl_c_stops_cleanly_with_the_metrics_so_far() -> None:
    import signal
    import time

    env = {**os.environ, "WORKBENCH_SINK": "virtual"}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "play", "--json", "--voice", "test-signal",
                             " ".join(["word"] * 40)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env)
    time.sleep(3.0)  # start-up, then a little playing
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    metrics = json.loads(out)
    assert metrics["state"] == "stopped" and metrics["played_ms"] < 13_000


def test_workbench_without_a_terminal_says_what_to_use_instead() -> None:
    assert_clean_error(run(stdin=""), 2, "needs a terminal", "workbench play")
    assert_clean_error(run("--format", "ogg", stdin=""), 2, "invalid choice: 'ogg'")
    assert_clean_error(run("--preset", "/nonexistent.env", stdin=""), 2, "/nonexistent.env: no such file")


def test_screenshots_regenerates_every_scene(tmp_path: Path) -> None:
    from workbench.tui.scenes import SCENES

    result = run("screenshots", "--scenes", "--out", str(tmp_path / "shots"))
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "shots").iterdir())
    assert written == sorted(f"{s.name}.svg" for s in SCENES)
    assert all((tmp_path / "shots" / name).read_text().startswith("<svg") for name in written)


def test_screenshots_of_a_real_play(tmp_path: Path) -> None:
    """The README's pictures come from real plays: here the failed one (quick: nothing to reach)."""
    result = run("screenshots", "--only", "error", "--out", str(tmp_path / "shots"))
    assert result.returncode == 0, result.stderr
    svg = (tmp_path / "shots" / "error.svg").read_text()
    assert svg.startswith("<svg") and "cannot&#160;reach&#160;http://127.0.0.1:9/v1" in svg
    bad = run("screenshots", "--only", "nope", "--out", str(tmp_path / "shots"))
    assert bad.returncode == 2 and "no picture named 'nope'" in bad.stderr and "mid-play" in bad.stderr


# -- hardening: bad input gets a clear line -------------------------------------------------------------
@pytest.mark.parametrize(("flag", "value", "env_name"), [
    ("--buffer-ms", "abc", "VOICEMODE_STREAM_BUFFER_MS"), ("--chunk-size", "3", "VOICEMODE_STREAM_CHUNK_SIZE"),
    ("--speed", "fast", "VOICEMODE_TTS_SPEED"), ("--max-buffer", "-1", "VOICEMODE_STREAM_MAX_BUFFER"),
])
def test_a_bad_flag_value_names_the_setting_and_what_is_allowed(flag: str, value: str, env_name: str) -> None:
    result = run("play", flag, value, "hi")
    assert_clean_error(result, 2, f"{env_name}='{value}' (from {flag})", "allowed")
    assert "_positive_int" not in result.stderr


def test_text_that_is_not_utf8_is_a_clear_error() -> None:
    result = subprocess.run([sys.executable, "-m", "workbench", "play", "-"], input=b"caf\xe9 \xff",
                            capture_output=True, env={**os.environ, "WORKBENCH_SINK": "virtual"}, timeout=60)
    assert result.returncode == 2 and b"not valid UTF-8" in result.stderr and b"Traceback" not in result.stderr
    # an argument with undecodable bytes arrives as lone surrogates
    result = subprocess.run([sys.executable, "-m", "workbench", "play", b"caf\xe9"], capture_output=True,
                            env={**os.environ, "WORKBENCH_SINK": "virtual"}, timeout=60)
    assert result.returncode == 2 and b"not valid UTF-8" in result.stderr and b"Traceback" not in result.stderr


def test_piped_text_is_read_and_said_to_be() -> None:
    import io

    from workbench.cli import play_text

    read_end, write_end = os.pipe()
    os.write(write_end, b"Piped words.")
    os.close(write_end)
    err = io.StringIO()
    with os.fdopen(read_end, encoding="utf-8") as pipe:
        assert play_text(None, pipe, err) == "Piped words."
    assert "standard input" in err.getvalue()
    with open(os.devnull, encoding="utf-8") as devnull:  # not a pipe: the sample, nothing read
        assert play_text(None, devnull, io.StringIO()).strip()


def test_a_folder_that_cannot_be_written_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the results folder should go\n")
    result = run("bench", "engine", "--plays", "1", "--text", "one two", "--out", str(blocker / "results"),
                 timeout=120)
    assert_clean_error(result, 1, "cannot use", str(blocker))


def test_bench_split_tiny_run_reads_the_joins_from_the_recordings(tmp_path: Path) -> None:
    result = run("bench", "split", "--plays", "1", "--pace", "0.1", "--text",
                 "The first sentence is short. The second one, a little longer, follows it.", "--out", str(tmp_path),
                 timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "split.json").read_text())
    off, split = data["results"]["your text"]["off"], data["results"]["your text"]["sentence"]
    assert off["fragments"] == 1 and split["fragments"] >= 2
    assert split["first_sound_ms"] < off["first_sound_ms"] and split["pauses_matched"] is True
    assert abs(split["length_diff_pct"]) < 2.0
    assert "silence added at a join" in (tmp_path / "split.md").read_text()


def test_bench_split_rejects_an_unknown_setting(tmp_path: Path) -> None:
    result = run("bench", "split", "--settings", "off,paragraph", "--out", str(tmp_path))
    assert_clean_error(result, 2, "unknown split setting paragraph")


def test_split_that_is_not_a_mode_is_a_one_line_error() -> None:
    result = run("play", "--split", "xyz", "hi")
    assert_clean_error(result, 2, "WORKBENCH_SPLIT='xyz' (from --split) is not valid; allowed: auto, sentence, off")
    assert len(result.stderr.strip().splitlines()) == 1


def test_auto_split_learns_across_commands_that_an_endpoint_does_not_stream() -> None:
    from workbench.server.app import Knobs

    text = "This reply comes back whole. The next one is asked for a sentence at a time, which starts it sooner."
    with EmbeddedServer(knobs=Knobs(buffered=1, pace=0.1, ttfb_ms=200)) as server:
        first = run("play", "--json", "--base-url", server.base_url, text)
        second = run("play", "--json", "--base-url", server.base_url, text)
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert a["fragments"] == 1 and a["endpoint_buffered"] is True and "does not stream" in first.stderr
    assert b["split"] == "auto" and b["fragments"] >= 2 and b["first_sound_ms"] < a["first_sound_ms"]
    assert (Path(os.environ["HOME"]) / ".config" / "stream-workbench" / "endpoints.json").is_file()


def test_the_embedded_server_is_not_remembered_a_port_per_start() -> None:
    """Each start of the embedded server has a new port: an entry per play would pile up in endpoints.json."""
    for _ in range(2):
        result = run("play", "--format", "auto", "--json", "--no-cache", "--voice", "test-signal", "one two")
        assert result.returncode == 0, result.stderr
    memory = Path(os.environ["HOME"]) / ".config" / "stream-workbench" / "endpoints.json"
    assert not memory.exists() or "127.0.0.1" not in memory.read_text()


def test_play_as_voicemode_plays_and_says_what_voicemode_would_log() -> None:
    result = run("play", "--player", "voicemode", "--json", "--voice", "test-signal", "--format", "aac", "one two")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["player"] == "voicemode" and data["format"] == "opus"  # voicemode's Kokoro has no AAC
    assert data["voicemode_reported_ttfa_ms"] is not None and data["played_ms"] > 0
    assert "asks this endpoint for opus" in result.stderr


def test_player_that_is_not_one_is_a_one_line_error(tmp_path: Path) -> None:
    result = run("play", "--player", "kokoro", "hi")
    assert_clean_error(result, 2,
                       "WORKBENCH_PLAYER='kokoro' (from --player) is not valid; allowed: workbench, voicemode")
    result = run("bench", "--players", "workbench,vlc", "--out", str(tmp_path))
    assert_clean_error(result, 2, "unknown player vlc")


def test_play_says_a_phrase_again_from_the_cache_and_no_cache_asks_the_endpoint() -> None:
    with EmbeddedServer() as server:
        args = ("play", "--json", "--sink", "virtual", "--base-url", server.base_url, "--voice", "test-signal", "Done.")
        first, second, third = run(*args), run(*args), run(*args, "--no-cache")
        shown = run("play", *args[2:]).stdout  # without --json: the line a user reads
    a, b, c = (json.loads(r.stdout) for r in (first, second, third))
    assert (a["cache"], a["cache_stored"], b["cache"], c["cache"]) == ("miss", True, "hit", "off")
    assert a["bytes"] > 0 and b["bytes"] == 0 and c["bytes"] > 0
    assert "played from the reply cache: no request" in shown
    folder = Path(os.environ["HOME"]) / ".cache" / "stream-workbench" / "replies"
    assert len(list(folder.glob("*.reply"))) == 1


def test_cache_command_says_what_the_cache_holds_and_clears_it() -> None:
    with EmbeddedServer() as server:
        run("play", "--sink", "virtual", "--base-url", server.base_url, "--voice", "test-signal", "On it.")
    shown = run("cache")
    assert shown.returncode == 0 and "stream-workbench/replies: 1 replies" in shown.stdout, shown.stderr
    assert "removed 1 stored replies" in run("cache", "--clear").stdout
    assert ": 0 replies" in run("cache").stdout
    off = run("cache", env={"WORKBENCH_CACHE": "false"})
    assert "the cache is off (environment)" in off.stdout


def test_format_auto_is_a_workbench_setting_and_leaves_voicemodes_format_alone() -> None:
    result = run("play", "--format", "auto", "--json", "--no-cache", "--voice", "test-signal", "one two")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["format"] == "pcm" and "nothing measured yet" in data["auto_format"]
    shown = run("settings", "--format", "auto").stdout
    assert any(line.split()[:2] == ["WORKBENCH_AUTO_FORMAT", "true"] for line in shown.splitlines())
    assert any(line.split()[:2] == ["VOICEMODE_TTS_AUDIO_FORMAT", "pcm"] for line in shown.splitlines())


def test_format_auto_remembers_across_commands_what_the_link_carries() -> None:
    with EmbeddedServer() as server:  # one endpoint for both commands
        args = ("play", "--format", "auto", "--network", "edge", "--json", "--no-cache", "--voice", "test-signal",
                "--base-url", server.base_url)
        first, second = run(*args, "one two three"), run(*args, "four five six")
    a, b = json.loads(first.stdout), json.loads(second.stdout)
    assert (a["format"], b["format"]) == ("pcm", "mp3"), (first.stderr, second.stderr)
    assert "pcm arrived at only" in b["auto_format"]


def test_format_auto_switches_format_between_fragments_of_a_split_reply_with_no_wait_at_the_join() -> None:
    """On a link too slow for pcm, a reply asked for a sentence at a time starts in pcm (nothing is known yet);
    once the first fragment has come, slowly, the ones asked for after it come as mp3, in the same reply."""
    text = ("The first sentence is here to be heard. A second one follows it closely. Then a third one comes "
            "along. A fourth sentence goes on a while. And the fifth one ends it all.")
    result = run("play", "--format", "auto", "--network", "edge", "--split", "sentence", "--json", "--no-cache",
                 text, timeout=120)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    formats = data["fragment_formats"]
    assert data["state"] == "done" and data["error"] is None and len(formats) == data["fragments"] > 2
    assert formats[0] == "pcm" and formats[-1] == "mp3", formats
    assert data["join_wait_ms"] == 0  # the switch cost no wait: the mp3 fragment was there in time


def test_the_play_report_says_why_played_is_not_received_and_what_a_virtual_sink_cannot_count() -> None:
    from workbench.cli.play import render_metrics
    from workbench.engine.figures.metrics import PlayMetrics

    slowed = PlayMetrics(format="pcm", state="done", sink="virtual sink", audio_ms=800.0, played_ms=860.0,
                         stretch_added_ms=60.0, clock_late=2)
    text = render_metrics(slowed)
    assert "0.80 s received, 0.86 s played (0.06 s added by slowing: elastic playout)" in text
    assert "none: the virtual sink has no sound card (its clock fell behind 2 times: a busy machine)" in text
    stopped = PlayMetrics(format="pcm", state="stopped", sink="default @ 24000 Hz", audio_ms=800.0, played_ms=300.0,
                          device_underflows=1)
    text = render_metrics(stopped)
    assert "0.30 s played (stopped)" in text and "virtual" not in text
