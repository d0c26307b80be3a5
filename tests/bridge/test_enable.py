"""`workbench voicemode enable | disable | status` on throwaway environments that look like voicemode's
(a real venv, with a stand-in `voice-mode` distribution): what is found, what is refused, what is written
and removed. tests/bridge/test_with_voicemode.py does it on the real voice-mode package."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

import pytest

from workbench.cli import main
from workbench.usecases import bridge


def fake_voicemode(root: Path, version: str = "9.0.1", missing: tuple[str, ...] = ()) -> Path:
    """A venv (no pip) with a `voice-mode` distribution of `version` and stand-ins for what the engine
    needs, but `missing`. Returns its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                  capture_output=True, text=True, check=True).stdout.strip())
    info = purelib / f"voice_mode-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: voice-mode\nVersion: {version}\n")
    (purelib / "voice_mode").mkdir()
    (purelib / "voice_mode" / "__init__.py").write_text("")
    for name in ("numpy", "sounddevice", "soxr", "av"):
        if name not in missing:
            (purelib / name).mkdir()
            (purelib / name / "__init__.py").write_text("")
    return python


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def test_enable_status_disable_round_trip(tmp_path: Path) -> None:
    python = fake_voicemode(tmp_path / "vm")
    code, out, err = run("voicemode", "status", "--python", str(python))
    assert code == 0 and "bridge: off" in out and "voicemode: 9.0.1" in out
    code, out, err = run("voicemode", "enable", "--python", str(python))
    assert code == 0 and "the bridge is on" in out and f"found --python {python}" in err
    pths = list((tmp_path / "vm").rglob("*.pth"))
    (pth,) = [p for p in pths if p.name == bridge.PTH_NAME]
    assert pth.read_text().startswith(bridge.PTH_MARK)
    # the engine is importable there, and voicemode's interpreter starts as before, quietly
    probe = subprocess.run([str(python), "-c", "import workbench.bridge.boot, sys; print(sys.meta_path[0])"],
                           capture_output=True, text=True)
    assert probe.returncode == 0 and "_Finder" in probe.stdout and not probe.stderr
    code, out, _ = run("voicemode", "status")
    assert code == 0 and "bridge: on" in out and f"hook: {pth}" in out
    code, out, err = run("voicemode", "enable", "--python", str(python))  # twice: nothing changes
    assert code == 0 and "already on" in err and pth.exists()
    code, out, err = run("voicemode", "disable")
    assert code == 0 and "the bridge is off" in out and not pth.exists()
    assert not bridge.manifest_path().exists()
    code, out, _ = run("voicemode", "disable")
    assert code == 0 and "was not on" in out


def test_a_folder_the_hook_points_at_that_is_gone_costs_nothing_at_start(tmp_path: Path) -> None:
    python = fake_voicemode(tmp_path / "vm")
    assert run("voicemode", "enable", "--python", str(python))[0] == 0
    (bridge.bridge_dir() / "workbench").unlink()  # the workbench was moved or deleted since
    started = subprocess.run([str(python), "-c", "print('fine')"], capture_output=True, text=True)
    assert started.stdout.strip() == "fine" and started.stderr == ""
    code, out, _ = run("voicemode", "status")
    assert "bridge: on" in out and "is gone: enable again" in out


def test_an_unknown_voicemode_version_is_refused_and_nothing_changes(tmp_path: Path) -> None:
    python = fake_voicemode(tmp_path / "vm", version="9.2.1")
    code, _, err = run("voicemode", "enable", "--python", str(python))
    assert code == 2 and "voicemode 9.2.1" in err and "8.12 and 9.0.x" in err and "nothing was changed" in err
    assert not list((tmp_path / "vm").rglob(bridge.PTH_NAME)) and not bridge.manifest_path().exists()
    assert err.count("\n") <= 3 and "Traceback" not in err


def test_missing_voicemode_and_bad_paths_get_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no voicemode command
    monkeypatch.setenv("UV_TOOL_DIR", str(tmp_path / "uv-tools"))
    code, _, err = run("voicemode", "enable")
    assert code == 2 and "no voicemode found" in err and "--python" in err
    code, _, err = run("voicemode", "enable", "--python", str(tmp_path / "nope"))
    assert code == 2 and "no such file" in err
    plain = fake_voicemode(tmp_path / "plain")
    (next((tmp_path / "plain").rglob("voice_mode-9.0.1.dist-info")) / "METADATA").unlink()
    code, _, err = run("voicemode", "enable", "--python", str(plain))
    assert code == 2 and "has no voice-mode installed" in err


def test_the_voicemode_on_path_is_found_through_its_first_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = fake_voicemode(tmp_path / "vm")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "voicemode"
    script.write_text(f"#!{python}\nimport sys\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    found, how = bridge.find_voicemode()
    assert found == str(python) and "the voicemode command on PATH" in how
    long = bin_dir / "voicemode"  # pip's form for a path too long for a first line
    long.write_text(f"#!/bin/sh\n'''exec' \"{python}\" \"$0\" \"$@\"\n' '''\nimport sys\n")
    assert bridge.find_voicemode()[0] == str(python)


def test_a_failure_after_installing_undoes_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    python = fake_voicemode(tmp_path / "vm", missing=("soxr",))
    installed: list[list[str]] = []
    removed: list[list[str]] = []
    monkeypatch.setattr(bridge, "plan_install", lambda vm: [("soxr", "1.1.0")])
    monkeypatch.setattr(bridge, "install", lambda vm, plan: installed.append([f"{n}=={v}" for n, v in plan]))
    monkeypatch.setattr(bridge, "uninstall", lambda py, packages: removed.append(packages))

    def read_only(path: Path, text: str, mode: int | None = None) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(bridge, "_write_atomic", read_only)
    code, _, err = run("voicemode", "enable", "--python", str(python))
    assert code == 2 and "Permission denied" in err and "nothing was left changed" in err
    assert installed == [["soxr==1.1.0"]] and removed == [["soxr==1.1.0"]]
    assert not list((tmp_path / "vm").rglob(bridge.PTH_NAME)) and not bridge.manifest_path().exists()


def test_a_resolve_that_would_change_a_version_voicemode_has_is_refused(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    vm = bridge.Voicemode(python="/x/python", found_by="", missing=["soxr"], installed={"numpy": "1.26.4"},
                          has_pip=True)

    def dry_run(cmd: list[str], timeout: float = 0) -> subprocess.CompletedProcess[str]:
        report = Path(cmd[cmd.index("--report") + 1])
        report.write_text('{"install": [{"metadata": {"name": "soxr", "version": "1.1.0"}}, '
                          '{"metadata": {"name": "numpy", "version": "2.3.0"}}]}')
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(bridge, "_run", dry_run)
    with pytest.raises(bridge.BridgeError, match="would change numpy from 1.26.4 to 2.3.0"):
        bridge.plan_install(vm)


def test_watch_prints_a_line_per_reply() -> None:
    from workbench.bridge.publish import Publisher, ReplyFigures, folder

    code, out, _ = run("voicemode", "watch", "--once")
    assert code == 0 and "no replies yet" in out
    pub = Publisher(folder())
    for fmt in ("pcm", "mp3", "opus"):
        pub.reply(ReplyFigures(format=fmt, played_ms=4200, first_write_to_sound_ms=58.0, underruns=0,
                               state="done", stretch_added_ms=12.0))
    code, out, _ = run("voicemode", "watch", "--once", "--last", "2")
    lines = out.strip().splitlines()
    assert code == 0 and len(lines) == 2 and "mp3" in lines[0] and "opus" in lines[1]
    assert "first sound 58 ms" in lines[1] and "0 underruns" in lines[1] and "4.2 s" in lines[1]
