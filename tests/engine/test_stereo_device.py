"""A placed voice heard from outside: a stereo PulseAudio null sink is loaded for the test, `workbench play
--sink device --pan` plays to it (through the C callback), and `parecord` records its monitor. Each
channel's level is the constant-power gain's, as recorded, not as the engine says."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.engine.decoding.layout import Layout

pytestmark = pytest.mark.audio


@pytest.fixture
def stereo_sink() -> str:
    if not (shutil.which("pactl") and shutil.which("parecord")) or subprocess.run(
            ["pactl", "info"], capture_output=True).returncode != 0:
        if os.environ.get("WORKBENCH_REQUIRE_AUDIO") == "1":
            pytest.fail("PulseAudio (pactl, parecord) is needed, but WORKBENCH_REQUIRE_AUDIO=1")
        pytest.skip("no PulseAudio here (source scripts/pulse.sh start)")
    name = f"wb_stereo_{os.getpid()}"
    module = subprocess.run(["pactl", "load-module", "module-null-sink", f"sink_name={name}", "channels=2",
                             "rate=24000", "sink_properties=device.description=WorkbenchStereoTest"],
                            capture_output=True, text=True, check=True).stdout.strip()
    yield name
    subprocess.run(["pactl", "unload-module", module], check=False)


@pytest.mark.parametrize("pan", [-0.5, 1.0])
def test_a_placed_voice_is_heard_at_its_gains_on_a_stereo_device(stereo_sink: str, pan: float, tmp_path: Path) -> None:
    raw = tmp_path / "monitor.raw"
    rec = subprocess.Popen(["parecord", f"--device={stereo_sink}.monitor", "--channels=2", "--rate=24000",
                            "--format=s16le", "--raw", str(raw)])
    try:
        time.sleep(0.4)
        env = {**os.environ, "PULSE_SINK": stereo_sink, "XDG_CONFIG_HOME": str(tmp_path)}
        result = subprocess.run([sys.executable, "-m", "workbench", "play", "--sink", "device", "--pan", str(pan),
                                 "--voice", "test-signal", "--no-cache", "--no-voicemode-env", "one two three"],
                                capture_output=True, text=True, env=env, timeout=60, stdin=subprocess.DEVNULL)
        time.sleep(0.4)
    finally:
        rec.terminate()
        rec.wait(timeout=10)
    assert result.returncode == 0, result.stderr
    assert f"placed at {pan:+.2f}" in result.stdout
    frames = np.fromfile(raw, dtype="<i2").reshape(-1, 2).astype(np.float64) / 32768
    loud = np.abs(frames).max(axis=1) > 0.01
    assert loud.sum() > 0.9 * 24_000, "the monitor heard less than the reply's second of tone"
    rms = np.sqrt((frames[loud] ** 2).mean(axis=0))
    left, right = Layout(2, pan).gains
    if right < 1e-6 or left < 1e-6:  # hard left or right: the other channel hears nothing
        quiet = 0 if left < 1e-6 else 1
        assert rms[quiet] < 1e-3 * rms[1 - quiet]
    else:
        assert abs(rms[0] / rms[1] - left / right) < 0.02 * left / right
