"""Record what the playout controller decided in a real play, for tests/engine/test_controller.py.

    .venv/bin/python scripts/record_playout_trace.py slow tests/engine/traces/slow.jsonl

Plays one spoken reply (the neural voice where the quality extra is installed, espeak otherwise) from the
embedded server paced as `workbench bench quality`'s server of that name, through elastic playout into a
virtual sink running in real time, and writes the controller's statuses and decisions as JSON lines: each
change of decision, and every tenth row between. The test replays them through `controller.decide`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from workbench.bench.quality import FALLBACK_VOICE, NEURAL_VOICE, REPLIES, SERVERS
from workbench.engine.output import start as start_module
from workbench.engine.output.sinkfactory import sink_factory
from workbench.engine.player import StreamPlayer
from workbench.engine.playout.controller import Decision, Status
from workbench.engine.playout.elastic import ElasticPlayout
from workbench.engine.settings import load_settings
from workbench.server.neural import voices
from workbench.server.runner import EmbeddedServer

KEEP_EVERY = 10
MAX_ROWS = 1500

traces: list[list[tuple[Status, Decision]]] = []


class TracedPlayout(ElasticPlayout):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trace = []
        traces.append(self.trace)


def rows(trace: list[tuple[Status, Decision]]) -> list[dict[str, Any]]:
    kept: list[dict[str, Any]] = []
    last: Decision | None = None
    for i, (s, d) in enumerate(trace):
        if d != last or i % KEEP_EVERY == 0:
            status = dataclasses.asdict(s)
            status["state"] = s.state.name
            kept.append({"status": status, "decision": {"op": d.op.value, "rate": d.rate, "hop_by_hop": d.hop_by_hop}})
        last = d
    return kept[:MAX_ROWS]


async def record(server: str, text: str) -> list[dict[str, Any]]:
    voice = NEURAL_VOICE if NEURAL_VOICE in voices() else FALLBACK_VOICE
    settings = load_settings(environ={}, read_voicemode_files=False,
                             overrides={"playout": "elastic", "audio_format": "pcm", "voices": (voice,)})
    start_module.ElasticPlayout = TracedPlayout  # type: ignore[misc]
    with EmbeddedServer() as embedded:
        async with StreamPlayer(settings, base_url=embedded.base_url, extra_query=SERVERS[server],
                                sink_factory=sink_factory("virtual", speed=1.0)) as p:
            m = await p.play(text)
    if m.error:
        raise SystemExit(f"record_playout_trace: the play failed: {m.error}")
    return rows(traces[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("server", choices=sorted(SERVERS))
    ap.add_argument("out", type=Path)
    ap.add_argument("--reply", type=int, default=1, help="which of bench quality's replies (1-3)")
    o = ap.parse_args()
    kept = asyncio.run(record(o.server, REPLIES[o.reply - 1]))
    o.out.parent.mkdir(parents=True, exist_ok=True)
    o.out.write_text("".join(json.dumps(r) + "\n" for r in kept))
    print(f"{len(kept)} decisions written to {o.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
