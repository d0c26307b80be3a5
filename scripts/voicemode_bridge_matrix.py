#!/usr/bin/env python3
"""voicemode with the bridge off and on, heard from outside: first byte to first sound and the silences
inside an 8 s reply, on three paced servers, for PCM and MP3; medians of `--plays`.

Each play is `scripts/voicemode_bridge_check.py` in voicemode's interpreter (its own simple_tts_failover,
the PulseAudio monitor recorded); the bridge is turned on once with `workbench voicemode enable` and off
per play with WORKBENCH_VOICEMODE_BRIDGE=off, in a home of its own (nothing of the user's is touched).

    .venv/bin/python scripts/voicemode_bridge_matrix.py --python .venv-voicemode/bin/python [--plays 3]

MP3 with the bridge off needs ffmpeg (voicemode decodes it through pydub). Needs PulseAudio
(`source scripts/pulse.sh start`).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from workbench.server.app import Knobs  # noqa: E402
from workbench.server.runner import EmbeddedServer  # noqa: E402
from workbench.usecases import bridge  # noqa: E402

CHECK = Path(__file__).resolve().parent / "voicemode_bridge_check.py"
SERVERS = {  # as the voicemode model's check: 5x; 2x with 80 ms of jitter; 1.1x with 150 ms and a 400 ms stall
    "fast": Knobs(voice="test-signal", pace=0.2, ttfb_ms=150),
    "jittery": Knobs(voice="test-signal", pace=0.5, ttfb_ms=150, lateness_ms=80),
    "slow": Knobs(voice="test-signal", pace=0.9, ttfb_ms=400, lateness_ms=150, pause_at_s=3, pause_ms=400),
}


def play(python: str, home: Path, url: str, fmt: str, on: bool) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEMODE_", "WORKBENCH_"))}
    env.update(HOME=str(home), WORKBENCH_VOICEMODE_BRIDGE="on" if on else "off")
    done = subprocess.run([python, str(CHECK), "--url", url, "--format", fmt], capture_output=True, text=True,
                          timeout=180, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-2000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--python", required=True, help="voicemode's interpreter")
    p.add_argument("--plays", type=int, default=3)
    p.add_argument("--formats", default="pcm,mp3")
    a = p.parse_args()
    home = Path(tempfile.mkdtemp(prefix="bridge-matrix-"))
    bridge.enable(a.python, home=home)
    rows = ["| server | format | bridge | first byte to first sound (ms) | silent gaps (ms) | heard / whole |",
            "|---|---|---|---|---|---|"]
    try:
        for name, knobs in SERVERS.items():
            with EmbeddedServer(knobs=knobs) as server:
                for fmt in a.formats.split(","):
                    for on in (False, True):
                        runs = []
                        for i in range(a.plays):
                            runs.append(play(a.python, home, server.base_url, fmt, on))
                            print(f"{name} {fmt} {'on' if on else 'off'} {i + 1}: {runs[-1]}", file=sys.stderr)
                        first = statistics.median(float(r.get("first_byte_to_sound_ms") or 0) for r in runs)
                        gaps = statistics.median(float(r.get("gap_total_ms") or 0) for r in runs)
                        heard = statistics.median(float(r.get("span_s") or 0) - float(r.get("gap_total_ms") or 0) / 1000
                                                  for r in runs)
                        whole = statistics.median(float(r.get("captured_s") or 0) for r in runs)
                        rows.append(f"| {name} | {fmt} | {'on' if on else 'off'} | {first:.0f} | {gaps:.0f} | "
                                    f"{heard:.2f} / {whole:.2f} s |")
                        print(rows[-1], flush=True)
    finally:
        bridge.disable(home=home)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
