"""WORKBENCH_AUTO_FORMAT on simulated links: five short replies in a row through one player with `--format
auto`, on `edge` (200 kbit/s, too slow for 24 kHz PCM) and on `lan`, against the embedded server in its own
process, on the virtual sink. Prints each reply's format, underruns, how much of it played slowed, its
arrival (x real time) and why its format was chosen.

    .venv/bin/python scripts/auto_format_on_links.py
"""

from __future__ import annotations

import asyncio

from workbench.bench.harness import ServerProcess, bench_options
from workbench.engine.output.sinkfactory import sink_factory
from workbench.engine.player import StreamPlayer

REPLIES = ("Let me check that for you.", "The tests pass on this branch.", "I found the problem in the parser.",
           "Done, anything else?", "Shall I commit it?")


async def main(url: str) -> None:
    for network in ("edge", "lan"):
        settings = bench_options(sink="virtual", network=network, auto_format=True)
        async with StreamPlayer(settings, base_url=url, sink_factory=sink_factory("virtual")) as player:
            for text in REPLIES:
                m = await player.play(text)
                rtf = "-" if m.arrival_rtf is None else f"{m.arrival_rtf:.2f}x"
                print(f"{network:5} {m.format:4} underruns {m.underruns}  slowed {m.stretched_pct:3.0f} %  "
                      f"arrival {rtf:6}  {m.auto_format}")


if __name__ == "__main__":
    with ServerProcess() as server:
        asyncio.run(main(server.base_url))
