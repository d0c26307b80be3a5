"""Presets: files voicemode reads as they are, and a merge into voicemode.env that never loses anything."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.conftest import make_settings
from workbench.cli import main
from workbench.engine.envfile import parse_env_text
from workbench.usecases import presets as pr

EXISTING = """\
# my voicemode settings
OPENAI_API_KEY=sk-test-123
VOICEMODE_TTS_AUDIO_FORMAT=mp3

# streaming
VOICEMODE_STREAM_BUFFER_MS=400
VOICEMODE_VOICES=nova,alloy
"""


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


# -- writing values voicemode reads back unchanged -------------------------------------------------------
@pytest.mark.parametrize(("value", "written"), [
    ("4096", "4096"), ("http://127.0.0.1:8880/v1,https://api.openai.com/v1", None), ("two words", "'two words'"),
    ("it's", '"it\'s"'), ("", ""), ("a#b", "'a#b'"),
])
def test_quote_value_quotes_only_where_needed(value: str, written: str | None) -> None:
    assert pr.quote_value(value) == (written if written is not None else value)


def test_values_that_cannot_be_written_safely_are_refused() -> None:
    for bad in ("line\nbreak", "both ' and \""):
        with pytest.raises(pr.PresetError):
            pr.quote_value(bad)


@given(st.dictionaries(st.from_regex(r"VOICEMODE_[A-Z_]{1,12}", fullmatch=True),
                       st.text(st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=30)
                       .filter(lambda v: not ("'" in v and '"' in v) and v == v.strip()), max_size=6))
def test_rendered_env_reads_back_exactly_as_voicemode_would(values: dict[str, str]) -> None:
    parsed = parse_env_text(pr.render_env(values, ["a header"]))
    assert not parsed.issues
    assert parsed.as_dict() == values


def test_preset_from_settings_is_plain_and_complete() -> None:
    s = make_settings(audio_format="wav", buffer_ms=300, network="wifi")
    preset = pr.preset_from_settings(s, "mine", ["what it is for"])
    text = preset.text()
    assert text.startswith("# what it is for\n")
    assert "export" not in text
    for line in text.splitlines():
        assert line.startswith("#") or ("=" in line and " #" not in line)
    back = pr.parse_preset(text)
    assert back.values["VOICEMODE_STREAM_BUFFER_MS"] == "300"
    assert back.values["VOICEMODE_TTS_AUDIO_FORMAT"] == "wav"
    assert back.values["WORKBENCH_NETWORK"] == "wifi"
    assert set(back.values) == set(pr.PRESET_KEYS)


@pytest.mark.parametrize(("text", "why"), [
    ("VOICEMODE_STREAM_BUFER_MS=100\n", "unknown setting VOICEMODE_STREAM_BUFER_MS"),
    ("VOICEMODE_STREAM_BUFFER_MS=lots\n", "VOICEMODE_STREAM_BUFFER_MS='lots'"),
    ("VOICEMODE_STREAM_BUFFER_MS=3000\nVOICEMODE_STREAM_MAX_BUFFER=2\n", "must fit in the maximum buffer"),
    ("OPENAI_API_KEY=sk-x\n", "must not carry OPENAI_API_KEY"),
    ("VOICEMODE_STREAM_CHUNK_SIZE=4096 # bigger\n", "trailing comment"),
    ("export VOICEMODE_STREAM_BUFFER_MS=100\n", "'export' is not understood"),
])
def test_bad_presets_are_refused_with_the_reason(text: str, why: str) -> None:
    with pytest.raises(pr.PresetError, match=None) as info:
        pr.parse_preset(text)
    assert why in str(info.value)


def test_shipped_presets_are_valid_documented_and_plain() -> None:
    shipped = {p.stem: p for p in pr.shipped_presets()}
    assert {"lan", "wifi", "4g", "flaky", "bandwidth-saver"} <= set(shipped)
    for path in shipped.values():
        text = path.read_text()
        assert not parse_env_text(text).issues, path
        preset = pr.load_preset(path)
        assert len(preset.description) >= 3, f"{path} needs a header saying what it is for and how it was tuned"
        assert any("tuned" in line.lower() or "chosen" in line.lower() for line in preset.description), path
    assert pr.load_preset("bandwidth-saver").values["VOICEMODE_TTS_AUDIO_FORMAT"] in ("mp3", "opus", "aac")


# -- applying to voicemode.env ---------------------------------------------------------------------------
def test_apply_merges_in_place_and_keeps_everything_else(tmp_path: Path) -> None:
    target = tmp_path / "voicemode.env"
    target.write_text(EXISTING)
    preset = pr.parse_preset("VOICEMODE_STREAM_BUFFER_MS=200\nVOICEMODE_TTS_AUDIO_FORMAT=pcm\n"
                             "VOICEMODE_STREAM_CHUNK_SIZE=2048\nWORKBENCH_NETWORK=4g\n", name="t")
    plan = pr.plan_apply(preset, target)
    assert target.read_text() == EXISTING  # planning touches nothing
    assert plan.changed == {"VOICEMODE_STREAM_BUFFER_MS": ("400", "200"), "VOICEMODE_TTS_AUDIO_FORMAT": ("mp3", "pcm"),
                            "VOICEMODE_STREAM_CHUNK_SIZE": (None, "2048")}
    assert plan.skipped == ["WORKBENCH_NETWORK"]
    assert "-VOICEMODE_STREAM_BUFFER_MS=400" in plan.diff and "+VOICEMODE_STREAM_BUFFER_MS=200" in plan.diff
    backup = pr.write_apply(plan)
    new = target.read_text()
    assert backup is not None and backup.read_text() == EXISTING
    assert stat.S_IMODE(target.stat().st_mode) == 0o600 and stat.S_IMODE(backup.stat().st_mode) == 0o600
    lines = new.splitlines()
    assert lines[:6] == ["# my voicemode settings", "OPENAI_API_KEY=sk-test-123", "VOICEMODE_TTS_AUDIO_FORMAT=pcm", "",
                         "# streaming", "VOICEMODE_STREAM_BUFFER_MS=200"]
    assert "VOICEMODE_VOICES=nova,alloy" in lines and "VOICEMODE_STREAM_CHUNK_SIZE=2048" in lines
    assert "WORKBENCH_NETWORK" not in new
    parsed = parse_env_text(new)
    assert not parsed.issues and parsed.as_dict()["OPENAI_API_KEY"] == "sk-test-123"
    # a second apply never overwrites the first backup
    plan2 = pr.plan_apply(pr.parse_preset("VOICEMODE_STREAM_BUFFER_MS=250\n"), target)
    backup2 = pr.write_apply(plan2)
    assert backup2 is not None and backup2 != backup and backup.read_text() == EXISTING


def test_apply_refuses_a_malformed_file_and_leaves_it_alone(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    target = folder / "voicemode.env"
    bad = "VOICEMODE_STREAM_BUFFER_MS=100 # comment voicemode would keep\n"
    target.write_text(bad)
    with pytest.raises(pr.PresetError, match="malformed"):
        pr.plan_apply(pr.parse_preset("VOICEMODE_STREAM_BUFFER_MS=200\n"), target)
    assert target.read_text() == bad
    assert list(folder.iterdir()) == [target]


def test_apply_creates_a_missing_file_with_mode_600(tmp_path: Path) -> None:
    target = tmp_path / ".voicemode" / "voicemode.env"
    plan = pr.plan_apply(pr.parse_preset("VOICEMODE_STREAM_BUFFER_MS=200\n", name="x"), target)
    assert pr.write_apply(plan) is None
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    assert parse_env_text(target.read_text()).as_dict() == {"VOICEMODE_STREAM_BUFFER_MS": "200"}


def test_applying_one_preset_over_another_names_the_last_one(tmp_path: Path) -> None:
    """Issue 15: 4g then wifi left "# Stream Workbench preset: 4g" above wifi's values."""
    target = tmp_path / "voicemode.env"
    target.write_text("# mine\nOPENAI_API_KEY=sk-x\n")
    presets = Path(__file__).resolve().parents[2] / "presets"
    for name in ("4g", "wifi"):
        pr.write_apply(pr.plan_apply(pr.load_preset(presets / f"{name}.env"), target))
    text = target.read_text()
    assert text.count("# Stream Workbench preset:") == 1 and "# Stream Workbench preset: wifi" in text
    assert text.startswith("# mine\nOPENAI_API_KEY=sk-x\n")
    wifi = pr.load_preset(presets / "wifi.env").voicemode_values
    assert {k: v for k, v in parse_env_text(text).as_dict().items() if k in wifi} == wifi


def test_a_preset_is_described_by_its_first_sentence() -> None:
    presets = Path(__file__).resolve().parents[2] / "presets"
    assert pr.load_preset(presets / "4g.env").summary == "Mobile 4G: jitter and a short stall every few seconds."
    saver = pr.load_preset(presets / "bandwidth-saver.env").summary
    assert saver.startswith("Bandwidth saver: MP3") and saver.endswith("for metered or slow links.")
    exported = pr.parse_preset("# Stream Workbench preset: mine\n# For my laptop.\nVOICEMODE_STREAM_BUFFER_MS=200\n")
    assert exported.summary == "For my laptop."


def test_apply_writes_nothing_if_the_file_changed_after_the_diff(tmp_path: Path) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    target = folder / "voicemode.env"
    target.write_text(EXISTING)
    plan = pr.plan_apply(pr.parse_preset("VOICEMODE_STREAM_BUFFER_MS=200\n"), target)
    target.write_text(EXISTING + "VOICEMODE_TTS_SPEED=1.2\n")
    with pytest.raises(pr.PresetError, match="changed since"):
        pr.write_apply(plan)
    assert target.read_text().endswith("VOICEMODE_TTS_SPEED=1.2\n")
    assert sorted(p.name for p in folder.iterdir()) == ["voicemode.env"]


# -- the command line ------------------------------------------------------------------------------------
def test_cli_list_show_validate() -> None:
    code, out, _ = run("preset", "list")
    assert code == 0 and "lan" in out and "bandwidth-saver" in out
    code, out, _ = run("preset", "show", "wifi")
    assert code == 0 and "VOICEMODE_STREAM_BUFFER_MS=" in out
    code, _, err = run("preset", "show", "nope")
    assert code == 2 and "no such preset" in err and "lan" in err


def test_cli_validate_reports_each_file(tmp_path: Path) -> None:
    good = tmp_path / "good.env"
    good.write_text("VOICEMODE_STREAM_BUFFER_MS=100\n")
    bad = tmp_path / "bad.env"
    bad.write_text("VOICEMODE_STREAM_BUFFER_MS=-5\n")
    code, out, _ = run("preset", "validate", str(good), str(bad))
    assert code == 1
    assert "ok       " + str(good) in out and "invalid" in out and "VOICEMODE_STREAM_BUFFER_MS='-5'" in out


def test_cli_export_writes_settings_and_never_overwrites(tmp_path: Path) -> None:
    out_file = tmp_path / "mine.env"
    code, _, _ = run("preset", "export", "--no-voicemode-env", "--format", "wav", "--buffer-ms", "250", "-o",
                     str(out_file))
    assert code == 0
    values = pr.load_preset(out_file).values
    assert values["VOICEMODE_TTS_AUDIO_FORMAT"] == "wav" and values["VOICEMODE_STREAM_BUFFER_MS"] == "250"
    code, _, err = run("preset", "export", "--no-voicemode-env", "-o", str(out_file))
    assert code == 2 and "already exists" in err
    assert pr.load_preset(out_file).values["VOICEMODE_STREAM_BUFFER_MS"] == "250"


def test_cli_apply_needs_yes_without_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "voicemode.env"
    target.write_text(EXISTING)
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    code, out, err = run("preset", "apply", "lan", "--to", str(target))
    assert code == 2 and "--yes" in err and "+VOICEMODE_STREAM_BUFFER_MS=" in out
    assert target.read_text() == EXISTING
    code, _, _ = run("preset", "apply", "lan", "--to", str(target), "--dry-run")
    assert code == 0 and target.read_text() == EXISTING
    code, _, err = run("preset", "apply", "lan", "--to", str(target), "--yes")
    assert code == 0 and "restart voicemode" in err and "backup" in err
    assert pr.load_preset("lan").voicemode_values.items() <= parse_env_text(target.read_text()).as_dict().items()
    code, _, err = run("preset", "apply", "lan", "--to", str(target), "--yes")
    assert code == 0 and "nothing to do" in err


# -- hardening: what a fault-and-abuse run found ----------------------------------------------------------
def test_the_diff_never_shows_a_secret(tmp_path: Path) -> None:
    target = tmp_path / "voicemode.env"
    target.write_text("OPENAI_API_KEY=sk-live-abcdef\nVOICEMODE_STREAM_BUFFER_MS=400\nMY_TOKEN='t0k'\n"
                      "SOME_SECRET_THING=\"multi\nline\"\n")
    code, out, _ = run("preset", "apply", "lan", "--to", str(target), "--dry-run")
    assert code == 0 and "-VOICEMODE_STREAM_BUFFER_MS=400" in out
    assert "sk-live" not in out and "t0k" not in out and "multi" not in out and "line\"" not in out
    assert "OPENAI_API_KEY=<hidden>" in out


def test_apply_writes_through_a_symlink_and_backs_up_its_target(tmp_path: Path) -> None:
    dotfiles = tmp_path / "dotfiles"
    dotfiles.mkdir()
    real = dotfiles / "voicemode.env"
    real.write_text(EXISTING)
    link = tmp_path / "home" / ".voicemode" / "voicemode.env"
    link.parent.mkdir(parents=True)
    link.symlink_to(real)
    code, _, err = run("preset", "apply", "lan", "--to", str(link), "--yes")
    assert code == 0 and str(real) in err
    assert link.is_symlink() and link.resolve() == real  # still a link
    assert "VOICEMODE_STREAM_BUFFER_MS=100" in real.read_text()
    assert (dotfiles / "voicemode.env.bak").read_text() == EXISTING  # the backup is beside the target
    assert not list(link.parent.glob("*.bak*"))


def test_a_read_only_folder_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    import os

    folder = tmp_path / ".voicemode"
    folder.mkdir()
    target = folder / "voicemode.env"
    target.write_text(EXISTING)
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root without CAP_DAC_OVERRIDE dropped)")
        code, _, err = run("preset", "apply", "lan", "--to", str(target), "--yes")
        assert code == 2 and "cannot write" in err and "nothing was changed" in err
    finally:
        folder.chmod(0o700)
    assert target.read_text() == EXISTING


def test_a_write_error_is_a_message_and_the_file_is_as_it_was(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same path as a read-only folder, taken even when the tests run as root (who can write anyway)."""
    target = tmp_path / "voicemode.env"
    target.write_text(EXISTING)

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(pr.tempfile, "mkstemp", refuse)
    code, _, err = run("preset", "apply", "lan", "--to", str(target), "--yes")
    assert code == 2 and "cannot write" in err and "Permission denied" in err and "Traceback" not in err
    assert target.read_text() == EXISTING


def test_two_applies_at_once_never_lose_one_silently_nor_share_a_backup(tmp_path: Path) -> None:
    import threading

    for round_ in range(8):
        target = tmp_path / f"r{round_}" / "voicemode.env"
        target.parent.mkdir()
        target.write_text(EXISTING)
        plans = [pr.plan_apply(pr.load_preset(name), target) for name in ("lan", "flaky")]
        barrier = threading.Barrier(2)
        results: list[str] = []

        def apply(plan: pr.ApplyPlan, barrier: threading.Barrier = barrier, results: list[str] = results) -> None:
            barrier.wait()
            try:
                pr.write_apply(plan)
                results.append("applied")
            except pr.PresetError as exc:
                results.append(str(exc))

        threads = [threading.Thread(target=apply, args=(p,)) for p in plans]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results.count("applied") == 1, results
        assert any("changed since the diff was shown" in r for r in results)
        backups = sorted(target.parent.glob("voicemode.env.bak*"))
        assert [b.read_text() for b in backups] == [EXISTING]


def test_crlf_line_endings_are_kept_and_the_backup_is_byte_for_byte(tmp_path: Path) -> None:
    target = tmp_path / "voicemode.env"
    original = EXISTING.replace("\n", "\r\n").encode()
    target.write_bytes(original)
    code, _, _ = run("preset", "apply", "lan", "--to", str(target), "--yes")
    assert code == 0
    after = target.read_bytes()
    assert after.count(b"\n") == after.count(b"\r\n") and b"VOICEMODE_STREAM_BUFFER_MS=100\r\n" in after
    assert b"# my voicemode settings\r\n" in after
    assert (tmp_path / "voicemode.env.bak").read_bytes() == original


def test_a_form_feed_in_a_comment_is_not_a_line_break() -> None:
    env = parse_env_text("# section\f one\nVOICEMODE_STREAM_BUFFER_MS=100\n")
    assert env.ok and env.as_dict() == {"VOICEMODE_STREAM_BUFFER_MS": "100"}


def test_play_refuses_a_preset_with_a_key_as_validate_does(tmp_path: Path) -> None:
    preset = tmp_path / "p.env"
    preset.write_text("VOICEMODE_STREAM_BUFFER_MS=100\nOPENAI_API_KEY=sk-from-a-preset\n")
    code, _, err = run("play", "--preset", str(preset), "--sink", "virtual", "hi")
    assert code == 2 and "must not carry OPENAI_API_KEY" in err
    code, out, _ = run("preset", "validate", str(preset))
    assert code == 1 and "must not carry OPENAI_API_KEY" in out


def test_validate_reports_every_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.env"
    bad.write_text("export VOICEMODE_X=1\nVOICEMODE_STREAM_BUFFER_MS=-5\nVOICEMODE_STREAM_CHUNK_SIZE=3\n"
                   "VOICEMODE_TYPO=1\n")
    code, out, _ = run("preset", "validate", str(bad))
    assert code == 1
    for fragment in ("'export'", "VOICEMODE_STREAM_BUFFER_MS='-5'", "VOICEMODE_STREAM_CHUNK_SIZE='3'",
                     "VOICEMODE_TYPO"):
        assert fragment in out, out
    assert out.count("invalid  ") == 4


def test_export_over_a_file_names_force(tmp_path: Path) -> None:
    out_file = tmp_path / "mine.env"
    out_file.write_text("keep me\n")
    code, _, err = run("preset", "export", "--no-voicemode-env", "-o", str(out_file))
    assert code == 2 and "--force" in err and out_file.read_text() == "keep me\n"
    code, _, _ = run("preset", "export", "--no-voicemode-env", "-o", str(out_file), "--force")
    assert code == 0 and "VOICEMODE_STREAM_BUFFER_MS" in out_file.read_text()


# -- what voicemode does with each key (issue 14) -----------------------------------------------------------
def test_a_preset_says_above_each_key_voicemode_does_not_use_that_it_does_not() -> None:
    from workbench.usecases.voicemode import unused_line

    preset = pr.preset_from_settings(make_settings(buffer_ms=120), "mine", ["what it is for"])
    lines = preset.text().splitlines()
    unused = f"# {unused_line(pr.target())}"
    for key in ("VOICEMODE_STREAM_BUFFER_MS", "VOICEMODE_STREAM_MAX_BUFFER"):
        at = next(i for i, line in enumerate(lines) if line.startswith(key + "="))
        assert lines[at - 1] == unused and "voicemode 9.0 reads this but does not use it" in unused
    for key in ("VOICEMODE_STREAM_CHUNK_SIZE", "VOICEMODE_TTS_AUDIO_FORMAT", "VOICEMODE_STREAMING_ENABLED"):
        at = next(i for i, line in enumerate(lines) if line.startswith(key + "="))
        assert lines[at - 1] != unused
    assert pr.RESTART_LINE in preset.description
    assert not parse_env_text(preset.text()).issues  # voicemode's own rules: comments on their own lines
    again = pr.parse_preset(preset.text())
    assert again.text() == preset.text()  # reading it back and writing it again adds nothing


def test_every_shipped_preset_carries_the_lines() -> None:
    from workbench.usecases.voicemode import unused_line

    for path in pr.shipped_presets():
        text = path.read_text()
        assert text.count(unused_line(pr.target())) == 2, path
        assert pr.RESTART_LINE in text, path


def test_show_export_and_apply_say_what_voicemode_uses(tmp_path: Path) -> None:
    code, _, err = run("preset", "show", "4g")
    assert code == 0 and "what voicemode 9.0 does with each key:" in err
    lines = {line.split()[0]: line for line in err.splitlines()[2:] if line.startswith("  ")}
    assert "NOT used by voicemode 9.0" in lines["VOICEMODE_STREAM_BUFFER_MS"]
    assert "NOT used by voicemode 9.0" in lines["VOICEMODE_STREAM_MAX_BUFFER"]
    assert "used by voicemode 9.0:" in lines["VOICEMODE_STREAM_CHUNK_SIZE"]
    assert "this engine only" in lines["WORKBENCH_NETWORK"]
    code, _, err = run("preset", "export", "--no-voicemode-env")
    assert code == 0 and "NOT used by voicemode 9.0" in err
    code, _, err = run("preset", "apply", "lan", "--to", str(tmp_path / "voicemode.env"), "--dry-run")
    assert code == 0 and "NOT used by voicemode 9.0" in err


@pytest.mark.parametrize(("installed", "version", "caveat"), [
    (None, "9.0", False), ("9.0.1", "9.0.1", False), ("8.12.0", "8.12.0", False), ("9.4.0", "9.0", True)])
def test_the_targeted_voicemode_is_the_installed_one_when_its_playback_is_known(
        monkeypatch: pytest.MonkeyPatch, installed: str | None, version: str, caveat: bool) -> None:
    from importlib import metadata

    from workbench.engine import vmplayer
    from workbench.usecases import voicemode

    def fake_version(name: str) -> str:
        if installed is None:
            raise metadata.PackageNotFoundError(name)
        return installed

    monkeypatch.setattr(vmplayer.metadata, "version", fake_version)
    t = voicemode.target()
    assert t.version == version and (t.caveat is not None) == caveat
    notes = voicemode.key_notes(["VOICEMODE_STREAM_BUFFER_MS"], t, bridged=False)
    assert f"NOT used by voicemode {version}" in notes[0]
    assert "with the bridge (off now): the buffer target" in notes[1]
    assert (len(notes) == 3 and installed in notes[2]) if caveat else len(notes) == 2


def test_the_notes_say_what_each_key_does_with_the_bridge_on() -> None:
    from workbench.usecases import voicemode

    notes = voicemode.key_notes(["VOICEMODE_TTS_TRAILING_SILENCE", "WORKBENCH_PLAYOUT", "WORKBENCH_NETWORK"],
                                bridged=True)
    text = "\n".join(notes)
    assert "with the bridge (on now): not used: a streamed reply ends where its audio does" in text
    assert "WORKBENCH_PLAYOUT" in notes[2] and "voicemode's replies play with it" in notes[3]
    assert "WORKBENCH_NETWORK" in notes[4] and "not used (it is for the workbench's own plays)" in notes[5]


def test_an_odd_chunk_size_is_refused_because_voicemode_cannot_play_it() -> None:
    with pytest.raises(pr.PresetError, match="an even number of bytes"):
        pr.parse_preset("VOICEMODE_STREAM_CHUNK_SIZE=4097\n")
