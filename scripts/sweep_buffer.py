"""Sweep VOICEMODE_STREAM_BUFFER_MS per simulated network; prints one JSON line per play.

Used to choose the shipped presets' buffers (see the header of each file in presets/):
    .venv/bin/python scripts/sweep_buffer.py lan,wifi,4g,flaky 50,150,300,500,800,1200 0.9 > sweep.jsonl
    .venv/bin/python scripts/sweep_buffer.py 4g,flaky 50,150,300,500 0.9 mp3 > sweep-mp3.jsonl
Plays on the virtual sink, in real time, against the embedded server with the given pace (wall
seconds per second of audio: 0.9 is a server generating 1.1x real time, like neural TTS on a CPU).
"""

from __future__ import annotations

import asyncio
import json
import sys

from workbench.defaults import DEFAULT_TEXT
from workbench.engine.player import StreamPlayer
from workbench.engine.settings import Settings
from workbench.server.app import Knobs
from workbench.server.runner import EmbeddedServer

NETWORKS = sys.argv[1].split(",") if len(sys.argv) > 1 else ["lan", "wifi", "4g", "flaky"]
BUFFERS = [int(b) for b in sys.argv[2].split(",")] if len(sys.argv) > 2 else [50, 100, 150, 250, 400, 600, 1000]
PACE = float(sys.argv[3]) if len(sys.argv) > 3 else 0.2
FORMAT = sys.argv[4] if len(sys.argv) > 4 else "pcm"
SEEDS = [1, 2, 3]


async def main(base_url: str) -> None:
    for network in NETWORKS:
        for buffer_ms in BUFFERS:
            for seed in SEEDS:
                s = Settings(sink="virtual", audio_format=FORMAT, network=network, network_seed=seed,
                             buffer_ms=buffer_ms, max_buffer_s=max(2.0, buffer_ms / 1000 * 2))
                async with StreamPlayer(s, base_url=base_url) as player:
                    m = await player.play(DEFAULT_TEXT)
                print(json.dumps({"pace": PACE, "format": FORMAT, "network": network, "buffer_ms": buffer_ms,
                                  "seed": seed, "ttfa_ms": m.ttfa_ms, "bytes": m.bytes, "underruns": m.underruns,
                                  "underrun_ms": m.underrun_ms, "error": m.error, "audio_ms": m.audio_ms}),
                      flush=True)


with EmbeddedServer(knobs=Knobs(pace=PACE)) as server:
    asyncio.run(main(server.base_url))
