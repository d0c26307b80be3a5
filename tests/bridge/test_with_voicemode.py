"""The bridge with the real voicemode (voice-mode 9.0.1 in its own venv: `scripts/setup.sh --dev` makes
`.venv-voicemode`, and test.sh points WORKBENCH_VOICEMODE_PYTHON at it; skipped where there is none).

Each reply goes through voicemode's own `simple_tts_failover` (`scripts/voicemode_bridge_check.py`, in
voicemode's interpreter) while the PulseAudio monitor is recorded: what a listener hears, with voicemode's
control state driving stop, pause and skip back as its control socket would. The embedded server says
every reply as the test tone (`voice=test-signal`), so silences in the recording are gaps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from workbench.bridge.publish import folder, read_replies
from workbench.engine.output.sinks import default_output_device
from workbench.server.app import Knobs
from workbench.server.runner import EmbeddedServer
from workbench.usecases import bridge

pytestmark = pytest.mark.audio

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "voicemode_bridge_check.py"
VOICEMODE_PYTHON = os.environ.get("WORKBENCH_VOICEMODE_PYTHON", "")  # read at import: see the hermetic fixture
REQUIRE = os.environ.get("WORKBENCH_REQUIRE_AUDIO") == "1"


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A home for the bridge's files and voicemode's own, with the bridge on in voicemode's venv."""
    if default_output_device() is None:
        pytest.skip("no audio output device (start PulseAudio: source scripts/pulse.sh start)")
    if not VOICEMODE_PYTHON:
        if REQUIRE:
            pytest.fail("WORKBENCH_VOICEMODE_PYTHON is not set: CI must test the bridge against voice-mode")
        pytest.skip("voice-mode's venv is not set up (WORKBENCH_VOICEMODE_PYTHON)")
    where = tmp_path_factory.mktemp("vmhome")
    bridge.enable(VOICEMODE_PYTHON, home=where)
    try:
        yield where
    finally:
        bridge.disable(home=where)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    with EmbeddedServer(knobs=Knobs(voice="test-signal", pace=0.2, ttfb_ms=150)) as server:
        yield server.base_url


def reply(home: Path, url: str, fmt: str = "pcm", action: str = "none", **env: str) -> dict[str, object]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEMODE_", "WORKBENCH_"))}
    full_env.update(HOME=str(home), **env)
    done = subprocess.run([VOICEMODE_PYTHON, str(SCRIPT), "--url", url, "--format", fmt, "--action", action],
                          capture_output=True, text=True, timeout=120, env=full_env)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    result["log"] = done.stderr
    return result


def last_reply(home: Path):  # type: ignore[no-untyped-def]
    replies = read_replies(folder(home))
    assert replies, "nothing was played through the engine"
    return replies[-1]


@pytest.mark.parametrize("fmt", ["pcm", "mp3"])
def test_a_reply_plays_through_the_engine_whole_once_and_voicemode_keeps_its_own(home: Path, url: str,
                                                                                 fmt: str) -> None:
    before = len(read_replies(folder(home)))
    r = reply(home, url, fmt)
    assert r["ok"] is True and r["heard"] is True, r
    assert r["gaps_ms"] == [], r  # no silence inside the reply
    whole = float(r["captured_s"])  # type: ignore[arg-type]  # voicemode's history has the whole utterance
    assert float(r["span_s"]) == pytest.approx(whole, abs=0.15), r  # heard once, all of it
    assert float(r["metrics"]["ttfa"]) > 0  # type: ignore[index]  # voicemode's own figures, as ever
    replies = read_replies(folder(home))
    assert len(replies) == before + 1
    played = replies[-1]
    assert played.format == fmt and played.state == "done" and played.underruns == 0
    # what the device played is the reply and what elastic playout added by slowing (68 ms once, on a loaded
    # machine) less what it gave back: the reply itself, once
    content_ms = played.played_ms - played.stretch_added_ms + played.stretch_removed_ms
    assert content_ms == pytest.approx(whole * 1000, abs=60)


def test_pause_holds_and_resume_goes_on_from_where_it_stopped(home: Path, url: str) -> None:
    r = reply(home, url, "pcm", "pause")  # paused 0.6 s into the sound, for 0.8 s
    assert r["ok"] is True, r
    (gap,) = r["gaps_ms"]  # type: ignore[misc]
    assert gap == pytest.approx(800, abs=150), r
    whole = float(r["captured_s"])  # type: ignore[arg-type]
    assert float(r["span_s"]) - gap / 1000 == pytest.approx(whole, abs=0.15), r  # nothing lost or said twice
    assert last_reply(home).paused_ms == pytest.approx(gap, abs=100) and last_reply(home).underruns == 0


@pytest.mark.parametrize("action", ["stop", "skip_back", "skip_forward"])
def test_voicemodes_stop_and_skips_cut_within_a_block_or_two(home: Path, url: str, action: str) -> None:
    r = reply(home, url, "pcm", action)
    assert r["ok"] is True, r
    metrics = r["metrics"]
    assert metrics.get("control_stopped" if action == "stop" else "transport_interrupted") is True, r  # type: ignore[union-attr]
    assert int(r["after_action_ms"]) < 300, r  # type: ignore[call-overload]  # the sound ended right after
    if action == "skip_back":  # voicemode keeps downloading so that it can replay the whole utterance
        assert float(r["captured_s"]) > 4.0, r  # type: ignore[arg-type]
    assert last_reply(home).state == "stopped"


def test_an_engine_that_cannot_open_the_device_leaves_voicemode_playing_its_own_way(home: Path, url: str) -> None:
    before = len(read_replies(folder(home)))
    r = reply(home, url, "pcm", WORKBENCH_SINK="device", WORKBENCH_OUTPUT_DEVICE="no-such-device")
    assert r["ok"] is True and r["heard"] is True, r
    assert float(r["span_s"]) == pytest.approx(float(r["captured_s"]), abs=0.2), r  # the reply, once
    log = str(r["log"])
    assert log.count("playing voicemode's own way") == 1 and "no-such-device" in log
    assert len(read_replies(folder(home))) == before  # nothing was played through the engine


def test_disable_takes_out_exactly_what_enable_put_in(home: Path) -> None:
    manifest = bridge.read_manifest(home)
    assert manifest is not None
    pth = Path(manifest.pth)
    assert pth.exists() and bridge.is_ours(pth)
    others = sorted(p.name for p in pth.parent.iterdir())
    bridge.disable(home=home)
    try:
        assert not pth.exists() and bridge.read_manifest(home) is None
        after = sorted(p.name for p in pth.parent.iterdir())
        gone = set(others) - set(after)
        names = {p.split("==")[0] for p in manifest.installed}
        assert all(g == bridge.PTH_NAME or any(g.lower().startswith(n) for n in names) for g in gone), gone
        still = subprocess.run([VOICEMODE_PYTHON, "-c", "import voice_mode.streaming as s; print(type(s.sd).__name__)"],
                               capture_output=True, text=True, env={**os.environ, "HOME": str(home)})
        assert still.stdout.strip() == "module"  # voicemode's own sounddevice again
    finally:
        bridge.enable(VOICEMODE_PYTHON, home=home)  # the module fixture turns it off at the end


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
