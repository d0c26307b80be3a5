"""The main job end to end: `workbench` in a real terminal (tmux), on the embedded server it starts.

Skipped only when tmux is missing outside CI; `./test.sh --dev` set-up installs it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None and not os.environ.get("CI"),
                                reason="tmux is not installed")


class Tmux:
    def __init__(self, tmp: Path) -> None:
        self.socket = f"wb-{uuid.uuid4().hex[:8]}"
        self.exit_file = tmp / "exit-code"

    def run(self, *args: str) -> str:
        return subprocess.run(["tmux", "-L", self.socket, *args], check=True, capture_output=True, text=True,
                              timeout=10).stdout

    def start(self, command: str) -> None:
        self.run("new-session", "-d", "-x", "140", "-y", "44", f"{command}; echo $? > {self.exit_file}; sleep 30")
        self.run("resize-window", "-x", "140", "-y", "44")

    def screen(self) -> str:
        return self.run("capture-pane", "-p")

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if text in screen:
                return screen
            time.sleep(0.2)
        raise AssertionError(f"{text!r} never appeared; the screen was:\n{self.screen()}")

    def kill(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True, timeout=10)


def test_workbench_opens_plays_and_quits(tmp_path: Path) -> None:
    tmux = Tmux(tmp_path)
    env = " ".join(f"{k}={v}" for k, v in {"HOME": os.environ["HOME"], "TERM": "xterm-256color",
                                            "XDG_RUNTIME_DIR": os.environ.get("XDG_RUNTIME_DIR", "/tmp")}.items())
    workbench = Path(sys.executable).parent / "workbench"
    tmux.start(f"cd {REPO} && env -u COLUMNS -u LINES {env} {workbench} --voice test-signal --text 'One two three.'")
    try:
        tmux.wait_for("embedded http://127.0.0.1:")  # it started its own server
        tmux.run("send-keys", "p")
        screen = tmux.wait_for(" done", timeout=30)
        assert "TTFA" in screen and "failed" not in screen
        tmux.run("send-keys", "q")
        deadline = time.monotonic() + 10
        while not tmux.exit_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert tmux.exit_file.exists(), "the app did not quit within 10 s"
        assert tmux.exit_file.read_text().strip() == "0"
    finally:
        tmux.kill()
